//! `jsonl-archive`: an archive sink writing Halo's compliance records as JSON Lines, one file
//! per UTC day (`<prefix>-YYYY-MM-DD.jsonl`), into the directory the admin grants
//! (`--grant dir:/var/lib/halo/archive`). Each line is the record exactly as Halo's own
//! export writes it.
//!
//! Delivery is at least once; the sink remembers the last id it stored (`.<prefix>.last-id`
//! beside the files) and skips records it already wrote, so a retried batch does not
//! duplicate lines. With `fsync` on (the default) a batch is acknowledged only once its lines
//! are on disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use halo_sdk::{ArchiveRecord, ArchiveSink, DATA_DIR, Host, Level, SinkError};

halo_sdk::manifest!(
    r#"{"name": "jsonl-archive", "version": "0.1.0", "kind": "archive-sink", "api": "halo:plugin@0.1.1",
  "description": "Writes the compliance archive as daily JSON Lines files into a directory you grant (dir:/path).",
  "capabilities": ["dir"],
  "config": {
    "prefix": {"type": "string", "default": "halo-archive", "description": "File name prefix: <prefix>-YYYY-MM-DD.jsonl"},
    "fsync": {"type": "boolean", "default": "true", "description": "Acknowledge a batch only once it is on disk"}
  }}"#
);

/// The sink.
pub struct JsonlArchive;

impl ArchiveSink for JsonlArchive {
    fn deliver(host: &dyn Host, batch: &[ArchiveRecord]) -> Result<(), SinkError> {
        let dir = Path::new(DATA_DIR);
        if !dir.is_dir() {
            return Err(SinkError::Permanent(format!(
                "no directory granted: install with --grant dir:/path/to/archive (it appears here as {DATA_DIR})"
            )));
        }
        write_batch(host, dir, batch)
    }
}

halo_sdk::archive_sink!(JsonlArchive);

/// The sink's settings.
struct Options {
    prefix: String,
    fsync: bool,
}

fn options(host: &dyn Host) -> Result<Options, SinkError> {
    let prefix = host.config("prefix").unwrap_or_else(|| "halo-archive".to_owned());
    let valid = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(SinkError::Permanent(format!("prefix {prefix:?}: use 1-64 characters a-z, 0-9, -, _")));
    }
    Ok(Options { prefix, fsync: host.config("fsync").as_deref() != Some("false") })
}

/// Appends the records not written yet to their day's file in `dir`.
pub fn write_batch(host: &dyn Host, dir: &Path, batch: &[ArchiveRecord]) -> Result<(), SinkError> {
    let opts = options(host)?;
    let marker = dir.join(format!(".{}.last-id", opts.prefix));
    let last = std::fs::read_to_string(&marker).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
    let fresh: Vec<&ArchiveRecord> = batch.iter().filter(|r| r.id > last).collect();
    let Some(newest) = fresh.last().map(|r| r.id) else { return Ok(()) };
    let io = |what: &str, path: &Path, e: std::io::Error| SinkError::Retry(format!("{what} {}: {e}", path.display()));

    // Group by day, keeping id order within each file.
    let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    for r in fresh {
        let path = dir.join(format!("{}-{}.jsonl", opts.prefix, day(r.at_ms)));
        let i = match files.iter().position(|(p, _)| *p == path) {
            Some(i) => i,
            None => {
                files.push((path, Vec::new()));
                files.len() - 1
            }
        };
        let buf = &mut files[i].1;
        buf.extend_from_slice(r.json.as_bytes());
        buf.push(b'\n');
    }
    for (path, bytes) in &files {
        heal_torn_tail(path).map_err(|e| io("repairing", path, e))?;
        let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| io("opening", path, e))?;
        f.write_all(bytes).map_err(|e| io("writing", path, e))?;
        if opts.fsync {
            f.sync_data().map_err(|e| io("syncing", path, e))?;
        }
    }
    std::fs::write(&marker, newest.to_string()).map_err(|e| io("writing", &marker, e))?;
    host.log(Level::Debug, &format!("stored records up to {newest} in {} file(s)", files.len()));
    Ok(())
}

/// Cuts a line left half-written by a crash (a file not ending in a newline) back to its last
/// complete line; the records of that line come again, since they were not acknowledged.
fn heal_torn_tail(path: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(());
    }
    let tail_len = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(tail_len as usize);
    f.read_to_end(&mut tail)?;
    if tail.last() == Some(&b'\n') {
        return Ok(());
    }
    let keep = tail.iter().rposition(|b| *b == b'\n').map_or(len - tail_len, |i| len - tail_len + i as u64 + 1);
    f.set_len(keep)?;
    f.sync_data()
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the Unix epoch.
pub fn day(at_ms: u64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = (at_ms / 86_400_000) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use halo_sdk::ArchiveEvent;
    use halo_sdk::testing::TestHost;

    use super::*;

    fn record(id: u64, at_ms: u64) -> ArchiveRecord {
        ArchiveRecord {
            id,
            at_ms,
            event: ArchiveEvent::Message,
            conversation: Some(1),
            room: None,
            from: "alice".into(),
            user: None,
            participants: vec!["alice".into(), "bob".into()],
            external: false,
            text: Some(format!("m{id}")),
            format: Some("plain".into()),
            json: format!(r#"{{"id":{id}}}"#),
        }
    }

    #[test]
    fn days_are_utc_calendar_dates() {
        assert_eq!(day(0), "1970-01-01");
        assert_eq!(day(951_782_400_000), "2000-02-29");
        assert_eq!(day(1_795_654_631_548), "2026-11-26");
    }

    #[test]
    fn writes_daily_files_in_order_and_skips_what_it_stored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = TestHost::new().with_config("prefix", "arc");
        let d1 = 1_795_654_631_548;
        let d2 = d1 + 86_400_000;
        write_batch(&host, dir.path(), &[record(1, d1), record(2, d1), record(3, d2)]).expect("stored");
        // A retry of an overlapping batch writes only the new record.
        write_batch(&host, dir.path(), &[record(2, d1), record(3, d2), record(4, d2)]).expect("stored");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).expect("file");
        assert_eq!(read("arc-2026-11-26.jsonl"), "{\"id\":1}\n{\"id\":2}\n");
        assert_eq!(read("arc-2026-11-27.jsonl"), "{\"id\":3}\n{\"id\":4}\n");
    }

    #[test]
    fn a_torn_last_line_is_cut_before_appending() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = TestHost::new().with_config("prefix", "arc");
        let path = dir.path().join("arc-1970-01-01.jsonl");
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2").expect("torn file");
        write_batch(&host, dir.path(), &[record(2, 0), record(3, 0)]).expect("stored");
        assert_eq!(std::fs::read_to_string(&path).expect("file"), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
    }

    #[test]
    fn a_bad_prefix_is_permanent_and_a_missing_directory_is_retried() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad = TestHost::new().with_config("prefix", "../escape");
        assert!(matches!(write_batch(&bad, dir.path(), &[record(1, 0)]), Err(SinkError::Permanent(_))));
        let host = TestHost::new();
        let gone = dir.path().join("missing");
        assert!(matches!(write_batch(&host, &gone, &[record(1, 0)]), Err(SinkError::Retry(_))));
    }
}

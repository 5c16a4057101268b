//! `jsonl-archive`: an archive sink writing Halo's compliance records as JSON Lines, one file
//! per UTC day (`<prefix>-YYYY-MM-DD.jsonl`), into the directory the admin grants
//! (`--grant dir:/var/lib/halo/archive`). Each line is the record exactly as Halo's own
//! export writes it.
//!
//! Delivery is at least once, and writing is idempotent: a record goes to the file of its day,
//! each file is appended to in id order, so the id on a file's last complete line says which of
//! a batch's records that file already holds. A batch the host sends again (after a crash
//! between the sink's write and the host's bookkeeping, or between the write and the sink's own
//! marker) adds only what is missing. The marker (`.<prefix>.last-id` beside the files, replaced
//! atomically) is a shortcut for records acknowledged long ago, whose day files may have been
//! moved away. With `fsync` on (the default) a batch is acknowledged only once its lines are on
//! disk.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
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

/// Appends the records not written yet to their day's file in `dir`: those past the marker,
/// and in each file past the id of its last complete line.
pub fn write_batch(host: &dyn Host, dir: &Path, batch: &[ArchiveRecord]) -> Result<(), SinkError> {
    let opts = options(host)?;
    let marker = dir.join(format!(".{}.last-id", opts.prefix));
    let acked = std::fs::read_to_string(&marker).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
    let mut fresh: Vec<&ArchiveRecord> = batch.iter().filter(|r| r.id > acked).collect();
    fresh.sort_by_key(|r| r.id);
    let Some(newest) = fresh.last().map(|r| r.id) else { return Ok(()) };
    let io = |what: &str, path: &Path, e: std::io::Error| SinkError::Retry(format!("{what} {}: {e}", path.display()));

    // Group by day, keeping id order within each file.
    let mut files: Vec<(PathBuf, Vec<&ArchiveRecord>)> = Vec::new();
    for r in fresh {
        let path = dir.join(format!("{}-{}.jsonl", opts.prefix, day(r.at_ms)));
        match files.iter_mut().find(|(p, _)| *p == path) {
            Some((_, records)) => records.push(r),
            None => files.push((path, vec![r])),
        }
    }
    let (mut written, mut skipped) = (0usize, 0usize);
    for (path, records) in &files {
        let last = settle(host, path).map_err(|e| io("reading", path, e))?;
        let (missing, present): (Vec<&ArchiveRecord>, Vec<&ArchiveRecord>) = records.iter().partition(|r| r.id > last);
        skipped += present.len();
        written += missing.len();
        let mut bytes = Vec::new();
        for r in missing {
            bytes.extend_from_slice(r.json.as_bytes());
            bytes.push(b'\n');
        }
        if bytes.is_empty() {
            continue;
        }
        let mut f = OpenOptions::new().create(true).append(true).open(path).map_err(|e| io("opening", path, e))?;
        f.write_all(&bytes).map_err(|e| io("writing", path, e))?;
        if opts.fsync {
            f.sync_data().map_err(|e| io("syncing", path, e))?;
        }
    }
    if skipped > 0 {
        host.log(Level::Info, &format!("{skipped} record(s) sent again were already in the files; not repeated"));
    }
    // Replaced whole (a crash leaves the old marker or the new one, never a torn one).
    let tmp = dir.join(format!(".{}.last-id.tmp", opts.prefix));
    std::fs::write(&tmp, newest.to_string()).map_err(|e| io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &marker).map_err(|e| io("replacing", &marker, e))?;
    host.log(Level::Debug, &format!("stored {written} record(s) up to {newest} in {} file(s)", files.len()));
    Ok(())
}

/// Bytes read at a time when looking for line starts from the end of a file.
const CHUNK: u64 = 64 * 1024;

/// Readies `path` for appending and says what it holds: cuts a line left half-written by a
/// crash (the file not ending in a newline) back to the last complete line — that record was
/// not acknowledged and comes again — and returns the id of the last complete line (0 for a
/// missing or empty file, or a last line that is not a record, which is logged).
fn settle(host: &dyn Host, path: &Path) -> std::io::Result<u64> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    f.seek(SeekFrom::Start(len - 1))?;
    f.read_exact(&mut last)?;
    if last[0] != b'\n' {
        len = newline_before(&mut f, len)?.map_or(0, |p| p + 1);
        f.set_len(len)?;
        f.sync_data()?;
        host.log(Level::Warn, &format!("cut a line torn by a crash at the end of {}", path.display()));
        if len == 0 {
            return Ok(0);
        }
    }
    let start = newline_before(&mut f, len - 1)?.map_or(0, |p| p + 1);
    let mut line = vec![0u8; (len - 1 - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut line)?;
    #[derive(serde::Deserialize)]
    struct Id {
        id: u64,
    }
    match serde_json::from_slice::<Id>(&line) {
        Ok(r) => Ok(r.id),
        Err(e) => {
            host.log(
                Level::Warn,
                &format!("the last line of {} is not a record ({e}); relying on the marker", path.display()),
            );
            Ok(0)
        }
    }
}

/// The offset of the last newline before `end`, reading backwards a chunk at a time.
fn newline_before(f: &mut File, end: u64) -> std::io::Result<Option<u64>> {
    let mut hi = end;
    let mut buf = Vec::new();
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        buf.resize((hi - lo) as usize, 0);
        f.seek(SeekFrom::Start(lo))?;
        f.read_exact(&mut buf)?;
        if let Some(i) = buf.iter().rposition(|b| *b == b'\n') {
            return Ok(Some(lo + i as u64));
        }
        hi = lo;
    }
    Ok(None)
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
    fn a_batch_sent_again_after_a_crash_before_the_marker_adds_only_what_is_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = TestHost::new().with_config("prefix", "arc");
        let d1 = 1_795_654_631_548;
        let d2 = d1 + 86_400_000;
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        write_batch(&host, dir.path(), &[record(1, d1), record(2, d1)]).expect("stored");
        // The next batch reached the first day's file, then the process died: no marker
        // update, and the second day's file was never written.
        std::fs::write(dir.path().join("arc-2026-11-26.jsonl"), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n")
            .expect("first file");
        // The host sends it again, cut differently.
        write_batch(&host, dir.path(), &[record(3, d1), record(4, d2), record(5, d2)]).expect("stored");
        assert_eq!(read("arc-2026-11-26.jsonl"), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
        assert_eq!(read("arc-2026-11-27.jsonl"), "{\"id\":4}\n{\"id\":5}\n");
        assert_eq!(read(".arc.last-id"), "5");
        assert!(host.logs().iter().any(|(_, l)| l.contains("1 record(s) sent again")), "{:?}", host.logs());

        // A marker lost altogether (or an operator reinstalling the sink on the same
        // directory): everything comes again, nothing is repeated.
        std::fs::remove_file(dir.path().join(".arc.last-id")).expect("marker gone");
        let all: Vec<ArchiveRecord> =
            [(1, d1), (2, d1), (3, d1), (4, d2), (5, d2), (6, d2)].map(|(id, at)| record(id, at)).into();
        write_batch(&host, dir.path(), &all).expect("stored");
        assert_eq!(read("arc-2026-11-26.jsonl"), "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n");
        assert_eq!(read("arc-2026-11-27.jsonl"), "{\"id\":4}\n{\"id\":5}\n{\"id\":6}\n");
        assert_eq!(read(".arc.last-id"), "6");
        assert!(!dir.path().join(".arc.last-id.tmp").exists(), "the marker is replaced, not left aside");
    }

    #[test]
    fn a_torn_line_longer_than_a_read_is_cut_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = TestHost::new().with_config("prefix", "arc");
        let path = dir.path().join("arc-1970-01-01.jsonl");
        let torn = format!("{{\"id\":1}}\n{{\"id\":2,\"text\":\"{}", "x".repeat(200_000));
        std::fs::write(&path, torn).expect("torn file");
        write_batch(&host, dir.path(), &[record(2, 0)]).expect("stored");
        assert_eq!(std::fs::read_to_string(&path).expect("file"), "{\"id\":1}\n{\"id\":2}\n");
        // A file that is one torn line.
        std::fs::write(&path, "{\"id\":3,\"te").expect("torn file");
        std::fs::remove_file(dir.path().join(".arc.last-id")).expect("marker gone");
        write_batch(&host, dir.path(), &[record(3, 0)]).expect("stored");
        assert_eq!(std::fs::read_to_string(&path).expect("file"), "{\"id\":3}\n");
    }

    #[test]
    fn a_last_line_that_is_not_a_record_falls_back_to_the_marker() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = TestHost::new().with_config("prefix", "arc");
        let path = dir.path().join("arc-1970-01-01.jsonl");
        write_batch(&host, dir.path(), &[record(1, 0)]).expect("stored");
        std::fs::write(&path, "{\"id\":1}\nnot json\n").expect("edited by hand");
        write_batch(&host, dir.path(), &[record(1, 0), record(2, 0)]).expect("stored");
        assert_eq!(std::fs::read_to_string(&path).expect("file"), "{\"id\":1}\nnot json\n{\"id\":2}\n");
        assert!(host.logs().iter().any(|(l, m)| *l == Level::Warn && m.contains("not a record")), "{:?}", host.logs());
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

//! Snapshots of the IM projection: written in the background (never on the acknowledgement
//! path) to `im-snapshot.v1` in the database directory, so a start folds only the log's tail.
//!
//! A snapshot is a [`SnapshotV1`] record (MessagePack, named fields) as of one log entry; it is
//! written to a temporary file, synced and renamed over the previous one, so a crash leaves
//! either snapshot whole. One that does not decode (or is ahead of the log) is ignored: the
//! projection is then rebuilt from the whole log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, Weak};
use std::time::{Duration, Instant};

use halo_core::im::ImState;

use crate::records::log::SnapshotV1;

/// The snapshot's file name in the data directory.
pub const FILE: &str = "im-snapshot.v1";
/// Log entries after which a snapshot is taken.
pub const EVERY_ENTRIES: u64 = 100_000;
/// Time after which a snapshot is taken if anything was appended.
pub const EVERY: Duration = Duration::from_secs(60);

/// The snapshot in `dir`, if there is a readable one.
pub(crate) fn load(dir: &Path) -> Option<ImState> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "snapshot unreadable; rebuilding from the log");
            return None;
        }
    };
    match rmp_serde::from_slice::<SnapshotV1>(&bytes) {
        Ok(s) => Some(s.into()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "snapshot does not decode; rebuilding from the log");
            None
        }
    }
}

/// Writes a snapshot of `state` to `dir` now; returns its log position.
pub(crate) fn write(dir: &Path, state: &RwLock<ImState>) -> std::io::Result<u64> {
    let record = {
        let s = state.read().unwrap_or_else(|p| p.into_inner());
        SnapshotV1::from(&*s)
    };
    let seq = record.seq;
    let bytes = rmp_serde::to_vec_named(&record).map_err(std::io::Error::other)?;
    drop(record);
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(seq)
}

/// Starts the snapshot thread; it ends when the projection is dropped (store closed).
pub(crate) fn spawn(dir: &Path, state: Weak<RwLock<ImState>>) {
    let dir: PathBuf = dir.to_owned();
    let started = std::thread::Builder::new().name("halo-snapshot".into()).spawn(move || {
        let mut taken = state.upgrade().map_or(0, |s| s.read().unwrap_or_else(|p| p.into_inner()).seq);
        let mut at = Instant::now();
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(s) = state.upgrade() else { return };
            let seq = s.read().unwrap_or_else(|p| p.into_inner()).seq;
            if seq >= taken + EVERY_ENTRIES || (seq > taken && at.elapsed() >= EVERY) {
                match write(&dir, &s) {
                    Ok(n) => {
                        tracing::debug!(seq = n, "IM snapshot written");
                        taken = n;
                    }
                    Err(e) => tracing::warn!(error = %e, "writing the IM snapshot failed; retrying later"),
                }
                at = Instant::now();
            }
        }
    });
    if let Err(e) = started {
        tracing::warn!(error = %e, "could not start the snapshot thread; starts replay the whole log");
    }
}

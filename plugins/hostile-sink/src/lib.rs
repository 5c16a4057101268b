//! `hostile-sink`: a test archive sink that misbehaves as its `mode` config says, so the
//! server's isolation of failing sinks can be tested: `trap` (panics), `hang` (loops until its
//! deadline), `retry` (asks to be retried), `permanent` (refuses for good), `ok` (accepts).

use halo_sdk::{ArchiveRecord, ArchiveSink, Host, SinkError};

halo_sdk::manifest!(
    r#"{"name": "hostile-sink", "version": "0.1.0", "kind": "archive-sink", "api": "halo:plugin@0.1.1",
  "description": "Fails on purpose (tests).",
  "config": {"mode": {"type": "string", "default": "ok", "description": "ok, trap, hang, retry or permanent"}}}"#
);

/// The sink.
pub struct HostileSink;

impl ArchiveSink for HostileSink {
    fn deliver(host: &dyn Host, batch: &[ArchiveRecord]) -> Result<(), SinkError> {
        match host.config("mode").as_deref() {
            Some("trap") => panic!("hostile sink trapping on purpose ({} records)", batch.len()),
            Some("hang") => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Some("retry") => Err(SinkError::Retry("downstream unavailable (on purpose)".into())),
            Some("permanent") => Err(SinkError::Permanent("refusing for good (on purpose)".into())),
            _ => Ok(()),
        }
    }
}

halo_sdk::archive_sink!(HostileSink);

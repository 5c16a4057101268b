//! `hostile-sink`: a test archive sink that misbehaves as its `mode` config says, so the
//! server's isolation of failing sinks can be tested: `trap` (panics), `hang` (loops until its
//! deadline), `retry` (asks to be retried), `permanent` (refuses for good), `ok` (accepts),
//! `fill` (writes `mb` MiB, 1 MiB per file, into its granted directory and logs how far it got),
//! `symlink` (tries to plant `/data/escape -> ../../..` and logs the outcome).

use std::io::Write;

use halo_sdk::{ArchiveRecord, ArchiveSink, Host, Level, SinkError};

unsafe extern "C" {
    /// wasi-libc's `symlink` (std has no stable way to make one on WASI).
    fn symlink(target: *const std::ffi::c_char, path: *const std::ffi::c_char) -> std::ffi::c_int;
}

/// Writes `mb` MiB, one file per MiB, until one fails; the number written and the error.
fn fill(mb: usize) -> (usize, Option<std::io::Error>) {
    let chunk = vec![b'x'; 1 << 20];
    for i in 0..mb {
        let written = std::fs::File::create(format!("/data/fill-{i}")).and_then(|mut f| f.write_all(&chunk));
        if let Err(e) = written {
            return (i, Some(e));
        }
    }
    (mb, None)
}

halo_sdk::manifest!(
    r#"{"name": "hostile-sink", "version": "0.1.0", "kind": "archive-sink", "api": "halo:plugin@0.1.1",
  "description": "Fails on purpose (tests).",
  "capabilities": ["dir"],
  "config": {"mode": {"type": "string", "default": "ok", "description": "ok, trap, hang, retry, permanent, fill or symlink"},
             "mb": {"type": "integer", "default": "10", "description": "how much `fill` writes, MiB"}}}"#
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
            Some("fill") => {
                let mb = host.config("mb").and_then(|v| v.parse().ok()).unwrap_or(10);
                match fill(mb) {
                    (n, Some(e)) => host.log(Level::Warn, &format!("fill: wrote {n} MiB, then refused: {e}")),
                    (n, None) => host.log(Level::Info, &format!("fill: wrote all {n} MiB")),
                }
                Ok(())
            }
            Some("symlink") => {
                // SAFETY: two NUL-terminated C strings that outlive the call.
                let rc = unsafe { symlink(c"../../..".as_ptr(), c"/data/escape".as_ptr()) };
                if rc == 0 {
                    host.log(Level::Warn, "symlink: planted /data/escape");
                } else {
                    host.log(Level::Info, &format!("symlink: refused: {}", std::io::Error::last_os_error()));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

halo_sdk::archive_sink!(HostileSink);

//! `dir`: one host directory, chosen by the admin in the grant (`dir:/var/lib/halo/archive`),
//! preopened for the plugin as [`GUEST_PATH`] through WASI's filesystem. Without the grant the
//! plugin sees no filesystem at all.
//!
//! Two rules on top of WASI's sandbox (which already keeps every path inside the directory):
//! - **A disk quota** (`dir_quota_bytes`, 64 MiB by default): the sizes of the files in the
//!   directory plus 256 bytes per entry. A write (`write`, a write or append stream, `set-size`
//!   growing a file) that would go past it fails with an error the guest sees (`quota`, or a
//!   failed stream) and nothing is written. The host keeps a running
//!   estimate and walks the directory again only when the estimate says a write does not fit,
//!   so removed or overwritten files are counted out then.
//! - **No symbolic links**: `symlink-at` fails with `not-permitted`, so a plugin cannot plant a
//!   link pointing out of its directory for someone else (an admin, a backup, another
//!   program) to follow.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{self as fs, ErrorCode, HostDescriptor};
use wasmtime_wasi::p2::{DynOutputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::executor::PluginState;

/// Where the granted directory appears inside the plugin.
pub const GUEST_PATH: &str = "/data";

/// Bytes counted for every file or directory, on top of its size.
const ENTRY_BYTES: u64 = 256;

/// The grant: the host directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirGrant {
    /// Absolute host path.
    pub path: PathBuf,
}

impl DirGrant {
    /// Reads the value of a `dir:<path>` grant: an absolute path, created if missing.
    pub fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        let raw = value
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("the dir grant names a directory: dir:/path/to/dir"))?;
        let path = Path::new(raw.trim());
        if !path.is_absolute() {
            anyhow::bail!("the dir grant needs an absolute path, got {raw:?}");
        }
        std::fs::create_dir_all(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
        if !path.is_dir() {
            anyhow::bail!("{} is not a directory", path.display());
        }
        Ok(Self { path: path.to_owned() })
    }

    /// Adds the preopen to an instance's WASI context.
    pub(crate) fn apply(&self, wasi: &mut WasiCtxBuilder) -> anyhow::Result<()> {
        wasi.preopened_dir(&self.path, GUEST_PATH, FsPerms::ReadWrite)
            .map_err(|e| anyhow::anyhow!("opening {} for the plugin: {e}", self.path.display()))?;
        Ok(())
    }
}

/// The disk quota of one plugin's directory, shared by its instances.
#[derive(Debug)]
pub struct Quota {
    root: PathBuf,
    limit: u64,
    /// The running estimate of the bytes used (none: not measured yet).
    used: Mutex<Option<u64>>,
}

/// What a directory holds, counted as the quota counts it (links are not followed).
pub fn usage(root: &Path) -> u64 {
    fn walk(dir: &Path, depth: u32, total: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else { continue };
            *total = total.saturating_add(ENTRY_BYTES);
            if meta.is_dir() {
                if depth < 64 {
                    walk(&e.path(), depth + 1, total);
                }
            } else {
                *total = total.saturating_add(meta.len());
            }
        }
    }
    let mut total = 0;
    walk(root, 0, &mut total);
    total
}

impl Quota {
    /// The quota of `root`: `limit` bytes.
    pub fn new(root: PathBuf, limit: u64) -> Arc<Self> {
        Arc::new(Self { root, limit, used: Mutex::new(None) })
    }

    /// Takes `n` more bytes: `false` (and nothing taken) when they do not fit.
    pub fn reserve(&self, n: u64) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let estimate = used.unwrap_or_else(|| usage(&self.root));
        if estimate.saturating_add(n) <= self.limit {
            *used = Some(estimate + n);
            return true;
        }
        // Files may have been removed or overwritten in place since: count again.
        let actual = usage(&self.root);
        let fits = actual.saturating_add(n) <= self.limit;
        *used = Some(if fits { actual + n } else { actual });
        if !fits {
            tracing::warn!(dir = %self.root.display(), limit = self.limit, used = actual, "plugin dir quota reached: write refused");
        }
        fits
    }
}

/// A file stream whose writes count against the quota.
struct QuotaStream {
    inner: DynOutputStream,
    quota: Arc<Quota>,
}

fn over_quota() -> StreamError {
    let e = std::io::Error::from_raw_os_error(libc::ENOSPC);
    StreamError::LastOperationFailed(wasmtime::Error::from(e))
}

#[wasmtime_wasi::async_trait]
impl Pollable for QuotaStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for QuotaStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.quota.reserve(bytes.len() as u64) {
            return Err(over_quota());
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        if !self.quota.reserve(bytes.len() as u64) {
            return Err(over_quota());
        }
        self.inner.blocking_write_and_flush(bytes).await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

type Fd = Resource<Descriptor>;

/// Converts a WASI filesystem result for the guest (an error code, or a trap).
fn answer<T>(state: &mut PluginState, r: wasmtime_wasi::p2::FsResult<T>) -> wasmtime::Result<(Result<T, ErrorCode>,)> {
    match r {
        Ok(v) => Ok((Ok(v),)),
        Err(e) => Ok((Err(fs::Host::convert_error_code(&mut state.filesystem(), e)?),)),
    }
}

/// Wraps a new stream of the table in a [`QuotaStream`] when a quota applies.
fn wrap(state: &mut PluginState, stream: Resource<DynOutputStream>) -> wasmtime::Result<Resource<DynOutputStream>> {
    let Some(quota) = state.dir_quota.clone() else { return Ok(stream) };
    let view = state.filesystem();
    let inner = view.table.delete(stream)?;
    let wrapped: DynOutputStream = Box::new(QuotaStream { inner, quota });
    Ok(view.table.push(wrapped)?)
}

/// Replaces the `wasi:filesystem` functions the quota and the symlink rule govern, in the
/// instance wasmtime-wasi defines (its WIT version; guests importing an older 0.2.x are served
/// by it). Tested end to end by the hostile sink (`fill`, `symlink`) in the server's tests.
pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut i = linker.instance("wasi:filesystem/types@0.2.12")?;
    i.func_wrap("[method]descriptor.symlink-at", |_, (_fd, _old, _new): (Fd, String, String)| {
        Ok((Err::<(), _>(ErrorCode::NotPermitted),))
    })?;
    i.func_wrap("[method]descriptor.write", |mut store, (fd, buf, offset): (Fd, Vec<u8>, u64)| {
        let state = store.data_mut();
        if let Some(q) = &state.dir_quota
            && !q.reserve(buf.len() as u64)
        {
            return Ok((Err(ErrorCode::Quota),));
        }
        let r = HostDescriptor::write(&mut state.filesystem(), fd, buf, offset);
        answer(state, r)
    })?;
    i.func_wrap("[method]descriptor.set-size", |mut store, (fd, size): (Fd, u64)| {
        let state = store.data_mut();
        if let Some(q) = state.dir_quota.clone() {
            let view = state.filesystem();
            let now = match view.table.get(&fd)? {
                Descriptor::File(f) => f.file.metadata().map_or(0, |m| m.len()),
                Descriptor::Dir(_) => 0,
            };
            if size > now && !q.reserve(size - now) {
                return Ok((Err(ErrorCode::Quota),));
            }
        }
        let r = HostDescriptor::set_size(&mut state.filesystem(), fd, size);
        answer(state, r)
    })?;
    i.func_wrap("[method]descriptor.write-via-stream", |mut store, (fd, offset): (Fd, u64)| {
        let state = store.data_mut();
        match HostDescriptor::write_via_stream(&mut state.filesystem(), fd, offset) {
            Ok(s) => Ok((Ok(wrap(state, s)?),)),
            Err(e) => answer(state, Err(e)),
        }
    })?;
    i.func_wrap("[method]descriptor.append-via-stream", |mut store, (fd,): (Fd,)| {
        let state = store.data_mut();
        match HostDescriptor::append_via_stream(&mut state.filesystem(), fd) {
            Ok(s) => Ok((Ok(wrap(state, s)?),)),
            Err(e) => answer(state, Err(e)),
        }
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_needs_an_absolute_directory() {
        assert!(DirGrant::parse(None).expect_err("no path").to_string().contains("dir:/"));
        assert!(DirGrant::parse(Some("relative/dir")).expect_err("relative").to_string().contains("absolute"));
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        assert!(DirGrant::parse(Some(&file.display().to_string())).is_err(), "a file is not a directory");
        let made = tmp.path().join("a/b");
        assert_eq!(DirGrant::parse(Some(&made.display().to_string())).expect("created").path, made);
        assert!(made.is_dir());
    }

    #[test]
    fn the_quota_counts_files_again_before_refusing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("a"), vec![0; 1000]).expect("write");
        assert_eq!(usage(tmp.path()), 1000 + ENTRY_BYTES);
        let q = Quota::new(tmp.path().to_owned(), 2000);
        assert!(q.reserve(500));
        std::fs::write(tmp.path().join("b"), vec![0; 500]).expect("write");
        assert!(!q.reserve(500), "1256 + 756 + 500 is over 2000");
        std::fs::remove_file(tmp.path().join("a")).expect("rm");
        assert!(q.reserve(1000), "the removed file is counted out when the estimate is over");
        std::fs::write(tmp.path().join("c"), vec![0; 1000]).expect("write");
        assert!(!q.reserve(1000), "756 + 1256 + 1000 is over 2000");
    }
}

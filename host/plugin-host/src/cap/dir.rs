//! `dir`: one host directory, chosen by the admin in the grant (`dir:/var/lib/halo/archive`),
//! preopened for the plugin as [`GUEST_PATH`] through WASI's filesystem. Without the grant the
//! plugin sees no filesystem at all.

use std::path::{Path, PathBuf};

use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Where the granted directory appears inside the plugin.
pub const GUEST_PATH: &str = "/data";

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
}

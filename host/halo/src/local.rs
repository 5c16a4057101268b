//! Local discovery: `halo serve` writes `<data>/local.json` (mode 0600) with its URL and a
//! CLI token valid while it runs, so admin verbs on the same machine need no flags.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// File name inside the data directory.
pub const FILE: &str = "local.json";

/// What the server leaves for the local CLI.
#[derive(Debug, Serialize, Deserialize)]
pub struct Local {
    /// Where the server listens, e.g. `http://127.0.0.1:7420`.
    pub url: String,
    /// Admin token valid until the server stops.
    pub token: String,
    /// The server's certificate chain when it serves TLS, to trust it locally.
    pub ca_cert: Option<PathBuf>,
    /// The server's process id.
    pub pid: u32,
}

/// Writes `contents` to `path` readable by the owner only.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

impl Local {
    /// Writes the file.
    pub fn write(&self, data_dir: &Path) -> anyhow::Result<()> {
        write_private(&data_dir.join(FILE), &serde_json::to_vec_pretty(self)?)
    }

    /// Reads the file, explaining what to do when it is missing.
    pub fn read(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "no local server found ({} is missing): start `halo serve` here, or pass --server URL and --token TOKEN",
                path.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
    }

    /// Removes the file (clean shutdown).
    pub fn remove(data_dir: &Path) {
        let _ = std::fs::remove_file(data_dir.join(FILE));
    }
}

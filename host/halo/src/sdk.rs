//! The plugin SDK shipped inside the `halo` binary: `sdk/` (the `halo-sdk` crate) and `wit/`
//! (the WIT packages it generates its bindings from), embedded at build time, so a plugin
//! author with only the `halo` binary and the Rust toolchain can scaffold, test and build.
//! `halo plugin new` vendors them into the new project (`vendor/halo-sdk`, `vendor/wit`, a path
//! dependency); `halo plugin sdk DIR` writes them anywhere (to update a vendored copy).

use std::path::Path;

use anyhow::Context;
use include_dir::{Dir, include_dir};

/// The SDK's sources (`sdk/src`).
static SDK_SRC: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../sdk/src");
/// Every WIT version (`wit/`); the SDK's bindings name them as `../wit/vX.Y.Z`.
static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../wit");
/// The SDK's manifest.
const SDK_CARGO_TOML: &str = include_str!("../../../sdk/Cargo.toml");
/// The SDK's guide.
const SDK_README: &str = include_str!("../../../sdk/README.md");

/// Writes the SDK as `dir/halo-sdk` and the WIT packages as `dir/wit` (replacing older copies
/// there); returns the crate's path, `dir/halo-sdk`.
pub fn export(dir: &Path) -> anyhow::Result<std::path::PathBuf> {
    let sdk = dir.join("halo-sdk");
    let wit = dir.join("wit");
    for old in [&sdk, &wit] {
        if old.exists() {
            std::fs::remove_dir_all(old).with_context(|| format!("replacing {}", old.display()))?;
        }
    }
    std::fs::create_dir_all(sdk.join("src")).with_context(|| format!("creating {}", sdk.display()))?;
    std::fs::write(sdk.join("Cargo.toml"), SDK_CARGO_TOML)?;
    std::fs::write(sdk.join("README.md"), SDK_README)?;
    SDK_SRC.extract(sdk.join("src")).with_context(|| format!("writing {}", sdk.display()))?;
    std::fs::create_dir_all(&wit)?;
    WIT.extract(&wit).with_context(|| format!("writing {}", wit.display()))?;
    Ok(sdk)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_sdk_and_every_wit_version_are_embedded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sdk = super::export(dir.path()).expect("export");
        assert!(sdk.join("src/lib.rs").is_file());
        assert!(std::fs::read_to_string(sdk.join("Cargo.toml")).expect("toml").contains("name = \"halo-sdk\""));
        for v in ["v0.1.0", "v0.1.1", "v0.1.2", "v0.1.3", "v0.1.4"] {
            assert!(dir.path().join("wit").join(v).join("plugin.wit").is_file(), "{v}");
        }
        // Exporting again replaces the copy.
        super::export(dir.path()).expect("export again");
    }
}

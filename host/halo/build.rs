//! Rebuilds `halo` when the SDK or the WIT it embeds changes (`include_dir!` alone does not
//! tell cargo to watch the folders).

fn main() {
    println!("cargo:rerun-if-changed=../../sdk/src");
    println!("cargo:rerun-if-changed=../../sdk/Cargo.toml");
    println!("cargo:rerun-if-changed=../../sdk/README.md");
    println!("cargo:rerun-if-changed=../../wit");
}

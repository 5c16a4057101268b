//! Rebuilds the server when a file of the embedded web client changes (`include_dir!` alone
//! does not tell cargo to watch the folder).

fn main() {
    println!("cargo:rerun-if-changed=web");
}

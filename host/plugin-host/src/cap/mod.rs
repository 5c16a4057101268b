//! Host capabilities, one unit each: its config (what the admin granted and set), its
//! per-instance state (a field of the store's data), and its linker hook. `log` and `config`
//! every plugin has; `kv` answers `access-denied` unless granted.

pub mod config;
pub mod kv;
pub mod log;

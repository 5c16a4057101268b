//! Runs Halo's plugins: WebAssembly components built against a `halo:plugin` WIT version.
//!
//! Start from [`Runtime`] (one wasmtime engine, the epoch ticker, the compile cache) and
//! [`Plugin`] (one installed component: its [`Manifest`], grants and config, its executor
//! thread owning a live instance re-created from its `InstancePre` after any trap, limits, and
//! the trap and CPU budgets that throttle or disable it). Guest code never runs on the
//! caller's thread: async callers await the executor, others block on it (see
//! [`Plugin`]'s methods and the `executor` module). A plugin implements one world: `presence-states` ([`Plugin::derive`]) or
//! `archive-sink` ([`Plugin::deliver`]) or `federation-adapter` ([`Plugin::adapter_start`],
//! [`Plugin::adapter_handle`], with the types in [`federation`]). Host capabilities are small units under [`cap`] —
//! `log`, `config`, `kv`, `dir`, `http`, `net` — each with its config, per-instance state and linker hook;
//! anything not granted is denied.
//!
//! This crate knows nothing of sled or axum: plugin-private storage comes through the
//! [`cap::kv::KvBackend`] trait, and the server owns persistence and the admin API.

mod answers;
mod bindings;
mod budget;
pub mod cap;
mod executor;
pub mod federation;
mod limits;
mod manifest;
mod plugin;
mod runtime;

pub use executor::CallObserver;
pub use limits::PluginLimits;
pub use manifest::{
    ConfigField, FieldType, Manifest, ManifestError, SECRET_MASK, SUPPORTED_APIS, allowed_capabilities, is_secret, pack,
};
pub use plugin::{CallError, DeriveRequest, Plugin, PluginStatus, SinkOutcome, StateInfo};
pub use runtime::Runtime;

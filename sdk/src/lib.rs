//! Write Halo plugins in Rust.
//!
//! A presence plugin is a type implementing [`PresencePlugin`] with plain Rust types; the
//! [`presence_plugin!`] macro turns it into a WebAssembly component exporting the
//! `halo:plugin@0.1.0` world `presence-states`. An archive sink implements [`ArchiveSink`]
//! and [`archive_sink!`] exports it as the `halo:plugin@0.1.1` world `archive-sink` (cargo
//! feature `archive-sink`). A federation adapter implements [`FederationAdapter`] and
//! [`federation_adapter!`] exports it as the `halo:plugin@0.1.4` world `federation-adapter`
//! (cargo feature `federation`); [`testing::AdapterHarness`] drives one natively. [`manifest!`] embeds the manifest the server reads at install
//! (name, version, requested capabilities, config schema). The same code runs natively against
//! [`testing::TestHost`] in unit tests. See `sdk/README.md`.

#[cfg(all(target_arch = "wasm32", any(feature = "presence", feature = "archive-sink", feature = "federation")))]
#[doc(hidden)]
pub mod glue;

/// The WIT bindings of `presence-states` (generated; used by the macros).
#[cfg(all(target_arch = "wasm32", feature = "presence", not(feature = "calendar")))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.0",
        world: "presence-states",
        pub_export_macro: true,
        default_bindings_module: "halo_sdk::bindings",
    });
}

/// The WIT bindings of `presence-states` with the `calendar` import (0.1.3; feature
/// `calendar`).
#[cfg(all(target_arch = "wasm32", feature = "calendar"))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.3",
        world: "presence-states",
        pub_export_macro: true,
        default_bindings_module: "halo_sdk::bindings",
    });
}

/// The WIT bindings of `archive-sink` (generated; used by the macros).
#[cfg(all(target_arch = "wasm32", feature = "archive-sink"))]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod sink_bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.1",
        world: "archive-sink",
        pub_export_macro: true,
        default_bindings_module: "halo_sdk::sink_bindings",
    });
}

/// The WIT bindings of `federation-adapter` (generated; used by the macros).
#[cfg(all(target_arch = "wasm32", feature = "federation"))]
#[doc(hidden)]
#[allow(missing_docs, clippy::too_many_arguments)]
pub mod fed_bindings {
    wit_bindgen::generate!({
        path: "../wit/v0.1.4",
        world: "federation-adapter",
        pub_export_macro: true,
        default_bindings_module: "halo_sdk::fed_bindings",
    });
}

mod archive;
pub mod federation;
pub mod groups;
pub mod testing;

pub use archive::{ArchiveEvent, ArchiveRecord, ArchiveSink, DATA_DIR, SinkError};
pub use federation::{
    AcceptedLink, Action, FIRST_ACCEPTED_LINK, FederationAdapter, Input, LinkId, LinkSpec, Message, Presence,
    PresenceInfo, Refusal, RefusalCode, Rejection, SrvAnswer, SrvTarget, Subscribe, Subscription, TlsRole,
};
pub use groups::{
    GroupAdd, GroupInvite, GroupJoin, GroupLine, GroupMessage, GroupPost, GroupRefused, GroupState, RoomInfo,
};

/// The WIT package presence plugins build against.
pub const API: &str = "halo:plugin@0.1.0";
/// The WIT package presence plugins build against with the `calendar` feature.
pub const CALENDAR_API: &str = "halo:plugin@0.1.3";
/// The WIT package archive sinks build against.
pub const SINK_API: &str = "halo:plugin@0.1.1";
/// The WIT package federation adapters build against (0.1.4: the federation additions;
/// adapters built against 0.1.2 or 0.1.3 keep loading).
pub const FED_API: &str = "halo:plugin@0.1.4";

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something is off.
    Warn,
    /// Something failed.
    Error,
}

/// Why a key-value call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvError {
    /// The admin did not grant `kv`.
    AccessDenied,
    /// The quota is used up.
    QuotaExceeded,
    /// Key over 256 bytes or value over 64 KiB.
    TooLarge,
}

/// What the host offers a plugin.
pub trait Host {
    /// A config value set by the admin.
    fn config(&self, key: &str) -> Option<String>;
    /// Every config value.
    fn config_all(&self) -> Vec<(String, String)>;
    /// Logs a line (tagged with the plugin's name by the host).
    fn log(&self, level: Level, message: &str);
    /// Reads a key.
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError>;
    /// Writes a key.
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError>;
    /// Deletes a key.
    fn kv_delete(&self, key: &str) -> Result<(), KvError>;
}

/// A state a plugin adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDef {
    /// Token: a-z, 0-9, `-`.
    pub id: String,
    /// `(language, label)` pairs; `en` is required.
    pub labels: Vec<(String, String)>,
    /// Availability (below 18000).
    pub availability: u32,
    /// `#rrggbb`.
    pub colour: String,
}

/// A published state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Availability number.
    pub availability: u32,
    /// Activity token.
    pub activity: Option<String>,
    /// Custom state id.
    pub custom: Option<String>,
}

/// A device's machine state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineState {
    /// In use.
    Active,
    /// Idle.
    Inactive,
    /// Away.
    Away,
}

/// One device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Id.
    pub id: u64,
    /// State.
    pub state: MachineState,
    /// Since, ms.
    pub since_ms: u64,
}

/// The user's manual state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualState {
    /// Availability.
    pub availability: u32,
    /// Activity token.
    pub activity: Option<String>,
    /// Custom state id.
    pub custom: Option<String>,
    /// End, ms.
    pub until_ms: Option<u64>,
}

/// A user's presence sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceInput {
    /// Username.
    pub user: String,
    /// Manual state.
    pub manual: Option<ManualState>,
    /// Connected devices.
    pub endpoints: Vec<Endpoint>,
    /// `in-a-meeting` or `out-of-office`.
    pub calendar: Option<String>,
    /// The current calendar event, title included: with the `calendar` feature
    /// (halo:plugin@0.1.3); always `None` without it.
    pub calendar_event: Option<CalendarEvent>,
    /// `in-a-call` or `in-a-conference`.
    pub phone: Option<String>,
    /// Now, ms since the Unix epoch (UTC).
    pub now_ms: u64,
    /// What the built-in rules publish.
    pub builtin: Published,
}

/// A user's current calendar event, as a calendar integration sent it
/// (`PUT /api/v1/users/{user}/calendar`). Its title reaches plugins; the host never publishes
/// it beyond the meeting details Workgroup contacts see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarEvent {
    /// `in-a-meeting` or `out-of-office`.
    pub activity: String,
    /// The title (subject), if the integration sent one.
    pub title: Option<String>,
    /// When it ends, ms since the Unix epoch.
    pub end_ms: Option<u64>,
}

/// A presence-states plugin.
pub trait PresencePlugin {
    /// The states it adds.
    fn states(host: &dyn Host) -> Vec<StateDef>;
    /// May replace the published state of a user; `None` keeps the built-in one.
    fn derive(host: &dyn Host, input: &PresenceInput) -> Option<Published> {
        let _ = (host, input);
        None
    }
    /// Seconds between ticks (re-deriving every signed-in user); 0 for none.
    fn tick_seconds(host: &dyn Host) -> u32 {
        let _ = host;
        0
    }
}

/// Embeds the plugin's manifest (JSON) in the component's `halo-manifest` custom section:
///
/// ```ignore
/// halo_sdk::manifest!(r#"{"name": "office-hours", "version": "0.1.0", "kind": "presence-states",
///   "api": "halo:plugin@0.1.0", "capabilities": [], "config": {...}}"#);
/// ```
#[macro_export]
macro_rules! manifest {
    ($json:expr) => {
        const __HALO_MANIFEST_BYTES: &[u8] = $json.as_bytes();
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "halo-manifest")]
        #[used]
        static __HALO_MANIFEST: [u8; __HALO_MANIFEST_BYTES.len()] = $crate::__bytes(__HALO_MANIFEST_BYTES);
    };
}

#[doc(hidden)]
pub const fn __bytes<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = b[i];
        i += 1;
    }
    out
}

/// Exports `$ty` (an [`ArchiveSink`]) as the component's `archive-sink` world (feature
/// `archive-sink`).
#[macro_export]
macro_rules! archive_sink {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __HaloGlue;
            impl $crate::sink_bindings::Guest for __HaloGlue {
                fn deliver(
                    batch: Vec<$crate::sink_bindings::halo::plugin::archive::ArchiveRecord>,
                ) -> Result<(), $crate::sink_bindings::halo::plugin::archive::SinkError> {
                    $crate::glue::deliver::<$ty>(batch)
                }
            }
    $crate::sink_bindings::export!(__HaloGlue with_types_in $crate::sink_bindings);
        };
    };
}

/// Exports `$ty` (a [`FederationAdapter`]) as the component's `federation-adapter` world
/// (feature `federation`):
///
/// ```ignore
/// pub struct Xmpp;
/// impl halo_sdk::FederationAdapter for Xmpp { /* start, handle */ }
/// halo_sdk::federation_adapter!(Xmpp);
/// ```
#[macro_export]
macro_rules! federation_adapter {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __HaloGlue;
            impl $crate::fed_bindings::Guest for __HaloGlue {
                fn start() -> Vec<$crate::fed_bindings::halo::plugin::federation::Action> {
                    $crate::glue::start::<$ty>()
                }
                fn handle(
                    input: $crate::fed_bindings::halo::plugin::federation::Input,
                ) -> Vec<$crate::fed_bindings::halo::plugin::federation::Action> {
                    $crate::glue::handle::<$ty>(input)
                }
            }
    $crate::fed_bindings::export!(__HaloGlue with_types_in $crate::fed_bindings);
        };
    };
}

/// Exports `$ty` (a [`PresencePlugin`]) as the component's `presence-states` world.
#[macro_export]
macro_rules! presence_plugin {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __HaloGlue;
            impl $crate::bindings::Guest for __HaloGlue {
                fn states() -> Vec<$crate::bindings::StateDef> {
                    $crate::glue::states::<$ty>()
                }
                fn derive(input: $crate::bindings::PresenceInput) -> Option<$crate::bindings::Published> {
                    $crate::glue::derive::<$ty>(input)
                }
                fn tick_seconds() -> u32 {
                    $crate::glue::tick_seconds::<$ty>()
                }
            }
    $crate::bindings::export!(__HaloGlue with_types_in $crate::bindings);
        };
    };
}

//! What flows between the host and a federation adapter, as plain Rust: the inputs the host
//! hands it and the actions it answers (see the `federation` interface in `wit/v0.1.2`).

use halo_core::federation::{Item, Refusal};

/// A connection the adapter asks the host to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The adapter's number for it.
    pub id: u32,
    /// Host name or address (must be granted as `net:host:port`).
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS, checking the certificate for this name.
    pub tls_name: Option<String>,
}

/// An input for the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterInput {
    /// The link connected.
    Connected(u32),
    /// Bytes arrived on a link.
    Data(u32, Vec<u8>),
    /// The link closed, with why.
    Closed(u32, String),
    /// A timer fired.
    Timer(u32),
    /// Something a local user sends a remote one.
    Outbound(Item),
    /// The host refused an item the adapter delivered, with the code and why (0.1.4; not
    /// handed to older adapters).
    Refused(Item, Refusal, String),
    /// The rooms users of other servers may find (handed when routing starts and whenever
    /// rooms change; 0.1.4 adapters only).
    Rooms(Vec<RoomInfo>),
}

/// A room users of other servers may find.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The group naming it, `#r<id>`.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub subject: String,
    /// Only members may enter (a closed room).
    pub members_only: bool,
    /// How many members it has.
    pub members: u32,
}

/// An action the adapter asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterAction {
    /// Open (and keep open) a link.
    Open(LinkSpec),
    /// Write bytes on a link.
    Send(u32, Vec<u8>),
    /// Close a link for good.
    Close(u32),
    /// Whether the adapter carries traffic now.
    Routing(bool),
    /// Fire `Timer(token)` after `ms`.
    SetTimer(u32, u32),
    /// A remote user's message, presence or subscription for a local user.
    Deliver(Item),
    /// The link failed, with why (e.g. "handshake refused: not-authorized"): counted against
    /// its breaker, shown in `federation status`, when it closes (0.1.4).
    LinkFailed(u32, String),
    /// The remote side refused an item the adapter was handed (0.1.4).
    Bounced(Item, Refusal, String),
    /// A remote stanza was dropped.
    Reject {
        /// The remote domain, if known.
        domain: Option<String>,
        /// Why.
        reason: String,
    },
}

/// Most actions one call may answer.
pub const MAX_ACTIONS: usize = 4096;
/// Most bytes one call may ask to send, over all its `Send`s.
pub const MAX_SEND_BYTES: usize = 16 << 20;

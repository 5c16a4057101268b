//! What flows between the host and a federation adapter, as plain Rust: the inputs the host
//! hands it and the actions it answers (see the `federation` interface in `wit/v0.1.4`).

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

    // ----- 0.1.4 s2s: listening, STARTTLS, SRV -----
    /// A peer connected to a port the adapter listens on.
    Accepted {
        /// The link's number (host-assigned, from [`FIRST_ACCEPTED_LINK`] up).
        id: u32,
        /// The local port it arrived on.
        port: u16,
        /// The peer's `ip:port`.
        peer: String,
    },
    /// `StartTls` on the link finished.
    TlsReady(u32),
    /// The answer to `Resolve`.
    Resolved(SrvAnswer),
}

/// Links the host numbers (accepted ones) start here; the adapter numbers its own below.
pub const FIRST_ACCEPTED_LINK: u32 = 1 << 31;

/// Which side of a TLS handshake the host takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRole {
    /// Client, checking the peer's certificate for this name.
    Client(String),
    /// Server, with the configured adapter certificate.
    Server,
}

/// One SRV target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Target host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Priority (lower first).
    pub priority: u16,
    /// Weight.
    pub weight: u16,
}

/// What an SRV lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvAnswer {
    /// The adapter's token.
    pub token: u32,
    /// The name looked up.
    pub name: String,
    /// Targets, by priority.
    pub targets: Vec<SrvTarget>,
    /// Why the lookup failed, if it did.
    pub error: Option<String>,
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

    // ----- 0.1.4 s2s: listening, STARTTLS, SRV -----
    /// Accept connections on `address:port` (granted as `listen:address:port`).
    Listen {
        /// Local address to bind.
        address: String,
        /// Port.
        port: u16,
    },
    /// Stop accepting on a port.
    Unlisten(u16),
    /// Switch a link to TLS in place.
    StartTls(u32, TlsRole),
    /// Look up SRV records for a name (granted as `dns`); answered with `Resolved(token)`.
    Resolve(u32, String),
    /// Hand the queued items over again.
    DrainQueued,
    /// Close a link as failed, with why (breaker, status, reopen after backoff).
    Fail(u32, String),
}

/// Most actions one call may answer.
pub const MAX_ACTIONS: usize = 4096;
/// Most bytes one call may ask to send, over all its `Send`s.
pub const MAX_SEND_BYTES: usize = 16 << 20;

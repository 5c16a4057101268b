//! Federation adapters: plain types for the `federation-adapter` world (`halo:plugin@0.1.4`).
//!
//! An adapter is sans-IO: the host owns the sockets, the timers and the outbound queues; the
//! adapter turns each [`Input`] into [`Action`]s. Addresses: a local user is their Halo
//! username (`alice`); a remote user is `name@domain` (lowercase).

use crate::Host;

/// A connection the host holds for the adapter; the adapter picks the numbers.
pub type LinkId = u32;

/// A connection to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The adapter's number for it.
    pub id: LinkId,
    /// Host name or IP address; the admin must have granted `net:host:port`.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Wrap the connection in TLS, checking the server's certificate for this name.
    pub tls_name: Option<String>,
}

/// Presence as it crosses servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceInfo {
    /// Halo's band: `available`, `busy`, `do_not_disturb`, `be_right_back`, `away` or
    /// `offline` (`_idle` variants arrive as their base band).
    pub state: String,
    /// Halo activity token: `in-a-meeting`, `in-a-call`, `in-a-conference`, `off-work`,
    /// `out-of-office`.
    pub activity: Option<String>,
    /// What Halo shows, e.g. "In a meeting" or a custom state's label.
    pub label: String,
    /// The personal note, if the user lets this contact see it.
    pub note: Option<String>,
}

impl PresenceInfo {
    /// A presence in `state` with `label`, no activity and no note.
    pub fn new(state: &str, label: &str) -> Self {
        Self { state: state.to_owned(), activity: None, label: label.to_owned(), note: None }
    }
}

/// Presence subscription traffic (XMPP's subscribe, subscribed, unsubscribed, unsubscribe and
/// probe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subscription {
    /// `from` asks to see `to`'s presence (added them as a contact).
    Request,
    /// `from` lets `to` see their presence.
    Accept,
    /// `from` refuses or withdraws `to`'s right to see their presence.
    Refuse,
    /// `from` no longer wants `to`'s presence (removed them).
    Cancel,
    /// `from` asks for `to`'s current presence (answered only when allowed).
    Probe,
}

/// A message crossing servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: String,
    /// The recipient.
    pub to: String,
    /// The text.
    pub text: String,
    /// An id unique for the sender, if the protocol carries one.
    pub id: Option<String>,
}

/// A presence change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// Whose presence.
    pub from: String,
    /// Who sees it.
    pub to: String,
    /// The presence.
    pub info: PresenceInfo,
}

/// A subscription stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Who sends it.
    pub from: String,
    /// Who it is for.
    pub to: String,
    /// What it says.
    pub kind: Subscription,
}

/// What the host hands the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The link is connected (and its TLS handshake done).
    Connected(LinkId),
    /// Bytes arrived on a link (at most 64 KiB per input).
    Data(LinkId, Vec<u8>),
    /// The link closed or could not connect (with why). The host reconnects it after a backoff
    /// unless the adapter closed it.
    Closed(LinkId, String),
    /// A timer the adapter set fired (its token).
    Timer(u32),
    /// A local user sends a remote user a message. Handed only while the adapter is routing;
    /// the host drops it from its queue once the actions returned for it ran.
    Message(Message),
    /// A local user's presence for a remote subscriber.
    Presence(Presence),
    /// A local user's subscription stanza for a remote user.
    Subscribe(Subscribe),
    // ----- Groups and rooms (halo:plugin@0.1.4) -----
    /// A post in a group for one remote member.
    GroupMessage(crate::groups::GroupMessage),
    /// A remote user was added to a group.
    GroupInvite(crate::groups::GroupInvite),
    /// What a group is, answering a remote user's join.
    GroupState(crate::groups::GroupState),
    /// A group refused what a remote user asked.
    GroupRefused(crate::groups::GroupRefused),
    /// The rooms remote users may find (handed when routing starts and when rooms change).
    Rooms(Vec<crate::groups::RoomInfo>),
    /// The host refused an item the adapter delivered: answer its sender in the protocol's
    /// terms (0.1.4).
    Refused(Refusal),

    // ----- 0.1.4 s2s: listening, STARTTLS, SRV -----
    /// A peer connected to a port the adapter listens on ([`Action::Listen`]); the link's id
    /// is the host's (from [`FIRST_ACCEPTED_LINK`] up).
    Accepted(AcceptedLink),
    /// [`Action::StartTls`] finished on the link: its bytes now travel inside TLS. A failed
    /// handshake closes the link instead ([`Input::Closed`], with why).
    TlsReady(LinkId),
    /// The answer to [`Action::Resolve`].
    Resolved(SrvAnswer),
}

/// Links the host numbers (accepted ones) start here; number the links you open below it.
pub const FIRST_ACCEPTED_LINK: LinkId = 1 << 31;

/// A connection a peer opened to a port the adapter listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedLink {
    /// The link (host-assigned).
    pub id: LinkId,
    /// The local port it arrived on.
    pub port: u16,
    /// The peer's `ip:port`.
    pub peer: String,
}

/// Which side of a TLS handshake the host takes on a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsRole {
    /// The client, checking the peer's certificate for this name.
    Client(String),
    /// The server, presenting the certificate the admin configured for adapters.
    Server,
}

/// One SRV target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvTarget {
    /// Target host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Priority, lowest first.
    pub priority: u16,
    /// Weight within a priority.
    pub weight: u16,
}

/// What an SRV lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvAnswer {
    /// The token given to [`Action::Resolve`].
    pub token: u32,
    /// The name looked up.
    pub name: String,
    /// Targets, lowest priority first; empty when the name has none.
    pub targets: Vec<SrvTarget>,
    /// Why the lookup failed, if it did.
    pub error: Option<String>,
}

/// Why the receiving server refused an item (0.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// No such (enabled) user.
    NoSuchUser,
    /// The recipient blocked the sender.
    Blocked,
    /// The recipient does not take messages now (Do Not Disturb, offline).
    Unavailable,
    /// The sender's domain sent faster than its limit.
    RateLimited,
    /// The text is over the size limit.
    TooBig,
    /// Malformed, or not something the receiver takes.
    BadRequest,
    /// The sender's domain is not federated there.
    NotFederated,
    /// Something failed on the receiving server.
    Internal,
}

/// An item crossing servers (0.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A message.
    Message(Message),
    /// A presence change.
    Presence(Presence),
    /// A subscription stanza.
    Subscribe(Subscribe),
}

/// An item refused, and why (0.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The item.
    pub item: Item,
    /// Why, as a code.
    pub code: RefusalCode,
    /// Why, in words.
    pub reason: String,
}

/// Why a remote stanza was dropped (logged and counted per domain by the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The remote domain, if known.
    pub domain: Option<String>,
    /// Why.
    pub reason: String,
}

/// What the adapter asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a connection and keep it open (reconnecting with backoff) until [`Action::Close`].
    Open(LinkSpec),
    /// Write bytes on a link.
    Send(LinkId, Vec<u8>),
    /// Close a link and stop reconnecting it.
    Close(LinkId),
    /// Whether the adapter can carry traffic now: while `true` the host hands it the queued
    /// messages, presence and subscriptions; while `false` they wait in the host's queue.
    Routing(bool),
    /// Call `handle(Input::Timer(token))` after `ms` milliseconds (replacing a timer with the
    /// same token).
    SetTimer {
        /// The token the timer input carries.
        token: u32,
        /// Delay in milliseconds.
        ms: u32,
    },
    /// A remote user's message for a local user.
    DeliverMessage(Message),
    /// A remote user's presence for a local user.
    DeliverPresence(Presence),
    /// A remote user's subscription stanza for a local user.
    DeliverSubscribe(Subscribe),
    /// A remote stanza was dropped.
    Reject(Rejection),
    // ----- Groups and rooms (halo:plugin@0.1.4) -----
    /// A remote user posts to a group.
    DeliverGroupPost(crate::groups::GroupPost),
    /// A remote user enters a group; the host answers with [`Input::GroupState`] or
    /// [`Input::GroupRefused`].
    DeliverGroupJoin(crate::groups::GroupJoin),
    /// A remote member leaves a group.
    DeliverGroupLeave(crate::groups::GroupJoin),
    /// A remote member invites someone into a group.
    DeliverGroupAdd(crate::groups::GroupAdd),
    /// The remote side refused an item the host handed the adapter: a message becomes a
    /// failed message for its sender (0.1.4).
    Bounced(Refusal),
    /// The link failed for this reason: counted against its breaker with it when it closes,
    /// shown in `halo federation status` (0.1.4).
    LinkFailed(LinkId, String),

    // ----- 0.1.4 s2s: listening, STARTTLS, SRV -----
    /// Accept connections on `address:port` (manifest capability `listen`, granted as
    /// `listen:address:port`); each arrives as [`Input::Accepted`].
    Listen {
        /// Local address to bind.
        address: String,
        /// Port.
        port: u16,
    },
    /// Stop accepting on a port.
    Unlisten(u16),
    /// Switch a link to TLS in place (STARTTLS); answered with [`Input::TlsReady`].
    StartTls(LinkId, TlsRole),
    /// Look up a name's SRV records (capability `dns`); answered with [`Input::Resolved`]
    /// carrying `token`.
    Resolve {
        /// Echoed in the answer.
        token: u32,
        /// E.g. `_xmpp-server._tcp.example.org`.
        name: String,
    },
    /// Hand the queued items over again (while routing): after a link an item was sent to
    /// before it was up (so the item stayed queued) came up.
    DrainQueued,
    /// Close a link as failed, with why: the host counts it against the link's circuit
    /// breaker, shows the reason in `halo federation status` and reopens it after the backoff
    /// (an accepted link is only closed). [`Input::Closed`] follows with the reason.
    Fail(LinkId, String),
}

/// A federation adapter: translates between a remote protocol and Halo's events, one input at
/// a time, in order. Export it with [`federation_adapter!`](crate::federation_adapter).
///
/// **State.** The host keeps one live instance and calls it serially, so an adapter keeps its
/// state (parser buffers, the connection's phase) between calls in plain Rust statics: a
/// `thread_local!` with a `RefCell`, or a `static STATE: Mutex<..>`. Prefer `thread_local!`:
/// `cargo test` runs each test on its own thread, so each test then gets its own adapter.
/// A trap discards the instance (and its statics); the host creates a fresh one, calls
/// [`start`](Self::start) again and re-opens the links it asks for. The host also calls
/// `start` when the admin reconfigures the adapter, on the same instance: **`start` must reset
/// the state**, not add to it.
pub trait FederationAdapter {
    /// The first actions (typically [`Action::Open`] and `Routing(false)`), when the adapter is
    /// enabled, reconfigured, re-created after a trap, or the host starts.
    fn start(host: &dyn Host) -> Vec<Action>;
    /// Turns one input into actions.
    fn handle(host: &dyn Host, input: Input) -> Vec<Action>;
}

//! `xmpp`: a Halo federation adapter connecting to an XMPP server as an external component
//! (XEP-0114). Halo users appear on the XMPP side as `user@<component_domain>`; remote XMPP
//! users are Halo addresses `name@domain` (their bare JID).
//!
//! Sans-IO, like every adapter: the host owns the socket (link 1, to `server_host:server_port`)
//! and the timers; [`Xmpp`] turns its inputs into actions. The remote side is untrusted: the
//! stream is split by a bounded incremental [`framer`], each stanza parsed on its own
//! ([`stanza`]), addresses checked strictly ([`jid`]). DOCTYPE, entities, comments and
//! processing instructions (`restricted-xml`), a single tag over `max_stanza_bytes`
//! (`policy-violation`) or malformed XML (`not-well-formed`) end the stream with that stream
//! error; the adapter then closes the link and opens it again after a backoff. A stanza over
//! `max_stanza_bytes`, with bad addresses or of a type Halo does not take is refused on its
//! own, with a stanza error to its sender (never to an error stanza), and the stream goes on.

mod bounce;
pub mod muc;
pub use xmpp_proto::{framer, jid, map, stanza, xml};

use std::cell::RefCell;
use std::collections::BTreeMap;

use halo_sdk::{
    Action, FederationAdapter, Host, Input, Level, LinkSpec, Message, Presence, PresenceInfo, Rejection, Subscribe,
};
use sha1::{Digest, Sha1};

use crate::framer::{Framer, StreamFault, Unit};
use crate::map::PresenceType;
use crate::stanza::Stanza;
use crate::xml::attr;

halo_sdk::manifest!(
    r#"{"name": "xmpp", "version": "0.1.0", "kind": "federation-adapter", "api": "halo:plugin@0.1.4",
  "description": "Federates with an XMPP server as an external component (XEP-0114): Halo users appear as user@<component_domain>. Grant net:<server_host>:<server_port>.",
  "capabilities": ["net"],
  "config": {
    "server_host": {"type": "string", "default": "127.0.0.1", "description": "The XMPP server's host name or address"},
    "server_port": {"type": "integer", "default": "5347", "description": "The XMPP server's component port"},
    "component_domain": {"type": "string", "required": true, "description": "The component's domain, as in the server's Component section, e.g. halo.localhost"},
    "secret": {"type": "string", "required": true, "secret": true, "description": "The component secret shared with the XMPP server (write-only: never shown)"},
    "tls": {"type": "boolean", "default": "false", "description": "Connect with TLS, checking the certificate for server_host"},
    "max_stanza_bytes": {"type": "integer", "default": "1048576", "description": "Largest stanza accepted from the server (above what peers may send: Prosody allows 512 KiB on s2s); a bigger one is refused with a policy-violation error to its sender"},
    "keepalive_seconds": {"type": "integer", "default": "60", "description": "Seconds between whitespace keepalives (0 for none)"}
  }}"#
);

/// The one link, to the XMPP server.
pub const LINK: u32 = 1;
/// Timer token: whitespace keepalive.
pub const KEEPALIVE: u32 = 1;
/// Timer token: open the link again after the adapter closed it on a stream error.
pub const REOPEN: u32 = 2;
/// First delay before re-opening after a stream error (doubling up to [`REOPEN_MAX_MS`]).
pub const REOPEN_MIN_MS: u32 = 5_000;
/// Longest delay before re-opening.
pub const REOPEN_MAX_MS: u32 = 300_000;

/// Default `max_stanza_bytes`: above the 512 KiB Prosody allows server-to-server, plus the
/// `from` it adds.
pub const DEFAULT_MAX_STANZA: usize = 1 << 20;

const STREAMS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

/// The adapter's settings, from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Server host.
    pub host: String,
    /// Component port.
    pub port: u16,
    /// The component's domain (lowercase).
    pub domain: String,
    /// Shared secret.
    pub secret: String,
    /// Whether to wrap the link in TLS.
    pub tls: bool,
    /// Largest stanza accepted.
    pub max_stanza: usize,
    /// Keepalive period in ms, 0 for none.
    pub keepalive_ms: u32,
}

impl Settings {
    /// Reads and checks the config.
    pub fn from_host(host: &dyn Host) -> Result<Self, String> {
        let get = |k: &str| host.config(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let domain = get("component_domain").ok_or("component_domain is not set")?;
        let domain = jid::domainpart(&domain).map_err(|e| format!("component_domain: {e}"))?;
        let secret = host.config("secret").filter(|s| !s.is_empty()).ok_or("secret is not set")?;
        let port = match get("server_port") {
            Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or(format!("server_port {p:?} is not a port"))?,
            None => 5347,
        };
        let max_stanza = match get("max_stanza_bytes") {
            Some(v) => v.parse::<u64>().map_err(|_| format!("max_stanza_bytes {v:?} is not a number"))?,
            None => DEFAULT_MAX_STANZA as u64,
        };
        let keepalive = match get("keepalive_seconds") {
            Some(v) => v.parse::<u32>().map_err(|_| format!("keepalive_seconds {v:?} is not a number"))?,
            None => 60,
        };
        Ok(Settings {
            host: get("server_host").unwrap_or_else(|| "127.0.0.1".to_owned()),
            port,
            domain,
            secret,
            tls: get("tls").as_deref() == Some("true"),
            max_stanza: max_stanza.clamp(4096, 16 << 20) as usize,
            keepalive_ms: keepalive.min(86_400) * 1000,
        })
    }

    fn link(&self) -> LinkSpec {
        LinkSpec { id: LINK, host: self.host.clone(), port: self.port, tls_name: self.tls.then(|| self.host.clone()) }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No connection (or not configured).
    Down,
    /// Connected, header sent, waiting for the server's.
    AwaitHeader,
    /// Handshake sent, waiting for the reply.
    Handshake,
    /// Authenticated: routing.
    Ready,
    /// The stream ended or failed; waiting for the link to close.
    Dead,
}

pub use xmpp_proto::map::{MAX_RESOURCES, MAX_TRACKED_USERS, presence_to_xmpp};

/// The adapter's state between calls.
struct State {
    settings: Option<Settings>,
    phase: Phase,
    framer: Framer,
    next_id: u64,
    reopen_ms: u32,
    /// Remote user (bare) → resource → its presence: a user is as available as their most
    /// available client, and offline only once every client is.
    resources: BTreeMap<String, BTreeMap<String, PresenceInfo>>,
    /// Rooms and their XMPP occupants ([`muc`]).
    muc: muc::Muc,
    /// The messages delivered lately, to answer the host's refusals to the sender's full JID.
    recent: std::collections::VecDeque<bounce::Delivered>,
}

impl State {
    fn new(settings: Option<Settings>) -> Self {
        let max = settings.as_ref().map_or(DEFAULT_MAX_STANZA, |s| s.max_stanza);
        State {
            settings,
            phase: Phase::Down,
            framer: Framer::new(max),
            next_id: 0,
            reopen_ms: REOPEN_MIN_MS,
            resources: BTreeMap::new(),
            muc: muc::Muc::default(),
            recent: Default::default(),
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The XMPP component adapter.
pub struct Xmpp;

impl FederationAdapter for Xmpp {
    fn start(host: &dyn Host) -> Vec<Action> {
        let settings = match Settings::from_host(host) {
            Ok(s) => Some(s),
            Err(e) => {
                host.log(Level::Error, &format!("not starting: {e}"));
                None
            }
        };
        let mut out = vec![Action::Routing(false)];
        if let Some(s) = &settings {
            out.insert(0, Action::Open(s.link()));
        }
        STATE.with(|cell| *cell.borrow_mut() = Some(State::new(settings)));
        out
    }

    fn handle(host: &dyn Host, input: Input) -> Vec<Action> {
        STATE.with(|cell| {
            let mut slot = cell.borrow_mut();
            let state = slot.get_or_insert_with(|| State::new(Settings::from_host(host).ok()));
            let Some(settings) = state.settings.clone() else {
                return Vec::new();
            };
            let mut conn = Conn { host, s: &settings, st: state, out: Vec::new() };
            conn.input(input);
            conn.out
        })
    }
}

halo_sdk::federation_adapter!(Xmpp);

/// One call's work: the state, the settings, the actions so far.
struct Conn<'a> {
    host: &'a dyn Host,
    s: &'a Settings,
    st: &'a mut State,
    out: Vec<Action>,
}

impl Conn<'_> {
    fn send(&mut self, xml: String) {
        self.out.push(Action::Send(LINK, xml.into_bytes()));
    }

    fn log(&self, level: Level, message: &str) {
        self.host.log(level, message);
    }

    fn reject(&mut self, domain: Option<String>, reason: String) {
        self.log(Level::Debug, &format!("rejected a stanza: {reason}"));
        self.out.push(Action::Reject(Rejection { domain, reason }));
    }

    fn reset(&mut self) {
        self.st.framer = Framer::new(self.s.max_stanza);
        // A new stream starts from what the server sends on it.
        self.st.resources.clear();
        self.st.recent.clear();
    }

    /// The presence to show for `from` after its `resource` said `info` (`None`: it went away,
    /// saying `note`).
    fn aggregate(
        &mut self,
        from: &str,
        resource: &str,
        info: Option<PresenceInfo>,
        note: Option<String>,
    ) -> PresenceInfo {
        map::aggregate(&mut self.st.resources, from, resource, info, note)
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Connected(LINK) => {
                self.reset();
                self.st.phase = Phase::AwaitHeader;
                self.send(format!(
                    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
                     xmlns:stream='http://etherx.jabber.org/streams' to='{}'>",
                    attr(&self.s.domain)
                ));
            }
            Input::Data(LINK, bytes) => self.data(&bytes),
            Input::Closed(LINK, why) => {
                self.reset();
                if self.st.phase != Phase::Down {
                    self.log(Level::Warn, &format!("connection to {}:{} closed: {why}", self.s.host, self.s.port));
                }
                self.st.phase = Phase::Down;
                self.out.push(Action::Routing(false));
            }
            Input::Timer(KEEPALIVE) => {
                if self.st.phase == Phase::Ready && self.s.keepalive_ms > 0 {
                    self.send(" ".into());
                    self.out.push(Action::SetTimer { token: KEEPALIVE, ms: self.s.keepalive_ms });
                }
            }
            Input::Timer(REOPEN) => {
                if self.st.phase == Phase::Down {
                    self.out.push(Action::Open(self.s.link()));
                }
            }
            Input::Message(m) => self.outbound_message(m),
            Input::Presence(p) => self.outbound_presence(p),
            Input::Subscribe(s) => self.outbound_subscribe(s),
            Input::GroupMessage(m) => self.group_message(m),
            Input::GroupInvite(i) => self.group_invite(i),
            Input::GroupState(s) => self.group_state(s),
            Input::GroupRefused(r) => self.group_refused(r),
            Input::Rooms(list) => self.rooms(list),
            Input::Refused(r) => self.refused(r),
            Input::Connected(_) | Input::Data(..) | Input::Closed(..) | Input::Timer(_) => {}
            // A component never listens, upgrades a link or looks up SRV records.
            Input::Accepted(_) | Input::TlsReady(_) | Input::Resolved(_) => {}
        }
    }

    // ----- the stream -----

    fn data(&mut self, bytes: &[u8]) {
        if matches!(self.st.phase, Phase::Down | Phase::Dead) {
            return;
        }
        let units = match self.st.framer.push(bytes) {
            Ok(units) => units,
            Err(fault) => return self.fail(fault),
        };
        for unit in units {
            match unit {
                Unit::Header(h) => self.header(&h),
                Unit::Stanza(s) => match stanza::parse(&s) {
                    Ok(st) if self.st.phase == Phase::Ready && muc::addressed(&st, &self.s.domain) => {
                        self.muc_stanza(&st, &s)
                    }
                    Ok(st) => self.stanza(st),
                    Err(fault) => self.fail(fault),
                },
                Unit::Oversize(head) => self.oversize(head.as_deref()),
                Unit::End => {
                    self.log(Level::Warn, "the XMPP server closed the stream");
                    self.send("</stream:stream>".into());
                    self.st.phase = Phase::Dead;
                    self.out.push(Action::Routing(false));
                }
            }
            if self.st.phase == Phase::Dead || self.st.phase == Phase::Down {
                return;
            }
        }
    }

    /// Ends the stream with a stream error: closes the link, re-opens it after a backoff.
    fn fail(&mut self, fault: StreamFault) {
        let reason = fault.reason();
        self.log(Level::Warn, &format!("closing the stream ({}): {reason}", fault.condition()));
        self.send(format!(
            "<stream:error><{} xmlns='{STREAMS_NS}'/></stream:error></stream:stream>",
            fault.condition()
        ));
        self.out
            .push(Action::LinkFailed(LINK, format!("the adapter ended the stream ({}): {reason}", fault.condition())));
        self.out.push(Action::Close(LINK));
        self.out.push(Action::Routing(false));
        self.out.push(Action::Reject(Rejection { domain: None, reason }));
        self.out.push(Action::SetTimer { token: REOPEN, ms: self.st.reopen_ms });
        self.st.reopen_ms = self.st.reopen_ms.saturating_mul(2).min(REOPEN_MAX_MS);
        self.st.phase = Phase::Down;
        self.reset();
    }

    fn header(&mut self, bytes: &[u8]) {
        let header = match stanza::header(bytes) {
            Ok(h) => h,
            Err(fault) => return self.fail(fault),
        };
        if header.name != "stream:stream" {
            return self
                .fail(StreamFault::Malformed(format!("the stream starts with <{}>", jid::shorten(&header.name))));
        }
        if self.st.phase != Phase::AwaitHeader {
            return;
        }
        let Some(id) = header.attr("id").filter(|id| !id.is_empty()) else {
            return self.fail(StreamFault::Malformed("the server's stream header has no id".into()));
        };
        let mut sha = Sha1::new();
        sha.update(id.as_bytes());
        sha.update(self.s.secret.as_bytes());
        let digest: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        self.send(format!("<handshake>{digest}</handshake>"));
        self.st.phase = Phase::Handshake;
    }

    fn stanza(&mut self, st: Stanza) {
        match (st.name.as_str(), &self.st.phase) {
            ("handshake", Phase::Handshake) => {
                self.log(Level::Info, &format!("connected to {}:{} as {}", self.s.host, self.s.port, self.s.domain));
                self.st.phase = Phase::Ready;
                self.st.reopen_ms = REOPEN_MIN_MS;
                self.out.push(Action::Routing(true));
                if self.s.keepalive_ms > 0 {
                    self.out.push(Action::SetTimer { token: KEEPALIVE, ms: self.s.keepalive_ms });
                }
            }
            ("stream:error", _) => self.stream_error(&st),
            ("message", Phase::Ready) => self.inbound_message(&st),
            ("presence", Phase::Ready) => self.inbound_presence(&st),
            ("iq", Phase::Ready) => self.inbound_iq(&st),
            (name, _) => self.log(Level::Debug, &format!("ignored <{}>", jid::shorten(name))),
        }
    }

    fn stream_error(&mut self, st: &Stanza) {
        let condition = st.children.iter().find(|c| c.name != "text").map_or("undefined-condition", |c| &c.name);
        let detail = st.child("text").map(|t| format!(" ({})", jid::shorten(t.text.trim()))).unwrap_or_default();
        let domain = &self.s.domain;
        let message = match condition {
            "not-authorized" => format!(
                "the XMPP server refused the handshake (not-authorized): the secret is wrong; set this plugin's \
                 `secret` to the component_secret of Component \"{domain}\" on the server"
            ),
            "host-unknown" | "improper-addressing" => format!(
                "the XMPP server does not know the component {domain} ({condition}): add Component \"{domain}\" \
                 to its configuration, or fix component_domain"
            ),
            "conflict" => format!("the XMPP server refused {domain}: another component is connected as {domain}"),
            other => format!("the XMPP server ended the stream: {}", jid::shorten(other)),
        };
        self.log(Level::Error, &format!("{message}{detail}"));
        self.out.push(Action::LinkFailed(LINK, message));
        self.send("</stream:stream>".into());
        self.st.phase = Phase::Dead;
        self.out.push(Action::Routing(false));
    }

    // ----- inbound stanzas -----

    /// The remote sender and the local recipient of a stanza, or a rejection.
    fn addresses(&mut self, st: &Stanza) -> Option<(String, String)> {
        let raw_from = st.attr("from").unwrap_or_default();
        let domain = jid::domain_of(raw_from);
        let from = match jid::remote_user(raw_from, &self.s.domain) {
            Ok(f) => f,
            Err(e) => {
                self.reject(domain, format!("<{}> from: {e}", st.name));
                return None;
            }
        };
        match jid::local_user(st.attr("to").unwrap_or_default(), &self.s.domain) {
            Ok(to) => Some((from, to)),
            Err(e) => {
                self.reject(domain, format!("<{}> to: {e}", st.name));
                self.bounce(st, bounce::Condition::JID_MALFORMED, None);
                None
            }
        }
    }

    fn inbound_message(&mut self, st: &Stanza) {
        match st.attr("type").unwrap_or("normal") {
            "chat" | "normal" => {}
            "error" => return self.message_bounced(st),
            other => {
                let reason = format!("message type {:?} is not supported", jid::shorten(other));
                self.reject(st.attr("from").and_then(jid::domain_of), reason);
                if other == "groupchat" {
                    self.bounce(st, bounce::Condition::UNAVAILABLE, Some("not a group chat"));
                }
                return;
            }
        }
        let Some(body) = map::body(st) else {
            return; // chat states, receipts: nothing to deliver
        };
        let text = body.text.clone();
        let Some((from, to)) = self.addresses(st) else { return };
        let id = map::message_id(st);
        self.delivered(st, &from, &to, id.as_deref());
        self.out.push(Action::DeliverMessage(Message { from, to, text, id }));
    }

    fn inbound_presence(&mut self, st: &Stanza) {
        let kind = match map::presence_type(st) {
            PresenceType::Status => None,
            PresenceType::Subscription(kind) => Some(kind),
            PresenceType::Error => {
                let from = st.attr("from").map(jid::shorten).unwrap_or_default();
                return self.log(Level::Info, &format!("a presence bounced from {from}"));
            }
            PresenceType::Invalid(other) => {
                let reason = format!("presence type {:?} is not valid", jid::shorten(other));
                return self.reject(st.attr("from").and_then(jid::domain_of), reason);
            }
        };
        let Some((from, to)) = self.addresses(st) else { return };
        if let Some(kind) = kind {
            self.out.push(Action::DeliverSubscribe(Subscribe { from, to, kind }));
            return;
        }
        let (said, note) = map::said(st);
        let info = self.aggregate(&from, &map::resource(st), said, note);
        self.out.push(Action::DeliverPresence(Presence { from, to, info }));
    }

    fn inbound_iq(&mut self, st: &Stanza) {
        if !matches!(st.attr("type"), Some("get" | "set")) {
            return; // results and errors: the adapter asks nothing
        }
        let (Some(from), Some(to)) = (st.attr("from"), st.attr("to")) else {
            return self.reject(st.attr("from").and_then(jid::domain_of), "<iq> without from or to".into());
        };
        if let Err(e) = jid::parse(from).and_then(|_| jid::parse(to)) {
            return self.reject(jid::domain_of(from), format!("<iq>: {e}"));
        }
        let disco = st.child("query").is_some_and(|c| c.xmlns.as_deref() == Some(bounce::DISCO_INFO));
        if disco && st.attr("type") == Some("get") {
            return self.disco_info(st, from, to);
        }
        let id = attr(st.attr("id").unwrap_or_default());
        let (from, to) = (attr(from), attr(to));
        let ping = st.child("ping").is_some_and(|c| c.xmlns.as_deref() == Some("urn:xmpp:ping"));
        if ping && st.attr("type") == Some("get") {
            return self.send(format!("<iq type='result' from='{to}' to='{from}' id='{id}'/>"));
        }
        self.send(format!(
            "<iq type='error' from='{to}' to='{from}' id='{id}'><error type='cancel'>\
             <service-unavailable xmlns='{STANZAS_NS}'/></error></iq>"
        ));
    }

    // ----- outbound (from Halo) -----

    /// The JIDs for a local sender and a remote recipient, or `None` (logged).
    fn jids(&mut self, what: &str, from: &str, to: &str) -> Option<(String, String)> {
        match map::jids(from, to, &self.s.domain) {
            Ok(jids) => Some(jids),
            Err(e) => {
                self.log(Level::Warn, &format!("dropped a {what}: {e}"));
                None
            }
        }
    }

    fn outbound_message(&mut self, m: Message) {
        let Some((from, to)) = self.jids("message", &m.from, &m.to) else { return };
        let id = match m.id {
            Some(id) if !id.is_empty() => id,
            _ => {
                self.st.next_id += 1;
                format!("halo-{}", self.st.next_id)
            }
        };
        self.send(map::message_xml(&from, &to, &id, &m.text));
    }

    fn outbound_presence(&mut self, p: Presence) {
        let Some((from, to)) = self.jids("presence", &p.from, &p.to) else { return };
        self.send(map::presence_xml(&from, &to, &p.info));
    }

    fn outbound_subscribe(&mut self, s: Subscribe) {
        let Some((from, to)) = self.jids("subscription", &s.from, &s.to) else { return };
        self.send(map::subscribe_xml(&from, &to, s.kind));
    }
}

#[cfg(test)]
mod tests;

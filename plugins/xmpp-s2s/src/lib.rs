//! `xmpp-s2s`: a Halo federation adapter speaking XMPP server-to-server (RFC 6120) itself, so
//! Halo federates with XMPP servers directly: Halo's `alice` is `alice@<domain>` on the XMPP
//! network, and `bob@example.org` is a remote contact in Halo.
//!
//! Sans-IO, like every adapter; it uses the host's 0.1.4 services: `resolve`
//! (`_xmpp-server._tcp.<domain>` SRV records, else the domain itself on port 5269), `listen`
//! (inbound streams), `start-tls` (STARTTLS both ways: as client checking the peer's
//! certificate for its domain, as server with the admin's certificate) and `fail` (a refused
//! stream counts against the link's breaker, with its reason in `halo federation status`).
//!
//! Authentication is XEP-0220 server dialback over TLS (TLS required unless `require_tls` is
//! off), keys per XEP-0185 (HMAC-SHA256 over the receiving and originating domains and the
//! stream id, keyed with the SHA-256 of `dialback_secret`):
//! - **outbound** (one stream per remote domain, opened on the first item for it): header,
//!   `<starttls/>`, `<proceed/>`, TLS, header again, `<db:result>` with our key; the remote
//!   server checks it with us (a `<db:verify>` on a stream it opens to us) and answers
//!   `type='valid'`; then items flow. Items for a domain whose stream is not up stay in the
//!   host's durable queue (they are answered with a send on a link that is never open) and are
//!   handed over again (`drain-queued`) once it is;
//! - **inbound** (accepted on `listen_port`): we offer STARTTLS (required) and dialback; a
//!   `<db:result>` from `example.org` is checked by sending its key in a `<db:verify>` over our
//!   own (TLS-checked) outbound stream to `example.org`; once valid, stanzas from that domain
//!   are accepted on the inbound stream. A `<db:verify>` for one of our keys is answered on any
//!   stream.
//!
//! Wire code (framer, stanza parser, JIDs, escaping) is `xmpp-proto`, shared with the component
//! adapter; the stanza mapping is [`map`].

mod inbound;
pub mod map;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use halo_sdk::{
    Action, FederationAdapter, Host, Input, Level, LinkId, LinkSpec, Presence, PresenceInfo, Rejection, SrvAnswer,
    TlsRole,
};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use xmpp_proto::framer::{Framer, Unit};
use xmpp_proto::jid;
use xmpp_proto::stanza::{self, Stanza};
use xmpp_proto::xml::attr;

halo_sdk::manifest!(
    r#"{"name": "xmpp-s2s", "version": "0.1.0", "kind": "federation-adapter", "api": "halo:plugin@0.1.4",
  "description": "Federates with XMPP servers directly (server-to-server, XEP-0220 dialback over STARTTLS). Grant net:*:5269 (or the SRV targets' ports), listen:<address>:<listen_port> and dns.",
  "capabilities": ["net", "listen", "dns"],
  "config": {
    "domain": {"type": "string", "required": true, "description": "Halo's XMPP domain: users are user@<domain>; its _xmpp-server._tcp SRV record (or A record) must point at listen_port"},
    "dialback_secret": {"type": "string", "required": true, "description": "Secret the dialback keys are made from (any long random string; keep it across restarts)"},
    "listen_address": {"type": "string", "default": "0.0.0.0", "description": "Address to accept server-to-server connections on"},
    "listen_port": {"type": "integer", "default": "5269", "description": "Port to accept server-to-server connections on (0: outbound only)"},
    "require_tls": {"type": "boolean", "default": "true", "description": "Refuse streams (both ways) that are not TLS-encrypted"},
    "max_stanza_bytes": {"type": "integer", "default": "1048576", "description": "Largest stanza accepted; a bigger one ends the stream"},
    "keepalive_seconds": {"type": "integer", "default": "60", "description": "Seconds between whitespace keepalives on streams (0 for none)"}
  }}"#
);

const STREAMS_NS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const DIALBACK_NS: &str = "jabber:server:dialback";

/// A link the adapter never opens: a send on it leaves an item in the host's queue.
pub const NOT_UP: LinkId = 0;
/// Timer token: keepalives.
pub const KEEPALIVE: u32 = 1;
/// Default server-to-server port (RFC 6120 §3.2.1 fallback).
pub const DEFAULT_PORT: u16 = 5269;
/// Most remote domains with an outbound stream.
pub const MAX_DOMAINS: usize = 1000;
/// Remote users whose resources (and recipients) are tracked.
pub use xmpp_proto::map::MAX_TRACKED_USERS;

/// The adapter's settings, from its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Halo's XMPP domain (lowercase).
    pub domain: String,
    /// Dialback secret.
    pub secret: String,
    /// Where to listen.
    pub listen_address: String,
    /// Port to listen on, 0 for none.
    pub listen_port: u16,
    /// Refuse plaintext streams.
    pub require_tls: bool,
    /// Largest stanza accepted.
    pub max_stanza: usize,
    /// Keepalive period in ms, 0 for none.
    pub keepalive_ms: u32,
}

impl Settings {
    /// Reads the config.
    pub fn from_host(host: &dyn Host) -> Result<Settings, String> {
        let get = |k: &str| host.config(k).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let domain = get("domain").ok_or("domain is not set")?;
        let domain = jid::domainpart(&domain).map_err(|e| format!("domain: {e}"))?;
        let secret = host
            .config("dialback_secret")
            .filter(|s| s.len() >= 16)
            .ok_or("dialback_secret: at least 16 characters")?;
        let number = |k: &str, default: u64| -> Result<u64, String> {
            get(k).map_or(Ok(default), |v| v.parse::<u64>().map_err(|_| format!("{k} {v:?} is not a number")))
        };
        let listen_port = u16::try_from(number("listen_port", 5269)?).map_err(|_| "listen_port is not a port")?;
        Ok(Settings {
            domain,
            secret,
            listen_address: get("listen_address").unwrap_or_else(|| "0.0.0.0".to_owned()),
            listen_port,
            require_tls: get("require_tls").as_deref() != Some("false"),
            max_stanza: number("max_stanza_bytes", 1 << 20)?.clamp(4096, 16 << 20) as usize,
            keepalive_ms: (number("keepalive_seconds", 60)?.min(86_400) * 1000) as u32,
        })
    }

    /// The XEP-0185 dialback key: HMAC-SHA256(hex(SHA-256(secret)), receiving ' ' originating
    /// ' ' stream id), hex.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        let secret: String = Sha256::digest(self.secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
        mac.update(format!("{receiving} {originating} {stream_id}").as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where an outbound stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutPhase {
    /// Waiting for the SRV answer.
    Resolving,
    /// Waiting for the link (the host reconnects with backoff).
    Connecting,
    /// Header sent; waiting for theirs and their features.
    Features,
    /// `<starttls/>` sent.
    StartTls,
    /// TLS handshake under way.
    Tls,
    /// `<db:result>` sent.
    Dialback,
    /// Verified: items flow.
    Ready,
}

/// A stream to a remote domain.
struct Out {
    domain: String,
    phase: OutPhase,
    framer: Framer,
    tls: bool,
    /// The id the remote server gave the stream.
    stream_id: Option<String>,
    /// Stream ids whose `<db:verify>` was sent on this stream.
    verifies_sent: BTreeSet<String>,
}

/// Where an inbound stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InPhase {
    /// Waiting for the peer's header.
    Header,
    /// Open: features sent.
    Open,
    /// TLS handshake under way.
    Tls,
    /// Ended.
    Dead,
}

/// A stream a remote server opened to us.
struct In {
    phase: InPhase,
    framer: Framer,
    tls: bool,
    stream_id: String,
    /// Domains verified on this stream.
    verified: BTreeSet<String>,
}

/// The adapter's state between calls.
struct State {
    settings: Option<Settings>,
    next_link: LinkId,
    outs: BTreeMap<LinkId, Out>,
    by_domain: BTreeMap<String, LinkId>,
    ins: BTreeMap<LinkId, In>,
    /// (remote domain, inbound stream id) → (inbound link, the key it sent): dialback checks
    /// waiting for the remote domain's answer.
    checks: BTreeMap<(String, String), (LinkId, String)>,
    counter: u64,
    resources: BTreeMap<String, BTreeMap<String, PresenceInfo>>,
    /// Remote user → the local users their presence was delivered to: told Offline when no
    /// stream from their domain is left.
    recipients: BTreeMap<String, BTreeSet<String>>,
}

impl State {
    fn new(settings: Option<Settings>) -> Self {
        State {
            settings,
            next_link: 1,
            outs: BTreeMap::new(),
            by_domain: BTreeMap::new(),
            ins: BTreeMap::new(),
            checks: BTreeMap::new(),
            counter: 0,
            resources: BTreeMap::new(),
            recipients: BTreeMap::new(),
        }
    }
}

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// The XMPP server-to-server adapter.
pub struct XmppS2s;

impl FederationAdapter for XmppS2s {
    fn start(host: &dyn Host) -> Vec<Action> {
        let settings = match Settings::from_host(host) {
            Ok(s) => Some(s),
            Err(e) => {
                host.log(Level::Error, &format!("not starting: {e}"));
                None
            }
        };
        let mut out = Vec::new();
        if let Some(s) = &settings {
            if s.listen_port != 0 {
                out.push(Action::Listen { address: s.listen_address.clone(), port: s.listen_port });
            }
            // Items for domains without a stream stay queued until one is up (see `NOT_UP`).
            out.push(Action::Routing(true));
            if s.keepalive_ms > 0 {
                out.push(Action::SetTimer { token: KEEPALIVE, ms: s.keepalive_ms });
            }
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
            let mut c = Call { host, s: &settings, st: state, out: Vec::new() };
            c.input(input);
            c.out
        })
    }
}

halo_sdk::federation_adapter!(XmppS2s);

/// One call's work.
struct Call<'a> {
    host: &'a dyn Host,
    s: &'a Settings,
    st: &'a mut State,
    out: Vec<Action>,
}

/// The text content of a simple element such as `<db:result ...>KEY</db:result>`.
fn inner_text(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    match (s.find('>'), s.rfind("</")) {
        (Some(a), Some(b)) if a < b => s[a + 1..b].trim().to_owned(),
        _ => String::new(),
    }
}

/// Whether a top-level element is dialback's `name` (`db:result`, `db:verify`).
fn is_dialback(st: &Stanza, name: &str) -> bool {
    st.name == format!("db:{name}") || (st.name == name && st.attr("xmlns") == Some(DIALBACK_NS))
}

fn is_tls(st: &Stanza, name: &str) -> bool {
    (st.name == name || st.name.ends_with(&format!(":{name}"))) && st.attr("xmlns").is_none_or(|ns| ns == TLS_NS)
}

impl Call<'_> {
    fn log(&self, level: Level, message: &str) {
        self.host.log(level, message);
    }

    fn send(&mut self, link: LinkId, xml: String) {
        self.out.push(Action::Send(link, xml.into_bytes()));
    }

    fn header(&self, to: &str, id: Option<&str>) -> String {
        let id = id.map(|i| format!(" id='{}'", attr(i))).unwrap_or_default();
        format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='{DIALBACK_NS}' from='{}' to='{}'{id} version='1.0'>",
            attr(&self.s.domain),
            attr(to)
        )
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::Accepted(a) => self.accepted(a),
            Input::Resolved(a) => self.resolved(a),
            Input::Connected(link) => self.connected(link),
            Input::TlsReady(link) => self.tls_ready(link),
            Input::Data(link, bytes) => self.data(link, &bytes),
            Input::Closed(link, why) => self.closed(link, &why),
            Input::Timer(KEEPALIVE) => {
                let ready: Vec<LinkId> =
                    self.st.outs.iter().filter(|(_, o)| o.phase == OutPhase::Ready).map(|(l, _)| *l).collect();
                for l in ready {
                    self.send(l, " ".into());
                }
                self.out.push(Action::SetTimer { token: KEEPALIVE, ms: self.s.keepalive_ms });
            }
            Input::Timer(_) => {}
            Input::Message(m) => {
                let (from, to) = match map::jids(&m.from, &m.to, &self.s.domain) {
                    Ok(j) => j,
                    Err(e) => return self.log(Level::Warn, &format!("dropped a message: {e}")),
                };
                let id = m.id.filter(|i| !i.is_empty()).unwrap_or_else(|| {
                    self.st.counter += 1;
                    format!("halo-{}", self.st.counter)
                });
                self.route(&to, map::message_xml(&from, &to, &id, &m.text));
            }
            Input::Presence(p) => {
                let Presence { from, to, info } = p;
                match map::jids(&from, &to, &self.s.domain) {
                    Ok((from, to)) => self.route(&to, map::presence_xml(&from, &to, &info)),
                    Err(e) => self.log(Level::Warn, &format!("dropped a presence: {e}")),
                }
            }
            Input::Subscribe(s) => match map::jids(&s.from, &s.to, &self.s.domain) {
                Ok((from, to)) => self.route(&to, map::subscribe_xml(&from, &to, s.kind)),
                Err(e) => self.log(Level::Warn, &format!("dropped a subscription: {e}")),
            },
            // Group traffic and the host's refusals of what this adapter delivered: not carried
            // over server-to-server links yet (the component adapter carries them).
            _ => {}
        }
    }

    // ----- outbound streams -----

    /// Sends `xml` for `to` on its domain's stream when it is up; else starts one and leaves
    /// the item queued in the host.
    fn route(&mut self, to: &str, xml: String) {
        let Some(domain) = jid::domain_of(to) else { return };
        match self.ensure_out(&domain) {
            Some(link) if self.st.outs.get(&link).is_some_and(|o| o.phase == OutPhase::Ready) => self.send(link, xml),
            _ => self.send(NOT_UP, xml),
        }
    }

    /// The outbound stream to `domain`, started if there is none.
    fn ensure_out(&mut self, domain: &str) -> Option<LinkId> {
        if let Some(l) = self.st.by_domain.get(domain) {
            return Some(*l);
        }
        if self.st.by_domain.len() >= MAX_DOMAINS {
            self.log(Level::Warn, &format!("more than {MAX_DOMAINS} remote domains; {domain} waits"));
            return None;
        }
        let link = self.st.next_link;
        self.st.next_link += 1;
        self.st.by_domain.insert(domain.to_owned(), link);
        self.st.outs.insert(
            link,
            Out {
                domain: domain.to_owned(),
                phase: OutPhase::Resolving,
                framer: Framer::new(self.s.max_stanza),
                tls: false,
                stream_id: None,
                verifies_sent: BTreeSet::new(),
            },
        );
        self.log(Level::Info, &format!("looking up the XMPP server of {domain}"));
        self.out.push(Action::Resolve { token: link, name: format!("_xmpp-server._tcp.{domain}") });
        Some(link)
    }

    fn resolved(&mut self, a: SrvAnswer) {
        let link = a.token;
        let Some(o) = self.st.outs.get_mut(&link).filter(|o| o.phase == OutPhase::Resolving) else { return };
        o.phase = OutPhase::Connecting;
        let domain = o.domain.clone();
        // RFC 6120 §3.2: the first target (by priority), else the domain itself on 5269.
        let (host, port) = match a.targets.first() {
            Some(t) => (t.host.clone(), t.port),
            None => {
                if let Some(e) = &a.error {
                    self.log(Level::Info, &format!("{e}; trying {domain}:{DEFAULT_PORT}"));
                }
                (domain.clone(), DEFAULT_PORT)
            }
        };
        self.log(Level::Info, &format!("connecting to {domain} at {host}:{port}"));
        self.out.push(Action::Open(LinkSpec { id: link, host, port, tls_name: None }));
    }

    fn connected(&mut self, link: LinkId) {
        let Some(o) = self.st.outs.get_mut(&link) else { return };
        o.phase = OutPhase::Features;
        o.tls = false;
        o.stream_id = None;
        o.verifies_sent.clear();
        o.framer = Framer::new(self.s.max_stanza);
        let domain = o.domain.clone();
        let header = self.header(&domain, None);
        self.send(link, header);
    }

    fn tls_ready(&mut self, link: LinkId) {
        if let Some(o) = self.st.outs.get_mut(&link) {
            o.tls = true;
            o.phase = OutPhase::Features;
            o.stream_id = None;
            o.framer = Framer::new(self.s.max_stanza);
            let domain = o.domain.clone();
            let header = self.header(&domain, None);
            self.send(link, header);
        } else if let Some(i) = self.st.ins.get_mut(&link) {
            i.tls = true;
            i.phase = InPhase::Header;
            i.framer = Framer::new(self.s.max_stanza);
        }
    }

    fn closed(&mut self, link: LinkId, why: &str) {
        if let Some(o) = self.st.outs.get_mut(&link) {
            // The host opens it again after the breaker's backoff.
            o.phase = if o.phase == OutPhase::Resolving { OutPhase::Resolving } else { OutPhase::Connecting };
            let domain = o.domain.clone();
            self.log(Level::Warn, &format!("the stream to {domain} closed: {why}"));
        } else if let Some(gone) = self.st.ins.remove(&link) {
            self.st.checks.retain(|_, (l, _)| *l != link);
            for domain in gone.verified {
                if !self.st.ins.values().any(|i| i.verified.contains(&domain)) {
                    self.domain_gone(&domain);
                }
            }
        }
    }

    /// No stream from `domain` is left (its server stopped, say): the local users who saw its
    /// users' presence see them Offline until they come back.
    fn domain_gone(&mut self, domain: &str) {
        let suffix = format!("@{domain}");
        let users: Vec<String> = self.st.recipients.keys().filter(|u| u.ends_with(&suffix)).cloned().collect();
        for user in users {
            self.st.resources.remove(&user);
            for to in self.st.recipients.remove(&user).unwrap_or_default() {
                let info =
                    PresenceInfo { state: "offline".into(), activity: None, label: "Offline".into(), note: None };
                self.out.push(Action::DeliverPresence(Presence { from: user.clone(), to, info }));
            }
        }
        self.log(Level::Info, &format!("no stream from {domain} is left: its users are offline here"));
    }

    /// Ends a stream with a stream error; an outbound one counts as a failure (backoff).
    fn fail(&mut self, link: LinkId, condition: &str, reason: String) {
        self.log(Level::Warn, &format!("closing a stream ({condition}): {reason}"));
        self.send(link, format!("<stream:error><{condition} xmlns='{STREAMS_NS}'/></stream:error></stream:stream>"));
        if let Some(o) = self.st.outs.get_mut(&link) {
            o.phase = OutPhase::Connecting;
            let domain = o.domain.clone();
            self.out.push(Action::Reject(Rejection { domain: Some(domain.clone()), reason: reason.clone() }));
            self.out.push(Action::Fail(link, format!("{domain}: {reason}")));
        } else {
            if let Some(i) = self.st.ins.get_mut(&link) {
                i.phase = InPhase::Dead;
            }
            self.out.push(Action::Reject(Rejection { domain: None, reason: reason.clone() }));
            self.out.push(Action::Fail(link, reason));
        }
    }

    fn data(&mut self, link: LinkId, bytes: &[u8]) {
        let units = if let Some(o) = self.st.outs.get_mut(&link) {
            o.framer.push(bytes)
        } else if let Some(i) = self.st.ins.get_mut(&link).filter(|i| i.phase != InPhase::Dead) {
            i.framer.push(bytes)
        } else {
            return;
        };
        let units = match units {
            Ok(u) => u,
            Err(fault) => return self.fail(link, fault.condition(), fault.reason()),
        };
        for unit in units {
            let parsed = match &unit {
                Unit::Header(h) => stanza::header(h).map(|st| (st, Vec::new())),
                Unit::Stanza(s) => stanza::parse(s).map(|st| (st, s.clone())),
                Unit::End => {
                    self.send(link, "</stream:stream>".into());
                    return self.fail(link, "reset", "the remote server closed the stream".into());
                }
                Unit::Oversize(_) => {
                    // Over `max_stanza_bytes`: skipped unread; the stream goes on.
                    let reason = "a stanza over max_stanza_bytes was skipped".to_owned();
                    self.log(Level::Warn, &reason);
                    self.out.push(Action::Reject(Rejection { domain: None, reason }));
                    continue;
                }
            };
            let (st, raw) = match parsed {
                Ok(p) => p,
                Err(fault) => return self.fail(link, fault.condition(), fault.reason()),
            };
            let header = matches!(unit, Unit::Header(_));
            if self.st.outs.contains_key(&link) {
                self.out_unit(link, header, &st, &raw);
            } else {
                self.in_unit(link, header, &st, &raw);
            }
            let dead = self.out.iter().any(|a| matches!(a, Action::Fail(l, _) if *l == link))
                || self.out.iter().any(|a| matches!(a, Action::StartTls(l, _) if *l == link));
            if dead {
                // Failed, or switching to TLS: what followed in this chunk is not ours to read.
                return;
            }
        }
    }

    fn out_unit(&mut self, link: LinkId, header: bool, st: &Stanza, raw: &[u8]) {
        let Some(o) = self.st.outs.get_mut(&link) else { return };
        if header {
            if st.name != "stream:stream" {
                return self.fail(
                    link,
                    "invalid-namespace",
                    format!("the stream starts with <{}>", jid::shorten(&st.name)),
                );
            }
            o.stream_id = st.attr("id").filter(|i| !i.is_empty() && i.len() <= 256).map(str::to_owned);
            return;
        }
        let domain = o.domain.clone();
        match st.name.as_str() {
            "stream:features" => {
                let offers_tls = st.children.iter().any(|c| c.name == "starttls");
                if !o.tls && offers_tls {
                    o.phase = OutPhase::StartTls;
                    return self.send(link, format!("<starttls xmlns='{TLS_NS}'/>"));
                }
                if !o.tls && self.s.require_tls {
                    return self.fail(link, "policy-violation", format!("{domain} does not offer TLS (STARTTLS)"));
                }
                let Some(id) = o.stream_id.clone() else {
                    return self.fail(link, "invalid-id", format!("{domain} gave the stream no id"));
                };
                o.phase = OutPhase::Dialback;
                let key = self.s.key(&domain, &self.s.domain, &id);
                self.send(
                    link,
                    format!("<db:result from='{}' to='{}'>{key}</db:result>", attr(&self.s.domain), attr(&domain)),
                );
                self.send_checks(link);
            }
            _ if is_tls(st, "proceed") && o.phase == OutPhase::StartTls => {
                o.phase = OutPhase::Tls;
                self.out.push(Action::StartTls(link, TlsRole::Client(domain)));
            }
            _ if is_tls(st, "failure") => self.fail(link, "undefined-condition", format!("{domain} refused STARTTLS")),
            _ if is_dialback(st, "result") => match st.attr("type") {
                Some("valid") => {
                    o.phase = OutPhase::Ready;
                    self.log(Level::Info, &format!("stream to {domain} verified (dialback)"));
                    self.out.push(Action::DrainQueued);
                }
                other => {
                    let why = st.children.iter().find(|c| c.name == "error").and_then(|e| e.first_child.clone());
                    let why = why.or(other.map(str::to_owned)).unwrap_or_default();
                    self.fail(link, "not-authorized", format!("{domain} refused our dialback key ({why})"));
                }
            },
            _ if is_dialback(st, "verify") => self.verify_answer(&domain, st),
            "stream:error" => {
                let condition =
                    st.children.iter().find(|c| c.name != "text").map_or("undefined-condition", |c| &c.name);
                let text = st.child("text").map(|t| format!(": {}", jid::shorten(t.text.trim()))).unwrap_or_default();
                let during = if o.phase == OutPhase::Dialback { " during dialback" } else { "" };
                let reason = format!("{domain} ended the stream{during} ({}){text}", jid::shorten(condition));
                self.fail(link, "reset", reason);
            }
            _ => {
                // Stanzas on our outbound stream are not expected; a db:verify request may be.
                let _ = raw;
                self.log(Level::Debug, &format!("ignored <{}> from {domain}", jid::shorten(&st.name)));
            }
        }
    }

    /// Sends the `<db:verify>` requests waiting for `link`'s domain once its stream can carry
    /// them (after TLS and the features).
    fn send_checks(&mut self, link: LinkId) {
        let Some(o) = self.st.outs.get(&link) else { return };
        if !matches!(o.phase, OutPhase::Dialback | OutPhase::Ready) {
            return;
        }
        let domain = o.domain.clone();
        let due: Vec<(String, String)> = self
            .st
            .checks
            .iter()
            .filter(|((d, id), _)| *d == domain && !o.verifies_sent.contains(id))
            .map(|((_, id), (_, key))| (id.clone(), key.clone()))
            .collect();
        for (id, key) in due {
            if let Some(o) = self.st.outs.get_mut(&link) {
                o.verifies_sent.insert(id.clone());
            }
            self.send(
                link,
                format!(
                    "<db:verify from='{}' to='{}' id='{}'>{}</db:verify>",
                    attr(&self.s.domain),
                    attr(&domain),
                    attr(&id),
                    attr(&key)
                ),
            );
        }
    }

    /// The remote server's answer to one of our `<db:verify>`: tells the inbound stream.
    fn verify_answer(&mut self, domain: &str, st: &Stanza) {
        let Some(id) = st.attr("id") else { return };
        let Some((inbound, _)) = self.st.checks.remove(&(domain.to_owned(), id.to_owned())) else { return };
        let valid = st.attr("type") == Some("valid");
        let answer = format!(
            "<db:result from='{}' to='{}' type='{}'/>",
            attr(&self.s.domain),
            attr(domain),
            if valid { "valid" } else { "invalid" }
        );
        self.send(inbound, answer);
        if valid {
            if let Some(i) = self.st.ins.get_mut(&inbound) {
                i.verified.insert(domain.to_owned());
            }
            self.log(Level::Info, &format!("accepted a stream from {domain} (dialback)"));
        } else {
            let reason = format!("{domain}'s server did not confirm the dialback key of a stream claiming to be it");
            self.log(Level::Warn, &reason);
            self.out.push(Action::Reject(Rejection { domain: Some(domain.to_owned()), reason }));
        }
    }
}

#[cfg(test)]
mod tests;

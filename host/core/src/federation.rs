//! Federation: users of other servers (`name@domain`), the admin's domain rules (allowed,
//! blocked, and the route each domain takes), presence as it crosses servers, the items an
//! outbound queue holds, and the circuit breaker guarding each remote domain.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Longest domain name, in bytes (DNS).
pub const MAX_DOMAIN_LEN: usize = 253;
/// Longest local part of a remote address, in bytes (as XMPP's localpart).
pub const MAX_LOCALPART_LEN: usize = 64;
/// The rule key that matches every domain without a rule of its own.
pub const ANY_DOMAIN: &str = "*";

/// Why a federation request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    /// Not a domain name.
    #[error("invalid domain {0:?}: use letters, digits, '-' and '.', at most 253 characters")]
    InvalidDomain(String),
    /// Not a remote address.
    #[error("invalid federated address {0:?}: use name@domain")]
    InvalidAddress(String),
    /// The admin blocked the domain.
    #[error("the domain {0} is blocked")]
    Blocked(String),
    /// No rule lets the domain federate.
    #[error("the domain {0} is not federated with this server")]
    NotFederated(String),
    /// A rule is inconsistent.
    #[error("invalid federation rule: {0}")]
    InvalidRule(String),
}

/// A DNS domain name, lowercased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Domain(String);

impl Domain {
    /// Validates and lowercases a domain name (labels of letters, digits and inner `-`).
    pub fn parse(raw: &str) -> Result<Self, FederationError> {
        let d = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !d.is_empty()
            && d.len() <= MAX_DOMAIN_LEN
            && d.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if ok { Ok(Self(d)) } else { Err(FederationError::InvalidDomain(raw.to_owned())) }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Domain {
    type Error = FederationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Domain> for String {
    fn from(d: Domain) -> String {
        d.0
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `local` may be the part before `@` of a remote address: 1-64 bytes, no spaces,
/// controls or the characters XMPP forbids in a localpart (`"&'/:<>@`).
pub fn valid_localpart(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCALPART_LEN
        && local.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"\"&'/:<>@".contains(c))
}

/// How a domain is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Route {
    /// Through an enabled federation-adapter plugin, by name.
    Adapter {
        /// The plugin's name.
        plugin: String,
    },
    /// Another Halo server, over HTTPS with signed requests (see `docs/federation.md`).
    Halo {
        /// The peer's federation endpoint, `https://host:port`.
        url: String,
        /// The secret both servers share; requests are signed with HMAC-SHA256 under it.
        secret: String,
        /// A PEM file of certificates to trust for the peer instead of the public roots.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<String>,
    },
}

/// Whether a domain may federate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Allowed (Lync's allowed federated domains).
    Allow,
    /// Blocked: nothing in or out, whatever the `*` rule says.
    Block,
}

/// An admin's rule for one domain (or for [`ANY_DOMAIN`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Allowed or blocked.
    pub access: Access,
    /// How it is reached; required for allowed domains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Route>,
}

impl Rule {
    /// Checks that an allowed rule has a route, and that a Halo route is HTTPS with a secret
    /// of at least 16 bytes.
    pub fn check(&self) -> Result<(), FederationError> {
        match (&self.access, &self.route) {
            (Access::Allow, None) => Err(FederationError::InvalidRule("an allowed domain needs a route".into())),
            (_, Some(Route::Halo { url, secret, .. })) => {
                if !url.starts_with("https://") {
                    return Err(FederationError::InvalidRule(format!("peer url {url:?} must be https://")));
                }
                if secret.len() < 16 {
                    return Err(FederationError::InvalidRule("the shared secret needs at least 16 bytes".into()));
                }
                Ok(())
            }
            (_, Some(Route::Adapter { plugin })) if plugin.is_empty() => {
                Err(FederationError::InvalidRule("name the adapter plugin".into()))
            }
            _ => Ok(()),
        }
    }
}

/// Every domain rule: the federation policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Rule by domain (or [`ANY_DOMAIN`]).
    pub by_domain: BTreeMap<String, Rule>,
}

impl Rules {
    /// The route to `domain`: its own rule, else the `*` rule. A blocked domain, or one no rule
    /// allows, is refused.
    pub fn route(&self, domain: &str) -> Result<&Route, FederationError> {
        let rule = self.by_domain.get(domain).or_else(|| self.by_domain.get(ANY_DOMAIN));
        match rule {
            Some(Rule { access: Access::Block, .. }) => Err(FederationError::Blocked(domain.to_owned())),
            Some(Rule { access: Access::Allow, route: Some(r) }) => Ok(r),
            _ => Err(FederationError::NotFederated(domain.to_owned())),
        }
    }

    /// Whether traffic from `domain`, arriving through `via`, is acceptable: the domain is
    /// allowed and routed that way (an adapter may not speak for a domain routed elsewhere).
    pub fn accepts(&self, domain: &str, via: &RouteKey) -> Result<(), FederationError> {
        let route = self.route(domain)?;
        if &RouteKey::of(domain, route) == via { Ok(()) } else { Err(FederationError::NotFederated(domain.to_owned())) }
    }
}

/// Which transport carries a domain: an adapter plugin, or the Halo peer link of one domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RouteKey {
    /// The adapter plugin of this name.
    Adapter(String),
    /// The Halo peer serving this domain.
    Halo(String),
}

impl RouteKey {
    /// The key of `route` when used for `domain`.
    pub fn of(domain: &str, route: &Route) -> Self {
        match route {
            Route::Adapter { plugin } => Self::Adapter(plugin.clone()),
            Route::Halo { .. } => Self::Halo(domain.to_owned()),
        }
    }
}

/// Presence as it crosses servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceInfo {
    /// Band token: `available`, `busy`, `do_not_disturb`, `be_right_back`, `away`, `offline`.
    pub state: String,
    /// Activity token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// What to show.
    pub label: String,
    /// The note, when shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The bands a remote server may report; anything else reads as `offline`.
pub const BANDS: &[&str] = &["available", "busy", "do_not_disturb", "be_right_back", "away", "offline"];

/// Longest label or note carried across servers, in characters.
pub const MAX_PRESENCE_TEXT: usize = 1024;

impl PresenceInfo {
    /// Cleans what a remote server sent: an unknown band becomes `offline`, idle bands their
    /// base band, texts are clipped, an empty label becomes the band's.
    pub fn sanitised(mut self) -> Self {
        self.state = self.state.trim_end_matches("_idle").to_owned();
        if !BANDS.contains(&self.state.as_str()) {
            self.state = "offline".into();
        }
        if self.activity.as_ref().is_some_and(|a| a.len() > 64) {
            self.activity = None;
        }
        self.label = clip(&self.label);
        if self.label.trim().is_empty() {
            self.label = band_label(&self.state).into();
        }
        self.note = self.note.map(|n| clip(&n)).filter(|n| !n.trim().is_empty());
        self
    }

    /// Offline.
    pub fn offline() -> Self {
        Self { state: "offline".into(), activity: None, label: band_label("offline").into(), note: None }
    }
}

fn clip(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || *c == '\n').take(MAX_PRESENCE_TEXT).collect()
}

/// The English label of a band token.
pub fn band_label(state: &str) -> &'static str {
    match state {
        "available" => "Available",
        "busy" => "Busy",
        "do_not_disturb" => "Do not disturb",
        "be_right_back" => "Be right back",
        "away" => "Away",
        _ => "Offline",
    }
}

/// Presence subscription traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subscription {
    /// `from` asks to see `to`'s presence.
    Request,
    /// `from` lets `to` see their presence.
    Accept,
    /// `from` refuses or withdraws `to`'s right to see their presence.
    Refuse,
    /// `from` no longer wants `to`'s presence.
    Cancel,
    /// `from` asks for `to`'s current presence.
    Probe,
}

/// Longest message text carried across servers, in bytes (as local messages).
pub const MAX_TEXT_BYTES: usize = crate::conversation::MAX_MESSAGE_BYTES;

/// One thing for a remote server: what outbound queues hold and what inbound traffic becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    /// A message.
    Message {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// Text.
        text: String,
        /// Sender-unique id (the receiver drops a repeat).
        id: String,
    },
    /// A presence change for one subscriber.
    Presence {
        /// Whose presence.
        from: String,
        /// The subscriber.
        to: String,
        /// The presence.
        info: PresenceInfo,
    },
    /// A subscription stanza.
    Subscribe {
        /// Sender.
        from: String,
        /// Recipient.
        to: String,
        /// Which.
        kind: Subscription,
    },
    // ----- Groups: conversations with users of several servers, and rooms (see
    // `docs/federation.md`, "Groups"). A group lives on one server, its host, and is
    // addressed `#c<id>@<host>` (a conversation) or `#r<id>@<host>` (a room); the host keeps
    // its members and history and carries each post to every remote member, one item per
    // member (as an XMPP MUC sends one stanza per occupant). -----
    /// The host tells a remote user they were added to (invited into) a group.
    GroupInvite {
        /// The group.
        from: String,
        /// The new member.
        to: String,
        /// Who added them.
        by: String,
        /// The group's name (a room's name; empty for a conversation).
        name: String,
    },
    /// The host carries a post in a group to one remote member.
    GroupMessage {
        /// The group.
        from: String,
        /// The member.
        to: String,
        /// Who wrote it.
        author: String,
        /// Text.
        text: String,
        /// The host's message id (the receiver drops a repeat).
        id: String,
    },
    /// The host answers a member's [`Item::GroupJoin`]: what the group is now.
    GroupState {
        /// The group.
        from: String,
        /// The member who joined.
        to: String,
        /// The group's name.
        name: String,
        /// Its subject (a room's topic).
        subject: String,
        /// Its members, at most [`MAX_GROUP_MEMBERS`].
        members: Vec<String>,
        /// Its latest posts, oldest first, at most [`MAX_GROUP_HISTORY`].
        history: Vec<GroupLine>,
    },
    /// The host refuses what a remote user asked of a group.
    GroupRefused {
        /// The group.
        from: String,
        /// The remote user.
        to: String,
        /// Why, as an XMPP stanza error condition (`forbidden`, `registration-required`,
        /// `item-not-found`, `not-acceptable`).
        condition: String,
        /// Why, in words.
        text: String,
    },
    /// A remote member posts to a group.
    GroupPost {
        /// The member.
        from: String,
        /// The group.
        to: String,
        /// Text.
        text: String,
        /// Sender-unique id (the host drops a repeat).
        id: String,
    },
    /// A remote user enters a group (an XMPP user joining a room): the host answers with
    /// [`Item::GroupState`] or [`Item::GroupRefused`].
    GroupJoin {
        /// The remote user.
        from: String,
        /// The group.
        to: String,
    },
    /// A remote member leaves a group.
    GroupLeave {
        /// The member.
        from: String,
        /// The group.
        to: String,
    },
    /// A remote member invites someone into a group (XEP-0045 mediated invitation).
    GroupAdd {
        /// The member who invites.
        from: String,
        /// The group.
        to: String,
        /// Whom: a user of the host (a bare name) or anyone's full address.
        user: String,
    },
}

/// One post of a group's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupLine {
    /// Who wrote it.
    pub author: String,
    /// Text.
    pub text: String,
    /// When, ms since the Unix epoch.
    pub at: Millis,
}

/// Most members a [`Item::GroupState`] lists.
pub const MAX_GROUP_MEMBERS: usize = 200;
/// Most posts a [`Item::GroupState`] carries.
pub const MAX_GROUP_HISTORY: usize = 20;

/// The mark that starts a group's local part.
pub const GROUP_MARK: char = '#';

/// A group hosted here: a conversation or a room, as its local part names it (`#c17`, `#r5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// A conversation.
    Conversation(u64),
    /// A room.
    Room(u64),
}

impl Group {
    /// Reads a group's local part (`#c17`, `#r5`).
    pub fn parse(local: &str) -> Option<Self> {
        let rest = local.strip_prefix(GROUP_MARK)?;
        let (kind, id) = rest.split_at_checked(1)?;
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let id: u64 = id.parse().ok()?;
        match kind {
            "c" => Some(Self::Conversation(id)),
            "r" => Some(Self::Room(id)),
            _ => None,
        }
    }

    /// Its local part.
    pub fn local(&self) -> String {
        match self {
            Self::Conversation(id) => format!("{GROUP_MARK}c{id}"),
            Self::Room(id) => format!("{GROUP_MARK}r{id}"),
        }
    }
}

/// Whether `name` (a local part or a full address) names a group rather than a user.
pub fn is_group(name: &str) -> bool {
    name.starts_with(GROUP_MARK)
}

impl Item {
    /// The sender.
    pub fn from(&self) -> &str {
        match self {
            Item::Message { from, .. }
            | Item::Presence { from, .. }
            | Item::Subscribe { from, .. }
            | Item::GroupInvite { from, .. }
            | Item::GroupMessage { from, .. }
            | Item::GroupState { from, .. }
            | Item::GroupRefused { from, .. }
            | Item::GroupPost { from, .. }
            | Item::GroupJoin { from, .. }
            | Item::GroupLeave { from, .. }
            | Item::GroupAdd { from, .. } => from,
        }
    }

    /// The recipient.
    pub fn to(&self) -> &str {
        match self {
            Item::Message { to, .. }
            | Item::Presence { to, .. }
            | Item::Subscribe { to, .. }
            | Item::GroupInvite { to, .. }
            | Item::GroupMessage { to, .. }
            | Item::GroupState { to, .. }
            | Item::GroupRefused { to, .. }
            | Item::GroupPost { to, .. }
            | Item::GroupJoin { to, .. }
            | Item::GroupLeave { to, .. }
            | Item::GroupAdd { to, .. } => to,
        }
    }

    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Message { .. } => "message",
            Item::Presence { .. } => "presence",
            Item::Subscribe { .. } => "subscribe",
            Item::GroupInvite { .. } => "group_invite",
            Item::GroupMessage { .. } => "group_message",
            Item::GroupState { .. } => "group_state",
            Item::GroupRefused { .. } => "group_refused",
            Item::GroupPost { .. } => "group_post",
            Item::GroupJoin { .. } => "group_join",
            Item::GroupLeave { .. } => "group_leave",
            Item::GroupAdd { .. } => "group_add",
        }
    }

    /// Whether it goes from a group's host to a user (`from` is the group).
    pub fn from_group(&self) -> bool {
        matches!(
            self,
            Item::GroupInvite { .. } | Item::GroupMessage { .. } | Item::GroupState { .. } | Item::GroupRefused { .. }
        )
    }

    /// Whether it goes from a user to a group's host (`to` is the group).
    pub fn to_group(&self) -> bool {
        matches!(
            self,
            Item::GroupPost { .. } | Item::GroupJoin { .. } | Item::GroupLeave { .. } | Item::GroupAdd { .. }
        )
    }
}

/// Why the receiving server refused an item, as it tells the sending side (an adapter turns
/// it into its protocol's error, e.g. an XMPP stanza error; a Halo peer gets it in its signed
/// receipt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No such (enabled) user here.
    NoSuchUser,
    /// The recipient blocked the sender (told as little as an absent account would).
    Blocked,
    /// The recipient does not take messages now (Do Not Disturb, or offline with offline IM off).
    Unavailable,
    /// The sender's domain sent faster than its limit.
    RateLimited,
    /// The text is over the size limit.
    TooBig,
    /// Malformed, or not something this server takes (e.g. a message to a group).
    BadRequest,
    /// The sender's domain is not federated here (or not through this transport).
    NotFederated,
    /// Something failed on this server; retrying later may work.
    Internal,
}

impl Refusal {
    /// The wire name (`no_such_user`, ...).
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoSuchUser => "no_such_user",
            Refusal::Blocked => "blocked",
            Refusal::Unavailable => "unavailable",
            Refusal::RateLimited => "rate_limited",
            Refusal::TooBig => "too_big",
            Refusal::BadRequest => "bad_request",
            Refusal::NotFederated => "not_federated",
            Refusal::Internal => "internal",
        }
    }
}

/// A message a remote server refused: it reached no one there, and its sender is told so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryFailure {
    /// The remote recipient.
    pub to: String,
    /// Why, as a code.
    pub code: Refusal,
    /// Why, in words (the remote side's, shortened).
    pub reason: String,
}

/// The circuit breaker of one remote link: after each failure the next attempt waits longer
/// (from [`Breaker::BASE`] doubling to [`Breaker::MAX`]); after [`Breaker::TRIP`] failures in a
/// row it reports `open`, so admins see a dead peer at a glance. One success closes it and
/// clears the last error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Breaker {
    failures: u32,
    retry_at: Millis,
    last_error: Option<String>,
}

/// A breaker's state, as admins see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Working (or not tried yet).
    Closed,
    /// Failing; waiting before the next try.
    Backoff,
    /// Failed [`Breaker::TRIP`] times in a row; tried again only after the wait.
    Open,
}

impl Breaker {
    /// First wait, ms.
    pub const BASE: Millis = 500;
    /// Longest wait, ms.
    pub const MAX: Millis = 60_000;
    /// Failures in a row that open the breaker.
    pub const TRIP: u32 = 5;

    /// Records a failure at `now`; returns when to try again.
    pub fn failed(&mut self, now: Millis, why: &str) -> Millis {
        self.failures = self.failures.saturating_add(1);
        let wait = Self::BASE.saturating_mul(1 << (self.failures - 1).min(16)).min(Self::MAX);
        self.retry_at = now + wait;
        self.last_error = Some(why.chars().take(512).collect());
        self.retry_at
    }

    /// Records a success: closed, no error.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.retry_at = 0;
        self.last_error = None;
    }

    /// Whether an attempt may be made at `now`.
    pub fn ready(&self, now: Millis) -> bool {
        now >= self.retry_at
    }

    /// When the next attempt may be made.
    pub fn retry_at(&self) -> Millis {
        self.retry_at
    }

    /// Failures in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The last failure's reason.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The state for display.
    pub fn state(&self) -> BreakerState {
        match self.failures {
            0 => BreakerState::Closed,
            n if n >= Self::TRIP => BreakerState::Open,
            _ => BreakerState::Backoff,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Username;

    #[test]
    fn domains_are_checked_and_lowercased() {
        assert_eq!(Domain::parse("Example.ORG.").map(|d| d.0), Ok("example.org".into()));
        for bad in ["", "a..b", "-a.b", "a-.b", "a b", "a_b.c", &"a".repeat(254), "exa\u{e9}mple.org"] {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn addresses_are_remote_users() {
        let a = Username::parse_address("Bob@Example.org").expect("test");
        assert_eq!(a.as_str(), "bob@example.org");
        assert!(a.is_remote());
        assert_eq!(a.domain(), Some("example.org"));
        assert_eq!(a.local_part(), "bob");
        let l = Username::parse_address("alice").expect("test");
        assert!(!l.is_remote());
        assert_eq!(l.domain(), None);
        for bad in ["@example.org", "bob@", "b<b@example.org", "bob@exa mple.org", "a@b@c", "bob@-x.org"] {
            assert!(Username::parse_address(bad).is_err(), "{bad:?}");
        }
        // Accounts stay local.
        assert!(Username::parse("bob@example.org").is_err());
        let stored: Username = serde_json::from_str("\"bob@example.org\"").expect("test");
        assert_eq!(stored, a);
    }

    fn rules(list: &[(&str, Rule)]) -> Rules {
        Rules { by_domain: list.iter().map(|(d, r)| (d.to_string(), r.clone())).collect() }
    }

    fn via(plugin: &str) -> Rule {
        Rule { access: Access::Allow, route: Some(Route::Adapter { plugin: plugin.into() }) }
    }

    #[test]
    fn routes_follow_the_rules_and_blocks_win() {
        let r = rules(&[
            ("*", via("xmpp")),
            ("evil.org", Rule { access: Access::Block, route: None }),
            ("peer.org", via("other")),
        ]);
        assert_eq!(r.route("jabber.org"), Ok(&Route::Adapter { plugin: "xmpp".into() }));
        assert_eq!(r.route("evil.org"), Err(FederationError::Blocked("evil.org".into())));
        assert_eq!(r.route("peer.org"), Ok(&Route::Adapter { plugin: "other".into() }));
        assert!(r.accepts("jabber.org", &RouteKey::Adapter("xmpp".into())).is_ok());
        // An adapter cannot speak for a domain routed elsewhere.
        assert!(r.accepts("peer.org", &RouteKey::Adapter("xmpp".into())).is_err());
        assert!(r.accepts("evil.org", &RouteKey::Adapter("xmpp".into())).is_err());
        let none = rules(&[("peer.org", via("other"))]);
        assert_eq!(none.route("jabber.org"), Err(FederationError::NotFederated("jabber.org".into())));
    }

    #[test]
    fn rules_are_checked() {
        assert!(Rule { access: Access::Allow, route: None }.check().is_err());
        assert!(Rule { access: Access::Block, route: None }.check().is_ok());
        let halo = |url: &str, secret: &str| Rule {
            access: Access::Allow,
            route: Some(Route::Halo { url: url.into(), secret: secret.into(), ca: None }),
        };
        assert!(halo("http://peer.org", "0123456789abcdef").check().is_err());
        assert!(halo("https://peer.org", "short").check().is_err());
        assert!(halo("https://peer.org:5271", "0123456789abcdef").check().is_ok());
    }

    #[test]
    fn remote_presence_is_sanitised() {
        let p = PresenceInfo { state: "busy_idle".into(), activity: None, label: "".into(), note: Some("  ".into()) };
        let s = p.sanitised();
        assert_eq!(s.state, "busy");
        assert_eq!(s.label, "Busy");
        assert_eq!(s.note, None);
        let odd = PresenceInfo {
            state: "dancing".into(),
            activity: Some("x".repeat(100)),
            label: "x".repeat(5000),
            note: None,
        };
        let s = odd.sanitised();
        assert_eq!(s.state, "offline");
        assert_eq!(s.activity, None);
        assert_eq!(s.label.chars().count(), MAX_PRESENCE_TEXT);
    }

    #[test]
    fn groups_are_named_apart_from_users() {
        assert_eq!(Group::parse("#c17"), Some(Group::Conversation(17)));
        assert_eq!(Group::parse("#r5"), Some(Group::Room(5)));
        assert_eq!(Group::Room(5).local(), "#r5");
        for bad in ["c17", "#x1", "#c", "#c+1", "#r1a", "#", "#r-1", "#c\u{663}"] {
            assert_eq!(Group::parse(bad), None, "{bad:?}");
        }
        assert!(is_group("#c17@a.test") && !is_group("bob@a.test"));
        // A group's address is a valid remote address; a Halo username never starts with '#'.
        assert!(Username::parse_address("#c17@a.test").is_ok());
        assert!(Username::parse("#c17").is_err());
    }

    #[test]
    fn the_breaker_backs_off_and_opens() {
        let mut b = Breaker::default();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.ready(0));
        assert_eq!(b.failed(1000, "refused"), 1500);
        assert!(!b.ready(1499));
        assert!(b.ready(1500));
        assert_eq!(b.state(), BreakerState::Backoff);
        for _ in 0..3 {
            b.failed(1000, "refused");
        }
        assert_eq!(b.failed(1000, "refused"), 1000 + 8000);
        assert_eq!(b.state(), BreakerState::Open);
        for _ in 0..20 {
            b.failed(0, "refused");
        }
        assert_eq!(b.retry_at(), Breaker::MAX);
        assert_eq!(b.last_error(), Some("refused"));
        b.succeeded();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.ready(0));
        assert_eq!(b.last_error(), None);
    }
}

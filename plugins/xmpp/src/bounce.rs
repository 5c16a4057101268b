//! Stanza errors back to remote senders (RFC 6120 §8.3), and the service discovery answer.
//!
//! Which condition for which refusal (RFC 6121 §8.5 and its privacy guidance: a refusal must
//! not tell a stranger more than an absent account would):
//!
//! | refused because | condition (type) |
//! |---|---|
//! | stanza over `max_stanza_bytes` | `policy-violation` (modify) |
//! | `type='groupchat'` to a user | `service-unavailable` (cancel), RFC 6121 §8.5.2.1.1 |
//! | a bad `to` address | `jid-malformed` (modify) |
//! | Halo refused a message (the host's `refused`): no such user, blocked, not federated | `service-unavailable` (cancel), no text |
//! | ... Do Not Disturb, offline | `recipient-unavailable` (wait) |
//! | ... the domain's rate limit | `resource-constraint` (wait) |
//! | ... text over 16 KiB | `policy-violation` (modify) |
//! | ... malformed | `bad-request` (modify) |
//! | ... a failure in Halo | `internal-server-error` (wait) |
//!
//! The other way, an error answering a message Halo sent becomes a `bounced` action: the
//! Halo sender sees the message failed, with the condition.
//!
//! An error stanza is never answered with another, and only `<message>`, `<presence>` and
//! `<iq>` are answered.

use halo_sdk::federation::Item;
use halo_sdk::{Action, Level, Message, Refusal, RefusalCode};

use crate::stanza::Stanza;
use crate::xml::{attr, text};
use crate::{Conn, STANZAS_NS, jid};

/// Deliveries remembered for answering refusals.
pub const RECENT: usize = 512;

/// A message the adapter delivered: enough to answer a refusal of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    /// The Halo sender (bare JID) and recipient (local name), and the message id.
    from: String,
    to: String,
    id: Option<String>,
    /// Who to answer: the sender's full JID, and the recipient's JID.
    reply_to: String,
    reply_from: String,
}

/// The disco#info namespace (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";

/// A stanza error's type and condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Condition {
    /// `cancel`, `modify`, `wait`, `auth`.
    pub kind: &'static str,
    /// The condition element's name.
    pub name: &'static str,
}

impl Condition {
    /// Too big.
    pub const POLICY: Condition = Condition { kind: "modify", name: "policy-violation" };
    /// Not served here (or not to be revealed).
    pub const UNAVAILABLE: Condition = Condition { kind: "cancel", name: "service-unavailable" };
    /// A bad address.
    pub const JID_MALFORMED: Condition = Condition { kind: "modify", name: "jid-malformed" };

    /// The condition (and whether to say why) for a refusal by Halo. Refusals that would tell
    /// a stranger more than an absent account (blocked) say nothing more.
    pub fn of(code: RefusalCode) -> (Condition, bool) {
        match code {
            RefusalCode::NoSuchUser | RefusalCode::Blocked | RefusalCode::NotFederated => (Self::UNAVAILABLE, false),
            RefusalCode::Unavailable => (Condition { kind: "wait", name: "recipient-unavailable" }, false),
            RefusalCode::RateLimited => (Condition { kind: "wait", name: "resource-constraint" }, true),
            RefusalCode::TooBig => (Self::POLICY, true),
            RefusalCode::BadRequest => (Condition { kind: "modify", name: "bad-request" }, true),
            RefusalCode::Internal => (Condition { kind: "wait", name: "internal-server-error" }, false),
        }
    }
}

/// What an XMPP error condition answering a message means for its Halo sender.
pub fn code_of(condition: &str) -> RefusalCode {
    match condition {
        "item-not-found" | "gone" => RefusalCode::NoSuchUser,
        "forbidden" | "not-allowed" | "not-authorized" => RefusalCode::Blocked,
        "service-unavailable" | "recipient-unavailable" | "remote-server-not-found" | "remote-server-timeout" => {
            RefusalCode::Unavailable
        }
        "resource-constraint" => RefusalCode::RateLimited,
        "policy-violation" | "not-acceptable" | "bad-request" | "jid-malformed" | "feature-not-implemented" => {
            RefusalCode::BadRequest
        }
        _ => RefusalCode::Internal,
    }
}

impl Conn<'_> {
    /// Answers `st` (from the remote side) with a stanza error, unless it is an error itself,
    /// not a stanza, or its addresses are not JIDs.
    pub(crate) fn bounce(&mut self, st: &Stanza, condition: Condition, why: Option<&str>) {
        if !matches!(st.name.as_str(), "message" | "presence" | "iq") || st.attr("type") == Some("error") {
            return;
        }
        let Some(from) = st.attr("from").filter(|f| jid::parse(f).is_ok()) else { return };
        // An address that is not a JID is answered from the component itself.
        let to = st.attr("to").filter(|t| jid::parse(t).is_ok()).unwrap_or(&self.s.domain).to_owned();
        let id = st.attr("id").map(|id| format!(" id='{}'", attr(id))).unwrap_or_default();
        let why = why.map(|w| format!("<text xmlns='{STANZAS_NS}'>{}</text>", text(w))).unwrap_or_default();
        self.send(format!(
            "<{name} type='error' from='{to}' to='{from}'{id}><error type='{kind}'><{cond} xmlns='{STANZAS_NS}'/>\
             {why}</error></{name}>",
            name = st.name,
            to = attr(&to),
            from = attr(from),
            kind = condition.kind,
            cond = condition.name,
        ));
    }

    /// A stanza over `max_stanza_bytes` was skipped: refused on its own, with a
    /// `policy-violation` to its sender when its start tag says who that is.
    pub(crate) fn oversize(&mut self, head: Option<&[u8]>) {
        let max = self.s.max_stanza;
        let head = head.and_then(|h| crate::stanza::header(h).ok());
        let domain = head.as_ref().and_then(|h| h.attr("from")).and_then(jid::domain_of);
        self.reject(domain, format!("a stanza over max_stanza_bytes ({max}) was refused"));
        if let Some(h) = head {
            self.bounce(&h, Condition::POLICY, Some(&format!("stanza over {max} bytes")));
        }
    }

    /// Remembers a message about to be delivered (bounded), to answer a refusal of it.
    pub(crate) fn delivered(&mut self, st: &Stanza, from: &str, to: &str, id: Option<&str>) {
        let (Some(reply_to), Some(reply_from)) = (st.attr("from"), st.attr("to")) else { return };
        if self.st.recent.len() >= RECENT {
            self.st.recent.pop_front();
        }
        self.st.recent.push_back(Delivered {
            from: from.to_owned(),
            to: to.to_owned(),
            id: id.map(str::to_owned),
            reply_to: reply_to.to_owned(),
            reply_from: reply_from.to_owned(),
        });
    }

    /// Halo refused something the adapter delivered: a message is answered with a stanza
    /// error to its sender (presence and subscriptions are not: unwanted presence is ignored,
    /// and a subscription to nobody was already refused with `unsubscribed`).
    pub(crate) fn refused(&mut self, r: Refusal) {
        let Item::Message(m) = r.item else { return };
        let found = self.st.recent.iter().rposition(|d| d.from == m.from && d.to == m.to && d.id == m.id);
        let d = match found.and_then(|i| self.st.recent.remove(i)) {
            Some(d) => d,
            None => Delivered {
                from: m.from.clone(),
                to: m.to.clone(),
                id: m.id.clone(),
                reply_to: m.from.clone(),
                reply_from: format!("{}@{}", m.to, self.s.domain),
            },
        };
        let (condition, say_why) = Condition::of(r.code);
        let mut attrs = vec![("from".to_owned(), d.reply_to), ("to".to_owned(), d.reply_from)];
        if let Some(id) = d.id {
            attrs.push(("id".to_owned(), id));
        }
        let st = Stanza { name: "message".into(), attrs, children: Vec::new() };
        self.bounce(&st, condition, say_why.then_some(r.reason.as_str()));
    }

    /// An error answering a message Halo sent: the sender sees it failed.
    pub(crate) fn message_bounced(&mut self, st: &Stanza) {
        let condition = st.child("error").and_then(|e| e.first_child.clone()).unwrap_or_default();
        let raw_from = st.attr("from").unwrap_or_default();
        let remote = jid::parse(raw_from).ok().filter(|j| j.local.is_some()).map(|j| j.bare());
        let local = jid::local_user(st.attr("to").unwrap_or_default(), &self.s.domain).ok();
        let (Some(remote), Some(local)) = (remote, local) else {
            return self.log(Level::Info, &format!("an error from {} answered nothing we sent", jid::shorten(raw_from)));
        };
        let condition = jid::shorten(&condition);
        self.log(Level::Info, &format!("a message to {remote} bounced: {condition}"));
        let id = st.attr("id").map(str::to_owned);
        let item = Item::Message(Message { from: local, to: remote, text: String::new(), id });
        let reason = format!("{} answered {condition}", jid::shorten(raw_from));
        self.out.push(Action::Bounced(Refusal { item, code: code_of(&condition), reason }));
    }

    /// Answers a disco#info query to the component (a server of users: `server/im`) or to a
    /// user at it (`account/registered`).
    pub(crate) fn disco_info(&mut self, st: &Stanza, from: &str, to: &str) {
        let identity = match jid::parse(to) {
            Ok(j) if j.local.is_none() => "<identity category='server' type='im' name='Halo'/>",
            _ => "<identity category='account' type='registered'/>",
        };
        let id = attr(st.attr("id").unwrap_or_default());
        self.send(format!(
            "<iq type='result' from='{to}' to='{from}' id='{id}'><query xmlns='{DISCO_INFO}'>{identity}\
             <feature var='{DISCO_INFO}'/><feature var='urn:xmpp:ping'/></query></iq>",
            to = attr(to),
            from = attr(from),
        ));
    }
}

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
//!
//! An error stanza is never answered with another, and only `<message>`, `<presence>` and
//! `<iq>` are answered.

use crate::stanza::Stanza;
use crate::xml::{attr, text};
use crate::{Conn, STANZAS_NS, jid};

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

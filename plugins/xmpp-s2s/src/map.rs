//! Stanzas as Halo items: what an inbound stanza means on a server-to-server stream, through
//! the mapping shared with the component adapter (`xmpp_proto::map`, whose outbound half is
//! re-exported here). Inbound stanzas are checked against the stream's verified domains by the
//! caller; here only their shape and addresses.

use halo_sdk::{Message, PresenceInfo, Subscribe};
use xmpp_proto::jid;
use xmpp_proto::map::PresenceType;
pub use xmpp_proto::map::{jids, message_xml, presence_to_xmpp, presence_xml, rank, subscribe_xml};
use xmpp_proto::stanza::Stanza;

/// What an inbound stanza means for Halo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A message for a local user.
    Message(Message),
    /// A presence for a local user; `resource` is the sender's resource.
    Presence {
        /// The presence (not yet aggregated over the sender's resources: `None` is unavailable).
        info: Option<PresenceInfo>,
        /// From.
        from: String,
        /// To.
        to: String,
        /// The sender's resource.
        resource: String,
        /// The status text of an unavailable presence.
        note: Option<String>,
    },
    /// A subscription stanza.
    Subscribe(Subscribe),
    /// Nothing to deliver (chat states, bounces, ...).
    Nothing,
    /// Refused, with why.
    Refused(String),
}

/// The remote sender and local recipient of a stanza.
fn addresses(st: &Stanza, domain: &str) -> Result<(String, String), String> {
    let from = jid::remote_user(st.attr("from").unwrap_or_default(), domain)
        .map_err(|e| format!("<{}> from: {e}", jid::shorten(&st.name)))?;
    let to = jid::local_user(st.attr("to").unwrap_or_default(), domain)
        .map_err(|e| format!("<{}> to: {e}", jid::shorten(&st.name)))?;
    Ok((from, to))
}

/// An inbound `<message/>` or `<presence/>` for a local user of `domain`.
pub fn inbound(st: &Stanza, domain: &str) -> Inbound {
    match st.name.as_str() {
        "message" => message(st, domain),
        "presence" => presence(st, domain),
        other => Inbound::Refused(format!("<{}> is not handled", jid::shorten(other))),
    }
}

fn message(st: &Stanza, domain: &str) -> Inbound {
    match st.attr("type").unwrap_or("normal") {
        "chat" | "normal" => {}
        "error" => return Inbound::Nothing,
        other => return Inbound::Refused(format!("message type {:?} is not supported", jid::shorten(other))),
    }
    let Some(body) = xmpp_proto::map::body(st) else { return Inbound::Nothing };
    let (from, to) = match addresses(st, domain) {
        Ok(a) => a,
        Err(e) => return Inbound::Refused(e),
    };
    Inbound::Message(Message { from, to, text: body.text.clone(), id: xmpp_proto::map::message_id(st) })
}

fn presence(st: &Stanza, domain: &str) -> Inbound {
    let kind = match xmpp_proto::map::presence_type(st) {
        PresenceType::Status => None,
        PresenceType::Subscription(kind) => Some(kind),
        PresenceType::Error => return Inbound::Nothing,
        PresenceType::Invalid(other) => {
            return Inbound::Refused(format!("presence type {:?} is not valid", jid::shorten(other)));
        }
    };
    let (from, to) = match addresses(st, domain) {
        Ok(a) => a,
        Err(e) => return Inbound::Refused(e),
    };
    if let Some(kind) = kind {
        return Inbound::Subscribe(Subscribe { from, to, kind });
    }
    let (info, note) = xmpp_proto::map::said(st);
    Inbound::Presence { info, from, to, resource: xmpp_proto::map::resource(st), note }
}

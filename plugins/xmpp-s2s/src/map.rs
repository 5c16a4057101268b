//! Stanzas as Halo items and back: the same mapping as the component adapter (`plugins/xmpp`),
//! for server-to-server streams. Inbound stanzas are checked against the stream's verified
//! domains by the caller; here only their shape and addresses.

use halo_sdk::{Message, PresenceInfo, Subscribe, Subscription};
use xmpp_proto::jid;
use xmpp_proto::stanza::Stanza;
use xmpp_proto::xml::{attr, text};

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
    let body =
        st.children.iter().find(|c| c.name == "body" && c.xmlns.as_deref().is_none_or(|ns| ns.starts_with("jabber:")));
    let Some(body) = body else { return Inbound::Nothing };
    let (from, to) = match addresses(st, domain) {
        Ok(a) => a,
        Err(e) => return Inbound::Refused(e),
    };
    let id = st.attr("id").filter(|id| !id.is_empty() && id.len() <= 256).map(str::to_owned);
    Inbound::Message(Message { from, to, text: body.text.clone(), id })
}

fn presence(st: &Stanza, domain: &str) -> Inbound {
    let kind = match st.attr("type") {
        None | Some("unavailable") => None,
        Some("subscribe") => Some(Subscription::Request),
        Some("subscribed") => Some(Subscription::Accept),
        Some("unsubscribe") => Some(Subscription::Cancel),
        Some("unsubscribed") => Some(Subscription::Refuse),
        Some("probe") => Some(Subscription::Probe),
        Some("error") => return Inbound::Nothing,
        Some(other) => return Inbound::Refused(format!("presence type {:?} is not valid", jid::shorten(other))),
    };
    let (from, to) = match addresses(st, domain) {
        Ok(a) => a,
        Err(e) => return Inbound::Refused(e),
    };
    if let Some(kind) = kind {
        return Inbound::Subscribe(Subscribe { from, to, kind });
    }
    let note = st.child("status").map(|s| s.text.trim().to_owned()).filter(|s| !s.is_empty());
    let info = (st.attr("type") != Some("unavailable")).then(|| {
        let (state, activity, label) = match st.child("show").map(|s| s.text.trim()) {
            Some("away") => ("away", None, "Away"),
            Some("xa") => ("away", Some("off-work"), "Off work"),
            Some("dnd") => ("busy", None, "Busy"),
            _ => ("available", None, "Available"),
        };
        PresenceInfo {
            state: state.into(),
            activity: activity.map(str::to_owned),
            label: label.into(),
            note: note.clone(),
        }
    });
    let resource = st.attr("from").and_then(|f| f.split_once('/')).map_or("", |(_, r)| r).to_owned();
    Inbound::Presence { info, from, to, resource, note }
}

/// How available a presence is, for choosing among a user's clients (lower is more).
pub fn rank(info: &PresenceInfo) -> u8 {
    match (info.state.as_str(), info.activity.as_deref()) {
        ("available", _) => 0,
        ("busy", _) => 1,
        ("away", None) => 2,
        ("away", Some(_)) => 3,
        _ => 4,
    }
}

/// The JIDs of a local sender and a remote recipient, or why not.
pub fn jids(from: &str, to: &str, domain: &str) -> Result<(String, String), String> {
    if !jid::is_halo_username(from) {
        return Err(format!("{:?} is not a local user", jid::shorten(from)));
    }
    match jid::parse(to) {
        Ok(j) if j.local.is_some() && j.resource.is_none() && j.domain != domain => {
            Ok((format!("{from}@{domain}"), j.bare()))
        }
        _ => Err(format!("{:?} is not a remote user", jid::shorten(to))),
    }
}

/// A local user's message as XML.
pub fn message_xml(from: &str, to: &str, id: &str, body: &str) -> String {
    format!(
        "<message type='chat' from='{}' to='{}' id='{}'><body>{}</body></message>",
        attr(from),
        attr(to),
        attr(id),
        text(body)
    )
}

/// A local user's presence as XML.
pub fn presence_xml(from: &str, to: &str, info: &PresenceInfo) -> String {
    let (from, to) = (attr(from), attr(to));
    let (kind, show, status) = presence_to_xmpp(info);
    let mut children = String::new();
    if let Some(show) = show {
        children.push_str(&format!("<show>{show}</show>"));
    }
    if let Some(status) = status {
        children.push_str(&format!("<status>{}</status>", text(&status)));
    }
    let kind = kind.map(|k| format!(" type='{k}'")).unwrap_or_default();
    if children.is_empty() {
        format!("<presence from='{from}' to='{to}'{kind}/>")
    } else {
        format!("<presence from='{from}' to='{to}'{kind}>{children}</presence>")
    }
}

/// A local user's subscription stanza as XML.
pub fn subscribe_xml(from: &str, to: &str, kind: Subscription) -> String {
    let kind = match kind {
        Subscription::Request => "subscribe",
        Subscription::Accept => "subscribed",
        Subscription::Refuse => "unsubscribed",
        Subscription::Cancel => "unsubscribe",
        Subscription::Probe => "probe",
    };
    format!("<presence type='{kind}' from='{}' to='{}'/>", attr(from), attr(to))
}

/// Halo presence as XMPP: the `type` (`unavailable` or none), the `<show>`, the `<status>`.
pub fn presence_to_xmpp(info: &PresenceInfo) -> (Option<&'static str>, Option<&'static str>, Option<String>) {
    let state = info.state.strip_suffix("_idle").unwrap_or(&info.state);
    let note = info.note.as_deref().map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned);
    if state == "offline" {
        return (Some("unavailable"), None, note);
    }
    let show = match (info.activity.as_deref(), state) {
        (Some("off-work" | "out-of-office"), _) => Some("xa"),
        (_, "away" | "be_right_back") => Some("away"),
        (_, "busy" | "do_not_disturb") => Some("dnd"),
        (Some("in-a-meeting" | "in-a-call" | "in-a-conference"), _) => Some("dnd"),
        _ => None,
    };
    let plain: &[&str] = match show {
        None => &["available", "online"],
        Some("away") => &["away"],
        Some("dnd") => &["busy", "do not disturb"],
        _ => &["extended away"],
    };
    let label = info.label.trim();
    let status = note.or_else(|| {
        (!label.is_empty() && !plain.iter().any(|p| label.eq_ignore_ascii_case(p))).then(|| label.to_owned())
    });
    (None, show, status)
}

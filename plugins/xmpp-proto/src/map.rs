//! Halo items as XMPP stanzas and back: the mapping both adapters share. Reading a stanza here
//! checks only its shape; each adapter decides what to refuse, bounce or log.

use std::collections::BTreeMap;

use halo_sdk::{PresenceInfo, Subscription};

use crate::jid;
use crate::stanza::{Child, Stanza};
use crate::xml::{attr, text};

/// Remote users whose resources an adapter tracks (beyond it, presence passes per stanza).
pub const MAX_TRACKED_USERS: usize = 10_000;
/// Resources tracked per remote user (beyond it, a new resource's presence passes as is).
pub const MAX_RESOURCES: usize = 16;

/// What the `type` of a `<presence/>` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceType<'a> {
    /// None or `unavailable`: a status (see [`said`]).
    Status,
    /// A subscription stanza (`subscribe`, `probe`, ...).
    Subscription(Subscription),
    /// `error`: a bounce.
    Error,
    /// Anything else (not valid).
    Invalid(&'a str),
}

/// The type of a `<presence/>`.
pub fn presence_type(st: &Stanza) -> PresenceType<'_> {
    match st.attr("type") {
        None | Some("unavailable") => PresenceType::Status,
        Some("subscribe") => PresenceType::Subscription(Subscription::Request),
        Some("subscribed") => PresenceType::Subscription(Subscription::Accept),
        Some("unsubscribe") => PresenceType::Subscription(Subscription::Cancel),
        Some("unsubscribed") => PresenceType::Subscription(Subscription::Refuse),
        Some("probe") => PresenceType::Subscription(Subscription::Probe),
        Some("error") => PresenceType::Error,
        Some(other) => PresenceType::Invalid(other),
    }
}

/// What a status `<presence/>` says: the presence of the sender's client (`None` when it is
/// unavailable), and its `<status>` text.
pub fn said(st: &Stanza) -> (Option<PresenceInfo>, Option<String>) {
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
    (info, note)
}

/// The resource of a stanza's sender (empty for a bare JID).
pub fn resource(st: &Stanza) -> String {
    st.attr("from").and_then(|f| f.split_once('/')).map_or("", |(_, r)| r).to_owned()
}

/// The `<body>` of a `<message/>` (`None`: chat states, receipts, nothing to deliver).
pub fn body(st: &Stanza) -> Option<&Child> {
    st.children.iter().find(|c| c.name == "body" && c.xmlns.as_deref().is_none_or(|ns| ns.starts_with("jabber:")))
}

/// A stanza's `id`, when it is usable as a message id (not empty, at most 256 bytes).
pub fn message_id(st: &Stanza) -> Option<String> {
    st.attr("id").filter(|id| !id.is_empty() && id.len() <= 256).map(str::to_owned)
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

/// The presence to show for `from` after its `resource` said `info` (`None`: it left), given
/// what each tracked user's resources said before (`resources`, updated; bounded by
/// [`MAX_TRACKED_USERS`] and [`MAX_RESOURCES`]). `note` is the status of an unavailable one.
pub fn aggregate(
    resources: &mut BTreeMap<String, BTreeMap<String, PresenceInfo>>,
    from: &str,
    resource: &str,
    info: Option<PresenceInfo>,
    note: Option<String>,
) -> PresenceInfo {
    let offline = || PresenceInfo { state: "offline".into(), activity: None, label: "Offline".into(), note };
    if !resources.contains_key(from) && resources.len() >= MAX_TRACKED_USERS {
        return info.unwrap_or_else(offline);
    }
    let clients = resources.entry(from.to_owned()).or_default();
    match info {
        Some(i) if clients.contains_key(resource) || clients.len() < MAX_RESOURCES => {
            clients.insert(resource.to_owned(), i);
        }
        Some(i) => return i,
        None => {
            clients.remove(resource);
        }
    }
    let best = clients.values().min_by_key(|i| rank(i)).cloned();
    if clients.is_empty() {
        resources.remove(from);
    }
    best.unwrap_or_else(offline)
}

/// The JIDs of a local sender and a remote recipient (bare, of another domain than
/// `domain`), or why not.
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

/// A local user's chat message as XML.
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

/// Halo presence as XMPP: the presence `type` (`unavailable` or none), the `<show>` and the
/// `<status>`.
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
    // What the show alone already says: a label equal to one of these adds nothing.
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

//! Halo's rooms (and group conversations with XMPP members) as XEP-0045 multi-user chat rooms
//! on the component's domain: room `#r5` (conversation `#c17`) is `#r5@<component_domain>`,
//! a name no Halo user can have (as IRC gateways name channels `#chan@...`).
//!
//! The host decides who may enter and post (members-only rooms, private rooms); the adapter
//! speaks MUC: service discovery (disco#items of the rooms the host lists, disco#info of a
//! room), joining (presence to `room/nick`, answered once the host sent the room's state with
//! the occupants' presence, the joiner's own presence with status codes 110 and 100, the
//! history with XEP-0203 delays, then the subject), groupchat messages both ways (a post is
//! reflected to its sender, as MUC does), leaving, XEP-0249 direct invitations from Halo users
//! and XEP-0045 §7.8 mediated ones (both ways). Occupancy (which XMPP clients are in a room
//! under which nick) lives here: a post reaches an XMPP member only while one of their
//! clients is in the room, and they read what they missed in the history on joining. A
//! restarted adapter has no occupants: clients join again.

use std::collections::BTreeMap;

use halo_sdk::{
    Action, GroupAdd, GroupInvite, GroupJoin, GroupMessage, GroupPost, GroupRefused, GroupState, Level, RoomInfo,
};
use quick_xml::events::Event;
use quick_xml::{Reader, XmlVersion};

use crate::stanza::Stanza;
use crate::xml::{attr, text};
use crate::{Conn, STANZAS_NS, jid};

/// XEP-0045's namespace.
pub const MUC_NS: &str = "http://jabber.org/protocol/muc";
/// XEP-0045's user namespace.
pub const MUC_USER_NS: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0249's namespace.
pub const CONFERENCE_NS: &str = "jabber:x:conference";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Most rooms with occupants, and occupants per room, tracked.
pub const MAX_OCCUPANTS: usize = 1000;
/// Most joins waiting for the host's answer.
pub const MAX_PENDING: usize = 1000;

/// The MUC state between calls.
#[derive(Debug, Default)]
pub struct Muc {
    /// The rooms remote users may find, by group, as the host last listed them.
    directory: BTreeMap<String, RoomInfo>,
    /// Group → occupant's full JID → their nick.
    occupants: BTreeMap<String, BTreeMap<String, String>>,
    /// Joins waiting for the host: group → full JID → (nick, most history wanted).
    pending: BTreeMap<String, BTreeMap<String, (String, Option<usize>)>>,
}

/// An element with its descendants (a stanza checked by `stanza::parse` first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name.
    pub name: String,
    /// Attributes, `xmlns` included.
    pub attrs: Vec<(String, String)>,
    /// Its own text.
    pub text: String,
    /// Child elements.
    pub children: Vec<Element>,
}

impl Element {
    /// An attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first child named `name` in namespace `ns` (`None`: any).
    pub fn child(&self, name: &str, ns: Option<&str>) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name && ns.is_none_or(|ns| c.attr("xmlns") == Some(ns)))
    }
}

/// Reads a whole stanza as a tree (without recursion; at most 16 levels are kept).
pub fn tree(bytes: &[u8]) -> Option<Element> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut skipped = 0usize;
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                if stack.len() >= 16 || skipped > 0 {
                    skipped += 1;
                    continue;
                }
                let mut attrs = Vec::new();
                for a in e.attributes() {
                    let a = a.ok()?;
                    let v = a.normalized_value(XmlVersion::Implicit1_0).ok()?.into_owned();
                    attrs.push((a.key.as_ref().to_owned(), v));
                }
                let name = e.local_name().as_ref().to_owned();
                stack.push(Element { name, attrs, ..Element::default() });
            }
            Event::End(_) => {
                if skipped > 0 {
                    skipped -= 1;
                    continue;
                }
                let done = stack.pop()?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => return Some(done),
                }
            }
            Event::Text(t) if skipped == 0 => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) if skipped == 0 => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) if skipped == 0 => {
                let c = match r.resolve_char_ref().ok()? {
                    Some(c) => c,
                    None => match r.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => return None,
                    },
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}

/// Whether a group's local part is well formed: `#c<digits>` or `#r<digits>`.
fn is_group(local: &str) -> bool {
    let Some(rest) = local.strip_prefix('#') else { return false };
    let mut chars = rest.chars();
    matches!(chars.next(), Some('c' | 'r'))
        && !chars.as_str().is_empty()
        && chars.as_str().len() <= 20
        && chars.all(|c| c.is_ascii_digit())
}

/// Whether the stanza is for the MUC service: to a room, or a disco#items of the component.
pub(crate) fn addressed(st: &Stanza, domain: &str) -> bool {
    let Some(Ok(to)) = st.attr("to").map(jid::parse) else { return false };
    if to.domain != domain {
        return false;
    }
    match &to.local {
        Some(local) => local.starts_with('#'),
        None => {
            st.name == "iq"
                && to.resource.is_none()
                && st.children.iter().any(|c| c.name == "query" && c.xmlns.as_deref() == Some(DISCO_ITEMS))
        }
    }
}

/// XEP-0203's stamp for `ms` since the Unix epoch (UTC).
pub fn stamp(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The XMPP error type of a condition.
fn error_type(condition: &str) -> &'static str {
    match condition {
        "forbidden" | "registration-required" | "not-authorized" => "auth",
        "not-acceptable" | "jid-malformed" | "bad-request" => "modify",
        "resource-constraint" => "wait",
        _ => "cancel",
    }
}

/// Only conditions RFC 6120 defines go on the wire.
fn known_condition(condition: &str) -> &str {
    const KNOWN: &[&str] = &[
        "bad-request",
        "conflict",
        "feature-not-implemented",
        "forbidden",
        "internal-server-error",
        "item-not-found",
        "jid-malformed",
        "not-acceptable",
        "not-allowed",
        "not-authorized",
        "registration-required",
        "resource-constraint",
        "service-unavailable",
    ];
    if KNOWN.contains(&condition) { condition } else { "undefined-condition" }
}

fn error_xml(condition: &str, why: &str) -> String {
    let condition = known_condition(condition);
    let words = if why.is_empty() {
        String::new()
    } else {
        format!("<text xmlns='{STANZAS_NS}'>{}</text>", text(&jid::shorten(why)))
    };
    format!("<error type='{}'><{condition} xmlns='{STANZAS_NS}'/>{words}</error>", error_type(condition))
}

impl Conn<'_> {
    fn room_jid(&self, group: &str) -> String {
        format!("{group}@{}", self.s.domain)
    }

    /// The nick `who` (a local name or a remote address) has in `group`: an XMPP occupant's
    /// own nick, else their name.
    fn nick(&self, group: &str, who: &str) -> String {
        if who.contains('@')
            && let Some(room) = self.st.muc.occupants.get(group)
            && let Some((_, nick)) =
                room.iter().find(|(full, _)| jid::remote_user(full, &self.s.domain).as_deref() == Ok(who))
        {
            return nick.clone();
        }
        who.to_owned()
    }

    /// An XMPP stanza to a room (or the MUC service): `st` already read, `raw` its bytes.
    pub(crate) fn muc_stanza(&mut self, st: &Stanza, raw: &[u8]) {
        let Some(el) = tree(raw) else {
            return self.reject(st.attr("from").and_then(jid::domain_of), "unreadable MUC stanza".into());
        };
        let raw_from = st.attr("from").unwrap_or_default().to_owned();
        let domain = jid::domain_of(&raw_from);
        let from = match jid::remote_user(&raw_from, &self.s.domain) {
            Ok(f) => f,
            Err(e) => return self.reject(domain, format!("<{}> from: {e}", st.name)),
        };
        let Ok(to) = jid::parse(st.attr("to").unwrap_or_default()) else { return };
        let group = to.local.clone().unwrap_or_default();
        if st.name == "iq" {
            return self.muc_iq(&el, &raw_from, &group);
        }
        if !is_group(&group) {
            return self.muc_error(&st.name, &raw_from, &self.room_jid(&group), "item-not-found", "no such room");
        }
        match st.name.as_str() {
            "presence" => self.muc_presence(&el, &raw_from, &from, &group, to.resource.as_deref()),
            "message" => self.muc_message(&el, &raw_from, &from, &group),
            _ => {}
        }
    }

    /// Answers an error stanza of kind `name` (`message`, `presence`) from `room` to `to`.
    fn muc_error(&mut self, name: &str, to: &str, room: &str, condition: &str, why: &str) {
        if name != "message" && name != "presence" {
            return;
        }
        let error = error_xml(condition, why);
        self.send(format!("<{name} type='error' from='{}' to='{}'>{error}</{name}>", attr(room), attr(to)));
    }

    fn muc_iq(&mut self, el: &Element, full: &str, group: &str) {
        let id = attr(el.attr("id").unwrap_or_default());
        let to = attr(el.attr("to").unwrap_or_default());
        let reply = |body: String| format!("<iq type='result' from='{to}' to='{}' id='{id}'>{body}</iq>", attr(full));
        let query = el.child("query", None);
        let ns = query.and_then(|q| q.attr("xmlns")).unwrap_or_default();
        if el.attr("type") != Some("get") {
            return self.send(format!(
                "<iq type='error' from='{to}' to='{}' id='{id}'>{}</iq>",
                attr(full),
                error_xml("service-unavailable", "")
            ));
        }
        if group.is_empty() && ns == DISCO_ITEMS {
            let items: String = self
                .st
                .muc
                .directory
                .values()
                .map(|r| format!("<item jid='{}' name='{}'/>", attr(&self.room_jid(&r.group)), attr(&r.name)))
                .collect();
            return self.send(reply(format!("<query xmlns='{DISCO_ITEMS}'>{items}</query>")));
        }
        let room = self.st.muc.directory.get(group).cloned();
        match (ns, room) {
            (DISCO_INFO, Some(r)) => {
                let access = if r.members_only { "muc_membersonly" } else { "muc_open" };
                let features: String = [
                    MUC_NS,
                    "muc_public",
                    "muc_persistent",
                    "muc_nonanonymous",
                    "muc_unmoderated",
                    "muc_unsecured",
                    access,
                    DISCO_INFO,
                ]
                .iter()
                .map(|f| format!("<feature var='{f}'/>"))
                .collect();
                self.send(reply(format!(
                    "<query xmlns='{DISCO_INFO}'><identity category='conference' type='text' name='{}'/>{features}</query>",
                    attr(&r.name)
                )))
            }
            (DISCO_ITEMS, Some(_)) => self.send(reply(format!("<query xmlns='{DISCO_ITEMS}'/>"))),
            (DISCO_INFO | DISCO_ITEMS, None) => self.send(format!(
                "<iq type='error' from='{to}' to='{}' id='{id}'>{}</iq>",
                attr(full),
                error_xml("item-not-found", "")
            )),
            _ => self.send(format!(
                "<iq type='error' from='{to}' to='{}' id='{id}'>{}</iq>",
                attr(full),
                error_xml("service-unavailable", "")
            )),
        }
    }

    fn muc_presence(&mut self, el: &Element, full: &str, from: &str, group: &str, nick: Option<&str>) {
        let room = self.room_jid(group);
        let occupant = self.st.muc.occupants.get(group).and_then(|o| o.get(full)).cloned();
        match el.attr("type") {
            None => {
                if occupant.is_some() {
                    return; // a status change: nothing for Halo
                }
                let Some(nick) = nick.filter(|n| !n.trim().is_empty() && n.len() <= 256) else {
                    return self.muc_error("presence", full, &room, "jid-malformed", "join with room/nick");
                };
                let pending: usize = self.st.muc.pending.values().map(BTreeMap::len).sum();
                if pending >= MAX_PENDING {
                    return self.muc_error("presence", full, &room, "resource-constraint", "too many joins at once");
                }
                let history = el
                    .child("x", Some(MUC_NS))
                    .and_then(|x| x.child("history", None))
                    .and_then(|h| h.attr("maxstanzas"))
                    .and_then(|n| n.parse().ok());
                self.st
                    .muc
                    .pending
                    .entry(group.to_owned())
                    .or_default()
                    .insert(full.to_owned(), (nick.to_owned(), history));
                self.out.push(Action::DeliverGroupJoin(GroupJoin { from: from.to_owned(), group: group.to_owned() }));
            }
            Some("unavailable") => {
                let Some(nick) = occupant else { return };
                if let Some(o) = self.st.muc.occupants.get_mut(group) {
                    o.remove(full);
                    if o.is_empty() {
                        self.st.muc.occupants.remove(group);
                    }
                }
                let item = "<item affiliation='member' role='none'/>";
                let me = format!("{room}/{nick}");
                self.send(format!(
                    "<presence type='unavailable' from='{}' to='{}'><x xmlns='{MUC_USER_NS}'>{item}<status code='110'/></x></presence>",
                    attr(&me),
                    attr(full)
                ));
                for other in self.others(group, full) {
                    self.send(format!(
                        "<presence type='unavailable' from='{}' to='{}'><x xmlns='{MUC_USER_NS}'>{item}</x></presence>",
                        attr(&me),
                        attr(&other)
                    ));
                }
            }
            _ => {}
        }
    }

    /// The full JIDs of `user`'s clients in `group`.
    fn clients(&self, group: &str, user: &str) -> Vec<String> {
        self.st
            .muc
            .occupants
            .get(group)
            .map(|o| o.keys().filter(|f| jid::remote_user(f, &self.s.domain).as_deref() == Ok(user)).cloned().collect())
            .unwrap_or_default()
    }

    /// The other XMPP occupants' full JIDs in `group`.
    fn others(&self, group: &str, full: &str) -> Vec<String> {
        self.st.muc.occupants.get(group).map(|o| o.keys().filter(|k| *k != full).cloned().collect()).unwrap_or_default()
    }

    fn muc_message(&mut self, el: &Element, full: &str, from: &str, group: &str) {
        let room = self.room_jid(group);
        if el.attr("type") == Some("error") {
            return;
        }
        // XEP-0045 §7.8.2: a mediated invitation, sent to the room.
        if let Some(x) = el.child("x", Some(MUC_USER_NS)) {
            for invite in x.children.iter().filter(|c| c.name == "invite") {
                let Some(who) = invite.attr("to").and_then(|t| jid::parse(t).ok()) else { continue };
                let user = match (&who.local, who.domain == self.s.domain) {
                    (Some(local), true) => local.clone(),
                    (Some(_), false) => who.bare(),
                    (None, _) => continue,
                };
                self.out.push(Action::DeliverGroupAdd(GroupAdd {
                    from: from.to_owned(),
                    group: group.to_owned(),
                    user,
                }));
            }
            return;
        }
        if el.attr("type") != Some("groupchat") {
            return self.muc_error(
                "message",
                full,
                &room,
                "feature-not-implemented",
                "private messages in rooms are not supported",
            );
        }
        let Some(nick) = self.st.muc.occupants.get(group).and_then(|o| o.get(full)).cloned() else {
            return self.muc_error("message", full, &room, "not-acceptable", "join the room first");
        };
        let Some(body) = el.child("body", None) else {
            if el.child("subject", None).is_some() {
                return self.muc_error("message", full, &room, "forbidden", "the subject is set in Halo");
            }
            return; // chat states and the like
        };
        let id = el.attr("id").filter(|id| !id.is_empty() && id.len() <= 256).map(str::to_owned);
        self.out.push(Action::DeliverGroupPost(GroupPost {
            from: from.to_owned(),
            group: group.to_owned(),
            text: body.text.clone(),
            id: id.clone(),
        }));
        // Reflected to the sender's clients in the room, as MUC does (everyone else gets it
        // from Halo, other XMPP members as a `group-message` each).
        let me = format!("{room}/{nick}");
        let id = id.map(|i| format!(" id='{}'", attr(&i))).unwrap_or_default();
        let own: Vec<String> = self
            .st
            .muc
            .occupants
            .get(group)
            .map(|o| o.keys().filter(|t| jid::remote_user(t, &self.s.domain).as_deref() == Ok(from)).cloned().collect())
            .unwrap_or_default();
        for t in own {
            self.send(format!(
                "<message type='groupchat' from='{}' to='{}'{id}><body>{}</body></message>",
                attr(&me),
                attr(&t),
                text(&body.text)
            ));
        }
    }

    // ----- from Halo -----

    /// The rooms remote users may find.
    pub(crate) fn rooms(&mut self, list: Vec<RoomInfo>) {
        self.st.muc.directory = list.into_iter().filter(|r| is_group(&r.group)).map(|r| (r.group.clone(), r)).collect();
    }

    /// A post for one member: to each of their clients in the room.
    pub(crate) fn group_message(&mut self, m: GroupMessage) {
        let room = self.room_jid(&m.group);
        let nick = self.nick(&m.group, &m.author);
        let targets = self.clients(&m.group, &m.to);
        for t in targets {
            self.send(format!(
                "<message type='groupchat' from='{}' to='{}' id='{}'><body>{}</body></message>",
                attr(&format!("{room}/{nick}")),
                attr(&t),
                attr(&m.id),
                text(&m.text)
            ));
        }
    }

    /// A remote user was added: a XEP-0249 invitation from the Halo user who added them, or a
    /// XEP-0045 mediated one from the room when someone of another server did.
    pub(crate) fn group_invite(&mut self, i: GroupInvite) {
        let room = self.room_jid(&i.group);
        let Ok(to) = jid::parse(&i.to).map(|j| j.bare()) else { return };
        let what = if i.name.is_empty() { "a group conversation".to_owned() } else { i.name.clone() };
        if jid::is_halo_username(&i.by) {
            let from = format!("{}@{}", i.by, self.s.domain);
            let reason = format!("{} invites you to {what}", i.by);
            self.send(format!(
                "<message from='{}' to='{}'><x xmlns='{CONFERENCE_NS}' jid='{}' reason='{}'/></message>",
                attr(&from),
                attr(&to),
                attr(&room),
                attr(&reason)
            ));
        } else {
            self.send(format!(
                "<message from='{}' to='{}'><x xmlns='{MUC_USER_NS}'><invite from='{}'><reason>{}</reason></invite></x></message>",
                attr(&room),
                attr(&to),
                attr(&i.by),
                text(&format!("Join {what}"))
            ));
        }
    }

    /// The host let a remote user in: their waiting clients enter the room.
    pub(crate) fn group_state(&mut self, s: GroupState) {
        let room = self.room_jid(&s.group);
        let waiting: Vec<(String, (String, Option<usize>))> = match self.st.muc.pending.get_mut(&s.group) {
            Some(p) => {
                let mine: Vec<String> = p
                    .keys()
                    .filter(|f| jid::remote_user(f, &self.s.domain).as_deref() == Ok(s.to.as_str()))
                    .cloned()
                    .collect();
                mine.into_iter().filter_map(|f| p.remove(&f).map(|v| (f, v))).collect()
            }
            None => Vec::new(),
        };
        if self.st.muc.pending.get(&s.group).is_some_and(BTreeMap::is_empty) {
            self.st.muc.pending.remove(&s.group);
        }
        for (full, (nick, history)) in waiting {
            let taken = s.members.iter().any(|m| *m != s.to && self.nick(&s.group, m) == nick);
            if taken {
                self.muc_error("presence", &full, &room, "conflict", "that nickname is taken in this room");
                continue;
            }
            let occupants = self.st.muc.occupants.len();
            let room_occupants = self.st.muc.occupants.get(&s.group).map_or(0, BTreeMap::len);
            if (occupants >= MAX_OCCUPANTS && room_occupants == 0) || room_occupants >= MAX_OCCUPANTS {
                self.muc_error("presence", &full, &room, "resource-constraint", "the room is full");
                continue;
            }
            self.enter(&s, &room, &full, &nick, history);
        }
    }

    fn enter(&mut self, s: &GroupState, room: &str, full: &str, nick: &str, history: Option<usize>) {
        let item = "<item affiliation='member' role='participant'/>";
        let mut seen = std::collections::BTreeSet::new();
        // The occupants first: Halo's members, and the XMPP clients in the room.
        let members: Vec<String> = s.members.iter().filter(|m| **m != s.to).map(|m| self.nick(&s.group, m)).collect();
        let xmpp: Vec<String> =
            self.st.muc.occupants.get(&s.group).map(|o| o.values().cloned().collect()).unwrap_or_default();
        for n in members.into_iter().chain(xmpp) {
            if n == nick || !seen.insert(n.clone()) {
                continue;
            }
            self.send(format!(
                "<presence from='{}' to='{}'><x xmlns='{MUC_USER_NS}'>{item}</x></presence>",
                attr(&format!("{room}/{n}")),
                attr(full)
            ));
        }
        // Then the joiner's own presence, also to the other XMPP occupants.
        let me = format!("{room}/{nick}");
        for other in self.others(&s.group, full) {
            self.send(format!(
                "<presence from='{}' to='{}'><x xmlns='{MUC_USER_NS}'>{item}</x></presence>",
                attr(&me),
                attr(&other)
            ));
        }
        self.send(format!(
            "<presence from='{}' to='{}'><x xmlns='{MUC_USER_NS}'><item affiliation='member' role='participant' jid='{}'/>\
             <status code='100'/><status code='110'/></x></presence>",
            attr(&me),
            attr(full),
            attr(full)
        ));
        self.st.muc.occupants.entry(s.group.clone()).or_default().insert(full.to_owned(), nick.to_owned());
        // The history, then the subject (XEP-0045 §7.2.15-16).
        let skip = history.map_or(0, |n| s.history.len().saturating_sub(n));
        for line in s.history.iter().skip(skip) {
            let author = self.nick(&s.group, &line.author);
            self.send(format!(
                "<message type='groupchat' from='{}' to='{}'><body>{}</body><delay xmlns='urn:xmpp:delay' from='{}' stamp='{}'/></message>",
                attr(&format!("{room}/{author}")),
                attr(full),
                text(&line.text),
                attr(room),
                stamp(line.at)
            ));
        }
        self.send(format!(
            "<message type='groupchat' from='{}' to='{}'><subject>{}</subject></message>",
            attr(room),
            attr(full),
            text(&s.subject)
        ));
        self.log(Level::Debug, &format!("{} joined {room} as {nick}", jid::shorten(full)));
    }

    /// The host refused a remote user: a join waiting for it fails with the error; anything
    /// else (a post) is answered with a message error.
    pub(crate) fn group_refused(&mut self, r: GroupRefused) {
        let room = self.room_jid(&r.group);
        let waiting: Vec<(String, String)> = match self.st.muc.pending.get_mut(&r.group) {
            Some(p) => {
                let mine: Vec<String> = p
                    .keys()
                    .filter(|f| jid::remote_user(f, &self.s.domain).as_deref() == Ok(r.to.as_str()))
                    .cloned()
                    .collect();
                mine.into_iter().filter_map(|f| p.remove(&f).map(|(nick, _)| (f, nick))).collect()
            }
            None => Vec::new(),
        };
        if waiting.is_empty() {
            // To the member's clients in the room: an error message to a bare JID is dropped
            // by the XMPP server (RFC 6121 §8.5.2.1.1).
            let mut targets = self.clients(&r.group, &r.to);
            if targets.is_empty() {
                targets.extend(jid::parse(&r.to).map(|j| j.bare()));
            }
            for t in targets {
                self.muc_error("message", &t, &room, &r.condition, &r.text);
            }
            return;
        }
        for (full, nick) in waiting {
            self.muc_error("presence", &full, &format!("{room}/{nick}"), &r.condition, &r.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc() {
        assert_eq!(stamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(stamp(1_795_654_631_548), "2026-11-26T00:57:11Z");
        assert_eq!(stamp(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn group_names_are_strict() {
        assert!(is_group("#r5") && is_group("#c17"));
        for bad in ["#x1", "#r", "r5", "#r5a", "#r-1", "#"] {
            assert!(!is_group(bad), "{bad}");
        }
    }

    #[test]
    fn trees_keep_nested_attributes() {
        let el = tree(
            b"<message to='#r5@h' from='b@x/y'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='c@x'><reason>hi &amp; bye</reason></invite></x></message>",
        )
        .expect("tree");
        let x = el.child("x", Some(MUC_USER_NS)).expect("x");
        let invite = x.child("invite", None).expect("invite");
        assert_eq!(invite.attr("to"), Some("c@x"));
        assert_eq!(invite.child("reason", None).map(|r| r.text.as_str()), Some("hi & bye"));
    }
}

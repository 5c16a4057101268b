//! The generated bindings of the newest WIT version (`halo:plugin@0.1.4`; wasmtime's linker
//! serves 0.1.0-0.1.3 plugins from the same definitions: each version only added interfaces,
//! worlds and, in 0.1.4, federation cases), and conversions between them and Halo's types.
//! Federation adapters built against 0.1.2 or 0.1.3 export `handle` with the frozen 0.1.3
//! `input`/`action` variants (fewer cases than 0.1.4's), so they are bound through
//! [`fed_legacy`]. Nothing outside this module names a generated type.

wasmtime::component::bindgen!({
    world: "presence-states",
    path: "../../wit/v0.1.4",
});

/// The `archive-sink` world, sharing the interfaces generated above.
pub(crate) mod sink {
    wasmtime::component::bindgen!({
        world: "archive-sink",
        path: "../../wit/v0.1.4",
        with: {
            "halo:plugin/types": super::halo::plugin::types,
            "halo:plugin/log": super::halo::plugin::log,
            "halo:plugin/config": super::halo::plugin::config,
            "halo:plugin/kv": super::halo::plugin::kv,
        },
    });
}

/// The `federation-adapter` world, sharing the interfaces generated above.
pub(crate) mod fed {
    wasmtime::component::bindgen!({
        world: "federation-adapter",
        path: "../../wit/v0.1.4",
        with: {
            "halo:plugin/types": super::halo::plugin::types,
            "halo:plugin/log": super::halo::plugin::log,
            "halo:plugin/config": super::halo::plugin::config,
            "halo:plugin/kv": super::halo::plugin::kv,
        },
    });
}

/// The frozen `federation-adapter` world of 0.1.3 (the same as 0.1.2's): adapters whose
/// manifest names 0.1.2 or 0.1.3. Only its `federation` types are its own.
pub(crate) mod fed_legacy {
    wasmtime::component::bindgen!({
        world: "federation-adapter",
        path: "../../wit/v0.1.3",
        with: {
            "halo:plugin/types": super::halo::plugin::types,
            "halo:plugin/log": super::halo::plugin::log,
            "halo:plugin/config": super::halo::plugin::config,
            "halo:plugin/kv": super::halo::plugin::kv,
        },
    });
}

use halo::plugin::types as wit;
use halo_core::presence::{
    Activity, Calendar, CalendarActivity, Inputs, MachineState, Phone, Published as CorePublished,
};

fn token<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// Halo's published state as WIT.
pub(crate) fn published_to_wit(p: &CorePublished) -> wit::Published {
    wit::Published { availability: p.availability, activity: p.activity.as_ref().map(token), custom: p.custom.clone() }
}

/// A user's inputs as WIT.
pub(crate) fn input_to_wit(user: &str, i: &Inputs, now_ms: u64, builtin: &CorePublished) -> wit::PresenceInput {
    wit::PresenceInput {
        user: user.to_owned(),
        manual: i.manual.as_ref().map(|m| wit::ManualState {
            availability: m.choice.availability,
            activity: m.choice.activity.as_ref().map(token),
            custom: m.choice.custom.clone(),
            until_ms: m.until,
        }),
        endpoints: i
            .endpoints
            .iter()
            .map(|(id, m)| wit::Endpoint {
                id: *id,
                state: match m.state {
                    MachineState::Active => wit::MachineState::Active,
                    MachineState::Inactive => wit::MachineState::Inactive,
                    MachineState::Away => wit::MachineState::Away,
                },
                since_ms: m.since,
            })
            .collect(),
        calendar: i.calendar.as_ref().map(calendar_token),
        phone: i.phone.map(|p| match p {
            Phone::InACall => "in-a-call".to_owned(),
            Phone::InAConference => "in-a-conference".to_owned(),
        }),
        now_ms,
        builtin: published_to_wit(builtin),
    }
}

/// What one `derive` call takes: the WIT input, and the user's current calendar event, which
/// the `calendar` import (0.1.3) answers during that call.
pub(crate) struct DeriveInput {
    /// The `derive` argument.
    pub(crate) input: wit::PresenceInput,
    /// `calendar.current()` during the call.
    pub(crate) event: Option<halo::plugin::calendar::Event>,
}

/// Reads as the `derive` argument (`input.builtin`, `input.user`).
impl std::ops::Deref for DeriveInput {
    type Target = wit::PresenceInput;
    fn deref(&self) -> &wit::PresenceInput {
        &self.input
    }
}

/// A user's inputs as a `derive` call's: the WIT input and their calendar event.
pub(crate) fn derive_input(user: &str, i: &Inputs, now_ms: u64, builtin: &CorePublished) -> DeriveInput {
    let event = i.calendar.as_ref().map(|c| halo::plugin::calendar::Event {
        activity: calendar_token(c),
        title: c.subject.clone(),
        end_ms: c.until,
    });
    DeriveInput { input: input_to_wit(user, i, now_ms, builtin), event }
}

fn calendar_token(c: &Calendar) -> String {
    match c.activity {
        CalendarActivity::InAMeeting => "in-a-meeting".to_owned(),
        CalendarActivity::OutOfOffice => "out-of-office".to_owned(),
    }
}

/// A plugin's published state as Halo's, checked: availability below 18000 (a plugin never
/// takes presence away: Offline, 18000-18500, is only accepted for a user the built-in rules
/// already show Offline, `builtin`), a known activity.
pub(crate) fn published_from_wit(p: wit::Published, builtin: u32) -> Result<CorePublished, String> {
    if !crate::answers::availability_ok(p.availability, builtin) {
        return Err(format!(
            "availability {} is Offline (18000 and up); a plugin never takes presence away",
            p.availability
        ));
    }
    let activity = match p.activity {
        Some(a) if a.len() > 64 => return Err("activity token too long".into()),
        Some(a) => Some(Activity::parse(&a).map_err(|e| e.to_string())?),
        None => None,
    };
    if p.custom.as_ref().is_some_and(|c| c.len() > 64) {
        return Err("custom state id too long".into());
    }
    Ok(CorePublished { availability: p.availability, activity, custom: p.custom })
}

/// An archive record as WIT.
pub(crate) fn record_to_wit(r: &halo_core::archive::Record) -> sink::halo::plugin::archive::ArchiveRecord {
    use halo_core::archive::{Event, Place};
    use sink::halo::plugin::archive as wit;
    let (conversation, room) = match r.place {
        Place::Conversation(c) => (Some(c), None),
        Place::Room(r) => (None, Some(r)),
    };
    wit::ArchiveRecord {
        id: r.id,
        at_ms: r.at,
        event: match r.event {
            Event::Started => wit::Event::Started,
            Event::Message => wit::Event::Message,
            Event::Joined => wit::Event::Joined,
            Event::Left => wit::Event::Left,
            // The frozen WIT event enum predates changes to messages: a sink sees them as
            // `message`, and the record's `json` names the real event (`edited`, `deleted`,
            // `reacted`, `unreacted`) and the message it is about (`of`).
            Event::Edited | Event::Deleted | Event::Reacted | Event::Unreacted => wit::Event::Message,
        },
        conversation,
        room,
        from: r.from.clone(),
        user: r.user.clone(),
        participants: r.participants.clone(),
        external: r.external,
        text: r.text.clone(),
        format: r.format.as_ref().map(token),
        json: serde_json::to_string(r).unwrap_or_default(),
    }
}

/// Federation inputs and actions as WIT and back.
pub(crate) mod federation {
    use halo_core::federation::{Item, PresenceInfo, Refusal, Subscription};

    use super::fed::halo::plugin::federation as wit;
    use crate::federation::{AdapterAction, AdapterInput, LinkSpec, SrvAnswer, TlsRole};

    fn kind_to_wit(k: Subscription) -> wit::Subscription {
        match k {
            Subscription::Request => wit::Subscription::Request,
            Subscription::Accept => wit::Subscription::Accept,
            Subscription::Refuse => wit::Subscription::Refuse,
            Subscription::Cancel => wit::Subscription::Cancel,
            Subscription::Probe => wit::Subscription::Probe,
        }
    }

    fn kind_from_wit(k: wit::Subscription) -> Subscription {
        match k {
            wit::Subscription::Request => Subscription::Request,
            wit::Subscription::Accept => Subscription::Accept,
            wit::Subscription::Refuse => Subscription::Refuse,
            wit::Subscription::Cancel => Subscription::Cancel,
            wit::Subscription::Probe => Subscription::Probe,
        }
    }

    /// An item as WIT, if `fed-item` can say it (messages, presence, subscriptions; not group
    /// traffic).
    fn item_to_wit(item: &Item) -> Option<wit::FedItem> {
        Some(match item {
            Item::Message { from, to, text, id } => wit::FedItem::Message(wit::Message {
                from: from.clone(),
                to: to.clone(),
                text: text.clone(),
                id: Some(id.clone()),
            }),
            Item::Presence { from, to, info } => wit::FedItem::Presence(wit::Presence {
                from: from.clone(),
                to: to.clone(),
                info: wit::PresenceInfo {
                    state: info.state.clone(),
                    activity: info.activity.clone(),
                    label: info.label.clone(),
                    note: info.note.clone(),
                },
            }),
            Item::Subscribe { from, to, kind } => {
                wit::FedItem::Subscribe(wit::Subscribe { from: from.clone(), to: to.clone(), kind: kind_to_wit(*kind) })
            }
            _ => return None,
        })
    }

    /// An item from WIT.
    fn item_from_wit(item: wit::FedItem) -> Item {
        match item {
            wit::FedItem::Message(m) => {
                Item::Message { from: m.from, to: m.to, text: m.text, id: m.id.unwrap_or_default() }
            }
            wit::FedItem::Presence(p) => Item::Presence {
                from: p.from,
                to: p.to,
                info: PresenceInfo {
                    state: p.info.state,
                    activity: p.info.activity,
                    label: p.info.label,
                    note: p.info.note,
                },
            },
            wit::FedItem::Subscribe(s) => Item::Subscribe { from: s.from, to: s.to, kind: kind_from_wit(s.kind) },
        }
    }

    fn code_to_wit(c: Refusal) -> wit::RefusalCode {
        match c {
            Refusal::NoSuchUser => wit::RefusalCode::NoSuchUser,
            Refusal::Blocked => wit::RefusalCode::Blocked,
            Refusal::Unavailable => wit::RefusalCode::Unavailable,
            Refusal::RateLimited => wit::RefusalCode::RateLimited,
            Refusal::TooBig => wit::RefusalCode::TooBig,
            Refusal::BadRequest => wit::RefusalCode::BadRequest,
            Refusal::NotFederated => wit::RefusalCode::NotFederated,
            Refusal::Internal => wit::RefusalCode::Internal,
        }
    }

    fn code_from_wit(c: wit::RefusalCode) -> Refusal {
        match c {
            wit::RefusalCode::NoSuchUser => Refusal::NoSuchUser,
            wit::RefusalCode::Blocked => Refusal::Blocked,
            wit::RefusalCode::Unavailable => Refusal::Unavailable,
            wit::RefusalCode::RateLimited => Refusal::RateLimited,
            wit::RefusalCode::TooBig => Refusal::TooBig,
            wit::RefusalCode::BadRequest => Refusal::BadRequest,
            wit::RefusalCode::NotFederated => Refusal::NotFederated,
            wit::RefusalCode::Internal => Refusal::Internal,
        }
    }

    /// An input as WIT; `None` for what this WIT version cannot say (group items before
    /// 0.1.4).
    pub(crate) fn input_to_wit(i: &AdapterInput) -> Option<wit::Input> {
        Some(match i {
            AdapterInput::Connected(l) => wit::Input::Connected(*l),
            AdapterInput::Data(l, b) => wit::Input::Data((*l, b.clone())),
            AdapterInput::Closed(l, why) => wit::Input::Closed((*l, why.clone())),
            AdapterInput::Timer(t) => wit::Input::Timer(*t),
            AdapterInput::Rooms(list) => wit::Input::Rooms(
                list.iter()
                    .map(|r| wit::RoomInfo {
                        group: r.group.clone(),
                        name: r.name.clone(),
                        subject: r.subject.clone(),
                        members_only: r.members_only,
                        members: r.members,
                    })
                    .collect(),
            ),
            AdapterInput::Outbound(item) => match item {
                Item::Message { .. } | Item::Presence { .. } | Item::Subscribe { .. } => match item_to_wit(item)? {
                    wit::FedItem::Message(m) => wit::Input::Message(m),
                    wit::FedItem::Presence(p) => wit::Input::Presence(p),
                    wit::FedItem::Subscribe(s) => wit::Input::Subscribe(s),
                },
                // ----- Groups and rooms -----
                Item::GroupMessage { from, to, author, text, id } => wit::Input::GroupMessage(wit::GroupMessage {
                    group: from.clone(),
                    to: to.clone(),
                    author: author.clone(),
                    text: text.clone(),
                    id: id.clone(),
                }),
                Item::GroupInvite { from, to, by, name } => wit::Input::GroupInvite(wit::GroupInvite {
                    group: from.clone(),
                    to: to.clone(),
                    by: by.clone(),
                    name: name.clone(),
                }),
                Item::GroupState { from, to, name, subject, members, history } => {
                    wit::Input::GroupState(wit::GroupState {
                        group: from.clone(),
                        to: to.clone(),
                        name: name.clone(),
                        subject: subject.clone(),
                        members: members.clone(),
                        history: history
                            .iter()
                            .map(|l| wit::GroupLine { author: l.author.clone(), text: l.text.clone(), at: l.at })
                            .collect(),
                    })
                }
                Item::GroupRefused { from, to, condition, text } => wit::Input::GroupRefused(wit::GroupRefused {
                    group: from.clone(),
                    to: to.clone(),
                    condition: condition.clone(),
                    text: text.clone(),
                }),
                // What users send to groups hosted elsewhere: not an adapter's business (XMPP
                // users host no Halo groups).
                Item::GroupPost { .. } | Item::GroupJoin { .. } | Item::GroupLeave { .. } | Item::GroupAdd { .. } => {
                    return None;
                }
            },
            AdapterInput::Refused(item, code, reason) => wit::Input::Refused(wit::Refusal {
                item: item_to_wit(item)?,
                code: code_to_wit(*code),
                reason: reason.clone(),
            }),
            // 0.1.4 s2s
            AdapterInput::Accepted { id, port, peer } => {
                wit::Input::Accepted(wit::AcceptedLink { id: *id, port: *port, peer: peer.clone() })
            }
            AdapterInput::TlsReady(l) => wit::Input::TlsReady(*l),
            AdapterInput::Resolved(a) => wit::Input::Resolved(srv_to_wit(a)),
        })
    }

    fn srv_to_wit(a: &SrvAnswer) -> wit::SrvAnswer {
        wit::SrvAnswer {
            token: a.token,
            name: a.name.clone(),
            targets: a
                .targets
                .iter()
                .map(|t| wit::SrvTarget { host: t.host.clone(), port: t.port, priority: t.priority, weight: t.weight })
                .collect(),
            error: a.error.clone(),
        }
    }

    /// An action from WIT. Sizes are checked by the caller; addresses by the server.
    pub(crate) fn action_from_wit(a: wit::Action) -> AdapterAction {
        match a {
            wit::Action::Open(l) => {
                AdapterAction::Open(LinkSpec { id: l.id, host: l.host, port: l.port, tls_name: l.tls_name })
            }
            wit::Action::Send((l, b)) => AdapterAction::Send(l, b),
            wit::Action::Close(l) => AdapterAction::Close(l),
            wit::Action::Routing(on) => AdapterAction::Routing(on),
            wit::Action::SetTimer((t, ms)) => AdapterAction::SetTimer(t, ms),
            wit::Action::DeliverMessage(m) => AdapterAction::Deliver(Item::Message {
                from: m.from,
                to: m.to,
                text: m.text,
                id: m.id.unwrap_or_default(),
            }),
            wit::Action::DeliverPresence(p) => AdapterAction::Deliver(Item::Presence {
                from: p.from,
                to: p.to,
                info: PresenceInfo {
                    state: p.info.state,
                    activity: p.info.activity,
                    label: p.info.label,
                    note: p.info.note,
                },
            }),
            wit::Action::DeliverSubscribe(s) => {
                AdapterAction::Deliver(Item::Subscribe { from: s.from, to: s.to, kind: kind_from_wit(s.kind) })
            }
            wit::Action::Reject(r) => AdapterAction::Reject { domain: r.domain, reason: r.reason },
            // ----- Groups and rooms -----
            wit::Action::DeliverGroupPost(p) => AdapterAction::Deliver(Item::GroupPost {
                from: p.from,
                to: p.group,
                text: p.text,
                id: p.id.unwrap_or_default(),
            }),
            wit::Action::DeliverGroupJoin(j) => AdapterAction::Deliver(Item::GroupJoin { from: j.from, to: j.group }),
            wit::Action::DeliverGroupLeave(j) => AdapterAction::Deliver(Item::GroupLeave { from: j.from, to: j.group }),
            wit::Action::DeliverGroupAdd(a) => {
                AdapterAction::Deliver(Item::GroupAdd { from: a.from, to: a.group, user: a.user })
            }
            wit::Action::Bounced(r) => AdapterAction::Bounced(item_from_wit(r.item), code_from_wit(r.code), r.reason),
            wit::Action::LinkFailed((l, why)) => AdapterAction::LinkFailed(l, why),
            // 0.1.4 s2s
            wit::Action::Listen(l) => AdapterAction::Listen { address: l.address, port: l.port },
            wit::Action::Unlisten(port) => AdapterAction::Unlisten(port),
            wit::Action::StartTls((l, role)) => AdapterAction::StartTls(
                l,
                match role {
                    wit::TlsRole::Client(name) => TlsRole::Client(name),
                    wit::TlsRole::Server => TlsRole::Server,
                },
            ),
            wit::Action::Resolve((token, name)) => AdapterAction::Resolve(token, name),
            wit::Action::DrainQueued => AdapterAction::DrainQueued,
            wit::Action::Fail((l, why)) => AdapterAction::Fail(l, why),
        }
    }
}

/// Federation inputs and actions as the frozen 0.1.3 WIT and back (adapters built against
/// 0.1.2 or 0.1.3). Inputs 0.1.3 lacks are not handed to them (`None`).
pub(crate) mod federation_legacy {
    use halo_core::federation::{Item, PresenceInfo, Subscription};

    use super::fed_legacy::halo::plugin::federation as wit;
    use crate::federation::{AdapterAction, AdapterInput, LinkSpec};

    fn kind_to_wit(k: Subscription) -> wit::Subscription {
        match k {
            Subscription::Request => wit::Subscription::Request,
            Subscription::Accept => wit::Subscription::Accept,
            Subscription::Refuse => wit::Subscription::Refuse,
            Subscription::Cancel => wit::Subscription::Cancel,
            Subscription::Probe => wit::Subscription::Probe,
        }
    }

    fn kind_from_wit(k: wit::Subscription) -> Subscription {
        match k {
            wit::Subscription::Request => Subscription::Request,
            wit::Subscription::Accept => Subscription::Accept,
            wit::Subscription::Refuse => Subscription::Refuse,
            wit::Subscription::Cancel => Subscription::Cancel,
            wit::Subscription::Probe => Subscription::Probe,
        }
    }

    /// An input as 0.1.3 WIT; `None` for one 0.1.3 has no case for.
    pub(crate) fn input_to_wit(i: &AdapterInput) -> Option<wit::Input> {
        Some(match i {
            AdapterInput::Connected(l) => wit::Input::Connected(*l),
            AdapterInput::Data(l, b) => wit::Input::Data((*l, b.clone())),
            AdapterInput::Closed(l, why) => wit::Input::Closed((*l, why.clone())),
            AdapterInput::Timer(t) => wit::Input::Timer(*t),
            AdapterInput::Rooms(_) => return None,
            AdapterInput::Outbound(item) => match item {
                Item::Message { from, to, text, id } => wit::Input::Message(wit::Message {
                    from: from.clone(),
                    to: to.clone(),
                    text: text.clone(),
                    id: Some(id.clone()),
                }),
                Item::Presence { from, to, info } => wit::Input::Presence(wit::Presence {
                    from: from.clone(),
                    to: to.clone(),
                    info: wit::PresenceInfo {
                        state: info.state.clone(),
                        activity: info.activity.clone(),
                        label: info.label.clone(),
                        note: info.note.clone(),
                    },
                }),
                Item::Subscribe { from, to, kind } => wit::Input::Subscribe(wit::Subscribe {
                    from: from.clone(),
                    to: to.clone(),
                    kind: kind_to_wit(*kind),
                }),
                // Groups are 0.1.4's.
                _ => return None,
            },
            AdapterInput::Refused(..)
            | AdapterInput::Accepted { .. }
            | AdapterInput::TlsReady(_)
            | AdapterInput::Resolved(_) => return None,
        })
    }

    /// An action from WIT. Sizes are checked by the caller; addresses by the server.
    pub(crate) fn action_from_wit(a: wit::Action) -> AdapterAction {
        match a {
            wit::Action::Open(l) => {
                AdapterAction::Open(LinkSpec { id: l.id, host: l.host, port: l.port, tls_name: l.tls_name })
            }
            wit::Action::Send((l, b)) => AdapterAction::Send(l, b),
            wit::Action::Close(l) => AdapterAction::Close(l),
            wit::Action::Routing(on) => AdapterAction::Routing(on),
            wit::Action::SetTimer((t, ms)) => AdapterAction::SetTimer(t, ms),
            wit::Action::DeliverMessage(m) => AdapterAction::Deliver(Item::Message {
                from: m.from,
                to: m.to,
                text: m.text,
                id: m.id.unwrap_or_default(),
            }),
            wit::Action::DeliverPresence(p) => AdapterAction::Deliver(Item::Presence {
                from: p.from,
                to: p.to,
                info: PresenceInfo {
                    state: p.info.state,
                    activity: p.info.activity,
                    label: p.info.label,
                    note: p.info.note,
                },
            }),
            wit::Action::DeliverSubscribe(s) => {
                AdapterAction::Deliver(Item::Subscribe { from: s.from, to: s.to, kind: kind_from_wit(s.kind) })
            }
            wit::Action::Reject(r) => AdapterAction::Reject { domain: r.domain, reason: r.reason },
        }
    }
}

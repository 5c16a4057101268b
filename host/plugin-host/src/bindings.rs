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
    use halo_core::federation::{Item, PresenceInfo, Subscription};

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

    /// An input as WIT.
    pub(crate) fn input_to_wit(i: &AdapterInput) -> wit::Input {
        match i {
            AdapterInput::Connected(l) => wit::Input::Connected(*l),
            AdapterInput::Data(l, b) => wit::Input::Data((*l, b.clone())),
            AdapterInput::Closed(l, why) => wit::Input::Closed((*l, why.clone())),
            AdapterInput::Timer(t) => wit::Input::Timer(*t),
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
            },
            // 0.1.4 s2s
            AdapterInput::Accepted { id, port, peer } => {
                wit::Input::Accepted(wit::AcceptedLink { id: *id, port: *port, peer: peer.clone() })
            }
            AdapterInput::TlsReady(l) => wit::Input::TlsReady(*l),
            AdapterInput::Resolved(a) => wit::Input::Resolved(srv_to_wit(a)),
        }
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
            },
            AdapterInput::Accepted { .. } | AdapterInput::TlsReady(_) | AdapterInput::Resolved(_) => return None,
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

//! Conversions between the generated WIT types and the SDK's plain types (wasm32 only).

#[cfg(feature = "presence")]
use crate::bindings::halo::plugin::types as wit;
#[cfg(feature = "presence")]
use crate::bindings::halo::plugin::{config, kv, log};
#[cfg(all(not(feature = "presence"), not(feature = "archive-sink")))]
use crate::fed_bindings::halo::plugin::types as wit;
#[cfg(all(not(feature = "presence"), not(feature = "archive-sink")))]
use crate::fed_bindings::halo::plugin::{config, kv, log};
#[cfg(all(not(feature = "presence"), feature = "archive-sink"))]
use crate::sink_bindings::halo::plugin::types as wit;
#[cfg(all(not(feature = "presence"), feature = "archive-sink"))]
use crate::sink_bindings::halo::plugin::{config, kv, log};
#[cfg(feature = "presence")]
use crate::{Endpoint, MachineState, ManualState, PresenceInput, PresencePlugin, Published, StateDef};
use crate::{Host, KvError, Level};

/// The host, through the component's imports.
pub struct WasmHost;

fn kv_error(e: kv::KvError) -> KvError {
    match e {
        kv::KvError::AccessDenied => KvError::AccessDenied,
        kv::KvError::QuotaExceeded => KvError::QuotaExceeded,
        kv::KvError::TooLarge => KvError::TooLarge,
    }
}

impl Host for WasmHost {
    fn config(&self, key: &str) -> Option<String> {
        config::get(key)
    }
    fn config_all(&self) -> Vec<(String, String)> {
        config::all()
    }
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        log::log(level, message);
    }
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        kv::get(key).map_err(kv_error)
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        kv::set(key, value).map_err(kv_error)
    }
    fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        kv::delete(key).map_err(kv_error)
    }
}

#[cfg(feature = "presence")]
fn published_from(p: wit::Published) -> Published {
    Published { availability: p.availability, activity: p.activity, custom: p.custom }
}

#[cfg(feature = "presence")]
pub fn states<P: PresencePlugin>() -> Vec<wit::StateDef> {
    P::states(&WasmHost)
        .into_iter()
        .map(|s: StateDef| wit::StateDef {
            id: s.id,
            labels: s.labels.into_iter().map(|(lang, text)| wit::Label { lang, text }).collect(),
            availability: s.availability,
            colour: s.colour,
        })
        .collect()
}

#[cfg(feature = "presence")]
pub fn derive<P: PresencePlugin>(input: wit::PresenceInput) -> Option<wit::Published> {
    // Asked only when there is an event (the token says so): free for everyone else.
    let calendar_event = if input.calendar.is_some() { calendar_event() } else { None };
    let input = PresenceInput {
        user: input.user,
        manual: input.manual.map(|m| ManualState {
            availability: m.availability,
            activity: m.activity,
            custom: m.custom,
            until_ms: m.until_ms,
        }),
        endpoints: input
            .endpoints
            .into_iter()
            .map(|e| Endpoint {
                id: e.id,
                state: match e.state {
                    wit::MachineState::Active => MachineState::Active,
                    wit::MachineState::Inactive => MachineState::Inactive,
                    wit::MachineState::Away => MachineState::Away,
                },
                since_ms: e.since_ms,
            })
            .collect(),
        calendar: input.calendar,
        calendar_event,
        phone: input.phone,
        now_ms: input.now_ms,
        builtin: published_from(input.builtin),
    };
    P::derive(&WasmHost, &input).map(|p| wit::Published {
        availability: p.availability,
        activity: p.activity,
        custom: p.custom,
    })
}

/// The user's current event, from the `calendar` import (0.1.3).
#[cfg(feature = "calendar")]
fn calendar_event() -> Option<crate::CalendarEvent> {
    crate::bindings::halo::plugin::calendar::current().map(|e| crate::CalendarEvent {
        activity: e.activity,
        title: e.title,
        end_ms: e.end_ms,
    })
}

/// Built against 0.1.0: no `calendar` import.
#[cfg(all(feature = "presence", not(feature = "calendar")))]
fn calendar_event() -> Option<crate::CalendarEvent> {
    None
}

#[cfg(feature = "presence")]
pub fn tick_seconds<P: PresencePlugin>() -> u32 {
    P::tick_seconds(&WasmHost)
}

#[cfg(feature = "archive-sink")]
pub fn deliver<S: crate::ArchiveSink>(
    batch: Vec<crate::sink_bindings::halo::plugin::archive::ArchiveRecord>,
) -> Result<(), crate::sink_bindings::halo::plugin::archive::SinkError> {
    use crate::sink_bindings::halo::plugin::archive as a;
    use crate::{ArchiveEvent, ArchiveRecord, SinkError};
    let records: Vec<ArchiveRecord> = batch
        .into_iter()
        .map(|r| ArchiveRecord {
            id: r.id,
            at_ms: r.at_ms,
            event: match r.event {
                a::Event::Started => ArchiveEvent::Started,
                a::Event::Message => ArchiveEvent::Message,
                a::Event::Joined => ArchiveEvent::Joined,
                a::Event::Left => ArchiveEvent::Left,
            },
            conversation: r.conversation,
            room: r.room,
            from: r.from,
            user: r.user,
            participants: r.participants,
            external: r.external,
            text: r.text,
            format: r.format,
            json: r.json,
        })
        .collect();
    S::deliver(&WasmHost, &records).map_err(|e| match e {
        SinkError::Retry(m) => a::SinkError::Retry(m),
        SinkError::Permanent(m) => a::SinkError::Permanent(m),
    })
}

#[cfg(feature = "federation")]
mod fed {
    use crate::fed_bindings::halo::plugin::federation as f;
    use crate::federation::{
        AcceptedLink, Action, FederationAdapter, Input, Item, Message, Presence, PresenceInfo, Refusal, RefusalCode,
        Rejection, SrvAnswer, SrvTarget, Subscribe, Subscription, TlsRole,
    };

    use super::WasmHost;

    fn message_from(m: f::Message) -> Message {
        Message { from: m.from, to: m.to, text: m.text, id: m.id }
    }

    fn message_to(m: Message) -> f::Message {
        f::Message { from: m.from, to: m.to, text: m.text, id: m.id }
    }

    fn presence_from(p: f::Presence) -> Presence {
        let i = p.info;
        Presence {
            from: p.from,
            to: p.to,
            info: PresenceInfo { state: i.state, activity: i.activity, label: i.label, note: i.note },
        }
    }

    fn presence_to(p: Presence) -> f::Presence {
        let i = p.info;
        f::Presence {
            from: p.from,
            to: p.to,
            info: f::PresenceInfo { state: i.state, activity: i.activity, label: i.label, note: i.note },
        }
    }

    fn kind_from(k: f::Subscription) -> Subscription {
        match k {
            f::Subscription::Request => Subscription::Request,
            f::Subscription::Accept => Subscription::Accept,
            f::Subscription::Refuse => Subscription::Refuse,
            f::Subscription::Cancel => Subscription::Cancel,
            f::Subscription::Probe => Subscription::Probe,
        }
    }

    fn kind_to(k: Subscription) -> f::Subscription {
        match k {
            Subscription::Request => f::Subscription::Request,
            Subscription::Accept => f::Subscription::Accept,
            Subscription::Refuse => f::Subscription::Refuse,
            Subscription::Cancel => f::Subscription::Cancel,
            Subscription::Probe => f::Subscription::Probe,
        }
    }

    fn code_from(c: f::RefusalCode) -> RefusalCode {
        match c {
            f::RefusalCode::NoSuchUser => RefusalCode::NoSuchUser,
            f::RefusalCode::Blocked => RefusalCode::Blocked,
            f::RefusalCode::Unavailable => RefusalCode::Unavailable,
            f::RefusalCode::RateLimited => RefusalCode::RateLimited,
            f::RefusalCode::TooBig => RefusalCode::TooBig,
            f::RefusalCode::BadRequest => RefusalCode::BadRequest,
            f::RefusalCode::NotFederated => RefusalCode::NotFederated,
            f::RefusalCode::Internal => RefusalCode::Internal,
        }
    }

    fn code_to(c: RefusalCode) -> f::RefusalCode {
        match c {
            RefusalCode::NoSuchUser => f::RefusalCode::NoSuchUser,
            RefusalCode::Blocked => f::RefusalCode::Blocked,
            RefusalCode::Unavailable => f::RefusalCode::Unavailable,
            RefusalCode::RateLimited => f::RefusalCode::RateLimited,
            RefusalCode::TooBig => f::RefusalCode::TooBig,
            RefusalCode::BadRequest => f::RefusalCode::BadRequest,
            RefusalCode::NotFederated => f::RefusalCode::NotFederated,
            RefusalCode::Internal => f::RefusalCode::Internal,
        }
    }

    fn item_from(i: f::FedItem) -> Item {
        match i {
            f::FedItem::Message(m) => Item::Message(message_from(m)),
            f::FedItem::Presence(p) => Item::Presence(presence_from(p)),
            f::FedItem::Subscribe(s) => Item::Subscribe(Subscribe { from: s.from, to: s.to, kind: kind_from(s.kind) }),
        }
    }

    fn item_to(i: Item) -> f::FedItem {
        match i {
            Item::Message(m) => f::FedItem::Message(message_to(m)),
            Item::Presence(p) => f::FedItem::Presence(presence_to(p)),
            Item::Subscribe(s) => f::FedItem::Subscribe(f::Subscribe { from: s.from, to: s.to, kind: kind_to(s.kind) }),
        }
    }

    fn input_from(input: f::Input) -> Input {
        match input {
            f::Input::Connected(link) => Input::Connected(link),
            f::Input::Data((link, bytes)) => Input::Data(link, bytes),
            f::Input::Closed((link, why)) => Input::Closed(link, why),
            f::Input::Timer(token) => Input::Timer(token),
            f::Input::Message(m) => Input::Message(message_from(m)),
            f::Input::Presence(p) => Input::Presence(presence_from(p)),
            f::Input::Subscribe(s) => Input::Subscribe(Subscribe { from: s.from, to: s.to, kind: kind_from(s.kind) }),
            // ----- Groups and rooms -----
            f::Input::GroupMessage(m) => Input::GroupMessage(crate::groups::GroupMessage {
                group: m.group,
                to: m.to,
                author: m.author,
                text: m.text,
                id: m.id,
            }),
            f::Input::GroupInvite(i) => {
                Input::GroupInvite(crate::groups::GroupInvite { group: i.group, to: i.to, by: i.by, name: i.name })
            }
            f::Input::GroupState(g) => Input::GroupState(crate::groups::GroupState {
                group: g.group,
                to: g.to,
                name: g.name,
                subject: g.subject,
                members: g.members,
                history: g
                    .history
                    .into_iter()
                    .map(|l| crate::groups::GroupLine { author: l.author, text: l.text, at: l.at })
                    .collect(),
            }),
            f::Input::GroupRefused(r) => Input::GroupRefused(crate::groups::GroupRefused {
                group: r.group,
                to: r.to,
                condition: r.condition,
                text: r.text,
            }),
            f::Input::Rooms(list) => Input::Rooms(
                list.into_iter()
                    .map(|r| crate::groups::RoomInfo {
                        group: r.group,
                        name: r.name,
                        subject: r.subject,
                        members_only: r.members_only,
                        members: r.members,
                    })
                    .collect(),
            ),
            f::Input::Refused(r) => {
                Input::Refused(Refusal { item: item_from(r.item), code: code_from(r.code), reason: r.reason })
            }
            // 0.1.4 s2s
            f::Input::Accepted(a) => Input::Accepted(AcceptedLink { id: a.id, port: a.port, peer: a.peer }),
            f::Input::TlsReady(link) => Input::TlsReady(link),
            f::Input::Resolved(a) => Input::Resolved(SrvAnswer {
                token: a.token,
                name: a.name,
                targets: a
                    .targets
                    .into_iter()
                    .map(|t| SrvTarget { host: t.host, port: t.port, priority: t.priority, weight: t.weight })
                    .collect(),
                error: a.error,
            }),
        }
    }

    fn action_to(action: Action) -> f::Action {
        match action {
            Action::Open(l) => {
                f::Action::Open(f::LinkSpec { id: l.id, host: l.host, port: l.port, tls_name: l.tls_name })
            }
            Action::Send(link, bytes) => f::Action::Send((link, bytes)),
            Action::Close(link) => f::Action::Close(link),
            Action::Routing(on) => f::Action::Routing(on),
            Action::SetTimer { token, ms } => f::Action::SetTimer((token, ms)),
            Action::DeliverMessage(m) => f::Action::DeliverMessage(message_to(m)),
            Action::DeliverPresence(p) => f::Action::DeliverPresence(presence_to(p)),
            Action::DeliverSubscribe(s) => {
                f::Action::DeliverSubscribe(f::Subscribe { from: s.from, to: s.to, kind: kind_to(s.kind) })
            }
            Action::Reject(Rejection { domain, reason }) => f::Action::Reject(f::Rejection { domain, reason }),
            // ----- Groups and rooms -----
            Action::DeliverGroupPost(p) => {
                f::Action::DeliverGroupPost(f::GroupPost { from: p.from, group: p.group, text: p.text, id: p.id })
            }
            Action::DeliverGroupJoin(j) => f::Action::DeliverGroupJoin(f::GroupJoin { from: j.from, group: j.group }),
            Action::DeliverGroupLeave(j) => f::Action::DeliverGroupLeave(f::GroupJoin { from: j.from, group: j.group }),
            Action::DeliverGroupAdd(a) => {
                f::Action::DeliverGroupAdd(f::GroupAdd { from: a.from, group: a.group, user: a.user })
            }
            Action::Bounced(r) => {
                f::Action::Bounced(f::Refusal { item: item_to(r.item), code: code_to(r.code), reason: r.reason })
            }
            Action::LinkFailed(link, why) => f::Action::LinkFailed((link, why)),
            // 0.1.4 s2s
            Action::Listen { address, port } => f::Action::Listen(f::ListenSpec { address, port }),
            Action::Unlisten(port) => f::Action::Unlisten(port),
            Action::StartTls(link, role) => f::Action::StartTls((
                link,
                match role {
                    TlsRole::Client(name) => f::TlsRole::Client(name),
                    TlsRole::Server => f::TlsRole::Server,
                },
            )),
            Action::Resolve { token, name } => f::Action::Resolve((token, name)),
            Action::DrainQueued => f::Action::DrainQueued,
            Action::Fail(link, why) => f::Action::Fail((link, why)),
        }
    }

    /// `start`, through the plain types.
    pub fn start<A: FederationAdapter>() -> Vec<f::Action> {
        A::start(&WasmHost).into_iter().map(action_to).collect()
    }

    /// `handle`, through the plain types.
    pub fn handle<A: FederationAdapter>(input: f::Input) -> Vec<f::Action> {
        A::handle(&WasmHost, input_from(input)).into_iter().map(action_to).collect()
    }
}

#[cfg(feature = "federation")]
pub use fed::{handle, start};

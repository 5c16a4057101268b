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
        AcceptedLink, Action, FederationAdapter, Input, Message, Presence, PresenceInfo, Rejection, SrvAnswer,
        SrvTarget, Subscribe, Subscription, TlsRole,
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

    fn input_from(input: f::Input) -> Input {
        match input {
            f::Input::Connected(link) => Input::Connected(link),
            f::Input::Data((link, bytes)) => Input::Data(link, bytes),
            f::Input::Closed((link, why)) => Input::Closed(link, why),
            f::Input::Timer(token) => Input::Timer(token),
            f::Input::Message(m) => Input::Message(message_from(m)),
            f::Input::Presence(p) => Input::Presence(presence_from(p)),
            f::Input::Subscribe(s) => Input::Subscribe(Subscribe { from: s.from, to: s.to, kind: kind_from(s.kind) }),
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

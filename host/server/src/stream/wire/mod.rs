//! The stream's wire format, sans socket: client requests in, server frames out, as JSON text
//! frames or (subprotocol `halo.msgpack`) MessagePack binary frames with the same field names.
//! `docs/protocol.md` documents every frame defined here.

use halo_core::conversation::Format;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use halo_services::Event;
use halo_services::presence::PresenceView;
use halo_services::views::{ConversationView, MessageView, RoomView};

mod codec;

pub use codec::{Codec, Incoming, SharedFrame};

/// The WebSocket subprotocol selecting MessagePack framing.
pub const MSGPACK_PROTOCOL: &str = "halo.msgpack";

/// A request's client-chosen id, echoed in its reply or error: a string or an unsigned integer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    /// Numeric id.
    Num(u64),
    /// String id (at most 128 bytes).
    Str(String),
}

/// What a client may ask, selected by the frame's `type` field (the `id` is read apart).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum Request {
    /// Liveness check; the reply echoes `data`.
    #[serde(rename = "ping")]
    Ping {
        /// Echoed back.
        #[serde(default)]
        data: Option<String>,
    },
    /// Who this endpoint is.
    #[serde(rename = "whoami")]
    Whoami {},
    /// The user's connected endpoints (devices).
    #[serde(rename = "endpoints")]
    Endpoints {},
    /// Start a conversation (reuses the open 1:1 with a single other participant).
    #[serde(rename = "im.start")]
    ImStart {
        /// The other participants.
        participants: Vec<String>,
    },
    /// Send a message.
    #[serde(rename = "im.send")]
    ImSend {
        /// Conversation id.
        conversation: u64,
        /// The text.
        text: String,
        /// `plain` (default) or `markdown`.
        #[serde(default)]
        format: Format,
        /// Idempotency key: a retried send with the same key is stored once.
        #[serde(default)]
        key: Option<String>,
        /// The message of this conversation it replies to (quotes).
        #[serde(default)]
        reply_to: Option<u64>,
        /// Ids of files uploaded with `POST /api/v1/attachments`.
        #[serde(default)]
        attachments: Vec<String>,
    },
    /// Add a participant (a 1:1 becomes a group).
    #[serde(rename = "im.add")]
    ImAdd {
        /// Conversation id.
        conversation: u64,
        /// Who to add.
        user: String,
    },
    /// Leave a conversation.
    #[serde(rename = "im.leave")]
    ImLeave {
        /// Conversation id.
        conversation: u64,
    },
    /// Typing started or stopped (not stored).
    #[serde(rename = "im.typing")]
    ImTyping {
        /// Conversation id.
        conversation: u64,
        /// Whether the user is typing.
        typing: bool,
    },
    /// Read marker: everything up to `upto` is read.
    #[serde(rename = "im.read")]
    ImRead {
        /// Conversation id.
        conversation: u64,
        /// Message id.
        upto: u64,
    },
    /// Offline messages up to `upto` were received; stop resending them.
    #[serde(rename = "im.ack")]
    ImAck {
        /// Message id.
        upto: u64,
    },
    /// Set a manual state: a `state` token (built-in or custom), or an `availability` number
    /// with an optional `activity`; optionally `until` a time.
    #[serde(rename = "presence.set")]
    PresenceSet {
        /// State token, e.g. `busy`, `be-right-back`, a custom state id.
        #[serde(default)]
        state: Option<String>,
        /// Explicit availability, 0-18500.
        #[serde(default)]
        availability: Option<u32>,
        /// Activity token with an explicit availability.
        #[serde(default)]
        activity: Option<String>,
        /// When the manual state ends, ms since the Unix epoch.
        #[serde(default)]
        until: Option<u64>,
    },
    /// Clear the manual state: presence follows the devices again.
    #[serde(rename = "presence.reset")]
    PresenceReset {},
    /// This device's machine state (idle detection).
    #[serde(rename = "presence.machine")]
    PresenceMachine {
        /// `active`, `inactive` or `away`.
        state: halo_core::presence::MachineState,
    },
    /// Watch users who are not contacts (e.g. names shown in another app), on this endpoint.
    #[serde(rename = "presence.subscribe")]
    PresenceSubscribe {
        /// Usernames.
        users: Vec<String>,
        /// Seconds until the subscription lapses (default and maximum: the server's TTL).
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// Stop watching users.
    #[serde(rename = "presence.unsubscribe")]
    PresenceUnsubscribe {
        /// Usernames.
        users: Vec<String>,
    },
    /// Post to a room.
    #[serde(rename = "room.post")]
    RoomPost {
        /// Room id.
        room: u64,
        /// The text.
        text: String,
        /// `plain` (default) or `markdown`.
        #[serde(default)]
        format: Format,
        /// Idempotency key.
        #[serde(default)]
        key: Option<String>,
        /// The post of this room it replies to (quotes).
        #[serde(default)]
        reply_to: Option<u64>,
        /// Ids of files uploaded with `POST /api/v1/attachments`.
        #[serde(default)]
        attachments: Vec<String>,
    },
    /// Replace the text of one's own message (in `conversation` or `room`).
    #[serde(rename = "message.edit")]
    MessageEdit {
        /// Conversation id (or `room`).
        #[serde(default)]
        conversation: Option<u64>,
        /// Room id (or `conversation`).
        #[serde(default)]
        room: Option<u64>,
        /// Message id.
        message: u64,
        /// The new text.
        text: String,
        /// `plain` (default) or `markdown`.
        #[serde(default)]
        format: Format,
    },
    /// Delete one's own message (in `conversation` or `room`).
    #[serde(rename = "message.delete")]
    MessageDelete {
        /// Conversation id (or `room`).
        #[serde(default)]
        conversation: Option<u64>,
        /// Room id (or `conversation`).
        #[serde(default)]
        room: Option<u64>,
        /// Message id.
        message: u64,
    },
    /// Add (or with `add: false` take back) a reaction to a message.
    #[serde(rename = "message.react")]
    MessageReact {
        /// Conversation id (or `room`).
        #[serde(default)]
        conversation: Option<u64>,
        /// Room id (or `conversation`).
        #[serde(default)]
        room: Option<u64>,
        /// Message id.
        message: u64,
        /// The emoji.
        emoji: String,
        /// Add (default) or take back.
        #[serde(default = "yes")]
        add: bool,
    },
}

fn yes() -> bool {
    true
}

impl Request {
    /// Every request type name, for the `unknown_type` error.
    pub const TYPES: &[&str] = &[
        "ping",
        "whoami",
        "endpoints",
        "im.start",
        "im.send",
        "im.add",
        "im.leave",
        "im.typing",
        "im.read",
        "im.ack",
        "room.post",
        "message.edit",
        "message.delete",
        "message.react",
        "presence.set",
        "presence.reset",
        "presence.machine",
        "presence.subscribe",
        "presence.unsubscribe",
    ];
}

/// An endpoint (one connected socket) of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointInfo {
    /// Server-assigned id, unique while the server runs.
    pub id: u64,
    /// The name the client gave at connect (`?endpoint=`).
    pub name: String,
    /// Connect time, ms since the Unix epoch.
    pub connected_at: u64,
}

/// Error codes a frame may carry that concern the frame itself; errors of a request's
/// operation carry the REST API's codes (`not_found`, `forbidden`, `blocked`, ...).
pub mod code {
    /// Not a JSON / MessagePack map, or the wrong frame kind for the framing.
    pub const BAD_FRAME: &str = "bad_frame";
    /// The `type` is missing or unknown.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// The fields do not fit the type.
    pub const BAD_REQUEST: &str = "bad_request";
    /// The frame exceeds the frame size limit.
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
}

/// A typed error, naming the request it answers when its id could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameError {
    /// The request's id, if it could be read.
    pub id: Option<RequestId>,
    /// Machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// How long to wait before retrying, in milliseconds, when the server says so (`busy`,
    /// `rate_limited`, `storage_unavailable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl FrameError {
    /// An error answering request `id`.
    pub fn new(id: Option<RequestId>, code: &'static str, message: impl Into<String>) -> Self {
        Self { id, code, message: message.into(), retry_after_ms: None }
    }

    /// The same error with a retry hint.
    pub fn retry_after(mut self, after: Option<std::time::Duration>) -> Self {
        self.retry_after_ms = after.map(crate::error::millis);
        self
    }
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// First frame on every socket.
    #[serde(rename = "hello")]
    Hello {
        /// This endpoint.
        endpoint: EndpointInfo,
        /// The account's username.
        username: String,
        /// Server version.
        server_version: &'static str,
        /// Interval of server pings, ms.
        heartbeat_ms: u64,
        /// Largest frame accepted, bytes.
        max_frame_bytes: usize,
        /// Offline messages waiting (they follow as `im.message` with `offline: true`).
        offline: usize,
    },
    /// Successful answer to a request.
    #[serde(rename = "reply")]
    Reply {
        /// The request's id.
        id: Option<RequestId>,
        /// The answer.
        result: Reply,
    },
    /// Failed request or unreadable frame.
    #[serde(rename = "error")]
    Error {
        /// What failed.
        #[serde(flatten)]
        error: FrameError,
    },
    /// A conversation started, or its participants changed.
    #[serde(rename = "im.conversation")]
    ImConversation {
        /// The conversation as the recipient sees it.
        conversation: ConversationView,
    },
    /// A message in one of the user's conversations (also the sender's other devices).
    #[serde(rename = "im.message")]
    ImMessage {
        /// The message.
        message: MessageView,
        /// Delivered from the queue on connect (offline, or never acknowledged); absent for a
        /// live push. Either kind is acknowledged with `im.ack`.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        offline: bool,
    },
    /// A participant's device received a message (to the sender).
    #[serde(rename = "im.delivered")]
    ImDelivered {
        /// Conversation id.
        conversation: u64,
        /// Message id.
        message: u64,
        /// Who received it.
        user: String,
    },
    /// A remote server refused a message of the user's (to the sender's devices).
    #[serde(rename = "im.failed")]
    ImFailed {
        /// Conversation id.
        conversation: u64,
        /// Message id.
        message: u64,
        /// `to`, `code`, `reason`.
        failure: halo_core::federation::DeliveryFailure,
    },
    /// A participant started or stopped typing.
    #[serde(rename = "im.typing")]
    ImTyping {
        /// Conversation id.
        conversation: u64,
        /// Who.
        user: String,
        /// Typing or not.
        typing: bool,
    },
    /// A participant's read marker moved (read receipt; also the reader's other devices).
    #[serde(rename = "im.read")]
    ImRead {
        /// Conversation id.
        conversation: u64,
        /// Who read.
        user: String,
        /// Up to this message.
        upto: u64,
        /// The reader's remaining unread count (sent to the reader's own devices only).
        #[serde(skip_serializing_if = "Option::is_none")]
        unread: Option<u32>,
    },
    /// A post in a room the user follows.
    #[serde(rename = "room.message")]
    RoomMessage {
        /// The post.
        message: MessageView,
    },
    /// A message was edited, deleted or reacted to: the message as now shown.
    #[serde(rename = "message.changed")]
    MessageChanged {
        /// The message.
        message: MessageView,
    },
    /// The user was mentioned.
    #[serde(rename = "mention")]
    Mention {
        /// The message mentioning them.
        message: MessageView,
    },
    /// A room the user belongs to changed (name, topic, privacy, members), or they joined it.
    #[serde(rename = "room.updated")]
    RoomUpdated {
        /// The room as the recipient sees it.
        room: RoomView,
    },
    /// A watched user's presence changed (or the user's own, on their devices).
    #[serde(rename = "presence")]
    Presence {
        /// The presence as the recipient may see it.
        presence: PresenceView,
    },
    /// After `hello`: the presence of everyone in the contact list, in chunks.
    #[serde(rename = "presence.snapshot")]
    PresenceSnapshot {
        /// Contacts' presence.
        contacts: Vec<PresenceView>,
        /// The user's own presence (in the first chunk).
        #[serde(skip_serializing_if = "Option::is_none")]
        me: Option<PresenceView>,
        /// The last chunk.
        last: bool,
    },
    /// The user's contact list changed (on any of their devices): read it again.
    #[serde(rename = "contacts.changed")]
    ContactsChanged {},
    /// The catalog of custom states changed (a plugin was installed, configured, upgraded,
    /// enabled, disabled or removed): the states users may now pick and see.
    #[serde(rename = "presence.states")]
    PresenceStates {
        /// Custom states, as `GET /api/v1/presence/states` lists them (`custom: true`).
        states: Vec<halo_core::presence::CustomState>,
    },
    /// A frame encoded once and shared by many sockets (presence fan-out).
    #[serde(skip)]
    Shared(Arc<SharedFrame>),
}

impl ServerFrame {
    /// The frame telling a client of `event`. A shared event becomes one [`SharedFrame`], made
    /// on first use and kept in the event, so every recipient shares its encodings.
    pub fn from_event(event: &Event) -> Self {
        match event {
            Event::ImConversation { conversation } => Self::ImConversation { conversation: conversation.clone() },
            Event::ImMessage { message, offline } => Self::ImMessage { message: message.clone(), offline: *offline },
            Event::ImDelivered { conversation, message, user } => {
                Self::ImDelivered { conversation: *conversation, message: *message, user: user.clone() }
            }
            Event::ImFailed { conversation, message, failure } => {
                Self::ImFailed { conversation: *conversation, message: *message, failure: failure.clone() }
            }
            Event::ImTyping { conversation, user, typing } => {
                Self::ImTyping { conversation: *conversation, user: user.clone(), typing: *typing }
            }
            Event::ImRead { conversation, user, upto, unread } => {
                Self::ImRead { conversation: *conversation, user: user.clone(), upto: *upto, unread: *unread }
            }
            Event::RoomMessage { message } => Self::RoomMessage { message: message.clone() },
            Event::RoomUpdated { room } => Self::RoomUpdated { room: room.clone() },
            Event::MessageChanged { message } => Self::MessageChanged { message: message.clone() },
            Event::Mention { message } => Self::Mention { message: message.clone() },
            Event::Presence { presence } => Self::Presence { presence: presence.clone() },
            Event::PresenceSnapshot { contacts, me, last } => {
                Self::PresenceSnapshot { contacts: contacts.clone(), me: me.clone(), last: *last }
            }
            Event::PresenceStates { states } => Self::PresenceStates { states: states.clone() },
            Event::ContactsChanged => Self::ContactsChanged {},
            Event::Shared(shared) => match shared.transport(|event| SharedFrame::new(Self::from_event(event))) {
                Some(frame) => Self::Shared(frame.clone()),
                None => Self::from_event(shared.event()),
            },
        }
    }
}

/// Result payloads, one shape per request type.
// Replies live only between a request and its encoding; boxing the large ones buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    /// To `ping`.
    Pong {
        /// Echo of the request's `data`.
        data: Option<String>,
        /// Server time, ms since the Unix epoch.
        server_time: u64,
    },
    /// To `whoami`.
    Whoami {
        /// Account name.
        username: String,
        /// Display name.
        display_name: String,
        /// Roles.
        roles: Vec<halo_core::Role>,
        /// This endpoint.
        endpoint: EndpointInfo,
    },
    /// To `endpoints`.
    Endpoints {
        /// The user's connected endpoints.
        endpoints: Vec<EndpointInfo>,
    },
    /// To `im.start`, `im.add`, `im.leave`.
    Conversation {
        /// The conversation.
        conversation: ConversationView,
    },
    /// To `im.send`, `room.post`, `message.edit`, `message.delete`, `message.react`.
    Message {
        /// The stored message.
        message: MessageView,
    },
    /// To `im.read`.
    Read {
        /// Unread messages left in the conversation.
        unread: u32,
    },
    /// To `im.ack`.
    Acked {
        /// Offline messages dropped from the queue.
        acked: usize,
    },
    /// To `presence.set`, `presence.reset`, `presence.machine`: the user's own presence.
    Presence {
        /// As the owner sees it.
        presence: PresenceView,
    },
    /// To `presence.subscribe`.
    Presences {
        /// The watched users' presence.
        presence: Vec<PresenceView>,
    },
    /// To `im.typing`, `presence.unsubscribe`.
    Ok {},
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<(Option<RequestId>, Request), FrameError> {
        Codec::Json.decode(Incoming::Text(s), 1024)
    }

    #[test]
    fn decodes_requests_with_ids() {
        assert_eq!(
            json(r#"{"type":"ping","id":7,"data":"x"}"#),
            Ok((Some(RequestId::Num(7)), Request::Ping { data: Some("x".into()) }))
        );
        assert_eq!(json(r#"{"type":"whoami","id":"a"}"#), Ok((Some(RequestId::Str("a".into())), Request::Whoami {})));
        assert_eq!(
            json(r#"{"type":"im.send","conversation":4,"text":"hi","format":"markdown"}"#),
            Ok((
                None,
                Request::ImSend {
                    conversation: 4,
                    text: "hi".into(),
                    format: Format::Markdown,
                    key: None,
                    reply_to: None,
                    attachments: vec![]
                }
            ))
        );
    }

    #[test]
    fn errors_name_the_request_when_they_can() {
        let e = json(r#"{"type":"fly","id":3}"#).expect_err("unknown");
        assert_eq!((e.id, e.code), (Some(RequestId::Num(3)), code::UNKNOWN_TYPE));
        let e = json(r#"{"type":"ping","id":3,"data":5}"#).expect_err("bad field");
        assert_eq!((e.id, e.code), (Some(RequestId::Num(3)), code::BAD_REQUEST));
        let e = json(r#"{"type":"ping","id":3,"extra":1}"#).expect_err("unknown field");
        assert_eq!(e.code, code::BAD_REQUEST);
        assert_eq!(json("not json").expect_err("bad").code, code::BAD_FRAME);
        assert_eq!(json("[1,2]").expect_err("bad").code, code::BAD_FRAME);
        assert_eq!(json(r#"{"id":1}"#).expect_err("no type").code, code::UNKNOWN_TYPE);
        assert_eq!(
            json(&format!(r#"{{"type":"ping","data":"{}"}}"#, "x".repeat(2000))).expect_err("big").code,
            code::FRAME_TOO_LARGE
        );
        let e = Codec::Json.decode(Incoming::Binary(b"{}"), 1024).expect_err("binary on json");
        assert_eq!(e.code, code::BAD_FRAME);
    }

    #[test]
    fn msgpack_round_trips_with_the_same_names() {
        #[derive(Serialize)]
        struct Ping<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            id: u64,
        }
        let bytes = rmp_serde::to_vec_named(&Ping { kind: "ping", id: 9 }).expect("encode");
        let (id, req) = Codec::MsgPack.decode(Incoming::Binary(&bytes), 1024).expect("decode");
        assert_eq!((id.clone(), req), (Some(RequestId::Num(9)), Request::Ping { data: None }));
        let frame = ServerFrame::Reply { id, result: Reply::Pong { data: None, server_time: 1 } };
        let out = Codec::MsgPack.encode(&frame).expect("encode");
        assert_eq!(out[0], 0x82, "a final binary frame");
        let v: serde_json::Value = rmp_serde::from_slice(&out[2..]).expect("decode");
        assert_eq!(v["type"], "reply");
        assert_eq!(v["id"], 9);
        assert_eq!(v["result"]["server_time"], 1);
        assert!(Codec::MsgPack.decode(Incoming::Binary(b"\xc1"), 1024).is_err());
    }

    #[test]
    fn error_frames_carry_a_retry_hint_only_when_there_is_one() {
        let busy = FrameError::new(Some(RequestId::Num(4)), "busy", "the server is busy")
            .retry_after(Some(std::time::Duration::from_millis(250)));
        let v = serde_json::to_value(ServerFrame::Error { error: busy }).expect("json");
        assert_eq!(v["type"], "error");
        assert_eq!(
            (v["id"].as_u64(), v["code"].as_str(), v["retry_after_ms"].as_u64()),
            (Some(4), Some("busy"), Some(250))
        );
        let plain = FrameError::new(None, code::BAD_FRAME, "x").retry_after(None);
        let v = serde_json::to_value(ServerFrame::Error { error: plain }).expect("json");
        assert!(v.get("retry_after_ms").is_none(), "{v}");
    }
}

//! The stream's wire format, sans socket: client requests in, server frames out, as JSON text
//! frames or (subprotocol `halo.msgpack`) MessagePack binary frames with the same field names.
//! `docs/protocol.md` documents every frame defined here.

use serde::{Deserialize, Serialize};

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

/// What a client may ask, selected by the frame's `type` field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness check; the reply echoes `data`.
    Ping {
        /// Optional request id (read by the envelope).
        #[serde(default)]
        id: Option<RequestId>,
        /// Echoed back.
        #[serde(default)]
        data: Option<String>,
    },
    /// Who this endpoint is.
    Whoami {
        /// Optional request id.
        #[serde(default)]
        id: Option<RequestId>,
    },
    /// The user's connected endpoints (devices).
    Endpoints {
        /// Optional request id.
        #[serde(default)]
        id: Option<RequestId>,
    },
}

impl Request {
    /// Every request type name, for the `unknown_type` error.
    pub const TYPES: &[&str] = &["ping", "whoami", "endpoints"];
}

/// The two fields read before the rest, so an error can name the request.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
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

/// Error codes a frame may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not a JSON / MessagePack map, or the wrong frame kind for the framing.
    BadFrame,
    /// The `type` is missing or unknown.
    UnknownType,
    /// The fields do not fit the type.
    BadRequest,
    /// The frame exceeds the frame size limit.
    FrameTooLarge,
}

/// A typed error, naming the request it answers when its id could be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrameError {
    /// The request's id, if it could be read.
    pub id: Option<RequestId>,
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

impl FrameError {
    fn new(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { id, code, message: message.into() }
    }
}

/// Everything the server sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame on every socket.
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
    },
    /// Successful answer to a request.
    Reply {
        /// The request's id.
        id: Option<RequestId>,
        /// The answer.
        result: Reply,
    },
    /// Failed request or unreadable frame.
    Error {
        /// What failed.
        #[serde(flatten)]
        error: FrameError,
    },
}

/// Result payloads, one shape per request type.
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
}

/// How frames are encoded on one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// JSON in text frames (the default).
    Json,
    /// MessagePack in binary frames (subprotocol `halo.msgpack`).
    MsgPack,
}

/// The payload of one incoming data frame.
pub enum Incoming<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame.
    Binary(&'a [u8]),
}

/// An encoded outgoing frame.
pub enum Outgoing {
    /// Send as a text frame.
    Text(String),
    /// Send as a binary frame.
    Binary(Vec<u8>),
}

impl Codec {
    /// Decodes a request, or explains why not. `max` is the frame size limit.
    pub fn decode(self, frame: Incoming<'_>, max: usize) -> Result<Request, FrameError> {
        let bytes = match (self, &frame) {
            (_, Incoming::Text(t)) if t.len() > max => None,
            (_, Incoming::Binary(b)) if b.len() > max => None,
            (Codec::Json, Incoming::Text(t)) => Some(t.as_bytes()),
            (Codec::MsgPack, Incoming::Binary(b)) => Some(*b),
            (Codec::Json, Incoming::Binary(_)) => {
                return Err(FrameError::new(
                    None,
                    ErrorCode::BadFrame,
                    "binary frames need the halo.msgpack subprotocol; send JSON as text",
                ));
            }
            (Codec::MsgPack, Incoming::Text(_)) => {
                return Err(FrameError::new(
                    None,
                    ErrorCode::BadFrame,
                    "this socket speaks halo.msgpack: send binary frames",
                ));
            }
        };
        let Some(bytes) = bytes else {
            return Err(FrameError::new(None, ErrorCode::FrameTooLarge, format!("frame exceeds {max} bytes")));
        };
        let envelope: Envelope = self.parse(bytes).map_err(|e| FrameError::new(None, ErrorCode::BadFrame, e))?;
        let id = envelope.id;
        if let Some(RequestId::Str(s)) = &id
            && s.len() > 128
        {
            return Err(FrameError::new(None, ErrorCode::BadRequest, "request id longer than 128 bytes"));
        }
        match envelope.kind.as_deref() {
            None => return Err(FrameError::new(id, ErrorCode::UnknownType, "missing \"type\"")),
            Some(kind) if !Request::TYPES.contains(&kind) => {
                return Err(FrameError::new(
                    id,
                    ErrorCode::UnknownType,
                    format!("unknown type {kind:?}; known: {}", Request::TYPES.join(", ")),
                ));
            }
            Some(_) => {}
        }
        self.parse(bytes).map_err(|e| FrameError::new(id, ErrorCode::BadRequest, e))
    }

    fn parse<T: serde::de::DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| format!("invalid MessagePack: {e}")),
        }
    }

    /// Encodes a frame for the socket.
    pub fn encode(self, frame: &ServerFrame) -> Result<Outgoing, String> {
        match self {
            Codec::Json => serde_json::to_string(frame).map(Outgoing::Text).map_err(|e| e.to_string()),
            Codec::MsgPack => rmp_serde::to_vec_named(frame).map(Outgoing::Binary).map_err(|e| e.to_string()),
        }
    }
}

impl Request {
    /// The request's id.
    pub fn id(&self) -> Option<RequestId> {
        match self {
            Request::Ping { id, .. } | Request::Whoami { id } | Request::Endpoints { id } => id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<Request, FrameError> {
        Codec::Json.decode(Incoming::Text(s), 1024)
    }

    #[test]
    fn decodes_requests_with_ids() {
        assert_eq!(
            json(r#"{"type":"ping","id":7,"data":"x"}"#),
            Ok(Request::Ping { id: Some(RequestId::Num(7)), data: Some("x".into()) })
        );
        assert_eq!(json(r#"{"type":"whoami","id":"a"}"#), Ok(Request::Whoami { id: Some(RequestId::Str("a".into())) }));
    }

    #[test]
    fn errors_name_the_request_when_they_can() {
        let e = json(r#"{"type":"fly","id":3}"#).expect_err("unknown");
        assert_eq!((e.id, e.code), (Some(RequestId::Num(3)), ErrorCode::UnknownType));
        let e = json(r#"{"type":"ping","id":3,"data":5}"#).expect_err("bad field");
        assert_eq!((e.id, e.code), (Some(RequestId::Num(3)), ErrorCode::BadRequest));
        let e = json(r#"{"type":"ping","id":3,"extra":1}"#).expect_err("unknown field");
        assert_eq!(e.code, ErrorCode::BadRequest);
        assert_eq!(json("not json").expect_err("bad").code, ErrorCode::BadFrame);
        assert_eq!(json("[1,2]").expect_err("bad").code, ErrorCode::BadFrame);
        assert_eq!(json(r#"{"id":1}"#).expect_err("no type").code, ErrorCode::UnknownType);
        assert_eq!(
            json(&format!(r#"{{"type":"ping","data":"{}"}}"#, "x".repeat(2000))).expect_err("big").code,
            ErrorCode::FrameTooLarge
        );
        let e = Codec::Json.decode(Incoming::Binary(b"{}"), 1024).expect_err("binary on json");
        assert_eq!(e.code, ErrorCode::BadFrame);
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
        let req = Codec::MsgPack.decode(Incoming::Binary(&bytes), 1024).expect("decode");
        assert_eq!(req, Request::Ping { id: Some(RequestId::Num(9)), data: None });
        let frame = ServerFrame::Reply { id: req.id(), result: Reply::Pong { data: None, server_time: 1 } };
        let Ok(Outgoing::Binary(out)) = Codec::MsgPack.encode(&frame) else { panic!("binary expected") };
        let v: serde_json::Value = rmp_serde::from_slice(&out).expect("decode");
        assert_eq!(v["type"], "reply");
        assert_eq!(v["id"], 9);
        assert_eq!(v["result"]["server_time"], 1);
        assert!(Codec::MsgPack.decode(Incoming::Binary(b"\xc1"), 1024).is_err());
    }
}

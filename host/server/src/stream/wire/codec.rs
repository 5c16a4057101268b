//! Frames on the socket: decoding a request from a JSON or MessagePack data frame, encoding a
//! server frame as a WebSocket frame, and frames shared by many sockets, encoded once per codec.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::{FrameError, Request, RequestId, ServerFrame, code};

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

impl Codec {
    /// Decodes a request and its id, or explains why not. `max` is the frame size limit.
    pub fn decode(self, frame: Incoming<'_>, max: usize) -> Result<(Option<RequestId>, Request), FrameError> {
        let bytes = match (self, &frame) {
            (_, Incoming::Text(t)) if t.len() > max => None,
            (_, Incoming::Binary(b)) if b.len() > max => None,
            (Codec::Json, Incoming::Text(t)) => Some(t.as_bytes()),
            (Codec::MsgPack, Incoming::Binary(b)) => Some(*b),
            (Codec::Json, Incoming::Binary(_)) => {
                return Err(FrameError::new(
                    None,
                    code::BAD_FRAME,
                    "binary frames need the halo.msgpack subprotocol; send JSON as text",
                ));
            }
            (Codec::MsgPack, Incoming::Text(_)) => {
                return Err(FrameError::new(
                    None,
                    code::BAD_FRAME,
                    "this socket speaks halo.msgpack: send binary frames",
                ));
            }
        };
        let Some(bytes) = bytes else {
            return Err(FrameError::new(None, code::FRAME_TOO_LARGE, format!("frame exceeds {max} bytes")));
        };
        let value: serde_json::Value = self.parse(bytes).map_err(|e| FrameError::new(None, code::BAD_FRAME, e))?;
        let serde_json::Value::Object(mut fields) = value else {
            return Err(FrameError::new(None, code::BAD_FRAME, "a frame must be an object (a map)"));
        };
        let id: Option<RequestId> =
            match fields.remove("id") {
                None | Some(serde_json::Value::Null) => None,
                Some(v) => Some(serde_json::from_value(v).map_err(|_| {
                    FrameError::new(None, code::BAD_REQUEST, "id must be a string or an unsigned integer")
                })?),
            };
        if let Some(RequestId::Str(s)) = &id
            && s.len() > 128
        {
            return Err(FrameError::new(None, code::BAD_REQUEST, "request id longer than 128 bytes"));
        }
        match fields.get("type").and_then(|t| t.as_str()) {
            None => return Err(FrameError::new(id, code::UNKNOWN_TYPE, "missing \"type\"")),
            Some(kind) if !Request::TYPES.contains(&kind) => {
                let known = Request::TYPES.join(", ");
                return Err(FrameError::new(id, code::UNKNOWN_TYPE, format!("unknown type {kind:?}; known: {known}")));
            }
            Some(_) => {}
        }
        let request = serde_json::from_value(serde_json::Value::Object(fields))
            .map_err(|e| FrameError::new(id.clone(), code::BAD_REQUEST, e.to_string()))?;
        Ok((id, request))
    }

    fn parse<T: serde::de::DeserializeOwned>(self, bytes: &[u8]) -> Result<T, String> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}")),
            Codec::MsgPack => rmp_serde::from_slice(bytes).map_err(|e| format!("invalid MessagePack: {e}")),
        }
    }

    /// Encodes a frame for the socket: a WebSocket frame (header and payload) in one buffer,
    /// text for JSON, binary for MessagePack. A shared frame is encoded once for every socket.
    pub fn encode(self, frame: &ServerFrame) -> Result<Bytes, String> {
        if let ServerFrame::Shared(shared) = frame {
            return shared.encoded(self);
        }
        self.encode_frame(frame)
    }

    /// A frame from JSON bytes: framed as they are for JSON, transcoded for MessagePack.
    fn encode_raw(self, raw: &[u8]) -> Result<Bytes, String> {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        match self {
            Codec::Json => super::super::ws::framed(OpCode::Data(Data::Text), |buf| {
                buf.extend_from_slice(raw);
                Ok::<(), String>(())
            }),
            Codec::MsgPack => {
                let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
                super::super::ws::framed(OpCode::Data(Data::Binary), |buf| {
                    rmp_serde::encode::write_named(buf, &value).map_err(|e| e.to_string())
                })
            }
        }
    }

    fn encode_frame(self, frame: &ServerFrame) -> Result<Bytes, String> {
        use tungstenite::protocol::frame::coding::{Data, OpCode};
        match self {
            Codec::Json => super::super::ws::framed(OpCode::Data(Data::Text), |buf| {
                serde_json::to_writer(buf, frame).map_err(|e| e.to_string())
            }),
            Codec::MsgPack => super::super::ws::framed(OpCode::Data(Data::Binary), |buf| {
                rmp_serde::encode::write_named(buf, frame).map_err(|e| e.to_string())
            }),
        }
    }
}

/// A frame whose encodings are computed once, on first use, and reused for every recipient.
pub struct SharedFrame {
    /// The frame, or `None` when it came from another node of the pool as `raw` JSON.
    frame: Option<ServerFrame>,
    raw: Option<Bytes>,
    /// The WebSocket frames (header and payload), per codec.
    json: OnceLock<Option<Bytes>>,
    msgpack: OnceLock<Option<Bytes>>,
}

impl SharedFrame {
    /// Wraps `frame` for sharing.
    pub fn new(frame: ServerFrame) -> Arc<Self> {
        Arc::new(Self { frame: Some(frame), raw: None, json: OnceLock::new(), msgpack: OnceLock::new() })
    }

    /// A frame another node of the pool encoded as JSON (the payload, without a WebSocket
    /// header): JSON sockets get these bytes, MessagePack sockets a transcoding made once.
    pub fn from_json(raw: Bytes) -> Arc<Self> {
        Arc::new(Self { frame: None, raw: Some(raw), json: OnceLock::new(), msgpack: OnceLock::new() })
    }

    /// The frame, unless it came from another node as JSON.
    pub fn frame(&self) -> Option<&ServerFrame> {
        self.frame.as_ref()
    }

    fn encoded(&self, codec: Codec) -> Result<Bytes, String> {
        let cell = match codec {
            Codec::Json => &self.json,
            Codec::MsgPack => &self.msgpack,
        };
        let bytes = cell.get_or_init(|| match (&self.frame, &self.raw) {
            (Some(frame), _) => codec.encode_frame(frame).ok(),
            (None, Some(raw)) => codec.encode_raw(raw).ok(),
            (None, None) => None,
        });
        bytes.clone().ok_or_else(|| "encoding a shared frame failed".to_owned())
    }
}

impl std::fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.frame.fmt(f)
    }
}

impl PartialEq for SharedFrame {
    fn eq(&self, other: &Self) -> bool {
        self.frame == other.frame
    }
}

//! Messages, as stored in conversations and rooms.

use serde::{Deserialize, Serialize};

use crate::conversation::{Format, MessageId};
use crate::{Millis, Username};

/// What a message says: text, or a membership change shown in the thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// Text written by the sender.
    Text {
        /// The text.
        text: String,
        /// How to show it.
        format: Format,
    },
    /// `user` joined (added by the sender, or by themselves in a room).
    Joined {
        /// Who joined.
        user: Username,
    },
    /// `user` left (or was removed by the sender).
    Left {
        /// Who left.
        user: Username,
    },
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Server-assigned, increasing id.
    pub id: MessageId,
    /// Server time of arrival.
    pub at: Millis,
    /// Sender.
    pub from: Username,
    /// Content.
    pub body: Body,
    /// The sender's idempotency key, if any.
    pub key: Option<String>,
}

impl Message {
    /// The text, for text messages.
    pub fn text(&self) -> Option<&str> {
        match &self.body {
            Body::Text { text, .. } => Some(text),
            _ => None,
        }
    }

    /// Whether a retried send (same key) carries the same content.
    pub fn same_content(&self, text: &str, format: Format) -> bool {
        matches!(&self.body, Body::Text { text: t, format: f } if t == text && *f == format)
    }
}

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
    /// What a text carries besides its text: the message it replies to, who it mentions, its
    /// attachments (all empty for membership events).
    pub extras: Extras,
}

/// A file attached to a message (uploaded before, named by its id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The upload's id (random, hex).
    pub id: String,
    /// The file name the uploader gave (sanitised).
    pub name: String,
    /// The media type sniffed from its content (`application/octet-stream` when unknown).
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// A text message's reply, mentions and attachments.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extras {
    /// The message of the same thread this one replies to (quotes).
    pub reply_to: Option<MessageId>,
    /// Participants or members named with `@name` in the text (checked when sent).
    pub mentions: Vec<Username>,
    /// Attached files.
    pub attachments: Vec<Attachment>,
}

impl Extras {
    /// Whether there is nothing besides the text.
    pub fn is_empty(&self) -> bool {
        self.reply_to.is_none() && self.mentions.is_empty() && self.attachments.is_empty()
    }
}

/// Attachments a message may carry.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest emoji (reaction) in bytes.
pub const MAX_EMOJI_BYTES: usize = 32;
/// Different reactions a message may carry.
pub const MAX_REACTIONS: usize = 32;

/// The names `text` mentions with `@name` (lowercased, in order, each once): an `@` at the start
/// or after a character that is not a letter, digit or one of `._-`, followed by a username
/// (trailing `.`, `-` and `_` are punctuation, not part of the name). Which of them are
/// participants is for the caller to decide.
pub fn mentioned(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        if c == '@' && !prev.is_some_and(|p| p.is_alphanumeric() || matches!(p, '.' | '_' | '-' | '@')) {
            let rest = &text[i + 1..];
            let end = rest.find(|c: char| !name_char(c)).unwrap_or(rest.len());
            let name = rest[..end].trim_end_matches(['.', '-', '_']).to_ascii_lowercase();
            if !name.is_empty() && name.len() <= 64 && !out.contains(&name) {
                out.push(name);
            }
        }
        prev = Some(c);
    }
    out
}

/// Checks a reaction: 1 to [`MAX_EMOJI_BYTES`] bytes, no whitespace or control characters, and
/// not plain ASCII (an emoji, not a word).
pub fn check_emoji(emoji: &str) -> Result<(), &'static str> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err("a reaction is 1 to 32 bytes");
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) || emoji.is_ascii() {
        return Err("a reaction is an emoji");
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_names_after_an_at_sign() {
        assert_eq!(mentioned("hi @Bob and @carol."), vec!["bob", "carol"]);
        assert_eq!(mentioned("@ann @ann, mail ann@example.org"), vec!["ann"]);
        assert_eq!(mentioned("(@dave_) @ @-"), vec!["dave"]);
        assert!(mentioned("no one").is_empty());
        assert_eq!(mentioned("«@émile» @j.doe"), vec!["j.doe"]);
    }

    #[test]
    fn reactions_are_short_emoji() {
        assert!(check_emoji("👍").is_ok());
        assert!(check_emoji("👩‍💻").is_ok());
        assert!(check_emoji("").is_err());
        assert!(check_emoji("ok").is_err());
        assert!(check_emoji("👍 👍").is_err());
        assert!(check_emoji(&"👍".repeat(9)).is_err());
    }
}

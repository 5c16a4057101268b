//! Conversations, messages and inbox entries.

use std::collections::BTreeMap;

use halo_core::conversation::{Conversation, Format, Kind, MessageId, Participant};
use halo_core::message::{Attachment, Body, Extras, Message};
use halo_core::{Millis, Username};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};
use crate::im::InboxEntry;

stored!(
    Conversation => ConversationV1,
    Message => MessageV1,
    InboxEntry => InboxEntryV1,
    Attachment => AttachmentV1,
    crate::attachments::Upload => UploadV1,
);

/// `attachments`: an uploaded file's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UploadV1 {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) owner: Username,
    pub(crate) at: Millis,
}

impl From<&crate::attachments::Upload> for UploadV1 {
    fn from(u: &crate::attachments::Upload) -> Self {
        let crate::attachments::Upload { attachment, owner, at } = u;
        let Attachment { id, name, mime, size, sha256 } = attachment.clone();
        Self { id, name, mime, size, sha256, owner: owner.clone(), at: *at }
    }
}

impl From<UploadV1> for crate::attachments::Upload {
    fn from(u: UploadV1) -> Self {
        let UploadV1 { id, name, mime, size, sha256, owner, at } = u;
        Self { attachment: Attachment { id, name, mime, size, sha256 }, owner, at }
    }
}

unit_enum! {
    /// Direct or group.
    KindV1 <=> Kind, "snake_case" { Direct, Group }
}

unit_enum! {
    /// How a text is shown.
    FormatV1 <=> Format, "snake_case" { Plain, Markdown }
}

/// A participant's window on a conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ParticipantV1 {
    pub(crate) joined_at: Millis,
    pub(crate) visible_from: MessageId,
    pub(crate) visible_until: Option<MessageId>,
}

/// `conversations`: a conversation and its participants.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ConversationV1 {
    pub(crate) id: u64,
    pub(crate) kind: KindV1,
    pub(crate) participants: BTreeMap<Username, ParticipantV1>,
    pub(crate) created_by: Username,
    pub(crate) created_at: Millis,
    pub(crate) closed: bool,
}

impl From<&Conversation> for ConversationV1 {
    fn from(c: &Conversation) -> Self {
        let Conversation { id, kind, participants, created_by, created_at, closed } = c;
        Self {
            id: *id,
            kind: kind.into(),
            participants: participants
                .iter()
                .map(|(u, p)| {
                    let Participant { joined_at, visible_from, visible_until } = *p;
                    (u.clone(), ParticipantV1 { joined_at, visible_from, visible_until })
                })
                .collect(),
            created_by: created_by.clone(),
            created_at: *created_at,
            closed: *closed,
        }
    }
}

impl From<ConversationV1> for Conversation {
    fn from(c: ConversationV1) -> Self {
        let ConversationV1 { id, kind, participants, created_by, created_at, closed } = c;
        Self {
            id,
            kind: kind.into(),
            participants: participants
                .into_iter()
                .map(|(u, p)| {
                    let ParticipantV1 { joined_at, visible_from, visible_until } = p;
                    (u, Participant { joined_at, visible_from, visible_until })
                })
                .collect(),
            created_by,
            created_at,
            closed,
        }
    }
}

/// What a message says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum BodyV1 {
    /// Text.
    Text { text: String, format: FormatV1 },
    /// A member joined.
    Joined { user: Username },
    /// A member left.
    Left { user: Username },
}

/// `messages`: one message of a conversation or room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageV1 {
    pub(crate) id: MessageId,
    pub(crate) at: Millis,
    pub(crate) from: Username,
    pub(crate) body: BodyV1,
    pub(crate) key: Option<String>,
    /// Added after the first release: absent when empty, so older messages read the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply_to: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) mentions: Vec<Username>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attachments: Vec<AttachmentV1>,
}

/// A file attached to a message (also in archive records).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AttachmentV1 {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mime: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

impl From<&Attachment> for AttachmentV1 {
    fn from(a: &Attachment) -> Self {
        let Attachment { id, name, mime, size, sha256 } = a;
        Self { id: id.clone(), name: name.clone(), mime: mime.clone(), size: *size, sha256: sha256.clone() }
    }
}

impl From<AttachmentV1> for Attachment {
    fn from(a: AttachmentV1) -> Self {
        let AttachmentV1 { id, name, mime, size, sha256 } = a;
        Self { id, name, mime, size, sha256 }
    }
}

impl From<&Body> for BodyV1 {
    fn from(b: &Body) -> Self {
        match b {
            Body::Text { text, format } => Self::Text { text: text.clone(), format: format.into() },
            Body::Joined { user } => Self::Joined { user: user.clone() },
            Body::Left { user } => Self::Left { user: user.clone() },
        }
    }
}

impl From<BodyV1> for Body {
    fn from(b: BodyV1) -> Self {
        match b {
            BodyV1::Text { text, format } => Self::Text { text, format: format.into() },
            BodyV1::Joined { user } => Self::Joined { user },
            BodyV1::Left { user } => Self::Left { user },
        }
    }
}

impl From<&Message> for MessageV1 {
    fn from(m: &Message) -> Self {
        let Message { id, at, from, body, key, extras } = m;
        let Extras { reply_to, mentions, attachments } = extras;
        Self {
            id: *id,
            at: *at,
            from: from.clone(),
            body: body.into(),
            key: key.clone(),
            reply_to: *reply_to,
            mentions: mentions.clone(),
            attachments: attachments.iter().map(Into::into).collect(),
        }
    }
}

impl From<MessageV1> for Message {
    fn from(m: MessageV1) -> Self {
        let MessageV1 { id, at, from, body, key, reply_to, mentions, attachments } = m;
        let attachments = attachments.into_iter().map(Into::into).collect();
        Self { id, at, from, body: body.into(), key, extras: Extras { reply_to, mentions, attachments } }
    }
}

/// `inbox`: a user's view of one conversation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct InboxEntryV1 {
    pub(crate) last: MessageId,
    pub(crate) last_at: u64,
    pub(crate) unread: u32,
    pub(crate) read_upto: MessageId,
    pub(crate) hidden_upto: MessageId,
}

impl From<&InboxEntry> for InboxEntryV1 {
    fn from(e: &InboxEntry) -> Self {
        let InboxEntry { last, last_at, unread, read_upto, hidden_upto } = *e;
        Self { last, last_at, unread, read_upto, hidden_upto }
    }
}

impl From<InboxEntryV1> for InboxEntry {
    fn from(e: InboxEntryV1) -> Self {
        let InboxEntryV1 { last, last_at, unread, read_upto, hidden_upto } = e;
        Self { last, last_at, unread, read_upto, hidden_upto }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::golden::pin;

    fn name(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    #[test]
    fn conversation_v1_is_pinned() {
        let mut group = Conversation::new(7, &name("alice"), &[name("bob"), name("carol")], 1_000, 8).expect("conv");
        group
            .participants
            .insert(name("dave"), Participant { joined_at: 2_000, visible_from: 9, visible_until: Some(12) });
        group.closed = true;
        let direct =
            Conversation::new(3, &name("alice"), &[Username::parse_address("bob@b.example").expect("valid")], 5, 4)
                .expect("conv");
        pin("conversations", include_str!("golden/conversation_v1.hex"), &[group, direct]);
    }

    #[test]
    fn message_v1_is_pinned() {
        let text = Message {
            id: 42,
            at: 1_700_000_000_000,
            from: name("alice"),
            body: Body::Text { text: "hello *there*".into(), format: Format::Markdown },
            key: Some("k-1".into()),
            extras: Extras::default(),
        };
        let plain = Message {
            id: 43,
            at: 1,
            from: name("bob"),
            body: Body::Text { text: "hi".into(), format: Format::Plain },
            key: None,
            extras: Extras::default(),
        };
        let joined = Message {
            id: 44,
            at: 2,
            from: name("alice"),
            body: Body::Joined { user: name("carol") },
            key: None,
            extras: Extras::default(),
        };
        let left = Message {
            id: 45,
            at: 3,
            from: name("carol"),
            body: Body::Left { user: name("carol") },
            key: None,
            extras: Extras::default(),
        };
        pin("messages", include_str!("golden/message_v1.hex"), &[text, plain, joined, left]);
    }

    #[test]
    fn message_v1_with_extras_is_pinned() {
        let reply = Message {
            id: 46,
            at: 4,
            from: name("bob"),
            body: Body::Text { text: "@alice see this".into(), format: Format::Plain },
            key: None,
            extras: Extras {
                reply_to: Some(42),
                mentions: vec![name("alice")],
                attachments: vec![Attachment {
                    id: "0f1e".into(),
                    name: "plan.pdf".into(),
                    mime: "application/pdf".into(),
                    size: 1234,
                    sha256: "ab12".into(),
                }],
            },
        };
        pin("messages", include_str!("golden/message_v1_extras.hex"), &[reply]);
    }

    #[test]
    fn upload_v1_is_pinned() {
        let u = crate::attachments::Upload {
            attachment: Attachment {
                id: "0123456789abcdef0123456789abcdef".into(),
                name: "cat.png".into(),
                mime: "image/png".into(),
                size: 2048,
                sha256: "cd34".into(),
            },
            owner: name("alice"),
            at: 1_700_000_000_000,
        };
        pin("attachments", include_str!("golden/upload_v1.hex"), &[u]);
    }

    #[test]
    fn inbox_entry_v1_is_pinned() {
        let e = InboxEntry { last: 12, last_at: 1_700_000_000_000, unread: 3, read_upto: 9, hidden_upto: 2 };
        pin("inbox", include_str!("golden/inbox_entry_v1.hex"), &[e, InboxEntry::default()]);
    }
}

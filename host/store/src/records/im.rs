//! Conversations, messages and inbox entries.

use std::collections::BTreeMap;

use halo_core::conversation::{Conversation, Format, Kind, MessageId, Participant};
use halo_core::message::{Body, Message};
use halo_core::{Millis, Username};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};
use crate::im::InboxEntry;

stored!(Conversation => ConversationV1, Message => MessageV1, InboxEntry => InboxEntryV1);

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
        let Message { id, at, from, body, key } = m;
        Self { id: *id, at: *at, from: from.clone(), body: body.into(), key: key.clone() }
    }
}

impl From<MessageV1> for Message {
    fn from(m: MessageV1) -> Self {
        let MessageV1 { id, at, from, body, key } = m;
        Self { id, at, from, body: body.into(), key }
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
        };
        let plain = Message {
            id: 43,
            at: 1,
            from: name("bob"),
            body: Body::Text { text: "hi".into(), format: Format::Plain },
            key: None,
        };
        let joined =
            Message { id: 44, at: 2, from: name("alice"), body: Body::Joined { user: name("carol") }, key: None };
        let left = Message { id: 45, at: 3, from: name("carol"), body: Body::Left { user: name("carol") }, key: None };
        pin("messages", include_str!("golden/message_v1.hex"), &[text, plain, joined, left]);
    }

    #[test]
    fn inbox_entry_v1_is_pinned() {
        let e = InboxEntry { last: 12, last_at: 1_700_000_000_000, unread: 3, read_upto: 9, hidden_upto: 2 };
        pin("inbox", include_str!("golden/inbox_entry_v1.hex"), &[e, InboxEntry::default()]);
    }
}

//! How conversations, messages and rooms are shown to clients, in REST answers and stream
//! events alike.

use halo_core::conversation::{Conversation, Format, Kind};
use halo_core::message::{Body, Message};
use halo_core::room::{Privacy, Room, RoomRole};
use halo_store::{Changes, InboxEntry, Thread};
use serde::Serialize;
use utoipa::ToSchema;

/// A message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MessageView {
    /// Server-assigned id; ids increase with arrival.
    pub id: u64,
    /// Its conversation (absent for room posts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversation: Option<u64>,
    /// Its room (absent for conversation messages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<u64>,
    /// Server time, ms since the Unix epoch.
    pub at: u64,
    /// Sender.
    pub from: String,
    /// `text`, or `joined` / `left` for membership changes.
    pub kind: &'static str,
    /// The text (kind `text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `plain` or `markdown` (kind `text`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub format: Option<Format>,
    /// Who joined or left (kinds `joined`, `left`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The sender's idempotency key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A remote server refused it (`to`, `code`, `reason`): it reached no one there.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub failed: Option<halo_core::federation::DeliveryFailure>,
    /// The message (of the same conversation or room) this one replies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// What it replies to, quoted: absent when the quoted message is gone or not everyone
    /// shown this message may read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quote: Option<QuoteView>,
    /// Participants or members mentioned with `@name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<String>,
    /// Whether the caller is mentioned (only in answers for one user: history, search,
    /// offline delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mentions_me: Option<bool>,
    /// Attached files (download: `GET /api/v1/attachments/{id}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView>,
    /// When the sender last edited it (the text is the latest version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<u64>,
    /// When the sender deleted it: a tombstone, without text, attachments or reactions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<u64>,
    /// Reactions, each emoji with who reacted, in order of arrival.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionView>,
}

/// A quoted message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct QuoteView {
    /// Its id.
    pub id: u64,
    /// Its sender.
    pub from: String,
    /// Its text, cut to 200 characters (absent when deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A file attached to a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AttachmentView {
    /// Its id, for `GET /api/v1/attachments/{id}`.
    pub id: String,
    /// File name.
    pub name: String,
    /// Media type, sniffed from the content.
    pub mime: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

impl From<&halo_core::message::Attachment> for AttachmentView {
    fn from(a: &halo_core::message::Attachment) -> Self {
        Self { id: a.id.clone(), name: a.name.clone(), mime: a.mime.clone(), size: a.size, sha256: a.sha256.clone() }
    }
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ReactionView {
    /// The emoji.
    pub emoji: String,
    /// How many reacted with it.
    pub count: usize,
    /// Who, in order of arrival.
    pub users: Vec<String>,
}

impl MessageView {
    /// The view of `m` in `thread`.
    pub fn new(thread: Thread, m: &Message) -> Self {
        let (conversation, room) = match thread {
            Thread::Conversation(c) => (Some(c), None),
            Thread::Room(r) => (None, Some(r)),
        };
        let (kind, text, format, user) = match &m.body {
            Body::Text { text, format } => ("text", Some(text.clone()), Some(*format), None),
            Body::Joined { user } => ("joined", None, None, Some(user.to_string())),
            Body::Left { user } => ("left", None, None, Some(user.to_string())),
        };
        Self {
            id: m.id,
            conversation,
            room,
            at: m.at,
            from: m.from.to_string(),
            kind,
            text,
            format,
            user,
            key: m.key.clone(),
            reply_to: m.extras.reply_to,
            quote: None,
            mentions: m.extras.mentions.iter().map(|u| u.to_string()).collect(),
            mentions_me: None,
            attachments: m.extras.attachments.iter().map(Into::into).collect(),
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
            failed: None,
        }
    }

    /// This view with the message's edits, deletion and reactions applied.
    pub fn changed(mut self, changes: Option<Changes>) -> Self {
        let Some(c) = changes else { return self };
        if let Some(at) = c.deleted {
            self.deleted_at = Some(at);
            self.text = None;
            self.format = None;
            self.attachments.clear();
            self.mentions.clear();
            self.quote = None;
            self.reply_to = None;
            return self;
        }
        if let Some((text, format, at)) = c.edited {
            self.text = Some(text);
            self.format = Some(format);
            self.edited_at = Some(at);
        }
        self.reactions = c
            .reactions
            .into_iter()
            .map(|(emoji, users)| ReactionView {
                emoji,
                count: users.len(),
                users: users.iter().map(|u| u.to_string()).collect(),
            })
            .collect();
        self
    }

    /// Sets [`MessageView::mentions_me`] for `viewer`.
    pub fn for_viewer(mut self, viewer: &halo_core::Username) -> Self {
        if self.kind == "text" && self.deleted_at.is_none() {
            self.mentions_me = Some(self.mentions.iter().any(|m| m == viewer.as_str()));
        }
        self
    }
}

/// A conversation as one of its participants sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationView {
    /// Its id.
    pub id: u64,
    /// `direct` or `group`.
    #[schema(value_type = String)]
    pub kind: Kind,
    /// Present participants.
    pub participants: Vec<String>,
    /// Whether the viewer is still a participant.
    pub active: bool,
    /// Everyone left.
    pub closed: bool,
    /// Creation time, ms.
    pub created_at: u64,
    /// The newest message the viewer may read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView>,
    /// Text messages from others the viewer has not read.
    pub unread: u32,
    /// The viewer's read marker.
    pub read_upto: u64,
    /// The other present participants' read markers, so read receipts survive a reload (only in
    /// `GET /api/v1/conversations/{id}`; the `im.read` frames carry their changes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_by: Option<std::collections::BTreeMap<String, u64>>,
    /// The viewer muted it: their clients do not notify for its messages (mentions excepted).
    pub muted: bool,
}

impl ConversationView {
    /// The view of `c` for a viewer with inbox `entry` and newest readable message `last`.
    pub fn new(
        c: &Conversation,
        viewer: &halo_core::Username,
        entry: Option<&InboxEntry>,
        last: Option<&Message>,
    ) -> Self {
        let entry = entry.cloned().unwrap_or_default();
        Self {
            id: c.id,
            kind: c.kind,
            participants: c.members().map(|u| u.to_string()).collect(),
            active: c.is_member(viewer),
            closed: c.closed,
            created_at: c.created_at,
            last_message: last.map(|m| MessageView::new(Thread::Conversation(c.id), m)),
            unread: entry.unread,
            read_upto: entry.read_upto,
            read_by: None,
            muted: false,
        }
    }
}

/// A room member.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MemberView {
    /// Username.
    pub username: String,
    /// `manager` or `member`.
    #[schema(value_type = String)]
    pub role: RoomRole,
}

/// A room as one user sees it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RoomView {
    /// Its id.
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Current topic.
    pub topic: String,
    /// What it is for.
    pub description: String,
    /// `open`, `closed` or `secret`.
    #[schema(value_type = String)]
    pub privacy: Privacy,
    /// Members (shown to those who may read the room).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<MemberView>>,
    /// The viewer's role, if a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub my_role: Option<RoomRole>,
    /// Whether the viewer's devices get its posts pushed.
    pub following: bool,
    /// Posts the viewer has not read (members only).
    pub unread: u32,
    /// The viewer muted it: their clients do not notify for its posts (mentions excepted).
    pub muted: bool,
    /// Creator.
    pub created_by: String,
    /// Creation time, ms.
    pub created_at: u64,
}

impl RoomView {
    /// The view of `room` for `viewer`, with their unread count and follow flag.
    pub fn new(room: &Room, viewer: &halo_core::Username, unread: u32, following: bool) -> Self {
        let members = room
            .can_read(viewer)
            .then(|| room.members.iter().map(|(u, r)| MemberView { username: u.to_string(), role: *r }).collect());
        Self {
            id: room.id,
            name: room.name.clone(),
            topic: room.topic.clone(),
            description: room.description.clone(),
            privacy: room.privacy,
            members,
            my_role: room.members.get(viewer).copied(),
            following,
            unread,
            muted: false,
            created_by: room.created_by.to_string(),
            created_at: room.created_at,
        }
    }
}

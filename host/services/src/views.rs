//! How conversations, messages and rooms are shown to clients, in REST answers and stream
//! events alike.

use halo_core::conversation::{Conversation, Format, Kind};
use halo_core::message::{Body, Message};
use halo_core::room::{Privacy, Room, RoomRole};
use halo_store::{InboxEntry, Thread};
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
            failed: None,
        }
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
            created_by: room.created_by.to_string(),
            created_at: room.created_at,
        }
    }
}

//! The IM log's facts and the state they build: conversations, inboxes, most-recent order,
//! delivery queues, idempotency keys, rooms and each thread's message index, as plain Rust.
//!
//! Every acknowledged IM write is one [`Fact`] appended to an ordered log (`halo-store`);
//! [`ImState::apply`] folds facts into the state in log order, so the state is a projection of
//! the log: rebuilt at start from a snapshot plus the log's tail, and never written per message.
//! No I/O here: message bodies stay in the log, the state only says where (`seq`) each is.

mod state;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

use crate::Username;
use crate::archive::Record;
use crate::conversation::Format;
use crate::conversation::{Conversation, ConversationId, MessageId};
use crate::federation::Item;
use crate::message::Message;
use crate::room::{Room, RoomId};

pub use state::{Amend, ImState, Indexed, UserIm};

/// Where messages live: a conversation or a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Thread {
    /// A conversation.
    Conversation(u64),
    /// A persistent chat room.
    Room(u64),
}

/// A user's view of one conversation: last message, unread count, read marker, deletion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InboxEntry {
    /// Newest message id (0: none yet).
    pub last: MessageId,
    /// Its time.
    pub last_at: u64,
    /// Text messages from others after `read_upto`.
    pub unread: u32,
    /// The user has read up to this message.
    pub read_upto: MessageId,
    /// The user deleted the conversation from their history up to this message.
    pub hidden_upto: MessageId,
}

/// A member's state in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomMark {
    /// Read up to this post.
    pub read_upto: MessageId,
    /// Posts are pushed to the member's devices.
    pub follow: bool,
}

/// An entry taken off a user's delivery queue by an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The message.
    pub id: MessageId,
    /// Its thread.
    pub thread: Thread,
    /// It was pushed live when stored (the sender got its delivery receipt then).
    pub live: bool,
}

/// An item for a remote domain, carried by the message it belongs to: a message is queued for
/// federation exactly when it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The domain whose queue takes it.
    pub domain: String,
    /// The item.
    pub item: Item,
}

/// A message stored in a thread, with everything its one log entry carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Where.
    pub thread: Thread,
    /// The message.
    pub message: Message,
    /// The conversation's new record, for a join or leave (membership lands with its message).
    pub conversation: Option<Conversation>,
    /// Local recipients without a device online: queued for delivery.
    pub offline: Vec<Username>,
    /// Local recipients online: pushed at once, queued until a device acknowledges it.
    pub live: Vec<Username>,
    /// Its compliance archive record, when archived (the archive follower stores it).
    pub archived: Option<Record>,
    /// Its items for remote participants' domains (the federation follower queues them).
    pub outbound: Vec<Outbound>,
}

/// A change to a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The sender replaced its text.
    Edited {
        /// The new text.
        text: String,
        /// Its format.
        format: Format,
    },
    /// The sender deleted it (a tombstone stays in the thread).
    Deleted,
    /// A user added or took back a reaction.
    Reacted {
        /// The emoji.
        emoji: String,
        /// Added (or removed).
        add: bool,
    },
}

/// A change to message `target` of `thread`, with its own id (for the archive) and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amended {
    /// Where the message is.
    pub thread: Thread,
    /// The message changed.
    pub target: MessageId,
    /// This change's id (reserved like a message id; the archive record's id).
    pub id: MessageId,
    /// Who changed it.
    pub by: Username,
    /// When.
    pub at: crate::Millis,
    /// What changed.
    pub change: Change,
    /// Its compliance archive record, when archived.
    pub archived: Option<Record>,
}

/// One acknowledged IM write: what one log entry says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A conversation was started (with its archive record, when archived).
    Started {
        /// The conversation.
        conversation: Conversation,
        /// Its archive record.
        archived: Option<Record>,
    },
    /// A message (text or membership event) was stored.
    Posted(Box<Posted>),
    /// `user` read `conversation` up to `upto`.
    Read {
        /// Reader.
        user: Username,
        /// Conversation.
        conversation: ConversationId,
        /// Up to this message (clamped to the last one).
        upto: MessageId,
    },
    /// `user` deleted `conversation` from their history (up to its last message).
    Hidden {
        /// Who.
        user: Username,
        /// Which.
        conversation: ConversationId,
    },
    /// A device of `user` acknowledged its queued messages up to `upto`.
    Acked {
        /// Whose queue.
        user: Username,
        /// Up to this id.
        upto: MessageId,
    },
    /// A room was created or changed; `joined` get a mark (following), `left` lose theirs.
    RoomPut {
        /// The room's new record.
        room: Room,
        /// New members.
        joined: Vec<Username>,
        /// Members gone.
        left: Vec<Username>,
    },
    /// A member's mark in a room was set (read marker, follow flag).
    RoomMarked {
        /// Member.
        user: Username,
        /// Room.
        room: RoomId,
        /// Its new mark.
        mark: RoomMark,
    },
    /// A message was edited, deleted or reacted to.
    Amended(Box<Amended>),
    /// `user` muted (or unmuted) a conversation or room: their clients do not notify for it.
    Muted {
        /// Who.
        user: Username,
        /// Which conversation or room.
        thread: Thread,
        /// Muted or not.
        muted: bool,
    },
    /// Migration from the old layout: a user's inbox entry as it was stored.
    InboxImported {
        /// Whose.
        user: Username,
        /// Conversation.
        conversation: ConversationId,
        /// The entry.
        entry: InboxEntry,
    },
    /// Migration from the old layout: a delivery-queue entry as it was stored.
    QueueImported {
        /// Whose queue.
        user: Username,
        /// The entry.
        entry: Acked,
    },
    /// Items for remote domains that no message carries (presence, subscriptions, refusals),
    /// made on a pool member: through the log, every node queues them at the same place, and
    /// the node carrying the queues sends them whichever node made them. Changes nothing in
    /// the projection.
    Federated {
        /// The items, in order.
        items: Vec<Outbound>,
    },
}

impl Fact {
    /// The archive record this fact carries, if any.
    pub fn archived(&self) -> Option<&Record> {
        match self {
            Fact::Started { archived, .. } => archived.as_ref(),
            Fact::Posted(p) => p.archived.as_ref(),
            Fact::Amended(a) => a.archived.as_ref(),
            _ => None,
        }
    }
}

/// The 64-bit FNV-1a hash of `user`'s idempotency `key` (stable across releases: snapshots
/// keep it). The state keeps hashes, not keys; a caller finding a hit compares the stored
/// message's sender and key.
pub fn key_hash(user: &Username, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.as_str().as_bytes().iter().chain([0u8].iter()).chain(key.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

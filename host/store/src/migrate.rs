//! Migration of a data directory from schema 1 (IM state in its own trees, written per
//! message) to schema 2 (the IM log plus its projection).
//!
//! Runs once on open, before anything else reads the IM state: the old trees are read and
//! written into the `log` tree as facts (rooms, conversations, every message in id order,
//! members' room marks, inbox entries and delivery queues as they were), the followers'
//! cursors are set past what the old layout had already delivered (the archive tree and the
//! federation queues stay as they are), then the schema version is set to 2 and flushed, and
//! only then are the old trees dropped. A crash before the version is set leaves schema 1 and
//! the old trees: the next start clears the half-written log and migrates again; a crash
//! after it leaves old trees behind, dropped at the next start.

use halo_core::conversation::Conversation;
use halo_core::im::{Acked, Fact, InboxEntry, Posted, RoomMark};
use halo_core::message::Message;
use halo_core::room::Room;

use crate::codec::{decode, encode};
use crate::keys::{split_user_key, thread_from_key, u64_at};
use crate::log::LOG;
use crate::{SledResult, StoreError};

/// The trees of the schema-1 IM layout (dropped once migrated).
pub(crate) const OLD_TREES: [&str; 11] = [
    "conversations",
    "direct",
    "messages",
    "journal",
    "inbox",
    "recent",
    "offline",
    "idempotency",
    "rooms",
    "room_names",
    "room_marks",
];

/// Log entries written per batch.
const BATCH: usize = 10_000;

struct Out {
    tree: sled::Tree,
    batch: sled::Batch,
    pending: usize,
    seq: u64,
}

impl Out {
    fn push(&mut self, fact: &Fact) -> Result<u64, StoreError> {
        self.seq += 1;
        self.batch.insert(&self.seq.to_be_bytes(), encode(LOG, fact)?);
        self.pending += 1;
        if self.pending >= BATCH {
            self.write()?;
        }
        Ok(self.seq)
    }

    fn write(&mut self) -> Result<(), StoreError> {
        self.tree.apply_batch(std::mem::take(&mut self.batch)).db()?;
        self.pending = 0;
        Ok(())
    }
}

/// Whether `db` holds IM data in the schema-1 layout.
pub(crate) fn has_old_trees(db: &sled::Db) -> Result<bool, StoreError> {
    let names = db.tree_names();
    Ok(OLD_TREES.iter().any(|t| names.iter().any(|n| n.as_ref() == t.as_bytes())))
}

/// Drops the schema-1 trees.
pub(crate) fn drop_old_trees(db: &sled::Db) -> Result<(), StoreError> {
    for t in OLD_TREES {
        db.drop_tree(t).db()?;
    }
    Ok(())
}

/// Writes the schema-1 IM state of `db` into its log; returns the log's last sequence number
/// and the one of the last message the search index had seen (its old cursor, a message id).
pub(crate) fn run(db: &sled::Db, search_cursor: Option<u64>) -> Result<(u64, Option<u64>), StoreError> {
    let tree = db.open_tree(LOG).db()?;
    tree.clear().db()?;
    let mut out = Out { tree, batch: sled::Batch::default(), pending: 0, seq: 0 };
    let open = |name: &str| db.open_tree(name).db();

    for kv in open("rooms")?.iter() {
        let room: Room = decode("rooms", &kv.db()?.1)?;
        out.push(&Fact::RoomPut { room, joined: Vec::new(), left: Vec::new() })?;
    }
    for kv in open("conversations")?.iter() {
        let conversation: Conversation = decode("conversations", &kv.db()?.1)?;
        out.push(&Fact::Started { conversation, archived: None })?;
    }
    let messages = open("messages")?;
    let mut search_seq = search_cursor.map(|_| 0);
    let mut message_key = [0u8; 17];
    for kv in open("journal")?.iter() {
        let (k, v) = kv.db()?;
        let id = u64_at(&k, 0);
        let Some(thread) = thread_from_key(&v) else { continue };
        message_key[..9].copy_from_slice(&v[..9]);
        message_key[9..].copy_from_slice(&id.to_be_bytes());
        let Some(bytes) = messages.get(message_key).db()? else { continue };
        let message: Message = decode("messages", &bytes)?;
        let posted = Posted {
            thread,
            message,
            conversation: None,
            offline: Vec::new(),
            live: Vec::new(),
            archived: None,
            outbound: Vec::new(),
        };
        let seq = out.push(&Fact::Posted(Box::new(posted)))?;
        if let (Some(s), Some(c)) = (search_seq.as_mut(), search_cursor)
            && id <= c
        {
            *s = seq;
        }
    }
    for kv in open("room_marks")?.iter() {
        let (k, v) = kv.db()?;
        let Some((user, rest)) = split_user_key(&k) else { continue };
        let mark: RoomMark = decode("room_marks", &v)?;
        out.push(&Fact::RoomMarked { user, room: u64_at(rest, 0), mark })?;
    }
    for kv in open("inbox")?.iter() {
        let (k, v) = kv.db()?;
        let Some((user, rest)) = split_user_key(&k) else { continue };
        let entry: InboxEntry = decode("inbox", &v)?;
        out.push(&Fact::InboxImported { user, conversation: u64_at(rest, 0), entry })?;
    }
    for kv in open("offline")?.iter() {
        let (k, v) = kv.db()?;
        let Some((user, rest)) = split_user_key(&k) else { continue };
        let Some(thread) = thread_from_key(&v) else { continue };
        let entry = Acked { id: u64_at(rest, 0), thread, live: v.get(9) == Some(&b'l') };
        out.push(&Fact::QueueImported { user, entry })?;
    }
    out.write()?;
    Ok((out.seq, search_seq))
}

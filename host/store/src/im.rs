//! Conversations and their messages, over the IM log.
//!
//! Every write here is one [`Fact`] appended to the log ([`SledLog`]): a message with
//! everything it touches (inbox entries, delivery queues, idempotency key, archive record,
//! federation items) is one entry, written in a group commit and acknowledged once durable.
//! Reads come from the projection ([`ImState`], in memory): conversations, inbox entries,
//! most-recent order, delivery queues, idempotency keys and each thread's message index; a
//! message's body is read from its log entry.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use halo_core::Username;
use halo_core::archive::Record;
use halo_core::conversation::Format;
use halo_core::conversation::{Conversation, ConversationId, MessageId};
use halo_core::im::{Amended, Change, Fact, ImState, Posted, Thread};
use halo_core::message::{Body, Message};

use crate::log::{ArchivePending, EventLog, Log, SledLog};
use crate::{SledResult, StoreError};

pub use halo_core::im::{Acked, InboxEntry, Outbound};

/// Typed access to conversations.
#[derive(Clone)]
pub struct Im {
    ids: Ids,
    log: Log,
    state: Arc<RwLock<ImState>>,
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
    pub(crate) pending: ArchivePending,
}

/// What happened to a message since it was stored, as readers show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Its latest text, format and when it was edited, if edited.
    pub edited: Option<(String, Format, halo_core::Millis)>,
    /// When it was deleted, if it was.
    pub deleted: Option<halo_core::Millis>,
    /// Reactions: emoji and who, in order of arrival.
    pub reactions: Vec<(String, Vec<Username>)>,
}

/// An id handed out by [`Im::reserve`] and not yet written or abandoned. Dropping it (after
/// the write, or on an error) releases it.
#[derive(Debug)]
pub struct Reservation {
    id: u64,
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

impl Reservation {
    /// The id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.id);
    }
}

pub(crate) fn tx_result<T>(r: Result<T, sled::transaction::TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => crate::from_sled(e),
    })
}

/// Where [`Im::reserve`] takes ids from.
#[derive(Clone)]
enum Ids {
    /// sled's id generator (one node).
    Local(crate::flush::Db),
    /// A pool member: `(n << SLOT_BITS) | slot`, with `n` above every id this node has seen
    /// (its own and every one folded from the pool's log), so ids are unique in the pool and
    /// grow with the log, and two nodes never hand out the same one.
    Pool { slot: u64, high: Arc<std::sync::atomic::AtomicU64> },
}

/// Low bits of a pool id holding the node's slot (up to 256 nodes per pool).
pub(crate) const SLOT_BITS: u32 = 8;

impl Im {
    /// Opens a pool member's IM: the pool's stream (see `pool/log.rs`), folded into the
    /// projection from the snapshot in `dir` plus this node's local copy and the stream's tail.
    pub(crate) async fn open_pool(
        cluster: &halo_cluster::Cluster,
        db: &crate::flush::Db,
        dir: &Path,
        slot: u64,
        in_flight: Arc<Mutex<BTreeSet<u64>>>,
        pending: ArchivePending,
    ) -> Result<Self, StoreError> {
        let state = crate::snapshot::load(dir).unwrap_or_default();
        let high = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (log, state) = crate::pool::JsLog::open(cluster, db, state, pending.clone(), high.clone()).await?;
        crate::snapshot::spawn(dir, Arc::downgrade(&state));
        Ok(Self { ids: Ids::Pool { slot, high }, log: Log::new(Arc::new(log)), state, in_flight, pending })
    }

    /// Opens the log in `db`, rebuilding the projection from the snapshot in `dir` (if any)
    /// plus the log's tail, and starts the log writer and the snapshot thread.
    pub(crate) fn open(
        db: &crate::flush::Db,
        dir: Option<&Path>,
        in_flight: Arc<Mutex<BTreeSet<u64>>>,
        pending: ArchivePending,
    ) -> Result<Self, StoreError> {
        let state = dir.and_then(crate::snapshot::load).unwrap_or_default();
        let (log, state) = SledLog::open(db, state, pending.clone())?;
        let log = Log::new(Arc::new(log));
        if let Some(dir) = dir {
            crate::snapshot::spawn(dir, Arc::downgrade(&state));
        }
        Ok(Self { ids: Ids::Local(db.clone()), log, state, in_flight, pending })
    }

    pub(crate) fn projection(&self) -> &RwLock<ImState> {
        &self.state
    }

    pub(crate) fn state(&self) -> RwLockReadGuard<'_, ImState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The log, for followers (search, archive, federation).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends `fact`. A message whose sender's idempotency key produced another message first
    /// (two nodes of a pool took the same key at once; the fold keeps the first in the log) is
    /// answered [`StoreError::Exists`]: it is not kept, and a retry finds the first.
    pub(crate) async fn write(&self, fact: Fact) -> Result<u64, StoreError> {
        let keyed = match &fact {
            Fact::Posted(p) => p.message.key.clone().map(|k| (p.thread, p.message.id, p.message.from.clone(), k)),
            _ => None,
        };
        let seq = self.log.append(fact).await?;
        if let Some((thread, id, from, key)) = keyed
            && self.state().by_key(&from, &key).is_some_and(|first| first != (thread, id))
        {
            return Err(StoreError::Exists(format!("a message with idempotency key {key:?}")));
        }
        Ok(seq)
    }

    /// Appends `items` for remote domains that no message carries (a pool member's presence,
    /// subscriptions, refusals) to the log, in entries of at most
    /// [`crate::MAX_ITEMS_PER_ENTRY`]: every node's federation follower queues them at the same
    /// place. Answers once they are in the log.
    pub async fn federate(&self, items: Vec<Outbound>) -> Result<(), StoreError> {
        let mut items = items;
        while !items.is_empty() {
            let rest = items.split_off(items.len().min(crate::MAX_ITEMS_PER_ENTRY));
            self.write(Fact::Federated { items }).await?;
            items = rest;
        }
        Ok(())
    }

    /// Whether `posted` (an entry of the log, already folded) is kept: not a message whose
    /// sender's idempotency key produced another message first (two nodes of a pool took the
    /// same key at once). What it carries (federation items) counts only if it is kept.
    pub fn kept(&self, posted: &Posted) -> bool {
        let Some(key) = &posted.message.key else { return true };
        self.state().by_key(&posted.message.from, key).is_none_or(|first| first == (posted.thread, posted.message.id))
    }

    /// A fresh id, larger than every id handed out before (also across restarts), held as in
    /// flight until the returned reservation is dropped.
    pub fn reserve(&self) -> Result<Reservation, StoreError> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let id = match &self.ids {
            // sled starts at 0; keep 0 free to mean "none".
            Ids::Local(db) => db.generate_id().db()? + 1,
            Ids::Pool { slot, high } => {
                use std::sync::atomic::Ordering;
                let mut seen = high.load(Ordering::Acquire);
                loop {
                    let id = (((seen >> SLOT_BITS) + 1) << SLOT_BITS) | slot;
                    match high.compare_exchange(seen, id, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => break id,
                        Err(now) => seen = now,
                    }
                }
            }
        };
        in_flight.insert(id);
        Ok(Reservation { id, in_flight: self.in_flight.clone() })
    }

    /// Every id below this one is written (and its archive record stored) or abandoned:
    /// readers of the archive in id order may go up to it without skipping a late record.
    pub fn settled_below(&self) -> u64 {
        let flying = self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).first().copied();
        let pending = self.pending.first();
        flying.into_iter().chain(pending).min().unwrap_or(u64::MAX)
    }

    /// The lowest id this node may still write: its lowest reservation in flight, else (in a
    /// pool) one above every id it handed out or folded. Every record below it that this node
    /// wrote is in the log already: a pool's sink delivery may pass it (see docs/pool.md).
    pub fn unwritten_below(&self) -> u64 {
        let flying = self.reserved_below();
        match &self.ids {
            Ids::Local(_) => flying,
            Ids::Pool { high, .. } => flying.min(high.load(std::sync::atomic::Ordering::Acquire).saturating_add(1)),
        }
    }

    /// Ids reserved and not yet written or abandoned: every message below this one is stored.
    pub fn reserved_below(&self) -> u64 {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).first().copied().unwrap_or(u64::MAX)
    }

    /// The conversation `id`, if any.
    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        Ok(self.state().conversation(id).cloned())
    }

    /// The id of the last 1:1 conversation between `a` and `b`, if any.
    pub fn direct(&self, a: &Username, b: &Username) -> Result<Option<ConversationId>, StoreError> {
        Ok(self.state().direct(a, b))
    }

    /// Stores a new conversation (and, for a 1:1, remembers it for the pair) with its archive
    /// record, if archived, durably.
    pub async fn create(&self, conv: &Conversation, archived: Option<&Record>) -> Result<(), StoreError> {
        self.write(Fact::Started { conversation: conv.clone(), archived: archived.cloned() }).await?;
        Ok(())
    }

    /// Appends `msg` to `conv` (whose record is replaced by `conv` for a join or leave, so
    /// membership changes land with their message), updates every present participant's
    /// inbox, queues it for delivery to the `offline` ones and the `live` ones (online, so it is
    /// pushed at once, but kept until a device acknowledges it: a crash before the push loses
    /// nothing), records the sender's idempotency key, carries the archive record, if
    /// archived, and the `outbound` items for remote participants (the followers store them):
    /// one log entry, durable on return.
    pub async fn append(
        &self,
        conv: &Conversation,
        msg: &Message,
        (offline, live): (&[Username], &[Username]),
        archived: Option<&Record>,
        outbound: &[Outbound],
    ) -> Result<(), StoreError> {
        let conversation = match msg.body {
            Body::Text { .. } => None,
            _ => Some(conv.clone()),
        };
        let posted = Posted {
            thread: Thread::Conversation(conv.id),
            message: msg.clone(),
            conversation,
            offline: offline.to_vec(),
            live: live.to_vec(),
            archived: archived.cloned(),
            outbound: outbound.to_vec(),
        };
        self.write(Fact::Posted(Box::new(posted))).await?;
        Ok(())
    }

    /// The message an idempotency key of `user` produced, if any.
    pub fn by_key(&self, user: &Username, key: &str) -> Result<Option<(Thread, Message)>, StoreError> {
        let Some((thread, id)) = self.state().by_key(user, key) else { return Ok(None) };
        Ok(self.message(thread, id)?.filter(|m| &m.from == user && m.key.as_deref() == Some(key)).map(|m| (thread, m)))
    }

    /// Stores a change to a message (edit, deletion, reaction) with its archive record: one log
    /// entry, durable on return.
    pub async fn amend(&self, amended: Amended) -> Result<(), StoreError> {
        self.write(Fact::Amended(Box::new(amended))).await?;
        Ok(())
    }

    /// What happened to message `id` of `thread` since it was stored (edits, deletion,
    /// reactions); `None` when nothing did.
    pub fn changes(&self, thread: Thread, id: MessageId) -> Result<Option<Changes>, StoreError> {
        let (edited, deleted, reactions) = {
            let state = self.state();
            let Some(a) = state.amend(thread, id) else { return Ok(None) };
            let reactions = a
                .reactions
                .iter()
                .map(|(e, users)| {
                    (e.clone(), users.iter().filter_map(|n| state.names.get(*n as usize).cloned()).collect())
                })
                .collect();
            (a.edited, a.deleted, reactions)
        };
        let edited = match edited {
            Some((seq, at)) => match self.log.entry(seq)? {
                Some(Fact::Amended(a)) => match a.change {
                    Change::Edited { text, format } => Some((text, format, at)),
                    _ => None,
                },
                _ => None,
            },
            None => None,
        };
        Ok(Some(Changes { edited, deleted, reactions }))
    }

    /// The messages carrying attachment `id`.
    pub fn attachment_refs(&self, id: &str) -> Vec<(Thread, MessageId)> {
        self.state().attachment_refs(id).to_vec()
    }

    /// Mutes or unmutes a conversation or room for `user`, durably.
    pub async fn set_muted(&self, user: &Username, thread: Thread, muted: bool) -> Result<(), StoreError> {
        if self.muted(user, thread) != muted {
            self.write(Fact::Muted { user: user.clone(), thread, muted }).await?;
        }
        Ok(())
    }

    /// Whether `user` muted `thread`.
    pub fn muted(&self, user: &Username, thread: Thread) -> bool {
        self.state().muted(user, thread)
    }

    /// The message in log entry `seq`, if it holds one.
    pub(crate) fn message_at(&self, seq: u64) -> Result<Option<Message>, StoreError> {
        Ok(match self.log.entry(seq)? {
            Some(Fact::Posted(p)) => Some(p.message),
            _ => None,
        })
    }

    /// One message of a thread.
    pub fn message(&self, thread: Thread, id: MessageId) -> Result<Option<Message>, StoreError> {
        let Some(at) = self.state().locate(thread, id) else { return Ok(None) };
        self.message_at(at.seq)
    }

    /// Up to `limit` messages of `thread` with ids in `from..=until`, either the newest ones
    /// before `before` (returned oldest first), or the oldest ones after `after`.
    pub fn page(
        &self,
        thread: Thread,
        window: (MessageId, MessageId),
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let found = self.state().page(thread, window, before, after, limit);
        let mut out = Vec::with_capacity(found.len());
        for i in found {
            out.extend(self.message_at(i.seq)?);
        }
        Ok(out)
    }

    /// Text messages not from `user` in `thread` with ids in `(after, until]`.
    pub fn count_unread(
        &self,
        thread: Thread,
        user: &Username,
        after: MessageId,
        until: MessageId,
    ) -> Result<u32, StoreError> {
        Ok(self.state().count_unread(thread, user, after, until))
    }

    /// `user`'s entry for `conv`.
    pub fn entry(&self, user: &Username, conv: ConversationId) -> Result<Option<InboxEntry>, StoreError> {
        Ok(self.state().entry(user, conv))
    }

    /// `user`'s conversations, most recent first, after the cursor `(last, conversation)` of the
    /// previous page; deleted ones are skipped.
    pub fn inbox(
        &self,
        user: &Username,
        cursor: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<Vec<(ConversationId, InboxEntry)>, StoreError> {
        Ok(self.state().inbox(user, cursor, limit))
    }

    /// Moves `user`'s read marker in `conv` forward to `upto` (never back, never past the last
    /// message); returns the entry and whether the marker moved.
    pub async fn mark_read(
        &self,
        user: &Username,
        conv: ConversationId,
        upto: MessageId,
    ) -> Result<(InboxEntry, bool), StoreError> {
        let entry = self.entry(user, conv)?.unwrap_or_default();
        if upto.min(entry.last) <= entry.read_upto {
            return Ok((entry, false));
        }
        self.write(Fact::Read { user: user.clone(), conversation: conv, upto }).await?;
        Ok((self.entry(user, conv)?.unwrap_or_default(), true))
    }

    /// Deletes `conv` from `user`'s history (up to its current last message).
    pub async fn hide(&self, user: &Username, conv: ConversationId) -> Result<(), StoreError> {
        self.write(Fact::Hidden { user: user.clone(), conversation: conv }).await?;
        Ok(())
    }

    /// Up to `limit` messages waiting for a device of `user` to acknowledge them (offline
    /// messages, and live ones not yet acknowledged), oldest first.
    pub fn offline(&self, user: &Username, limit: usize) -> Result<Vec<(Thread, Message)>, StoreError> {
        let queued = self.state().queue(user, limit);
        let mut out = Vec::with_capacity(queued.len());
        for (id, thread) in queued {
            if let Some(m) = self.message(thread, id)? {
                out.push((thread, m));
            }
        }
        Ok(out)
    }

    /// Drops `user`'s waiting messages up to `upto` (acknowledged by a device); returns them.
    pub async fn ack_offline(&self, user: &Username, upto: MessageId) -> Result<Vec<Acked>, StoreError> {
        let out = self.state().queued_upto(user, upto);
        if !out.is_empty() {
            self.write(Fact::Acked { user: user.clone(), upto }).await?;
        }
        Ok(out)
    }

    /// Messages waiting for a device's acknowledgement, over all users.
    pub fn offline_depth(&self) -> usize {
        self.state().queued
    }
}

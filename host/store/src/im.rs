//! Conversations and their messages.
//!
//! Trees: `conversations` (id → [`Conversation`]), `direct` (the two usernames → id, to reuse a
//! 1:1), `messages` (thread key ++ message id → [`Message`], shared with rooms), `journal`
//! (message id → thread key: every message in arrival order), `inbox` (user, 0, conversation id →
//! [`InboxEntry`]), `recent` (user, 0, !last message id, conversation id → (): most recent
//! first), `offline` (user, 0, message id → thread key, then `l` if it was pushed live: waiting
//! for a device to acknowledge it), `idempotency` (user, 0, key → thread key ++ message id).
//!
//! A message and every index it touches are written in one transaction and flushed before the
//! call returns.

use halo_core::Username;
use halo_core::conversation::{Conversation, ConversationId, MessageId};
use halo_core::message::{Body, Message};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use halo_core::archive::Record;
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use crate::archive::{self, Archive};
use crate::codec::{decode, encode};
use crate::federation::{self, Outbound};
use crate::keys::{Thread, u64_at, user_key};
use crate::{SledResult, StoreError};

const CONVERSATIONS: &str = "conversations";
const DIRECT: &str = "direct";
pub(crate) const MESSAGES: &str = "messages";
const JOURNAL: &str = "journal";
const INBOX: &str = "inbox";
const RECENT: &str = "recent";
const OFFLINE: &str = "offline";
const IDEMPOTENCY: &str = "idempotency";
/// Marks a queue entry whose message was pushed live (the recipient was online when it was stored).
const LIVE: u8 = b'l';

/// An entry taken off a user's delivery queue by [`Im::ack_offline`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acked {
    /// The message.
    pub id: MessageId,
    /// Its thread.
    pub thread: Thread,
    /// It was pushed live when stored (the sender got its delivery receipt then).
    pub live: bool,
}

/// A user's view of one conversation: last message, unread count, read marker, deletion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Typed access to conversations.
#[derive(Clone)]
pub struct Im {
    db: crate::flush::Db,
    conversations: sled::Tree,
    direct: sled::Tree,
    pub(crate) messages: sled::Tree,
    pub(crate) journal: sled::Tree,
    inbox: sled::Tree,
    recent: sled::Tree,
    offline: sled::Tree,
    pub(crate) idempotency: sled::Tree,
    pub(crate) archive: Archive,
    /// The federation queue (`fed_queue`): items for remote participants land with their message.
    fed_queue: sled::Tree,
    in_flight: Arc<Mutex<BTreeSet<u64>>>,
}

type TxError = ConflictableTransactionError<StoreError>;

pub(crate) fn abort(e: StoreError) -> TxError {
    ConflictableTransactionError::Abort(e)
}

/// The trees every message write touches, inside a transaction.
pub(crate) struct MessageTrees<'a> {
    pub(crate) msgs: &'a sled::transaction::TransactionalTree,
    pub(crate) journal: &'a sled::transaction::TransactionalTree,
    pub(crate) idem: &'a sled::transaction::TransactionalTree,
    pub(crate) archive: &'a sled::transaction::TransactionalTree,
}

/// Writes a message, its journal entry, its sender's idempotency key and (when archived) its
/// archive record inside a transaction: the part every thread (conversation or room) shares.
pub(crate) fn write_message(
    t: &MessageTrees<'_>,
    thread: Thread,
    msg: &Message,
    value: &[u8],
    archived: Option<&[u8]>,
) -> Result<(), sled::transaction::UnabortableTransactionError> {
    t.msgs.insert(&thread.message_key(msg.id), value)?;
    t.journal.insert(&msg.id.to_be_bytes(), &thread.key())?;
    if let Some(k) = &msg.key {
        t.idem.insert(user_key(&msg.from, k.as_bytes()), &thread.message_key(msg.id))?;
    }
    if let Some(record) = archived {
        t.archive.insert(&msg.id.to_be_bytes(), record)?;
    }
    Ok(())
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

pub(crate) fn tx_result<T>(r: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    r.map_err(|e| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => crate::from_sled(e),
    })
}

fn direct_key(a: &Username, b: &Username) -> Vec<u8> {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    user_key(x, y.as_str().as_bytes())
}

fn recent_key(user: &Username, last: MessageId, conv: ConversationId) -> Vec<u8> {
    let mut rest = [0u8; 16];
    rest[..8].copy_from_slice(&(!last).to_be_bytes());
    rest[8..].copy_from_slice(&conv.to_be_bytes());
    user_key(user, &rest)
}

impl Im {
    pub(crate) fn open(
        db: &crate::flush::Db,
        archive: Archive,
        fed_queue: sled::Tree,
        in_flight: Arc<Mutex<BTreeSet<u64>>>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            conversations: db.open_tree(CONVERSATIONS).db()?,
            direct: db.open_tree(DIRECT).db()?,
            messages: db.open_tree(MESSAGES).db()?,
            journal: db.open_tree(JOURNAL).db()?,
            inbox: db.open_tree(INBOX).db()?,
            recent: db.open_tree(RECENT).db()?,
            offline: db.open_tree(OFFLINE).db()?,
            idempotency: db.open_tree(IDEMPOTENCY).db()?,
            archive,
            fed_queue,
            in_flight,
        })
    }

    /// A fresh id, larger than every id handed out before (also across restarts), held as in
    /// flight until the returned reservation is dropped.
    pub fn reserve(&self) -> Result<Reservation, StoreError> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        // sled starts at 0; keep 0 free to mean "none".
        let id = self.db.generate_id().db()? + 1;
        in_flight.insert(id);
        Ok(Reservation { id, in_flight: self.in_flight.clone() })
    }

    /// Every id below this one is written or abandoned: readers following the journal or the
    /// archive in id order may go up to it without skipping a record still being written.
    pub fn settled_below(&self) -> u64 {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).first().copied().unwrap_or(u64::MAX)
    }

    /// The conversation `id`, if any.
    pub fn conversation(&self, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        self.conversations.get(id.to_be_bytes()).db()?.map(|v| decode(CONVERSATIONS, &v)).transpose()
    }

    /// The id of the last 1:1 conversation between `a` and `b`, if any.
    pub fn direct(&self, a: &Username, b: &Username) -> Result<Option<ConversationId>, StoreError> {
        Ok(self.direct.get(direct_key(a, b)).db()?.map(|v| u64_at(&v, 0)))
    }

    /// Stores a new conversation (and, for a 1:1, remembers it for the pair) with its archive
    /// record, if archived, durably.
    pub async fn create(&self, conv: &Conversation, archived: Option<&Record>) -> Result<(), StoreError> {
        let value = encode(CONVERSATIONS, conv)?;
        let record = archived.map(|r| encode(archive::RECORDS, r)).transpose()?;
        let members: Vec<Username> = conv.members().cloned().collect();
        let entry = encode(INBOX, &InboxEntry { last_at: conv.created_at, ..Default::default() })?;
        let r = (&self.conversations, &self.direct, &self.inbox, &self.recent, &self.archive.records).transaction(
            |(convs, direct, inbox, recent, archive)| {
                convs.insert(&conv.id.to_be_bytes(), value.clone())?;
                if let Some(record) = &record {
                    archive.insert(&conv.id.to_be_bytes(), record.as_slice())?;
                }
                if let [a, b] = members.as_slice() {
                    direct.insert(direct_key(a, b), &conv.id.to_be_bytes())?;
                }
                for m in &members {
                    inbox.insert(user_key(m, &conv.id.to_be_bytes()), entry.clone())?;
                    recent.insert(recent_key(m, 0, conv.id), &[])?;
                }
                Ok(())
            },
        );
        tx_result(r)?;
        self.db.flush().await?;
        Ok(())
    }

    /// Appends `msg` to `conv` (whose stored record is replaced by `conv` for a join or leave,
    /// so membership changes land with their message), updates every present participant's
    /// inbox, queues it for delivery to the `offline` ones and the `live` ones (online, so it is
    /// pushed at once, but kept until a device acknowledges it: a crash before the push loses
    /// nothing), records the sender's idempotency key, spools the archive record, if archived,
    /// and queues the `outbound` items for remote participants: a message is queued for
    /// federation exactly when it is stored, so a retry that finds it stored (by its key) never
    /// has a federated copy to make up for. One transaction, flushed.
    pub async fn append(
        &self,
        conv: &Conversation,
        msg: &Message,
        (offline, live): (&[Username], &[Username]),
        archived: Option<&Record>,
        outbound: &[Outbound],
    ) -> Result<(), StoreError> {
        let thread = Thread::Conversation(conv.id);
        // Only joins and leaves change the conversation; a text leaves its record as it is.
        let conv_value = match msg.body {
            Body::Text { .. } => None,
            _ => Some(encode(CONVERSATIONS, conv)?),
        };
        let msg_value = encode(MESSAGES, msg)?;
        let record = archived.map(|r| encode(archive::RECORDS, r)).transpose()?;
        let members: Vec<Username> = conv.members().cloned().collect();
        let counts_as_unread = matches!(msg.body, Body::Text { .. });
        let mut live_value = thread.key().to_vec();
        live_value.push(LIVE);
        let queued = outbound
            .iter()
            .map(|o| {
                Ok((federation::queue_key(&o.domain, self.db.generate_id().db()?), encode(federation::QUEUE, &o.item)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let trees = (
            &self.conversations,
            &self.messages,
            &self.journal,
            &self.inbox,
            &self.recent,
            &self.offline,
            &self.idempotency,
            &self.archive.records,
            &self.fed_queue,
        );
        let r = trees.transaction(|(convs, msgs, journal, inbox, recent, offline_q, idem, archive, fed_queue)| {
            if let Some(v) = &conv_value {
                convs.insert(&conv.id.to_be_bytes(), v.clone())?;
            }
            let t = MessageTrees { msgs, journal, idem, archive };
            write_message(&t, thread, msg, &msg_value, record.as_deref())?;
            for m in &members {
                let key = user_key(m, &conv.id.to_be_bytes());
                let mut entry: InboxEntry = match inbox.get(&key)? {
                    Some(v) => decode(INBOX, &v).map_err(abort)?,
                    None => InboxEntry::default(),
                };
                recent.remove(recent_key(m, entry.last, conv.id))?;
                recent.insert(recent_key(m, msg.id, conv.id), &[])?;
                entry.last = msg.id;
                entry.last_at = msg.at;
                if counts_as_unread && m != &msg.from {
                    entry.unread = entry.unread.saturating_add(1);
                }
                if m == &msg.from {
                    entry.read_upto = msg.id;
                    entry.unread = 0;
                }
                inbox.insert(key, encode(INBOX, &entry).map_err(abort)?)?;
            }
            for m in offline {
                offline_q.insert(user_key(m, &msg.id.to_be_bytes()), &thread.key())?;
            }
            for m in live {
                offline_q.insert(user_key(m, &msg.id.to_be_bytes()), live_value.as_slice())?;
            }
            for (key, item) in &queued {
                fed_queue.insert(key.as_slice(), item.as_slice())?;
            }
            Ok(())
        });
        tx_result(r)?;
        self.db.flush().await?;
        Ok(())
    }

    /// The message an idempotency key of `user` produced, if any.
    pub fn by_key(&self, user: &Username, key: &str) -> Result<Option<(Thread, Message)>, StoreError> {
        let Some(v) = self.idempotency.get(user_key(user, key.as_bytes())).db()? else { return Ok(None) };
        let Some(thread) = Thread::from_key(&v) else { return Ok(None) };
        Ok(self.messages.get(&v).db()?.map(|m| decode(MESSAGES, &m)).transpose()?.map(|m| (thread, m)))
    }

    /// One message of a thread.
    pub fn message(&self, thread: Thread, id: MessageId) -> Result<Option<Message>, StoreError> {
        self.messages.get(thread.message_key(id)).db()?.map(|v| decode(MESSAGES, &v)).transpose()
    }

    /// Up to `limit` messages of `thread` with ids in `from..=until`, either the newest ones
    /// before `before` (returned oldest first), or the oldest ones after `after`.
    pub fn page(
        &self,
        thread: Thread,
        (from, until): (MessageId, MessageId),
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let lo = after.map_or(from, |a| a.saturating_add(1).max(from));
        let hi = before.map_or(until, |b| b.saturating_sub(1).min(until));
        if lo > hi {
            return Ok(Vec::new());
        }
        let range = self.messages.range(thread.message_key(lo)..=thread.message_key(hi));
        let mut out: Vec<Message> = if after.is_some() {
            range.take(limit).map(|kv| decode(MESSAGES, &kv.db()?.1)).collect::<Result<_, _>>()?
        } else {
            range.rev().take(limit).map(|kv| decode(MESSAGES, &kv.db()?.1)).collect::<Result<_, _>>()?
        };
        if after.is_none() {
            out.reverse();
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
        if after >= until {
            return Ok(0);
        }
        let mut n = 0u32;
        for kv in self.messages.range(thread.message_key(after + 1)..=thread.message_key(until)) {
            let m: Message = decode(MESSAGES, &kv.db()?.1)?;
            if m.text().is_some() && &m.from != user {
                n = n.saturating_add(1);
            }
        }
        Ok(n)
    }

    /// `user`'s entry for `conv`.
    pub fn entry(&self, user: &Username, conv: ConversationId) -> Result<Option<InboxEntry>, StoreError> {
        self.inbox.get(user_key(user, &conv.to_be_bytes())).db()?.map(|v| decode(INBOX, &v)).transpose()
    }

    async fn put_entry(&self, user: &Username, conv: ConversationId, entry: &InboxEntry) -> Result<(), StoreError> {
        self.inbox.insert(user_key(user, &conv.to_be_bytes()), encode(INBOX, entry)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// `user`'s conversations, most recent first, after the cursor `(last, conversation)` of the
    /// previous page; deleted ones are skipped.
    pub fn inbox(
        &self,
        user: &Username,
        cursor: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Result<Vec<(ConversationId, InboxEntry)>, StoreError> {
        let prefix = user_key(user, &[]);
        let start = match cursor {
            Some((last, conv)) => {
                let mut k = recent_key(user, last, conv);
                k.push(0);
                k
            }
            None => prefix.clone(),
        };
        let mut out = Vec::new();
        for kv in self.recent.range(start..) {
            let (k, _) = kv.db()?;
            if !k.starts_with(&prefix) {
                break;
            }
            let conv = u64_at(&k, prefix.len() + 8);
            if let Some(entry) = self.entry(user, conv)?
                && (entry.hidden_upto == 0 || entry.last > entry.hidden_upto)
            {
                out.push((conv, entry));
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Moves `user`'s read marker in `conv` forward to `upto` (never back, never past the last
    /// message); returns the entry and whether the marker moved.
    pub async fn mark_read(
        &self,
        user: &Username,
        conv: ConversationId,
        upto: MessageId,
    ) -> Result<(InboxEntry, bool), StoreError> {
        let mut entry = self.entry(user, conv)?.unwrap_or_default();
        let to = upto.min(entry.last);
        if to <= entry.read_upto {
            return Ok((entry, false));
        }
        entry.read_upto = to;
        entry.unread = self.count_unread(Thread::Conversation(conv), user, entry.read_upto, entry.last)?;
        self.put_entry(user, conv, &entry).await?;
        Ok((entry, true))
    }

    /// Deletes `conv` from `user`'s history (up to its current last message).
    pub async fn hide(&self, user: &Username, conv: ConversationId) -> Result<(), StoreError> {
        let mut entry = self.entry(user, conv)?.unwrap_or_default();
        entry.hidden_upto = entry.last.max(1);
        entry.read_upto = entry.read_upto.max(entry.last);
        entry.unread = 0;
        self.recent.remove(recent_key(user, entry.last, conv)).db()?;
        self.put_entry(user, conv, &entry).await
    }

    /// Up to `limit` messages waiting for a device of `user` to acknowledge them (offline
    /// messages, and live ones not yet acknowledged), oldest first.
    pub fn offline(&self, user: &Username, limit: usize) -> Result<Vec<(Thread, Message)>, StoreError> {
        let prefix = user_key(user, &[]);
        let mut out = Vec::new();
        for kv in self.offline.scan_prefix(&prefix).take(limit) {
            let (k, thread) = kv.db()?;
            let id = u64_at(&k, prefix.len());
            if let Some(t) = Thread::from_key(&thread)
                && let Some(m) = self.message(t, id)?
            {
                out.push((t, m));
            }
        }
        Ok(out)
    }

    /// Drops `user`'s waiting messages up to `upto` (acknowledged by a device); returns them.
    pub async fn ack_offline(&self, user: &Username, upto: MessageId) -> Result<Vec<Acked>, StoreError> {
        let prefix = user_key(user, &[]);
        let mut out = Vec::new();
        for kv in self.offline.range(prefix.clone()..=user_key(user, &upto.to_be_bytes())) {
            let (k, v) = kv.db()?;
            self.offline.remove(&k).db()?;
            if let Some(thread) = Thread::from_key(&v) {
                out.push(Acked { id: u64_at(&k, prefix.len()), thread, live: v.get(9) == Some(&LIVE) });
            }
        }
        if !out.is_empty() {
            self.db.flush().await?;
        }
        Ok(out)
    }

    /// Messages waiting for a device's acknowledgement, over all users.
    pub fn offline_depth(&self) -> usize {
        self.offline.len()
    }

    /// Messages in arrival order with ids above `after`: `(id, thread)`.
    pub fn journal_after(&self, after: MessageId, limit: usize) -> Result<Vec<(MessageId, Thread)>, StoreError> {
        let mut out = Vec::new();
        for kv in self.journal.range((after + 1).to_be_bytes()..).take(limit) {
            let (k, v) = kv.db()?;
            if let Some(t) = Thread::from_key(&v) {
                out.push((u64_at(&k, 0), t));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use halo_core::conversation::Format;

    use super::*;
    use crate::Store;

    fn u(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    fn text(id: MessageId, from: &str, t: &str, key: Option<&str>) -> Message {
        Message {
            id,
            at: id * 10,
            from: u(from),
            body: Body::Text { text: t.into(), format: Format::Plain },
            key: key.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn inbox_unread_offline_idempotency_and_paging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let im = store.im();
        let c1 = Conversation::new(1, &u("alice"), &[u("bob")], 0, 1).expect("conv");
        let c2 = Conversation::new(2, &u("alice"), &[u("carol")], 0, 1).expect("conv");
        im.create(&c1, None).await.expect("create");
        im.create(&c2, None).await.expect("create");
        assert_eq!(im.direct(&u("bob"), &u("alice")).expect("direct"), Some(1));

        im.append(&c1, &text(10, "alice", "one", Some("k1")), (&[u("bob")], &[]), None, &[]).await.expect("append");
        im.append(&c2, &text(11, "carol", "two", None), (&[], &[]), None, &[]).await.expect("append");
        im.append(&c1, &text(12, "alice", "three", None), (&[], &[u("bob")]), None, &[]).await.expect("append");

        let inbox = im.inbox(&u("alice"), None, 10).expect("inbox");
        assert_eq!(inbox.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [1, 2], "most recent first");
        assert_eq!(inbox[1].1.unread, 1);
        let page2 = im.inbox(&u("alice"), Some((12, 1)), 10).expect("page");
        assert_eq!(page2.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [2]);
        let bob = im.entry(&u("bob"), 1).expect("entry").expect("exists");
        assert_eq!((bob.unread, bob.last), (2, 12));
        let (entry, moved) = im.mark_read(&u("bob"), 1, 10).await.expect("read");
        assert_eq!((entry.read_upto, entry.unread, moved), (10, 1, true));
        assert!(!im.mark_read(&u("bob"), 1, 9).await.expect("read").1, "an older id does not move it");

        let offline = im.offline(&u("bob"), 10).expect("offline");
        assert_eq!(offline.iter().map(|(_, m)| m.id).collect::<Vec<_>>(), [10, 12], "offline and live alike");
        let t1 = Thread::Conversation(1);
        assert_eq!(im.ack_offline(&u("bob"), 10).await.expect("ack"), [Acked { id: 10, thread: t1, live: false }]);
        assert_eq!(im.offline(&u("bob"), 10).expect("offline").len(), 1);
        assert_eq!(im.ack_offline(&u("bob"), 99).await.expect("ack"), [Acked { id: 12, thread: t1, live: true }]);

        let (thread, m) = im.by_key(&u("alice"), "k1").expect("key").expect("found");
        assert_eq!((thread, m.id), (Thread::Conversation(1), 10));

        let t = Thread::Conversation(1);
        let ids = |v: Vec<Message>| v.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(im.page(t, (0, u64::MAX), None, None, 1).expect("page")), [12]);
        assert_eq!(ids(im.page(t, (0, u64::MAX), Some(12), None, 5).expect("page")), [10]);
        assert_eq!(ids(im.page(t, (0, u64::MAX), None, Some(10), 5).expect("page")), [12]);
        assert_eq!(ids(im.page(t, (11, u64::MAX), None, None, 5).expect("page")), [12], "window");

        im.hide(&u("alice"), 1).await.expect("hide");
        assert_eq!(im.inbox(&u("alice"), None, 10).expect("inbox").iter().map(|(c, _)| *c).collect::<Vec<_>>(), [2]);
        im.append(&c1, &text(13, "bob", "back", None), (&[], &[]), None, &[]).await.expect("append");
        assert_eq!(im.inbox(&u("alice"), None, 10).expect("inbox")[0].0, 1, "a new message brings it back");
        assert_eq!(im.journal_after(11, 10).expect("journal").iter().map(|(id, _)| *id).collect::<Vec<_>>(), [12, 13]);
    }

    #[tokio::test]
    async fn outbound_items_are_queued_with_their_message() {
        use halo_core::federation::Item;
        let dir = tempfile::tempdir().expect("tempdir");
        let bob = Username::parse_address("bob@b.example").expect("valid");
        {
            let store = Store::open(dir.path()).expect("open");
            let im = store.im();
            let c = Conversation::new(1, &u("alice"), std::slice::from_ref(&bob), 0, 1).expect("conv");
            im.create(&c, None).await.expect("create");
            let item = |id: u64| Item::Message {
                from: "alice".into(),
                to: bob.to_string(),
                text: format!("m{id}"),
                id: id.to_string(),
            };
            let out = |id| [Outbound { domain: "b.example".into(), item: item(id) }];
            im.append(&c, &text(10, "alice", "m10", Some("k")), (&[], &[]), None, &out(10)).await.expect("append");
            im.append(&c, &text(11, "alice", "m11", None), (&[], &[]), None, &out(11)).await.expect("append");
            im.append(&c, &text(12, "alice", "m12", None), (&[], &[]), None, &[]).await.expect("append");
        }
        // Reopened: the queue holds exactly the items of the messages stored with them, in order.
        let store = Store::open(dir.path()).expect("reopen");
        let queued = store.federation().peek("b.example", 10).expect("peek");
        let texts: Vec<String> = queued
            .iter()
            .map(|q| match &q.item {
                Item::Message { text, .. } => text.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(texts, ["m10", "m11"]);
        assert!(store.im().by_key(&u("alice"), "k").expect("key").is_some());
    }

    #[tokio::test]
    async fn archive_records_land_with_their_message_and_in_flight_ids_hold_readers_back() {
        use halo_core::archive::{Place, Policy, Record};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let (im, archive) = (store.im(), store.archive());
        let conv_id = im.reserve().expect("id");
        let c = Conversation::new(conv_id.id(), &u("alice"), &[u("bob")], 0, 1).expect("conv");
        let started = Record::started(c.id, 0, &u("alice"), c.members());
        im.create(&c, Some(&started)).await.expect("create");
        drop(conv_id);

        let first = im.reserve().expect("id");
        let second = im.reserve().expect("id");
        assert_eq!(im.settled_below(), first.id(), "the older reservation holds readers back");
        let m2 = text(second.id(), "bob", "second", None);
        im.append(&c, &m2, (&[], &[]), Some(&Record::of_message(Place::Conversation(c.id), &m2, c.members())), &[])
            .await
            .expect("append");
        drop(second);
        let ids = |v: Vec<Record>| v.iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(archive.after(0, im.settled_below(), 10).expect("after")), [c.id], "m2 waits for m1");
        let m1 = text(first.id(), "alice", "first", None);
        im.append(&c, &m1, (&[], &[]), None, &[]).await.expect("unarchived message");
        drop(first);
        assert_eq!(im.settled_below(), u64::MAX);
        let all = archive.after(0, im.settled_below(), 10).expect("after");
        assert_eq!(ids(all.clone()), [c.id, m2.id], "only archived messages are spooled");
        assert_eq!(all[1].text.as_deref(), Some("second"));
        assert_eq!(archive.count_after(0, 100).expect("count"), 2);

        archive.set_cursor("sink", c.id).await.expect("cursor");
        assert_eq!(archive.cursor("sink").expect("cursor"), c.id);
        assert_eq!(archive.cursors().expect("cursors"), [("sink".to_owned(), c.id)]);

        archive.set_global(Policy::ALL).await.expect("global");
        archive.set_user(&u("bob"), Some(Policy::OFF)).await.expect("user");
        let p = archive.policies().expect("policies");
        assert_eq!((p.global, p.effective(&u("bob"))), (Policy::ALL, Policy::OFF));

        // Purge: only records older than the cutoff and at or below the slowest cursor.
        assert_eq!(archive.purge(u64::MAX, c.id, 100).await.expect("purge"), [c.id]);
        assert_eq!(archive.purge(1, u64::MAX, 100).await.expect("purge"), Vec::<u64>::new(), "too new");
        assert_eq!(archive.len(), 1);
    }
}

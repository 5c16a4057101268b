//! [`ImState`]: the projection of the IM log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

use crate::Username;
use crate::conversation::{Conversation, ConversationId, MessageId};
use crate::message::Body;
use crate::room::{Room, RoomId};

use super::{Acked, Amended, Change, Fact, InboxEntry, Posted, RoomMark, Thread, key_hash};

/// What happened to a message after it was stored: its latest edit, its deletion, its
/// reactions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Amend {
    /// The log entry holding the latest edit (its new text), and its time.
    pub edited: Option<(u64, crate::Millis)>,
    /// When it was deleted.
    pub deleted: Option<crate::Millis>,
    /// Emoji → who reacted with it (numbers into [`ImState::names`]), in order of arrival.
    pub reactions: BTreeMap<String, Vec<u32>>,
}

/// Where a message is: its id, the log entry holding it, its sender (an index into
/// [`ImState::names`]) and whether it is a text (texts count as unread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// Message id.
    pub id: MessageId,
    /// Sequence number of its log entry.
    pub seq: u64,
    /// Sender, as an index into [`ImState::names`].
    pub from: u32,
    /// A text (not a membership event).
    pub text: bool,
}

/// One user's IM state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserIm {
    /// Inbox entry per conversation.
    pub entries: HashMap<ConversationId, InboxEntry>,
    /// Conversations most recent first: `(!last, conversation)`; derived from `entries` (a
    /// conversation deleted from history and quiet since is left out).
    pub recent: BTreeSet<(u64, ConversationId)>,
    /// Delivery queue: message id → (thread, pushed live).
    pub queue: BTreeMap<MessageId, (Thread, bool)>,
    /// Room marks.
    pub marks: BTreeMap<RoomId, RoomMark>,
    /// Conversations and rooms the user muted.
    pub muted: BTreeSet<Thread>,
}

/// The IM state as of log entry [`ImState::seq`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImState {
    /// The last log entry applied.
    pub seq: u64,
    /// Every user seen, by number (senders, participants, members).
    pub names: Vec<Username>,
    /// Their numbers.
    pub numbers: HashMap<Username, u32>,
    /// Per user (by number).
    pub users: Vec<UserIm>,
    /// Conversations.
    pub conversations: HashMap<ConversationId, Conversation>,
    /// The last 1:1 conversation of each pair (lower number first).
    pub direct: HashMap<(u32, u32), ConversationId>,
    /// Each thread's messages in id order.
    pub threads: HashMap<Thread, Vec<Indexed>>,
    /// Idempotency: [`key_hash`] of (sender, key) → the message it produced.
    pub keys: HashMap<u64, (Thread, MessageId)>,
    /// Rooms.
    pub rooms: BTreeMap<RoomId, Room>,
    /// Lowercased room name → room.
    pub room_names: HashMap<String, RoomId>,
    /// Entries in all delivery queues.
    pub queued: usize,
    /// Edits, deletions and reactions, by message.
    pub amends: HashMap<(Thread, MessageId), Amend>,
    /// Attachment id → the messages carrying it.
    pub attachments: HashMap<String, Vec<(Thread, MessageId)>>,
}

fn recent_key(entry: &InboxEntry, conv: ConversationId) -> (u64, ConversationId) {
    (!entry.last, conv)
}

fn listed(entry: &InboxEntry) -> bool {
    entry.hidden_upto == 0 || entry.last > entry.hidden_upto
}

impl ImState {
    /// The number of `user`, given one if new.
    pub fn number(&mut self, user: &Username) -> u32 {
        if let Some(n) = self.numbers.get(user) {
            return *n;
        }
        let n = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(user.clone());
        self.numbers.insert(user.clone(), n);
        self.users.push(UserIm::default());
        n
    }

    fn user_mut(&mut self, user: &Username) -> &mut UserIm {
        let n = self.number(user) as usize;
        &mut self.users[n]
    }

    fn user(&self, user: &Username) -> Option<&UserIm> {
        self.numbers.get(user).and_then(|n| self.users.get(*n as usize))
    }

    /// Rebuilds the derived parts (most-recent order, room names, queue total) after the
    /// others were loaded from a snapshot.
    pub fn derive(&mut self) {
        self.queued = 0;
        for u in &mut self.users {
            u.recent = u.entries.iter().filter(|(_, e)| listed(e)).map(|(c, e)| recent_key(e, *c)).collect();
            self.queued += u.queue.len();
        }
        self.room_names = self.rooms.values().map(|r| (r.name.to_lowercase(), r.id)).collect();
    }

    /// Folds the fact of log entry `seq` in.
    pub fn apply(&mut self, seq: u64, fact: &Fact) {
        self.seq = self.seq.max(seq);
        match fact {
            Fact::Started { conversation, .. } => self.started(conversation),
            Fact::Posted(p) => self.posted(seq, p),
            Fact::Read { user, conversation, upto } => self.read(user, *conversation, *upto),
            Fact::Hidden { user, conversation } => self.hidden(user, *conversation),
            Fact::Acked { user, upto } => {
                let u = self.user_mut(user);
                let keep = u.queue.split_off(&upto.saturating_add(1));
                let gone = std::mem::replace(&mut u.queue, keep).len();
                self.queued = self.queued.saturating_sub(gone);
            }
            Fact::RoomPut { room, joined, left } => self.room_put(room, joined, left),
            Fact::RoomMarked { user, room, mark } => {
                self.user_mut(user).marks.insert(*room, *mark);
            }
            Fact::Amended(a) => self.amended(seq, a),
            Fact::Muted { user, thread, muted } => {
                let u = self.user_mut(user);
                if *muted {
                    u.muted.insert(*thread);
                } else {
                    u.muted.remove(thread);
                }
            }
            Fact::InboxImported { user, conversation, entry } => {
                let u = self.user_mut(user);
                if let Some(old) = u.entries.insert(*conversation, *entry) {
                    u.recent.remove(&recent_key(&old, *conversation));
                }
                if listed(entry) {
                    u.recent.insert(recent_key(entry, *conversation));
                }
            }
            Fact::QueueImported { user, entry } => {
                if self.user_mut(user).queue.insert(entry.id, (entry.thread, entry.live)).is_none() {
                    self.queued += 1;
                }
            }
            Fact::Federated { .. } => {}
        }
    }

    fn started(&mut self, conv: &Conversation) {
        let members: Vec<Username> = conv.members().cloned().collect();
        if let [a, b] = members.as_slice() {
            let (a, b) = (self.number(a), self.number(b));
            self.direct.insert((a.min(b), a.max(b)), conv.id);
        }
        let entry = InboxEntry { last_at: conv.created_at, ..Default::default() };
        for m in &members {
            let u = self.user_mut(m);
            if let Some(old) = u.entries.insert(conv.id, entry) {
                u.recent.remove(&recent_key(&old, conv.id));
            }
            u.recent.insert(recent_key(&entry, conv.id));
        }
        self.conversations.insert(conv.id, conv.clone());
    }

    fn posted(&mut self, seq: u64, p: &Posted) {
        let msg = &p.message;
        let text = matches!(msg.body, Body::Text { .. });
        let from = self.number(&msg.from);
        if let Some(k) = &msg.key
            && let Some(&(thread, first)) = self.keys.get(&key_hash(&msg.from, k))
            && first != msg.id
            && self.locate(thread, first).is_some_and(|i| i.from == from)
        {
            // The sender's key produced a message already: two nodes of a pool took the same
            // key at once. The first in the log wins on every node; this one is not kept.
            return;
        }
        let index = self.threads.entry(p.thread).or_default();
        let at = index.partition_point(|i| i.id < msg.id);
        if index.get(at).is_some_and(|i| i.id == msg.id) {
            index[at].seq = seq;
        } else {
            index.insert(at, Indexed { id: msg.id, seq, from, text });
        }
        for a in &msg.extras.attachments {
            let refs = self.attachments.entry(a.id.clone()).or_default();
            if !refs.contains(&(p.thread, msg.id)) {
                refs.push((p.thread, msg.id));
            }
        }
        if let Some(k) = &msg.key {
            self.keys.insert(key_hash(&msg.from, k), (p.thread, msg.id));
        }
        for (users, live) in [(&p.offline, false), (&p.live, true)] {
            for m in users {
                if self.user_mut(m).queue.insert(msg.id, (p.thread, live)).is_none() {
                    self.queued += 1;
                }
            }
        }
        match p.thread {
            Thread::Conversation(c) => {
                if let Some(conv) = &p.conversation {
                    self.conversations.insert(c, conv.clone());
                }
                let members: Vec<Username> =
                    self.conversations.get(&c).map(|conv| conv.members().cloned().collect()).unwrap_or_default();
                for m in &members {
                    let sender = m == &msg.from;
                    let u = self.user_mut(m);
                    let entry = u.entries.entry(c).or_default();
                    u.recent.remove(&recent_key(entry, c));
                    entry.last = msg.id;
                    entry.last_at = msg.at;
                    if text && !sender {
                        entry.unread = entry.unread.saturating_add(1);
                    }
                    if sender {
                        entry.read_upto = msg.id;
                        entry.unread = 0;
                    }
                    let key = recent_key(entry, c);
                    u.recent.insert(key);
                }
            }
            Thread::Room(r) => {
                if text && let Some(mark) = self.user_mut(&msg.from).marks.get_mut(&r) {
                    mark.read_upto = mark.read_upto.max(msg.id);
                }
            }
        }
    }

    fn amended(&mut self, seq: u64, a: &Amended) {
        let by = self.number(&a.by);
        let amend = self.amends.entry((a.thread, a.target)).or_default();
        match &a.change {
            Change::Edited { .. } => amend.edited = Some((seq, a.at)),
            Change::Deleted => amend.deleted = Some(a.at),
            Change::Reacted { emoji, add } => {
                let users = amend.reactions.entry(emoji.clone()).or_default();
                if *add && !users.contains(&by) {
                    users.push(by);
                } else if !*add {
                    users.retain(|u| *u != by);
                }
                if users.is_empty() {
                    amend.reactions.remove(emoji);
                }
            }
        }
    }

    /// What happened to message `id` of `thread` since it was stored, if anything.
    pub fn amend(&self, thread: Thread, id: MessageId) -> Option<&Amend> {
        self.amends.get(&(thread, id))
    }

    /// The messages carrying attachment `id`.
    pub fn attachment_refs(&self, id: &str) -> &[(Thread, MessageId)] {
        self.attachments.get(id).map_or(&[], Vec::as_slice)
    }

    /// Whether `user` muted `thread`.
    pub fn muted(&self, user: &Username, thread: Thread) -> bool {
        self.user(user).is_some_and(|u| u.muted.contains(&thread))
    }

    fn read(&mut self, user: &Username, conv: ConversationId, upto: MessageId) {
        let mut entry = self.entry(user, conv).unwrap_or_default();
        let to = upto.min(entry.last);
        if to <= entry.read_upto {
            return;
        }
        entry.read_upto = to;
        entry.unread = self.count_unread(Thread::Conversation(conv), user, entry.read_upto, entry.last);
        self.user_mut(user).entries.insert(conv, entry);
    }

    fn hidden(&mut self, user: &Username, conv: ConversationId) {
        let u = self.user_mut(user);
        let entry = u.entries.entry(conv).or_default();
        u.recent.remove(&recent_key(entry, conv));
        entry.hidden_upto = entry.last.max(1);
        entry.read_upto = entry.read_upto.max(entry.last);
        entry.unread = 0;
    }

    fn room_put(&mut self, room: &Room, joined: &[Username], left: &[Username]) {
        if let Some(old) = self.rooms.get(&room.id) {
            let old = old.name.to_lowercase();
            self.room_names.remove(&old);
        }
        self.room_names.insert(room.name.to_lowercase(), room.id);
        self.rooms.insert(room.id, room.clone());
        for u in joined {
            self.user_mut(u).marks.entry(room.id).or_insert(RoomMark { read_upto: 0, follow: true });
        }
        for u in left {
            self.user_mut(u).marks.remove(&room.id);
        }
    }

    /// The conversation `id`.
    pub fn conversation(&self, id: ConversationId) -> Option<&Conversation> {
        self.conversations.get(&id)
    }

    /// The last 1:1 conversation of `a` and `b`.
    pub fn direct(&self, a: &Username, b: &Username) -> Option<ConversationId> {
        let (a, b) = (*self.numbers.get(a)?, *self.numbers.get(b)?);
        self.direct.get(&(a.min(b), a.max(b))).copied()
    }

    /// `user`'s entry for `conv`.
    pub fn entry(&self, user: &Username, conv: ConversationId) -> Option<InboxEntry> {
        self.user(user)?.entries.get(&conv).copied()
    }

    /// `user`'s conversations, most recent first, after the cursor `(last, conversation)`;
    /// deleted ones (quiet since) are left out.
    pub fn inbox(
        &self,
        user: &Username,
        cursor: Option<(MessageId, ConversationId)>,
        limit: usize,
    ) -> Vec<(ConversationId, InboxEntry)> {
        let Some(u) = self.user(user) else { return Vec::new() };
        let start = match cursor {
            Some((last, conv)) => Bound::Excluded((!last, conv)),
            None => Bound::Unbounded,
        };
        u.recent
            .range((start, Bound::Unbounded))
            .filter_map(|(_, c)| u.entries.get(c).filter(|e| listed(e)).map(|e| (*c, *e)))
            .take(limit)
            .collect()
    }

    /// The message an idempotency key produced, if any (by hash: compare the message's sender
    /// and key before trusting it).
    pub fn by_key(&self, user: &Username, key: &str) -> Option<(Thread, MessageId)> {
        self.keys.get(&key_hash(user, key)).copied()
    }

    /// Where message `id` of `thread` is.
    pub fn locate(&self, thread: Thread, id: MessageId) -> Option<Indexed> {
        let index = self.threads.get(&thread)?;
        index.binary_search_by_key(&id, |i| i.id).ok().map(|at| index[at])
    }

    /// Up to `limit` messages of `thread` with ids in `from..=until`: the newest ones before
    /// `before` (oldest first), or the oldest ones after `after`.
    pub fn page(
        &self,
        thread: Thread,
        (from, until): (MessageId, MessageId),
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Vec<Indexed> {
        let lo = after.map_or(from, |a| a.saturating_add(1).max(from));
        let hi = before.map_or(until, |b| b.saturating_sub(1).min(until));
        let Some(index) = self.threads.get(&thread) else { return Vec::new() };
        if lo > hi {
            return Vec::new();
        }
        let (start, end) = (index.partition_point(|i| i.id < lo), index.partition_point(|i| i.id <= hi));
        let range = &index[start..end];
        if after.is_some() {
            range.iter().take(limit).copied().collect()
        } else {
            range[range.len().saturating_sub(limit)..].to_vec()
        }
    }

    /// Text messages not from `user` in `thread` with ids in `(after, until]`.
    pub fn count_unread(&self, thread: Thread, user: &Username, after: MessageId, until: MessageId) -> u32 {
        if after >= until {
            return 0;
        }
        let Some(index) = self.threads.get(&thread) else { return 0 };
        let me = self.numbers.get(user).copied();
        let (start, end) = (index.partition_point(|i| i.id <= after), index.partition_point(|i| i.id <= until));
        let n = index[start..end].iter().filter(|i| i.text && Some(i.from) != me).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The newest message id of `thread` (0 when empty).
    pub fn last(&self, thread: Thread) -> MessageId {
        self.threads.get(&thread).and_then(|i| i.last()).map_or(0, |i| i.id)
    }

    /// Up to `limit` entries of `user`'s delivery queue, oldest first.
    pub fn queue(&self, user: &Username, limit: usize) -> Vec<(MessageId, Thread)> {
        self.user(user).map(|u| u.queue.iter().take(limit).map(|(id, (t, _))| (*id, *t)).collect()).unwrap_or_default()
    }

    /// The entries of `user`'s queue an acknowledgement up to `upto` takes off.
    pub fn queued_upto(&self, user: &Username, upto: MessageId) -> Vec<Acked> {
        self.user(user)
            .map(|u| {
                u.queue
                    .range(..=upto)
                    .map(|(id, (thread, live))| Acked { id: *id, thread: *thread, live: *live })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The room `id`.
    pub fn room(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(&id)
    }

    /// The room named `name` (case-insensitively).
    pub fn room_named(&self, name: &str) -> Option<RoomId> {
        self.room_names.get(&name.to_lowercase()).copied()
    }

    /// `user`'s mark in room `room`, if a member.
    pub fn mark(&self, user: &Username, room: RoomId) -> Option<RoomMark> {
        self.user(user)?.marks.get(&room).copied()
    }

    /// `user`'s rooms with their marks.
    pub fn marks(&self, user: &Username) -> Vec<(RoomId, RoomMark)> {
        self.user(user).map(|u| u.marks.iter().map(|(r, m)| (*r, *m)).collect()).unwrap_or_default()
    }
}

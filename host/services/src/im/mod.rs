//! The IM service: conversations, messages, typing, receipts and offline delivery.
//!
//! Each operation on a conversation runs under that conversation's lock, so its messages get
//! their ids in the order they are stored and membership changes never race a send. A message
//! is acknowledged only after [`halo_store::Im::append`] made its log entry durable; then it is fanned out
//! through the [`Outbox`] to every endpoint of every present participant except the one that sent
//! it. Every local recipient also gets it in their delivery queue, in the same log entry:
//! those with no endpoint (when offline IM is on) receive it from there on connect, and those
//! online keep it there until a device acknowledges it (`im.ack`), so a crash between the
//! acknowledgement to the sender and the push loses nothing (at least once).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use halo_core::Username;
use halo_core::archive::{Place, Record};
use halo_core::conversation::{self, Conversation, ConversationId, Format, MessageId};
use halo_core::federation::{Group, Item};
use halo_core::message::{Body, Message};
use halo_core::rate::{Limiter, Rate};
use halo_store::{Store, Thread};
use serde::Deserialize;

use crate::archive::ArchiveService;
use crate::changes::{ChangeService, Draft};
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::federation::FederationService;
use crate::metrics::Metrics;
use crate::outbox::{Event, Outbox, Shared};
use crate::presence::PresenceService;
use crate::views::{ConversationView, MessageView};

mod remote;

pub(crate) use remote::{fed_key, history};

/// IM settings (`[im]` in `halo.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImSettings {
    /// Messages (IM sends and room posts together) per second a user may send, sustained (5).
    pub messages_per_sec: f64,
    /// Messages a user may send in a burst (20).
    pub burst: f64,
    /// Largest attachment taken, in bytes (10 MiB).
    pub max_attachment_bytes: u64,
    /// Bytes of attachments a user may upload per hour (500 MiB; 0: no limit).
    pub attachment_bytes_per_hour: u64,
}

impl Default for ImSettings {
    fn default() -> Self {
        Self {
            messages_per_sec: 5.0,
            burst: 20.0,
            max_attachment_bytes: crate::attachments::DEFAULT_MAX_BYTES,
            attachment_bytes_per_hour: crate::attachments::DEFAULT_BYTES_PER_HOUR,
        }
    }
}

const OFFLINE_IM_KEY: &str = "offline_im_disabled";
const LOCK_SHARDS: usize = 256;

/// The lock shard of conversation `conv`: a multiplicative (Fibonacci) hash of every bit of the
/// id. Not `conv % LOCK_SHARDS`: a pool node's ids are `(n << 8) | slot`, so their low byte is
/// the slot of the node that made them and every conversation made through one node would share
/// one lock, each send waiting out the previous one's JetStream round trip.
fn lock_shard(conv: ConversationId) -> usize {
    const SHIFT: u32 = u64::BITS - LOCK_SHARDS.trailing_zeros();
    (conv.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> SHIFT) as usize
}
/// Rate buckets kept before full ones (the same as new) are dropped.
const MAX_BUCKETS: usize = 100_000;

/// How fast each user may send: one token bucket per sender (`[im]` rate and burst), shared by
/// IM sends and room posts, so a user's messages count against one allowance wherever they go.
pub struct SendLimiter(Mutex<Limiter<Username>>);

impl SendLimiter {
    /// A limiter at the `[im]` rate.
    pub fn new(settings: &ImSettings) -> Self {
        let rate = Rate { per_sec: settings.messages_per_sec, burst: settings.burst.max(1.0) };
        // Senders include users of other servers, whose names a remote server chooses: the
        // buckets are bounded.
        Self(Mutex::new(Limiter::new(rate, MAX_BUCKETS)))
    }

    /// Takes one message from `user`'s allowance, or refuses ([`ServiceError::TooFast`]).
    pub fn check(&self, user: &Username) -> Result<(), ServiceError> {
        let mut l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if l.take(user, now_ms()) { Ok(()) } else { Err(ServiceError::TooFast) }
    }
}

/// Who is acting: the user, and the endpoint the request came on (not echoed back to it).
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The user.
    pub user: &'a Username,
    /// The requesting endpoint, if the request came on the stream.
    pub endpoint: Option<u64>,
}

/// A page of a user's conversations.
pub struct Inbox {
    /// Most recent first.
    pub conversations: Vec<ConversationView>,
    /// Cursor of the next page (`last:conversation`).
    pub next: Option<String>,
}

/// The IM service.
pub struct ImService {
    store: Store,
    outbox: Arc<dyn Outbox>,
    metrics: Arc<Metrics>,
    presence: Arc<PresenceService>,
    archive: Arc<ArchiveService>,
    federation: Arc<FederationService>,
    limiter: Arc<SendLimiter>,
    changes: Arc<ChangeService>,
    locks: Vec<tokio::sync::Mutex<()>>,
}

impl ImService {
    /// The service; sends draw on `limiter`, and `changes` shows messages as they are now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        outbox: Arc<dyn Outbox>,
        metrics: Arc<Metrics>,
        presence: Arc<PresenceService>,
        archive: Arc<ArchiveService>,
        federation: Arc<FederationService>,
        limiter: Arc<SendLimiter>,
        changes: Arc<ChangeService>,
    ) -> Self {
        Self {
            presence,
            archive,
            federation,
            store,
            outbox,
            metrics,
            limiter,
            changes,
            locks: (0..LOCK_SHARDS).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    async fn lock(&self, conv: ConversationId) -> tokio::sync::MutexGuard<'_, ()> {
        self.locks[lock_shard(conv)].lock().await
    }

    /// Whether offline IM is on (an admin setting, stored).
    pub fn offline_im(&self) -> Result<bool, ServiceError> {
        Ok(self.store.meta_u64(OFFLINE_IM_KEY)?.unwrap_or(0) == 0)
    }

    /// Turns offline IM on or off.
    pub async fn set_offline_im(&self, on: bool) -> Result<(), ServiceError> {
        Ok(self.store.set_meta_u64(OFFLINE_IM_KEY, u64::from(!on)).await?)
    }

    /// The per-user send limiter, for the other services that take messages (room posts).
    pub fn limiter(&self) -> Arc<SendLimiter> {
        self.limiter.clone()
    }

    /// A local account, or a remote user of a federated domain (`name@domain`).
    fn user(&self, name: &str) -> Result<Username, ServiceError> {
        if name.contains('@') {
            return self.federation.address(name);
        }
        crate::accounts::existing_user(&self.store, name)
    }

    /// The seam where the recipient's wishes decide whether `from` may reach `to`: presence
    /// refuses Blocked contacts, and non-Workgroup senders while `to` is in Do Not Disturb.
    async fn check_reach(&self, from: &Username, to: &Username) -> Result<(), ServiceError> {
        self.presence.check_reach(from, to).await
    }

    /// The conversation `id` if `user` ever took part in it (else not found, hiding its existence).
    pub fn conversation_of(&self, user: &Username, id: ConversationId) -> Result<Conversation, ServiceError> {
        match self.store.im().conversation(id)? {
            Some(c) if c.participants.contains_key(user) => Ok(c),
            _ => Err(ServiceError::NotFound(format!("no conversation {id}"))),
        }
    }

    fn view(&self, c: &Conversation, viewer: &Username) -> Result<ConversationView, ServiceError> {
        let entry = self.store.im().entry(viewer, c.id)?;
        let (from, until) = c.window(viewer).unwrap_or((0, 0));
        let from = from.max(entry.as_ref().map_or(0, |e| e.hidden_upto.saturating_add(1)));
        let thread = Thread::Conversation(c.id);
        let last = self.store.im().page(thread, (from, until), None, None, 1)?;
        let mut view = ConversationView::new(c, viewer, entry.as_ref(), last.first());
        if let (Some(lm), Some(m)) = (view.last_message.take(), last.first()) {
            view.last_message = Some(lm.changed(self.store.im().changes(thread, m.id)?));
        }
        view.muted = self.changes.muted(viewer, thread);
        Ok(view)
    }

    /// Starts a conversation of `actor` with `others`; with one other, the open 1:1 between
    /// them is reused.
    pub async fn start(&self, actor: Actor<'_>, others: &[String]) -> Result<ConversationView, ServiceError> {
        let mut users = Vec::with_capacity(others.len());
        for name in others {
            let u = self.user(name)?;
            if &u != actor.user && !users.contains(&u) {
                self.check_reach(actor.user, &u).await?;
                users.push(u);
            }
        }
        if let [other] = users.as_slice()
            && let Some(id) = self.store.im().direct(actor.user, other)?
            && let Some(c) = self.store.im().conversation(id)?
            && c.kind == conversation::Kind::Direct
            && c.is_member(actor.user)
            && c.is_member(other)
        {
            return self.view(&c, actor.user);
        }
        let reserved = self.store.im().reserve()?;
        let id = reserved.id();
        let conv = Conversation::new(id, actor.user, &users, now_ms(), 0)?;
        let _guard = self.lock(id).await;
        let record = self.archive.started(&conv, actor.user);
        self.store.im().create(&conv, record.as_ref()).await?;
        drop(reserved);
        for m in conv.members() {
            let event = Event::ImConversation { conversation: self.view(&conv, m)? };
            self.outbox.to_user(m, if m == actor.user { actor.endpoint } else { None }, &event);
        }
        if conv.kind == conversation::Kind::Group {
            for m in conv.members().filter(|m| m.is_remote()) {
                let invite = Item::GroupInvite {
                    from: Group::Conversation(id).local(),
                    to: m.to_string(),
                    by: actor.user.to_string(),
                    name: String::new(),
                };
                if let Err(e) = self.federation.send(invite).await {
                    tracing::info!(conversation = id, error = %e, "a remote participant was not told");
                }
            }
        }
        self.view(&conv, actor.user)
    }

    /// Sends a text message; a retry with the same `key` returns the stored message.
    pub async fn send(
        &self,
        actor: Actor<'_>,
        id: ConversationId,
        text: &str,
        format: Format,
        key: Option<String>,
    ) -> Result<MessageView, ServiceError> {
        self.send_draft(actor, id, (text, format), key, &Draft::default()).await
    }

    /// Sends a text message with a reply, mentions and attachments; a retry with the same
    /// `key` returns the stored message. A message with attachments may have no text.
    pub async fn send_draft(
        &self,
        actor: Actor<'_>,
        id: ConversationId,
        (text, format): (&str, Format),
        key: Option<String>,
        draft: &Draft,
    ) -> Result<MessageView, ServiceError> {
        let started = Instant::now();
        let text = draft.checked(text, key.as_deref())?;
        let _guard = self.lock(id).await;
        let conv = self.conversation_of(actor.user, id)?;
        if let Some(k) = &key
            && let Some((thread, existing)) = self.store.im().by_key(actor.user, k)?
        {
            if thread == Thread::Conversation(id) && existing.same_content(&text, format) {
                return self.changes.show(thread, &existing, None, &[actor.user]);
            }
            return Err(ServiceError::IdempotencyConflict);
        }
        conv.check_send(actor.user)?;
        if conv.kind == conversation::Kind::Direct {
            for other in conv.members().filter(|m| *m != actor.user) {
                self.check_reach(actor.user, other).await?;
            }
        }
        // The allowance is taken before an id is reserved: a refused send leaves no gap in the
        // ids and nothing in flight for the followers to wait on.
        let thread = Thread::Conversation(id);
        let members: Vec<&Username> = conv.members().collect();
        let extras = self.changes.extras(actor.user, thread, &text, &members, draft)?;
        // Users of other servers count against their domain's limit instead (checked by
        // federation before this).
        if !actor.user.is_remote() {
            self.limiter.check(actor.user)?;
        }
        let reserved = self.store.im().reserve()?;
        let msg = Message {
            id: reserved.id(),
            at: now_ms(),
            from: actor.user.clone(),
            body: Body::Text { text, format },
            key,
            extras,
        };
        let record = self.record(&conv, &msg)?;
        let view = self.append(actor, &conv, &msg, true, record, Vec::new()).await?;
        self.metrics.im_delivery.observe(started.elapsed().as_secs_f64());
        Ok(view)
    }

    /// The archive record of `msg` in `conv`, if archived (refused while archiving fails, if
    /// the settings say so).
    fn record(&self, conv: &Conversation, msg: &Message) -> Result<Option<Record>, ServiceError> {
        let members: Vec<&Username> = conv.members().collect();
        self.archive.record(Place::Conversation(conv.id), msg, &members)
    }

    /// Stores `msg` in `conv` (with its archive record, and `extra` items for remote users)
    /// and fans it out. A 1:1 `text` to an offline user is refused when offline IM is off; in a
    /// group, offline participants then find it in their history.
    async fn append(
        &self,
        actor: Actor<'_>,
        conv: &Conversation,
        msg: &Message,
        text: bool,
        record: Option<Record>,
        extra: Vec<Item>,
    ) -> Result<MessageView, ServiceError> {
        let offline_on = self.offline_im()?;
        let (mut offline, mut live) = (Vec::new(), Vec::new());
        // Remote participants are reached through federation, never the queue.
        for m in conv.members().filter(|m| *m != actor.user && !m.is_remote()) {
            if self.outbox.is_online(m) {
                live.push(m.clone());
            } else {
                if !offline_on && text && conv.kind == conversation::Kind::Direct {
                    return Err(ServiceError::RecipientOffline(m.to_string()));
                }
                if offline_on {
                    offline.push(m.clone());
                }
            }
        }
        // Remote participants get their copy through their domain's queue, carried by the
        // message's log entry (the federation follower queues it): an acknowledged message is
        // queued, a refused one is neither stored nor queued, so a retry with the same key has
        // nothing left to make up for.
        let mut outbound = Vec::new();
        for item in self.items_for_remotes(actor.user, conv, msg).into_iter().chain(extra) {
            // A 1:1 with a domain no longer routed is refused (nothing stored); a group goes on
            // without the members whose domain is not.
            match self.federation.outbound(item) {
                Ok((entry, _route)) => outbound.push(entry),
                Err(e) if conv.kind == conversation::Kind::Direct => return Err(e),
                Err(e) => tracing::info!(conversation = conv.id, error = %e, "a remote member is not reachable"),
            }
        }
        self.store.im().append(conv, msg, (&offline, &live), record.as_ref(), &outbound).await?;
        self.metrics.im_sent.inc();
        let readers: Vec<&Username> = conv.members().collect();
        let view = self.changes.show(Thread::Conversation(conv.id), msg, None, &readers)?;
        // Encoded once for every recipient.
        let event = Event::Shared(Shared::new(Event::ImMessage { message: view.clone(), offline: false }));
        for m in conv.members() {
            let skip = if m == actor.user { actor.endpoint } else { None };
            let n = self.outbox.to_user(m, skip, &event);
            if n > 0 && m != actor.user {
                self.metrics.im_delivered.inc();
                if text {
                    let receipt = Event::ImDelivered { conversation: conv.id, message: msg.id, user: m.to_string() };
                    self.outbox.to_user(actor.user, None, &receipt);
                }
            }
        }
        self.changes.notify_mentions(msg, &view);
        Ok(view)
    }

    /// `actor` adds `user`; the newcomer sees messages from now on.
    pub async fn add(
        &self,
        actor: Actor<'_>,
        id: ConversationId,
        user: &str,
    ) -> Result<ConversationView, ServiceError> {
        let user = self.user(user)?;
        self.check_reach(actor.user, &user).await?;
        let _guard = self.lock(id).await;
        let mut conv = self.conversation_of(actor.user, id)?;
        let reserved = self.store.im().reserve()?;
        let msg_id = reserved.id();
        let now = now_ms();
        let was_direct = conv.kind == conversation::Kind::Direct;
        conv.add(actor.user, &user, now, msg_id)?;
        let msg = Message {
            id: msg_id,
            at: now,
            from: actor.user.clone(),
            body: Body::Joined { user: user.clone() },
            key: None,
            extras: Default::default(),
        };
        let record = self.record(&conv, &msg)?;
        self.announce(actor, &conv, &[])?;
        // Users of other servers learn of the group (their servers show it to them): the
        // newcomer, and when a 1:1 just became a group, the remote user already in it.
        let invites = conv
            .members()
            .filter(|m| m.is_remote() && (**m == user || (was_direct && *m != actor.user)))
            .map(|m| Item::GroupInvite {
                from: Group::Conversation(id).local(),
                to: m.to_string(),
                by: actor.user.to_string(),
                name: String::new(),
            })
            .collect();
        self.append(actor, &conv, &msg, false, record, invites).await?;
        self.view(&conv, actor.user)
    }

    /// `actor` leaves the conversation.
    pub async fn leave(&self, actor: Actor<'_>, id: ConversationId) -> Result<ConversationView, ServiceError> {
        let _guard = self.lock(id).await;
        let mut conv = self.conversation_of(actor.user, id)?;
        let reserved = self.store.im().reserve()?;
        let msg_id = reserved.id();
        conv.leave(actor.user, msg_id)?;
        let msg = Message {
            id: msg_id,
            at: now_ms(),
            from: actor.user.clone(),
            body: Body::Left { user: actor.user.clone() },
            key: None,
            extras: Default::default(),
        };
        let record = self.record(&conv, &msg)?;
        // Leaving a group hosted elsewhere leaves it there too.
        let left = conv
            .hosted_by()
            .filter(|_| !actor.user.is_remote())
            .map(|host| Item::GroupLeave { from: actor.user.to_string(), to: host.to_string() });
        let actor_quiet = Actor { user: actor.user, endpoint: None };
        self.append(actor_quiet, &conv, &msg, false, record, left.into_iter().collect()).await?;
        self.announce(actor, &conv, std::slice::from_ref(actor.user))?;
        self.view(&conv, actor.user)
    }

    /// Sends the conversation's new shape to its present participants and `also`.
    fn announce(&self, actor: Actor<'_>, conv: &Conversation, also: &[Username]) -> Result<(), ServiceError> {
        for m in conv.members().chain(also) {
            let event = Event::ImConversation { conversation: self.view(conv, m)? };
            self.outbox.to_user(m, if m == actor.user { actor.endpoint } else { None }, &event);
        }
        Ok(())
    }

    /// Tells the other participants that `actor` is (not) typing. Nothing is stored.
    pub fn typing(&self, actor: Actor<'_>, id: ConversationId, typing: bool) -> Result<(), ServiceError> {
        let conv = self.conversation_of(actor.user, id)?;
        conv.check_send(actor.user)?;
        let event = Event::ImTyping { conversation: id, user: actor.user.to_string(), typing };
        for m in conv.members().filter(|m| *m != actor.user) {
            self.outbox.to_user(m, None, &event);
        }
        Ok(())
    }

    /// Moves `actor`'s read marker; tells the others (read receipt) and the reader's devices.
    /// A marker that does not move (an older id) tells no one.
    pub async fn read(&self, actor: Actor<'_>, id: ConversationId, upto: MessageId) -> Result<u32, ServiceError> {
        let conv = self.conversation_of(actor.user, id)?;
        let (entry, moved) = self.store.im().mark_read(actor.user, id, upto).await?;
        if !moved {
            return Ok(entry.unread);
        }
        let receipt =
            |unread| Event::ImRead { conversation: id, user: actor.user.to_string(), upto: entry.read_upto, unread };
        for m in conv.members() {
            if m == actor.user {
                self.outbox.to_user(m, actor.endpoint, &receipt(Some(entry.unread)));
            } else {
                self.outbox.to_user(m, None, &receipt(None));
            }
        }
        Ok(entry.unread)
    }

    /// Messages waiting for a device of `user` (offline ones, and live ones no device has
    /// acknowledged), as events to send on connect.
    pub fn pending(&self, user: &Username, limit: usize) -> Result<Vec<Event>, ServiceError> {
        let msgs = self.store.im().offline(user, limit)?;
        msgs.iter()
            .map(|(t, m)| {
                let message = self.changes.show(*t, m, Some(user), &[user])?;
                Ok(Event::ImMessage { message, offline: true })
            })
            .collect()
    }

    /// `user`'s device got the messages up to `upto` (offline or live): drop them from the
    /// queue and tell the senders of offline ones (live ones had their receipt when pushed).
    pub async fn ack(&self, user: &Username, upto: MessageId) -> Result<usize, ServiceError> {
        // A message with a lower id may be stored but not pushed yet (its id is still reserved
        // until its fan-out is done): the device cannot have it, so it stays queued.
        let upto = upto.min(self.store.im().reserved_below().saturating_sub(1));
        let acked = self.store.im().ack_offline(user, upto).await?;
        for a in acked.iter().filter(|a| !a.live) {
            if let Thread::Conversation(c) = a.thread
                && let Some(m) = self.store.im().message(a.thread, a.id)?
                && m.text().is_some()
            {
                let receipt = Event::ImDelivered { conversation: c, message: m.id, user: user.to_string() };
                self.outbox.to_user(&m.from, None, &receipt);
            }
        }
        Ok(acked.len())
    }

    /// A page of `user`'s conversations, most recent first; `cursor` is the previous page's `next`.
    pub fn inbox(&self, user: &Username, cursor: Option<&str>, limit: usize) -> Result<Inbox, ServiceError> {
        let cursor = cursor.map(parse_cursor).transpose()?;
        let entries = self.store.im().inbox(user, cursor, limit)?;
        let next = (entries.len() == limit).then(|| entries.last().map(|(c, e)| format!("{}:{c}", e.last))).flatten();
        let mut conversations = Vec::with_capacity(entries.len());
        for (id, _) in entries {
            if let Some(c) = self.store.im().conversation(id)? {
                conversations.push(self.view(&c, user)?);
            }
        }
        Ok(Inbox { conversations, next })
    }

    /// One conversation, with the other present participants' read markers (none for a
    /// participant who left: what the others read since is not theirs to see).
    pub fn get(&self, user: &Username, id: ConversationId) -> Result<ConversationView, ServiceError> {
        let c = self.conversation_of(user, id)?;
        let mut view = self.view(&c, user)?;
        let mut read_by = std::collections::BTreeMap::new();
        let present = c.is_member(user);
        for other in c.members().filter(|u| present && *u != user) {
            let upto = self.store.im().entry(other, id)?.map_or(0, |e| e.read_upto);
            read_by.insert(other.to_string(), upto);
        }
        view.read_by = Some(read_by);
        Ok(view)
    }

    /// A page of messages `user` may read.
    pub fn messages(
        &self,
        user: &Username,
        id: ConversationId,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageView>, ServiceError> {
        let conv = self.conversation_of(user, id)?;
        let (from, until) = conv.window(user).unwrap_or((1, 0));
        let hidden = self.store.im().entry(user, id)?.map_or(0, |e| e.hidden_upto);
        let thread = Thread::Conversation(id);
        let page = self.store.im().page(thread, (from.max(hidden.saturating_add(1)), until), before, after, limit)?;
        let mut views =
            page.iter().map(|m| self.changes.show(thread, m, Some(user), &[user])).collect::<Result<Vec<_>, _>>()?;
        // What a remote server refused shows as failed.
        if conv.members().any(Username::is_remote) {
            for v in &mut views {
                v.failed = self.store.federation().failed(v.id)?;
            }
        }
        Ok(views)
    }

    /// A remote server refused message `id` that `from` sent `failure.to`: recorded (the
    /// history shows it failed) and told to the sender's devices.
    pub async fn failed(
        &self,
        from: &Username,
        id: MessageId,
        failure: halo_core::federation::DeliveryFailure,
    ) -> Result<(), ServiceError> {
        let to = Username::parse_address(&failure.to).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let Some(conv) = self.store.im().direct(from, &to)? else {
            return Err(ServiceError::NotFound(format!("no conversation of {from} with {to}")));
        };
        if self.store.im().message(Thread::Conversation(conv), id)?.is_none_or(|m| &m.from != from) {
            return Err(ServiceError::NotFound(format!("no message {id} of {from} in conversation {conv}")));
        }
        self.store.federation().set_failed(id, &failure).await?;
        self.outbox.to_user(from, None, &Event::ImFailed { conversation: conv, message: id, failure });
        Ok(())
    }

    /// Whether `user` may see message `id` of conversation `conv` in search results.
    pub fn searchable(&self, user: &Username, conv: ConversationId, id: MessageId) -> Result<bool, ServiceError> {
        Ok(self.store.im().entry(user, conv)?.is_some_and(|e| id > e.hidden_upto))
    }

    /// The messages behind search `hits` that `user` may see, in the hits' order: of
    /// conversations, those not hidden from their history; of rooms, all (the query names only
    /// rooms they may read). Hits whose message is gone are left out.
    pub fn found(&self, user: &Username, hits: &[halo_search::Hit]) -> Result<Vec<MessageView>, ServiceError> {
        let mut messages = Vec::with_capacity(hits.len());
        for hit in hits {
            let thread = match hit.container {
                halo_search::Container::Conversation(c) => {
                    if !self.searchable(user, c, hit.id)? {
                        continue;
                    }
                    Thread::Conversation(c)
                }
                halo_search::Container::Room(r) => Thread::Room(r),
            };
            if let Some(m) = self.store.im().message(thread, hit.id)? {
                let view = self.changes.show(thread, &m, Some(user), &[user])?;
                if view.deleted_at.is_none() {
                    messages.push(view);
                }
            }
        }
        Ok(messages)
    }

    /// Deletes the conversation from `user`'s history.
    pub async fn hide(&self, user: &Username, id: ConversationId) -> Result<(), ServiceError> {
        self.conversation_of(user, id)?;
        Ok(self.store.im().hide(user, id).await?)
    }

    /// Messages waiting for a device's acknowledgement over all users (for metrics).
    pub fn offline_depth(&self) -> usize {
        self.store.im().offline_depth()
    }
}

fn parse_cursor(s: &str) -> Result<(MessageId, ConversationId), ServiceError> {
    let bad = || ServiceError::Invalid(format!("invalid cursor {s:?}"));
    let (last, conv) = s.split_once(':').ok_or_else(bad)?;
    Ok((last.parse().map_err(|_| bad())?, conv.parse().map_err(|_| bad())?))
}

#[cfg(test)]
mod tests {
    use super::{LOCK_SHARDS, lock_shard};

    #[test]
    fn conversations_of_one_pool_node_spread_over_the_lock_shards() {
        // A pool node's ids share their low byte (its slot); a standalone node's are a counter.
        for ids in [(1..=512u64).map(|n| (n << 8) | 7).collect::<Vec<_>>(), (1..=512u64).collect()] {
            let mut used = [false; LOCK_SHARDS];
            for id in ids {
                used[lock_shard(id)] = true;
            }
            let spread = used.iter().filter(|u| **u).count();
            assert!(spread > LOCK_SHARDS / 2, "512 conversations use only {spread} of {LOCK_SHARDS} locks");
        }
    }
}

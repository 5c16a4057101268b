//! The persistent chat service: rooms, membership, posts, read markers and following.

use std::sync::Arc;
use std::time::Instant;

use halo_core::Username;
use halo_core::archive::Place;
use halo_core::conversation::{Format, MessageId};
use halo_core::federation::{Group, Item, MAX_GROUP_HISTORY, MAX_GROUP_MEMBERS};
use halo_core::message::{Body, Message};
use halo_core::room::{Privacy, Room, RoomId, RoomRole};
use halo_store::{RoomMark, Store, Thread};

use crate::archive::ArchiveService;
use crate::changes::{ChangeService, Draft};
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::federation::FederationService;
use crate::im::SendLimiter;
use crate::metrics::Metrics;
use crate::outbox::{Event, Outbox, Shared};
use crate::views::{MessageView, RoomView};

/// What a manager may change about a room; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct RoomChange {
    /// New name.
    pub name: Option<String>,
    /// New topic.
    pub topic: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New privacy.
    pub privacy: Option<Privacy>,
}

/// The persistent chat service.
pub struct RoomService {
    store: Store,
    outbox: Arc<dyn Outbox>,
    metrics: Arc<Metrics>,
    archive: Arc<ArchiveService>,
    changes: Arc<ChangeService>,
    /// The per-user send allowance, shared with IM.
    limiter: Arc<SendLimiter>,
    /// Carries posts to remote members and takes theirs.
    federation: Arc<FederationService>,
    /// Serialises changes to rooms (membership and names span records).
    writes: tokio::sync::Mutex<()>,
}

impl RoomService {
    /// The service; posts draw on `limiter`, the same per-user allowance as IM sends.
    pub fn new(
        store: Store,
        outbox: Arc<dyn Outbox>,
        metrics: Arc<Metrics>,
        archive: Arc<ArchiveService>,
        changes: Arc<ChangeService>,
        limiter: Arc<SendLimiter>,
        federation: Arc<FederationService>,
    ) -> Self {
        Self { store, outbox, metrics, archive, changes, limiter, federation, writes: tokio::sync::Mutex::new(()) }
    }

    fn room(&self, id: RoomId, viewer: &Username) -> Result<Room, ServiceError> {
        match self.store.rooms().get(id)? {
            Some(r) if r.can_see(viewer) => Ok(r),
            _ => Err(ServiceError::NotFound(format!("no room {id}"))),
        }
    }

    /// `viewer`'s view of `room`.
    pub fn view(&self, room: &Room, viewer: &Username) -> Result<RoomView, ServiceError> {
        let mark = self.store.rooms().mark(viewer, room.id)?;
        let unread = match mark {
            Some(m) => {
                let last = self.store.rooms().last_post(room.id)?;
                self.store.im().count_unread(Thread::Room(room.id), viewer, m.read_upto, last)?
            }
            None => 0,
        };
        let mut view = RoomView::new(room, viewer, unread, mark.is_some_and(|m| m.follow));
        view.muted = self.changes.muted(viewer, Thread::Room(room.id));
        Ok(view)
    }

    /// Rooms `viewer` can see whose name or topic contains `q` (case-insensitive), by name.
    pub fn list(&self, viewer: &Username, q: Option<&str>, mine: bool) -> Result<Vec<RoomView>, ServiceError> {
        let q = q.map(str::to_lowercase);
        let mut rooms: Vec<Room> = self
            .store
            .rooms()
            .all()?
            .into_iter()
            .filter(|r| r.can_see(viewer) && (!mine || r.members.contains_key(viewer)))
            .filter(|r| {
                q.as_ref().is_none_or(|q| r.name.to_lowercase().contains(q) || r.topic.to_lowercase().contains(q))
            })
            .collect();
        rooms.sort_by_key(|r| r.name.to_lowercase());
        rooms.iter().map(|r| self.view(r, viewer)).collect()
    }

    /// One room.
    pub fn get(&self, id: RoomId, viewer: &Username) -> Result<RoomView, ServiceError> {
        self.view(&self.room(id, viewer)?, viewer)
    }

    /// Creates a room managed by `creator`.
    pub async fn create(
        &self,
        creator: &Username,
        name: &str,
        topic: &str,
        description: &str,
        privacy: Privacy,
    ) -> Result<RoomView, ServiceError> {
        let id = self.store.im().reserve()?.id();
        let room = Room::new(id, name, creator, privacy, topic, description, now_ms())?;
        let _w = self.writes.lock().await;
        self.store.rooms().put(&room, None, std::slice::from_ref(creator), &[]).await?;
        self.federation.rooms_changed();
        self.view(&room, creator)
    }

    /// A manager changes the room.
    pub async fn update(&self, id: RoomId, by: &Username, change: RoomChange) -> Result<RoomView, ServiceError> {
        let _w = self.writes.lock().await;
        let mut room = self.room(id, by)?;
        room.check_manage(by)?;
        let old_name = room.name.clone();
        if let Some(n) = change.name {
            room.name = halo_core::room::check_name(&n)?;
        }
        if let Some(t) = change.topic {
            room.topic = halo_core::room::check_text(&t)?;
        }
        if let Some(d) = change.description {
            room.description = halo_core::room::check_text(&d)?;
        }
        if let Some(p) = change.privacy {
            room.privacy = p;
        }
        self.store.rooms().put(&room, Some(&old_name), &[], &[]).await?;
        self.notify_members(&room)?;
        self.federation.rooms_changed();
        self.view(&room, by)
    }

    /// `user` joins an open room.
    pub async fn join(&self, id: RoomId, user: &Username) -> Result<RoomView, ServiceError> {
        let _w = self.writes.lock().await;
        let mut room = self.room(id, user)?;
        if room.join(user)? {
            self.store.rooms().put(&room, None, std::slice::from_ref(user), &[]).await?;
            self.post_event(&room, user, Body::Joined { user: user.clone() }).await?;
            self.notify_members(&room)?;
        }
        self.view(&room, user)
    }

    /// A manager adds `user` or changes their role (an invitation, for closed and secret rooms).
    /// `user` may be a user of another server (`name@domain`): they are told (`group_invite`)
    /// and get the room's posts from then on.
    pub async fn set_member(
        &self,
        id: RoomId,
        by: &Username,
        user: &str,
        role: RoomRole,
    ) -> Result<RoomView, ServiceError> {
        let user = self.user(user)?;
        let _w = self.writes.lock().await;
        let mut room = self.room(id, by)?;
        let new = !room.members.contains_key(&user);
        room.set_member(by, &user, role)?;
        self.store.rooms().put(&room, None, std::slice::from_ref(&user), &[]).await?;
        if new {
            self.post_event(&room, by, Body::Joined { user: user.clone() }).await?;
            self.invite_remote(&room, by, &user).await;
        }
        self.notify_members(&room)?;
        self.view(&room, by)
    }

    /// Tells a remote user they were added to `room` by `by`.
    async fn invite_remote(&self, room: &Room, by: &Username, user: &Username) {
        if !user.is_remote() {
            return;
        }
        let invite = Item::GroupInvite {
            from: Group::Room(room.id).local(),
            to: user.to_string(),
            by: by.to_string(),
            name: room.name.clone(),
        };
        if let Err(e) = self.federation.send(invite).await {
            tracing::info!(room = room.id, %user, error = %e, "a remote member was not told");
        }
    }

    /// `by` removes `user` (a manager), or leaves (`by == user`).
    pub async fn remove_member(&self, id: RoomId, by: &Username, user: &str) -> Result<(), ServiceError> {
        let user =
            Username::parse_address(user).map_err(|_| ServiceError::NotFound(format!("no user named {user:?}")))?;
        let _w = self.writes.lock().await;
        let mut room = self.room(id, by)?;
        room.remove_member(by, &user)?;
        self.store.rooms().put(&room, None, &[], std::slice::from_ref(&user)).await?;
        self.post_event(&room, by, Body::Left { user: user.clone() }).await?;
        self.notify_members(&room)?;
        if room.can_see(&user) {
            let event = Event::RoomUpdated { room: self.view(&room, &user)? };
            self.outbox.to_user(&user, None, &event);
        }
        Ok(())
    }

    /// A local account, or a remote user of a federated domain (`name@domain`).
    fn user(&self, name: &str) -> Result<Username, ServiceError> {
        if name.contains('@') {
            return self.federation.address(name);
        }
        crate::accounts::existing_user(&self.store, name)
    }

    fn notify_members(&self, room: &Room) -> Result<(), ServiceError> {
        for m in room.members.keys() {
            let event = Event::RoomUpdated { room: self.view(room, m)? };
            self.outbox.to_user(m, None, &event);
        }
        Ok(())
    }

    async fn post_event(&self, room: &Room, by: &Username, body: Body) -> Result<(), ServiceError> {
        let id = self.store.im().reserve()?;
        let msg = Message { id: id.id(), at: now_ms(), from: by.clone(), body, key: None, extras: Default::default() };
        self.store_post(room, &msg).await?;
        self.fan_out(room, &msg, None)?;
        Ok(())
    }

    /// Writes a post with its archive record (when a member is archived) and, for a text, a
    /// `group_message` for each remote member but its author, queued with it.
    async fn store_post(&self, room: &Room, msg: &Message) -> Result<(), ServiceError> {
        let members: Vec<&Username> = room.members.keys().collect();
        let record = self.archive.record(Place::Room(room.id), msg, &members)?;
        let mut outbound = Vec::new();
        if let Some(text) = msg.text() {
            for m in room.members.keys().filter(|m| m.is_remote() && **m != msg.from) {
                let item = Item::GroupMessage {
                    from: Group::Room(room.id).local(),
                    to: m.to_string(),
                    author: msg.from.to_string(),
                    text: text.to_owned(),
                    id: msg.id.to_string(),
                };
                match self.federation.outbound(item) {
                    Ok((entry, _)) => outbound.push(entry),
                    Err(e) => {
                        tracing::info!(room = room.id, member = %m, error = %e, "a remote member is not reachable")
                    }
                }
            }
        }
        self.store.rooms().post(room.id, msg, record.as_ref(), &outbound).await?;
        Ok(())
    }

    fn fan_out(&self, room: &Room, msg: &Message, skip: Option<u64>) -> Result<MessageView, ServiceError> {
        let view = self.changes.show(Thread::Room(room.id), msg, None, &[])?;
        let event = Event::Shared(Shared::new(Event::RoomMessage { message: view.clone() }));
        for m in room.members.keys() {
            let follows = self.store.rooms().mark(m, room.id).ok().flatten().is_some_and(|mk| mk.follow);
            if follows {
                self.outbox.to_user(m, if m == &msg.from { skip } else { None }, &event);
            }
        }
        self.changes.notify_mentions(msg, &view);
        Ok(view)
    }

    /// `by` posts to the room (members only); a retry with the same `key` returns the stored post.
    pub async fn post(
        &self,
        id: RoomId,
        by: &Username,
        endpoint: Option<u64>,
        text: &str,
        format: Format,
        key: Option<String>,
    ) -> Result<MessageView, ServiceError> {
        self.post_draft(id, (by, endpoint), (text, format), key, &Draft::default()).await
    }

    /// `by` posts with a reply, mentions and attachments (members only); a retry with the
    /// same `key` returns the stored post. A post with attachments may have no text.
    pub async fn post_draft(
        &self,
        id: RoomId,
        (by, endpoint): (&Username, Option<u64>),
        (text, format): (&str, Format),
        key: Option<String>,
        draft: &Draft,
    ) -> Result<MessageView, ServiceError> {
        let started = Instant::now();
        let text = draft.checked(text, key.as_deref())?;
        if let Some(k) = &key
            && let Some((thread, existing)) = self.store.im().by_key(by, k)?
        {
            if thread == Thread::Room(id) && existing.same_content(&text, format) {
                return self.changes.show(thread, &existing, None, &[]);
            }
            return Err(ServiceError::IdempotencyConflict);
        }
        let room = self.room(id, by)?;
        room.check_post(by)?;
        let members: Vec<&Username> = room.members.keys().collect();
        let extras = self.changes.extras(by, Thread::Room(id), &text, &members, draft)?;
        self.limiter.check(by)?;
        let reserved = self.store.im().reserve()?;
        let msg = Message {
            id: reserved.id(),
            at: now_ms(),
            from: by.clone(),
            body: Body::Text { text, format },
            key,
            extras,
        };
        self.store_post(&room, &msg).await?;
        drop(reserved);
        self.metrics.im_sent.inc();
        let view = self.fan_out(&room, &msg, endpoint)?;
        // The post's log entry moved the poster's read marker past it.
        self.metrics.im_delivery.observe(started.elapsed().as_secs_f64());
        Ok(view)
    }

    /// A page of posts (members, and anyone for open rooms).
    pub fn messages(
        &self,
        id: RoomId,
        viewer: &Username,
        before: Option<MessageId>,
        after: Option<MessageId>,
        limit: usize,
    ) -> Result<Vec<MessageView>, ServiceError> {
        let room = self.room(id, viewer)?;
        room.check_read(viewer)?;
        let thread = Thread::Room(id);
        let page = self.store.im().page(thread, (1, MessageId::MAX), before, after, limit)?;
        page.iter().map(|m| self.changes.show(thread, m, Some(viewer), &[])).collect()
    }

    async fn mark(&self, id: RoomId, user: &Username, f: impl FnOnce(&mut RoomMark)) -> Result<RoomMark, ServiceError> {
        let mut mark =
            self.store.rooms().mark(user, id)?.ok_or(ServiceError::forbidden("not a member of this room"))?;
        f(&mut mark);
        self.store.rooms().set_mark(user, id, mark).await?;
        Ok(mark)
    }

    /// Moves a member's read marker forward.
    pub async fn read(&self, id: RoomId, user: &Username, upto: MessageId) -> Result<RoomView, ServiceError> {
        let room = self.room(id, user)?;
        self.mark(id, user, |m| m.read_upto = m.read_upto.max(upto)).await?;
        self.view(&room, user)
    }

    /// Turns pushing of posts to a member's devices on or off.
    pub async fn follow(&self, id: RoomId, user: &Username, follow: bool) -> Result<RoomView, ServiceError> {
        let room = self.room(id, user)?;
        self.mark(id, user, |m| m.follow = follow).await?;
        self.view(&room, user)
    }

    /// A remote member's post, arriving through federation (a repeat of the same remote `id`
    /// is stored once). Refused unless they are a member.
    pub async fn receive_post(
        &self,
        id: RoomId,
        from: &Username,
        text: &str,
        remote_id: &str,
    ) -> Result<(), ServiceError> {
        let key = crate::im::fed_key(remote_id);
        self.post(id, from, None, text, Format::Plain, key).await.map(|_| ())
    }

    /// A remote user enters the room (an XMPP user joining it as a MUC room): open rooms take
    /// anyone (who becomes a member), closed and secret ones only their members. Answers
    /// what the room is now.
    pub async fn remote_join(&self, id: RoomId, user: &Username) -> Result<Item, ServiceError> {
        let room = self.room(id, user)?;
        if !room.members.contains_key(user) {
            if room.privacy != Privacy::Open {
                return Err(ServiceError::forbidden("this room is members-only: ask a manager to add you"));
            }
            self.join(id, user).await?;
        }
        self.state(id, user)
    }

    /// What the room is, for member `user` of another server.
    pub fn state(&self, id: RoomId, user: &Username) -> Result<Item, ServiceError> {
        let room = self.room(id, user)?;
        room.check_read(user)?;
        let page = self.store.im().page(Thread::Room(id), (1, MessageId::MAX), None, None, MAX_GROUP_HISTORY)?;
        Ok(Item::GroupState {
            from: Group::Room(id).local(),
            to: user.to_string(),
            name: room.name.clone(),
            subject: room.topic.clone(),
            members: room.members.keys().take(MAX_GROUP_MEMBERS).map(Username::to_string).collect(),
            history: crate::im::history(&page),
        })
    }

    /// A remote member invites `user` (XEP-0045's mediated invitation): a manager adds them
    /// (as [`RoomService::set_member`]); in an open room any member may (anyone may join).
    pub async fn remote_add(&self, id: RoomId, by: &Username, user: &str) -> Result<(), ServiceError> {
        let room = self.room(id, by)?;
        room.check_post(by)?;
        if room.check_manage(by).is_ok() {
            self.set_member(id, by, user, RoomRole::Member).await?;
            return Ok(());
        }
        if room.privacy != Privacy::Open {
            return Err(ServiceError::forbidden("only a manager of the room may invite into it"));
        }
        let user = self.user(user)?;
        let _w = self.writes.lock().await;
        let mut room = self.room(id, by)?;
        if room.members.contains_key(&user) {
            return Ok(());
        }
        room.members.insert(user.clone(), RoomRole::Member);
        self.store.rooms().put(&room, None, std::slice::from_ref(&user), &[]).await?;
        self.post_event(&room, by, Body::Joined { user: user.clone() }).await?;
        self.invite_remote(&room, by, &user).await;
        self.notify_members(&room)?;
        Ok(())
    }

    /// Every room this server hosts that users of other servers may find (open and closed
    /// ones; secret rooms stay hidden), for federation directories.
    pub fn directory(store: &Store) -> Vec<Room> {
        store.rooms().all().unwrap_or_default().into_iter().filter(|r| r.privacy != Privacy::Secret).collect()
    }

    /// Rooms `user` may read (for search).
    pub fn readable(&self, user: &Username) -> Result<Vec<RoomId>, ServiceError> {
        Ok(self.store.rooms().all()?.into_iter().filter(|r| r.can_read(user)).map(|r| r.id).collect())
    }
}

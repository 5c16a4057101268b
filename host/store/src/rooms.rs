//! Persistent chat rooms, over the IM log.
//!
//! A room's record, membership changes, posts and members' marks (read marker, follow flag)
//! are log entries like conversations' ([`crate::Im`]); the projection holds the rooms, their
//! names and the marks.

use halo_core::Username;
use halo_core::archive::Record;
use halo_core::conversation::MessageId;
use halo_core::im::{Fact, Outbound, Posted, Thread};
use halo_core::message::Message;
use halo_core::room::{Room, RoomId};

use crate::StoreError;
use crate::im::Im;

pub use halo_core::im::RoomMark;

/// Typed access to rooms.
#[derive(Clone)]
pub struct Rooms {
    im: Im,
}

impl Rooms {
    pub(crate) fn open(im: Im) -> Self {
        Self { im }
    }

    /// The room `id`, if any.
    pub fn get(&self, id: RoomId) -> Result<Option<Room>, StoreError> {
        Ok(self.im.state().room(id).cloned())
    }

    /// Every room (for listing; filtered by visibility by the caller).
    pub fn all(&self) -> Result<Vec<Room>, StoreError> {
        Ok(self.im.state().rooms.values().cloned().collect())
    }

    /// Stores `room` (new or changed); `joined` get a mark (following), `left` lose theirs.
    /// Fails with [`StoreError::Exists`] when the name is taken by another room. Durable on
    /// return. Callers serialise room changes (the name check and the write are not atomic).
    pub async fn put(
        &self,
        room: &Room,
        _old_name: Option<&str>,
        joined: &[Username],
        left: &[Username],
    ) -> Result<(), StoreError> {
        if self.im.state().room_named(&room.name).is_some_and(|owner| owner != room.id) {
            return Err(StoreError::Exists(format!("a room named {:?}", room.name)));
        }
        self.im.write(Fact::RoomPut { room: room.clone(), joined: joined.to_vec(), left: left.to_vec() }).await?;
        Ok(())
    }

    /// Appends a post (or membership event) to `room`, durably, with its idempotency key,
    /// archive record and items for remote members' domains (the federation follower queues
    /// them); a text post moves its sender's read marker past it.
    pub async fn post(
        &self,
        room: RoomId,
        msg: &Message,
        archived: Option<&Record>,
        outbound: &[Outbound],
    ) -> Result<(), StoreError> {
        let posted = Posted {
            thread: Thread::Room(room),
            message: msg.clone(),
            conversation: None,
            offline: Vec::new(),
            live: Vec::new(),
            archived: archived.cloned(),
            outbound: outbound.to_vec(),
        };
        self.im.write(Fact::Posted(Box::new(posted))).await?;
        Ok(())
    }

    /// The newest post id of `room` (0 when empty).
    pub fn last_post(&self, room: RoomId) -> Result<MessageId, StoreError> {
        Ok(self.im.state().last(Thread::Room(room)))
    }

    /// `user`'s mark in `room`, if a member.
    pub fn mark(&self, user: &Username, room: RoomId) -> Result<Option<RoomMark>, StoreError> {
        Ok(self.im.state().mark(user, room))
    }

    /// Replaces `user`'s mark in `room`, durably.
    pub async fn set_mark(&self, user: &Username, room: RoomId, mark: RoomMark) -> Result<(), StoreError> {
        self.im.write(Fact::RoomMarked { user: user.clone(), room, mark }).await?;
        Ok(())
    }

    /// The rooms `user` is a member of, with their marks.
    pub fn of_user(&self, user: &Username) -> Result<Vec<(RoomId, RoomMark)>, StoreError> {
        Ok(self.im.state().marks(user))
    }
}

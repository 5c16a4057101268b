//! Persistent chat rooms.
//!
//! Trees: `rooms` (id → [`Room`]), `room_names` (lowercased name → id), `room_marks` (user, 0,
//! room id → [`RoomMark`]: a member's read marker and follow flag). Posts share the `messages`,
//! `journal` and `idempotency` trees with conversations (thread `Room(id)`).

use halo_core::Username;
use halo_core::archive::Record;
use halo_core::conversation::MessageId;
use halo_core::message::Message;
use halo_core::room::{Room, RoomId};
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::im::{Im, MESSAGES, MessageTrees, abort, tx_result, write_message};
use crate::keys::{Thread, u64_at, user_key};
use crate::{SledResult, StoreError};

const ROOMS: &str = "rooms";
const NAMES: &str = "room_names";
const MARKS: &str = "room_marks";

/// A member's state in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoomMark {
    /// Read up to this post.
    pub read_upto: MessageId,
    /// Posts are pushed to the member's devices.
    pub follow: bool,
}

/// Typed access to rooms.
#[derive(Clone)]
pub struct Rooms {
    db: crate::flush::Db,
    rooms: sled::Tree,
    names: sled::Tree,
    marks: sled::Tree,
    im: Im,
}

fn name_key(name: &str) -> Vec<u8> {
    name.to_lowercase().into_bytes()
}

impl Rooms {
    pub(crate) fn open(db: &crate::flush::Db, im: Im) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            rooms: db.open_tree(ROOMS).db()?,
            names: db.open_tree(NAMES).db()?,
            marks: db.open_tree(MARKS).db()?,
            im,
        })
    }

    /// The room `id`, if any.
    pub fn get(&self, id: RoomId) -> Result<Option<Room>, StoreError> {
        self.rooms.get(id.to_be_bytes()).db()?.map(|v| decode(ROOMS, &v)).transpose()
    }

    /// Every room (for listing; filtered by visibility by the caller).
    pub fn all(&self) -> Result<Vec<Room>, StoreError> {
        self.rooms.iter().map(|kv| decode(ROOMS, &kv.db()?.1)).collect()
    }

    /// Stores `room` (new or changed). `old_name` is its name before a rename; `joined` get a
    /// mark (following), `left` lose theirs. Fails with [`StoreError::Exists`] when the name is
    /// taken by another room. Durable on return.
    pub async fn put(
        &self,
        room: &Room,
        old_name: Option<&str>,
        joined: &[Username],
        left: &[Username],
    ) -> Result<(), StoreError> {
        let value = encode(ROOMS, room)?;
        let mark = encode(MARKS, &RoomMark { read_upto: 0, follow: true })?;
        let new_name = name_key(&room.name);
        let r = (&self.rooms, &self.names, &self.marks).transaction(|(rooms, names, marks)| {
            if let Some(owner) = names.get(&new_name)?
                && u64_at(&owner, 0) != room.id
            {
                return Err(abort(StoreError::Exists(format!("a room named {:?}", room.name))));
            }
            if let Some(old) = old_name.map(name_key).filter(|o| o != &new_name) {
                names.remove(old)?;
            }
            names.insert(new_name.clone(), &room.id.to_be_bytes())?;
            rooms.insert(&room.id.to_be_bytes(), value.clone())?;
            for u in joined {
                let key = user_key(u, &room.id.to_be_bytes());
                if marks.get(&key)?.is_none() {
                    marks.insert(key, mark.clone())?;
                }
            }
            for u in left {
                marks.remove(user_key(u, &room.id.to_be_bytes()))?;
            }
            Ok(())
        });
        tx_result(r)?;
        self.db.flush().await?;
        Ok(())
    }

    /// Appends a post (or membership event) to `room`, durably; records the idempotency key.
    pub async fn post(&self, room: RoomId, msg: &Message, archived: Option<&Record>) -> Result<(), StoreError> {
        let thread = Thread::Room(room);
        let value = encode(MESSAGES, msg)?;
        let record = archived.map(|r| encode(crate::archive::RECORDS, r)).transpose()?;
        let r = (&self.im.messages, &self.im.journal, &self.im.idempotency, &self.im.archive.records).transaction(
            |(msgs, journal, idem, archive)| {
                let t = MessageTrees { msgs, journal, idem, archive };
                Ok(write_message(&t, thread, msg, &value, record.as_deref())?)
            },
        );
        tx_result(r)?;
        self.db.flush().await?;
        Ok(())
    }

    /// The newest post id of `room` (0 when empty).
    pub fn last_post(&self, room: RoomId) -> Result<MessageId, StoreError> {
        let thread = Thread::Room(room);
        let last = self
            .im
            .messages
            .range(thread.message_key(0)..=thread.message_key(u64::MAX))
            .next_back()
            .transpose()
            .db()?;
        Ok(last.map_or(0, |(k, _)| u64_at(&k, 9)))
    }

    /// `user`'s mark in `room`, if a member.
    pub fn mark(&self, user: &Username, room: RoomId) -> Result<Option<RoomMark>, StoreError> {
        self.marks.get(user_key(user, &room.to_be_bytes())).db()?.map(|v| decode(MARKS, &v)).transpose()
    }

    /// Replaces `user`'s mark in `room`, durably.
    pub async fn set_mark(&self, user: &Username, room: RoomId, mark: RoomMark) -> Result<(), StoreError> {
        self.marks.insert(user_key(user, &room.to_be_bytes()), encode(MARKS, &mark)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// The rooms `user` is a member of, with their marks.
    pub fn of_user(&self, user: &Username) -> Result<Vec<(RoomId, RoomMark)>, StoreError> {
        let prefix = user_key(user, &[]);
        self.marks
            .scan_prefix(&prefix)
            .map(|kv| {
                let (k, v) = kv.db()?;
                Ok((u64_at(&k, prefix.len()), decode(MARKS, &v)?))
            })
            .collect()
    }
}

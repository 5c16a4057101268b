//! Halo's storage: the one crate that knows sled.
//!
//! [`Store`] is a cheap-to-clone handle over typed trees ([`Store::users`], [`Store::sessions`],
//! [`Store::im`], [`Store::rooms`], [`Store::presence`], [`Store::archive`], [`Store::federation`]).
//! Keys are encoded here, values are MessagePack (rmp-serde, named fields so records can grow),
//! and the schema version is checked on open. Every write method that the server acknowledges
//! flushes before it returns: **what a caller was told is stored survives `kill -9`.** Flushes
//! are group commits (one fsync at a time, covering every write before it).
//!
//! Nothing outside this crate sees a `sled::Tree`, so the engine can be swapped here alone.

mod archive;
mod codec;
mod federation;
mod flush;
mod im;
mod keys;
mod plugins;
mod presence;
mod rooms;
mod sessions;
mod users;

use std::path::Path;

pub use archive::Archive;
pub use federation::{Federation, Queued};
pub use im::{Im, InboxEntry, Reservation};
pub use keys::Thread;
pub use plugins::{PluginRecord, Plugins};
pub use presence::{AppToken, Presence};
pub use rooms::{RoomMark, Rooms};
pub use sessions::{Session, Sessions, TokenHash};
pub use users::Users;

/// The on-disk layout this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The engine failed (disk full, I/O error, corruption).
    #[error("storage engine: {0}")]
    Engine(#[from] sled::Error),
    /// A stored value could not be decoded.
    #[error("corrupt record in tree {tree:?}: {source}")]
    Decode {
        /// The tree holding it.
        tree: &'static str,
        /// The decoder's complaint.
        source: rmp_serde::decode::Error,
    },
    /// A value could not be encoded.
    #[error("encoding a record for tree {tree:?}: {source}")]
    Encode {
        /// The tree it was meant for.
        tree: &'static str,
        /// The encoder's complaint.
        source: rmp_serde::encode::Error,
    },
    /// The data directory was written by a newer Halo.
    #[error("data was written with schema version {found}; this Halo reads up to {SCHEMA_VERSION}: upgrade Halo")]
    SchemaTooNew {
        /// The version found on disk.
        found: u32,
    },
    /// The record to create exists already.
    #[error("{0} exists already")]
    Exists(String),
}

impl StoreError {
    /// Whether opening failed because another process holds the store's lock (another halo
    /// running on the same data dir), as opposed to permissions, a full disk or corruption.
    pub fn is_locked(&self) -> bool {
        // sled reports the failed `flock` as an I/O error of kind Other with this text.
        matches!(self, Self::Engine(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock"))
    }
}

/// Handle to the whole store; clones share the same database.
#[derive(Clone)]
pub struct Store {
    db: crate::flush::Db,
    users: Users,
    sessions: Sessions,
    im: Im,
    rooms: Rooms,
    presence: Presence,
    plugins: Plugins,
    federation: Federation,
}

impl Store {
    /// Opens (or creates) the store in directory `path`, checking the schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let db = flush::Db::new(sled::Config::new().path(path).mode(sled::Mode::HighThroughput).open()?);
        let meta = db.open_tree(META_TREE)?;
        match meta.get(SCHEMA_KEY)? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew { found });
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        let users = Users::open(&db)?;
        let sessions = Sessions::open(&db)?;
        let archive = Archive::open(&db)?;
        let im = Im::open(&db, archive)?;
        let rooms = Rooms::open(&db, im.clone())?;
        let presence = Presence::open(&db)?;
        let plugins = Plugins::open(&db)?;
        let federation = Federation::open(&db)?;
        Ok(Self { db, users, sessions, im, rooms, presence, plugins, federation })
    }

    /// Accounts.
    pub fn users(&self) -> &Users {
        &self.users
    }

    /// Login sessions (bearer tokens, stored hashed).
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Conversations and their messages.
    pub fn im(&self) -> &Im {
        &self.im
    }

    /// The compliance archive: spool, sink cursors, policies and settings.
    pub fn archive(&self) -> &Archive {
        &self.im.archive
    }

    /// Installed plugins and their storage.
    pub fn plugins(&self) -> &Plugins {
        &self.plugins
    }

    /// Presence documents, contact lists, pictures and app tokens.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// Federation rules, outbound queues and remote followers.
    pub fn federation(&self) -> &Federation {
        &self.federation
    }

    /// Persistent chat rooms.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// A small value in the `meta` tree (e.g. the search index's cursor).
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.db.open_tree(META_TREE)?.get(key)?.map(|v| keys::u64_at(&v, 0)))
    }

    /// Sets a `meta` value durably.
    pub async fn set_meta_u64(&self, key: &str, value: u64) -> Result<(), StoreError> {
        self.db.open_tree(META_TREE)?.insert(key, &value.to_be_bytes())?;
        self.flush().await
    }

    /// Deletes an account and every session it holds, and retires its name (see
    /// [`Users::retired_at`]), durably; `at` is the time of deletion.
    pub async fn remove_user(&self, name: &halo_core::Username, at: u64) -> Result<bool, StoreError> {
        let existed = self.users.remove_unflushed(name, at)?;
        self.sessions.remove_all_for_unflushed(name, None)?;
        self.flush().await?;
        Ok(existed)
    }

    /// Makes every earlier write durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().await
    }
}

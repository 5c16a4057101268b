//! Halo's storage: the one crate that knows sled.
//!
//! [`Store`] is a cheap-to-clone handle over typed trees ([`Store::users`], [`Store::sessions`],
//! [`Store::im`], [`Store::rooms`], [`Store::presence`], [`Store::archive`],
//! [`Store::federation`], [`Store::plugins`]). Keys are encoded here; values are versioned
//! on-disk records (`records`: `UserV1`, `MessageV1`, ...), MessagePack with named fields, kept
//! apart from the `halo-core` types they convert to and from, with their bytes pinned by tests.
//! The schema version is checked on open.
//!
//! # The storage contract
//!
//! **What a caller was told is stored survives `kill -9`.** Every write is one of:
//!
//! - an `async` method that returns once the write is durable (nearly all of them: accounts,
//!   sessions, messages, rooms, archive, federation, plugin records and plugin kv);
//! - a sync method returning a [`Pending`] (`#[must_use]`): the write is applied and visible, and
//!   durable once the caller awaited [`Pending::commit`], which it does before acknowledging.
//!   This is for writers holding a lock that must not wait for the disk (presence documents,
//!   contact lists, pictures).
//!
//! IM writes are one entry each in the IM log ([`log`]): a message with its inbox entries,
//! delivery queue entries, idempotency key, archive record and outbound federation items is
//! one [`halo_core::im::Fact`] ([`Im::append`]), so a retry that finds a message stored never
//! has anything left to do. The log's writer commits in groups; the IM state is its in-memory
//! projection ([`halo_core::im::ImState`]), rebuilt at start from a [`snapshot`] plus the log's
//! tail; followers (search, archive, federation) read the log after their cursors.
//! Other flushes are group commits too (one fsync at a time, covering every write before it).
//!
//! # Errors
//!
//! [`StoreError`] says what went wrong (unavailable, locked, corrupt, a record that does not
//! decode, a name taken, a quota exceeded); no sled type appears in this crate's API, so the
//! engine can be swapped here alone. Nothing outside this crate sees a `sled::Tree` either.

mod archive;
mod attachments;
mod codec;
mod engine;
mod federation;
mod flush;
mod im;
mod keys;
pub mod log;
mod migrate;
mod plugins;
mod pool;
mod presence;
mod records;
mod rooms;
mod sessions;
pub mod snapshot;
mod tree;
mod users;

use std::path::Path;

pub use archive::{Archive, PolicyChanges};
pub use attachments::{Attachments, Upload, valid_id as valid_attachment_id};
pub use federation::{Federation, MAX_ITEMS_PER_ENTRY, Queued, RuleChanges, position as queue_position};
pub use flush::Pending;
pub use im::{Acked, Changes, Im, InboxEntry, Outbound, Reservation};
pub use keys::Thread;
pub use log::{EventLog, Log, SledLog};
pub use plugins::{PluginRecord, Plugins};
pub use pool::{JsLog, MAX_NODES};
pub use presence::{AppToken, Presence};
pub use rooms::{RoomMark, Rooms};
pub use sessions::{Session, Sessions, TokenHash};
pub use users::Users;

/// The on-disk layout this build reads and writes: 3 since edits, reactions, mutes,
/// attachments, group federation items and failed deliveries (2: the IM log, upgraded on open
/// without a rewrite; 1: IM state in its own trees, migrated on open).
pub const SCHEMA_VERSION: u32 = 3;

const META_TREE: &str = "meta";
const SCHEMA_KEY: &[u8] = b"schema_version";
/// Followers' cursors in the IM log.
const LOG_CURSORS: &str = "log_cursors";
/// The search indexer's cursor of schema 1 (a message id, in `meta`).
const OLD_SEARCH_CURSOR: &str = "search_cursor";
/// The follower storing archive records (its cursor is kept with the records).
pub const ARCHIVE_FOLLOWER: &str = "archive";
/// The follower queueing federation items (its cursor is kept with the queues).
pub const FEDERATION_FOLLOWER: &str = "federation";
/// The search indexer.
pub const SEARCH_FOLLOWER: &str = "search";

/// The cursor `name` in the `log_cursors` tree (0: none).
pub(crate) fn cursor_in(tree: &sled::Tree, name: &str) -> Result<u64, StoreError> {
    Ok(tree.get(name).db()?.map_or(0, |v| keys::u64_at(&v, 0)))
}

/// What can go wrong in storage. The engine behind it (sled) shows through none of these: each
/// variant says what went wrong, so callers map them without knowing the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Storage cannot be written (disk full, I/O error, read-only file system): the write was
    /// not done, or not made durable, and was not acknowledged. The store recovers by itself
    /// once the cause is gone (see [`Store::recover`]).
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the data directory (another halo running on it).
    #[error("the data directory is in use by another process: {0}")]
    Locked(String),
    /// The engine found its files damaged or hit a bug: not an I/O failure, not recoverable by
    /// waiting.
    #[error("storage corrupt: {0}")]
    Corrupt(String),
    /// A stored value could not be decoded as its record.
    #[error("corrupt record in tree {tree:?}: {reason}")]
    Decode {
        /// The tree holding it.
        tree: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("encoding a record for tree {tree:?}: {reason}")]
    Encode {
        /// The tree it was meant for.
        tree: &'static str,
        /// The encoder's complaint.
        reason: String,
    },
    /// The data directory was written by a newer Halo.
    #[error("data was written with schema version {found}; this Halo reads up to {SCHEMA_VERSION}: upgrade Halo")]
    SchemaTooNew {
        /// The version found on disk.
        found: u32,
    },
    /// Too many writes are waiting (the IM log's queue is full): nothing was written; retry in
    /// a moment.
    #[error("storage busy: {0}")]
    Busy(String),
    /// The record to create exists already.
    #[error("{0} exists already")]
    Exists(String),
    /// The write would take a plugin's storage past its quota; nothing was written.
    #[error("plugin {plugin:?} would store {needed} bytes, over its quota of {quota} bytes")]
    QuotaExceeded {
        /// The plugin.
        plugin: String,
        /// Bytes it would store (keys and values) after the write.
        needed: u64,
        /// Its quota.
        quota: u64,
    },
}

impl StoreError {
    /// Whether opening failed because another process holds the store's lock (another halo
    /// running on the same data dir), as opposed to permissions, a full disk or corruption.
    pub fn is_locked(&self) -> bool {
        matches!(self, Self::Locked(_))
    }
}

/// Translates sled's errors; the only place that looks inside them.
pub(crate) fn from_sled(e: sled::Error) -> StoreError {
    // sled reports the failed `flock` as an I/O error of kind Other with this text.
    const LOCKED: &str = "could not acquire lock";
    match e {
        sled::Error::Io(io) if io.to_string().contains(LOCKED) => StoreError::Locked(io.to_string()),
        sled::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        other => StoreError::Corrupt(other.to_string()),
    }
}

/// `?` for sled results inside this crate: `tree.get(k).db()?`.
pub(crate) trait SledResult<T> {
    /// The result with sled's error translated.
    fn db(self) -> Result<T, StoreError>;
}

impl<T> SledResult<T> for Result<T, sled::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(from_sled)
    }
}

/// Tuning of the store (`[store]` in `halo.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// Bytes of memory sled may use for its page cache (default 64 MiB). The process uses more
    /// than this (sled's own bookkeeping, the search index, connections); lower it on small
    /// machines, raise it when the working set of recent messages is larger.
    pub cache_capacity: u64,
}

/// The default [`StoreSettings::cache_capacity`]: 64 MiB.
pub const DEFAULT_CACHE_CAPACITY: u64 = 64 * 1024 * 1024;

impl Default for StoreSettings {
    fn default() -> Self {
        Self { cache_capacity: DEFAULT_CACHE_CAPACITY }
    }
}

/// Handle to the whole store; clones share the same database.
///
/// The database behind it can be replaced: after an I/O failure (sled then refuses every
/// operation until it is opened again) [`Store::recover`] reopens it once storage works again.
/// So the typed accessors hand out a [`Ref`] to the current database rather than a reference;
/// take a new one for each operation rather than keeping one.
#[derive(Clone)]
pub struct Store {
    shared: std::sync::Arc<engine::Shared>,
}

/// The current database's view of one part of the store (e.g. [`Users`]); derefs to it. Keeping
/// it alive keeps that database open, which holds back a reopen after a storage failure: drop
/// it when the operation is done.
pub struct Ref<T> {
    engine: std::sync::Arc<engine::Engine>,
    pick: fn(&engine::Engine) -> &T,
}

impl<T> std::ops::Deref for Ref<T> {
    type Target = T;
    fn deref(&self) -> &T {
        (self.pick)(&self.engine)
    }
}

impl Store {
    /// Opens (or creates) the store in directory `path` with default settings, checking the
    /// schema version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, StoreSettings::default())
    }

    /// Opens (or creates) the store in directory `path`, checking the schema version.
    pub fn open_with(path: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        Ok(Self { shared: std::sync::Arc::new(engine::Shared::open(path, settings)?) })
    }

    /// Opens a pool member's store: the pool's state on the JetStream cluster of `cluster`
    /// (the IM log's stream, the shared trees' buckets, the component store; created with the
    /// cluster's replicas if missing), with this node's replicas and caches in directory `path`.
    /// Returns once the replicas and the IM projection caught up with the pool. See
    /// docs/pool.md (Storage).
    pub async fn open_pool(
        cluster: &halo_cluster::Cluster,
        path: &Path,
        settings: StoreSettings,
    ) -> Result<Self, StoreError> {
        Ok(Self { shared: std::sync::Arc::new(engine::Shared::open_pool(cluster, path, settings).await?) })
    }

    /// The pool this store belongs to (`None`: a standalone node).
    pub fn cluster(&self) -> Option<&halo_cluster::Cluster> {
        self.shared.pool.as_ref().map(|p| &p.cluster)
    }

    /// This node's slot in the pool (the low bits of the ids it hands out); `None` alone.
    pub fn node_slot(&self) -> Option<u64> {
        self.shared.pool.as_ref().map(|p| p.slot)
    }

    /// Stores plugin component `sha` (its SHA-256, hex) in the pool's object store, so every
    /// node can load it; nothing to do on a standalone node (components are files there).
    pub async fn put_component(&self, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match &self.shared.pool {
            Some(p) => p.objects.put(sha, bytes).await,
            None => Ok(()),
        }
    }

    /// Plugin component `sha` from the pool's object store (`None` when not there, and always
    /// on a standalone node).
    pub async fn component(&self, sha: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match &self.shared.pool {
            Some(p) => p.objects.get(sha).await,
            None => Ok(None),
        }
    }

    /// Removes plugin component `sha` from the pool's object store (no plugin uses it).
    pub async fn delete_component(&self, sha: &str) -> Result<(), StoreError> {
        match &self.shared.pool {
            Some(p) => p.objects.delete(sha).await,
            None => Ok(()),
        }
    }

    fn get<T>(&self, pick: fn(&engine::Engine) -> &T) -> Ref<T> {
        Ref { engine: self.shared.current(), pick }
    }

    /// Files attached to messages.
    pub fn attachments(&self) -> Ref<Attachments> {
        self.get(|e| &e.attachments)
    }

    /// Accounts.
    pub fn users(&self) -> Ref<Users> {
        self.get(|e| &e.users)
    }

    /// Login sessions (bearer tokens, stored hashed).
    pub fn sessions(&self) -> Ref<Sessions> {
        self.get(|e| &e.sessions)
    }

    /// Conversations and their messages.
    pub fn im(&self) -> Ref<Im> {
        self.get(|e| &e.im)
    }

    /// The compliance archive: spool, sink cursors, policies and settings.
    pub fn archive(&self) -> Ref<Archive> {
        self.get(|e| &e.archive)
    }

    /// Installed plugins and their storage.
    pub fn plugins(&self) -> Ref<Plugins> {
        self.get(|e| &e.plugins)
    }

    /// Presence documents, contact lists, pictures and app tokens.
    pub fn presence(&self) -> Ref<Presence> {
        self.get(|e| &e.presence)
    }

    /// Federation rules, outbound queues and remote followers.
    pub fn federation(&self) -> Ref<Federation> {
        self.get(|e| &e.federation)
    }

    /// Persistent chat rooms.
    pub fn rooms(&self) -> Ref<Rooms> {
        self.get(|e| &e.rooms)
    }

    /// A small value in the `meta` tree (e.g. the search index's cursor).
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let engine = self.shared.current();
        Ok(engine.meta.get(key).db()?.map(|v| keys::u64_at(&v, 0)))
    }

    /// Sets a `meta` value durably.
    pub async fn set_meta_u64(&self, key: &str, value: u64) -> Result<(), StoreError> {
        let engine = self.shared.current();
        engine.meta.insert(key, &value.to_be_bytes()).db()?;
        engine.db.flush().await
    }

    /// Follower `name`'s position in the IM log (0: from the start).
    pub fn log_cursor(&self, name: &str) -> Result<u64, StoreError> {
        cursor_in(&self.shared.current().cursors, name)
    }

    /// Moves follower `name`'s position in the IM log. Not flushed: a follower whose work is
    /// idempotent (the search index replaces documents) redoes at most a little after a crash.
    pub fn set_log_cursor(&self, name: &str, seq: u64) -> Result<(), StoreError> {
        self.shared.current().cursors.insert(name, &seq.to_be_bytes()).db()?;
        Ok(())
    }

    /// Writes a snapshot of the IM projection now (at shutdown, so the next start folds no
    /// tail). Blocks; call it from a blocking thread.
    pub fn snapshot(&self) -> Result<u64, StoreError> {
        if let Some(why) = self.unavailable() {
            // The open database may be a stand-in: its projection is not the real one.
            return Err(StoreError::Unavailable(why));
        }
        let engine = self.shared.current();
        let Some(dir) = self.shared.dir() else { return Ok(0) };
        crate::snapshot::write(dir, engine.im.projection()).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// Deletes an account and every session it holds, and retires its name (see
    /// [`Users::retired_at`]), durably; `at` is the time of deletion.
    pub async fn remove_user(&self, name: &halo_core::Username, at: u64) -> Result<bool, StoreError> {
        let engine = self.shared.current();
        let existed = engine.users.remove_unflushed(name, at)?;
        engine.sessions.remove_all_for_unflushed(name, None)?;
        engine.db.flush().await?;
        Ok(existed)
    }

    /// Makes every earlier write durable. Not needed for acknowledged writes (see the storage
    /// contract above); meant for shutdown.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let engine = self.shared.current();
        engine.db.flush().await
    }

    /// Why storage is failing, or `None` while it works. Cheap: meant to be asked often (health
    /// checks, metrics).
    pub fn unavailable(&self) -> Option<String> {
        self.shared.unavailable()
    }

    /// If storage is failing: checks whether the cause is gone (a probe file can be written and
    /// synced in the data directory), and if so reopens the database and confirms with a durable
    /// write. Returns `Ok(())` when storage works (again), or why it still does not. Blocks (file
    /// I/O, reopening); call it from a blocking thread. Everything acknowledged before the
    /// failure was flushed, so it is all there after the reopen.
    pub fn recover(&self) -> Result<(), StoreError> {
        self.shared.recover()
    }
}

//! The open database behind a [`Store`](crate::Store), and its replacement after a storage
//! failure.
//!
//! sled keeps the first I/O error of a database as a sticky global error: once a write failed
//! (disk full, I/O error), every later operation of that `sled::Db` fails, even after the cause
//! is gone. So the store notices the failure ([`Shared::unavailable`]), and [`Shared::recover`]
//! waits until a probe file can be written and synced in the data directory, lets go of the
//! failed database, opens it again and confirms with a durable write. Nothing acknowledged is
//! lost: every acknowledged write was flushed before it was acknowledged, and sled's recovery
//! on open finds everything flushed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::{
    Archive, Federation, Im, META_TREE, Plugins, Presence, Rooms, SCHEMA_KEY, SCHEMA_VERSION, Sessions, SledResult,
    StoreError, StoreSettings, Users, flush,
};

/// The probe file written in the data directory before a reopen: as large as a few of sled's
/// log segments (512 KiB each), so a reopen does not start on a disk that fills at once.
const PROBE_BYTES: usize = 1024 * 1024;
const PROBE_FILE: &str = "halo-storage-probe";
/// The `meta` key written to confirm that a reopened database takes writes.
const PROBE_KEY: &[u8] = b"storage_probe";
/// How long a reopen waits for the failed database to be let go by operations in progress.
const RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How often, and how long apart, a reopen tries again while sled's lock file is still held
/// (its background threads may hold it for a moment after the last handle is gone).
const OPEN_ATTEMPTS: u32 = 20;
const OPEN_PAUSE: Duration = Duration::from_millis(50);
/// How long a pool member's store keeps trying to open while JetStream is not ready.
const POOL_OPEN_WAIT: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One open database with its typed trees.
pub(crate) struct Engine {
    pub(crate) db: flush::Db,
    pub(crate) meta: sled::Tree,
    /// Followers' positions in the IM log (`log_cursors`: name → sequence number).
    pub(crate) cursors: sled::Tree,
    pub(crate) users: Users,
    pub(crate) sessions: Sessions,
    pub(crate) archive: Archive,
    pub(crate) im: Im,
    pub(crate) rooms: Rooms,
    pub(crate) presence: Presence,
    pub(crate) plugins: Plugins,
    pub(crate) federation: Federation,
    pub(crate) attachments: crate::Attachments,
}

type InFlight = Arc<Mutex<BTreeSet<u64>>>;

impl Engine {
    fn open(path: &Path, settings: StoreSettings, in_flight: &InFlight) -> Result<Self, StoreError> {
        let config =
            sled::Config::new().path(path).mode(sled::Mode::HighThroughput).cache_capacity(settings.cache_capacity);
        Self::with_db(flush::Db::new(config.open().db()?), Some(path), in_flight)
    }

    /// [`Engine::open`], retried for a moment while the lock is held: a database dropped in this
    /// process lets go of its lock only once sled's background threads have let go of it too.
    /// Another process holding it still fails after [`OPEN_ATTEMPTS`] tries.
    fn open_when_released(path: &Path, settings: StoreSettings, in_flight: &InFlight) -> Result<Self, StoreError> {
        let mut opened = Self::open(path, settings, in_flight);
        for _ in 1..OPEN_ATTEMPTS {
            match &opened {
                Err(e) if e.is_locked() => std::thread::sleep(OPEN_PAUSE),
                _ => break,
            }
            opened = Self::open(path, settings, in_flight);
        }
        opened
    }

    /// A stand-in for the moment no database is open (a reopen failed): an empty in-memory
    /// database whose flushes all fail, so nothing written to it is ever acknowledged.
    fn dead(reason: &str, in_flight: &InFlight) -> Result<Self, StoreError> {
        let config = sled::Config::new().temporary(true).flush_every_ms(None).cache_capacity(1024 * 1024);
        Self::with_db(flush::Db::dead(config.open().db()?, reason.to_owned()), None, in_flight)
    }

    fn with_db(db: flush::Db, dir: Option<&Path>, in_flight: &InFlight) -> Result<Self, StoreError> {
        let (meta, cursors, pending) = Self::prepare(&db)?;
        let im = Im::open(&db, dir, in_flight.clone(), pending.clone())?;
        Self::assemble(db, dir, meta, cursors, pending, im, None)
    }

    /// A pool member's database in `path`: the shared trees mirror the pool's buckets through
    /// `replicator`, the IM log is the pool's stream. Returns once the replicas and the
    /// projection caught up with the pool.
    pub(crate) async fn open_pool(
        cluster: &halo_cluster::Cluster,
        path: &Path,
        settings: StoreSettings,
        in_flight: &InFlight,
        replicator: Arc<crate::pool::Replicator>,
        attachments: crate::pool::Objects,
        slot: u64,
    ) -> Result<Self, StoreError> {
        let config =
            sled::Config::new().path(path).mode(sled::Mode::HighThroughput).cache_capacity(settings.cache_capacity);
        // A store of this process dropped a moment ago lets go of the directory once its
        // background tasks are stopped: retry a little while it is locked.
        let mut opened = config.open().db();
        for _ in 1..OPEN_ATTEMPTS {
            match &opened {
                Err(e) if e.is_locked() => tokio::time::sleep(OPEN_PAUSE).await,
                _ => break,
            }
            opened = config.open().db();
        }
        let db = flush::Db::new(opened?).with_replicator(replicator.clone());
        let (meta, cursors, pending) = Self::prepare(&db)?;
        let im = Im::open_pool(cluster, &db, path, slot, in_flight.clone(), pending.clone()).await?;
        let engine = Self::assemble(db, Some(path), meta, cursors, pending, im, Some(attachments))?;
        replicator.sync().await?;
        Ok(engine)
    }

    /// Checks (and sets) the schema version, migrating schema 1; the meta and cursor trees and
    /// the archive records pending in the log.
    fn prepare(db: &flush::Db) -> Result<(sled::Tree, sled::Tree, crate::log::ArchivePending), StoreError> {
        let meta = db.open_tree(META_TREE).db()?;
        let cursors = db.open_tree(crate::LOG_CURSORS).db()?;
        match meta.get(SCHEMA_KEY).db()? {
            Some(v) => {
                let found = u32::from_be_bytes(v.as_ref().try_into().unwrap_or([0xff; 4]));
                if found > SCHEMA_VERSION {
                    return Err(StoreError::SchemaTooNew { found });
                }
                if found < 2 {
                    migrate_v1(db, &meta, &cursors)?;
                } else if crate::migrate::has_old_trees(db)? {
                    // A migration that stopped after setting the version: finish it.
                    crate::migrate::drop_old_trees(db)?;
                }
                if found < SCHEMA_VERSION {
                    // 2 → 3 rewrites nothing: schema 3 only adds facts, fields and trees, which
                    // a release reading schema 2 would fail on; the version makes it refuse.
                    meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).db()?;
                    db.flush_now().db()?;
                }
            }
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).db()?;
            }
        }
        let pending = crate::log::ArchivePending::new(crate::cursor_in(&cursors, crate::ARCHIVE_FOLLOWER)?);
        Ok((meta, cursors, pending))
    }

    fn assemble(
        db: flush::Db,
        dir: Option<&Path>,
        meta: sled::Tree,
        cursors: sled::Tree,
        pending: crate::log::ArchivePending,
        im: Im,
        attachment_objects: Option<crate::pool::Objects>,
    ) -> Result<Self, StoreError> {
        let users = Users::open(&db)?;
        let sessions = Sessions::open(&db)?;
        let archive = Archive::open(&db, cursors.clone(), pending)?;
        let federation = Federation::open(&db, cursors.clone())?;
        let rooms = Rooms::open(im.clone());
        let presence = Presence::open(&db)?;
        let plugins = Plugins::open(&db)?;
        let attachments = crate::Attachments::open(&db, dir, attachment_objects)?;
        Ok(Self { db, meta, cursors, users, sessions, archive, im, rooms, presence, plugins, federation, attachments })
    }

    /// Why this database refuses work: a failed flush, or sled's sticky I/O error.
    fn failure(&self) -> Option<String> {
        self.db.failure().or_else(|| self.db.context.global_error().err().map(|e| crate::from_sled(e).to_string()))
    }
}

/// What every clone of a [`Store`](crate::Store) shares.
pub(crate) struct Shared {
    path: PathBuf,
    settings: StoreSettings,
    engine: RwLock<Arc<Engine>>,
    /// Ids reserved and not yet written; kept across reopens (see [`Im::reserve`]).
    in_flight: InFlight,
    /// Why storage is failing; `None` while it works.
    failure: Mutex<Option<String>>,
    /// Held by the one recovery running.
    recovering: Mutex<()>,
    /// A pool member's JetStream parts.
    pub(crate) pool: Option<Pool>,
}

/// What a pool member's store holds besides its database.
pub(crate) struct Pool {
    pub(crate) cluster: halo_cluster::Cluster,
    pub(crate) replicator: Arc<crate::pool::Replicator>,
    pub(crate) objects: crate::pool::Objects,
    pub(crate) slot: u64,
}

impl Shared {
    pub(crate) fn open(path: &Path, settings: StoreSettings) -> Result<Self, StoreError> {
        let in_flight = InFlight::default();
        let engine = Engine::open_when_released(path, settings, &in_flight)?;
        Ok(Self {
            path: path.to_owned(),
            settings,
            engine: RwLock::new(Arc::new(engine)),
            in_flight,
            failure: Mutex::new(None),
            recovering: Mutex::new(()),
            pool: None,
        })
    }

    /// A pool member's store: its database in `path` as the pool's replica (see
    /// [`Engine::open_pool`]).
    pub(crate) async fn open_pool(
        cluster: &halo_cluster::Cluster,
        path: &Path,
        settings: StoreSettings,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))?;
        let in_flight = InFlight::default();
        // A JetStream cluster started a moment ago answers before its streams have leaders
        // again: retry for a while what times out or finds no responder.
        let deadline = Instant::now() + POOL_OPEN_WAIT;
        let (replicator, objects, slot, engine) = loop {
            let attempt = async {
                let replicator = crate::pool::Replicator::open(cluster).await?;
                let objects = crate::pool::Objects::open(cluster, "components", "component").await?;
                let attachments = crate::pool::Objects::open(cluster, "attachments", "attachment").await?;
                let slot = crate::pool::claim_slot(cluster).await?;
                let engine =
                    Engine::open_pool(cluster, path, settings, &in_flight, replicator.clone(), attachments, slot)
                        .await?;
                Ok::<_, StoreError>((replicator, objects, slot, engine))
            };
            match attempt.await {
                Ok(opened) => break opened,
                Err(StoreError::Unavailable(why)) if Instant::now() < deadline => {
                    tracing::warn!(reason = %why, "the pool is not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(node = cluster.node_id(), slot, "storage: the pool's state on JetStream");
        Ok(Self {
            path: path.to_owned(),
            settings,
            engine: RwLock::new(Arc::new(engine)),
            in_flight,
            failure: Mutex::new(None),
            recovering: Mutex::new(()),
            pool: Some(Pool { cluster: cluster.clone(), replicator, objects, slot }),
        })
    }

    /// The data directory.
    pub(crate) fn dir(&self) -> Option<&Path> {
        Some(&self.path)
    }

    /// The database open now.
    pub(crate) fn current(&self) -> Arc<Engine> {
        self.engine.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn unavailable(&self) -> Option<String> {
        if let Some(why) = self.pool.as_ref().and_then(|p| p.replicator.failure()) {
            return Some(why);
        }
        if let Some(why) = lock(&self.failure).clone() {
            return Some(why);
        }
        let why = self.current().failure()?;
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            tracing::error!(reason = %why, "storage failed: writes are refused until it works again");
        }
        Some(failure.get_or_insert(why).clone())
    }

    fn still_failing(&self, e: StoreError) -> StoreError {
        *lock(&self.failure) = Some(e.to_string());
        e
    }

    pub(crate) fn recover(&self) -> Result<(), StoreError> {
        let _one = lock(&self.recovering);
        if let Some(pool) = &self.pool {
            // A pool member recovers from the pool not acknowledging writes; its local
            // database failing (a full disk) needs a restart, which rebuilds it from the pool.
            if pool.replicator.failure().is_some() {
                let handle = tokio::runtime::Handle::try_current()
                    .map_err(|_| StoreError::Unavailable("recovering outside the runtime".into()))?;
                return handle.block_on(pool.replicator.recover());
            }
            return match self.unavailable() {
                None => Ok(()),
                Some(why) => {
                    Err(StoreError::Unavailable(format!("{why} (restart the node: it rebuilds from the pool)")))
                }
            };
        }
        let Some(reason) = self.unavailable() else { return Ok(()) };
        probe(&self.path)
            .map_err(|e| self.still_failing(StoreError::Unavailable(format!("probe write failed: {e}"))))?;
        let dead = Arc::new(Engine::dead(&reason, &self.in_flight)?);
        let deadline = Instant::now() + RELEASE_WAIT;
        let mut slot = loop {
            let slot = self.engine.write().unwrap_or_else(|p| p.into_inner());
            if Arc::strong_count(&slot) == 1 && !slot.db.busy() {
                break slot;
            }
            drop(slot);
            if Instant::now() > deadline {
                return Err(StoreError::Unavailable("the failed database is still in use; retrying".into()));
            }
            std::thread::sleep(OPEN_PAUSE);
        };
        // Nobody else holds the failed database: close it, then open it again. Readers wait on
        // the lock meanwhile (they would only get errors from the failed one).
        drop(std::mem::replace(&mut *slot, dead));
        let engine = match Engine::open_when_released(&self.path, self.settings, &self.in_flight) {
            Ok(engine) => Arc::new(engine),
            Err(e) => return Err(self.still_failing(e)),
        };
        *slot = engine.clone();
        drop(slot);
        let confirmed = engine.meta.insert(PROBE_KEY, &[1]).and_then(|_| engine.db.flush_now());
        if let Err(e) = confirmed {
            return Err(self.still_failing(crate::from_sled(e)));
        }
        if let Some(why) = engine.failure() {
            return Err(self.still_failing(StoreError::Unavailable(why)));
        }
        *lock(&self.failure) = None;
        tracing::info!(was = %reason, "storage works again: database reopened");
        Ok(())
    }
}

/// Migrates a schema-1 data directory to the IM log (see `migrate.rs`): log written, cursors
/// set, version 2 flushed, then the old trees dropped.
fn migrate_v1(db: &flush::Db, meta: &sled::Tree, cursors: &sled::Tree) -> Result<(), StoreError> {
    if crate::migrate::has_old_trees(db)? {
        let started = Instant::now();
        let search = meta.get(crate::OLD_SEARCH_CURSOR).db()?.map(|v| crate::keys::u64_at(&v, 0));
        let (last, search_seq) = crate::migrate::run(db, search)?;
        cursors.insert(crate::ARCHIVE_FOLLOWER, &last.to_be_bytes()).db()?;
        cursors.insert(crate::FEDERATION_FOLLOWER, &last.to_be_bytes()).db()?;
        cursors.insert(crate::SEARCH_FOLLOWER, &search_seq.unwrap_or(0).to_be_bytes()).db()?;
        meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).db()?;
        db.flush_now().db()?;
        crate::migrate::drop_old_trees(db)?;
        db.flush_now().db()?;
        tracing::info!(
            entries = last,
            ms = started.elapsed().as_millis() as u64,
            "data directory migrated to the IM log (schema 2)"
        );
    } else {
        meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes()).db()?;
    }
    Ok(())
}

/// Writes and syncs a file of [`PROBE_BYTES`] in `dir`, then removes it.
fn probe(dir: &Path) -> std::io::Result<()> {
    let path = dir.join(PROBE_FILE);
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_all()
    })();
    let removed = std::fs::remove_file(&path);
    result?;
    removed
}

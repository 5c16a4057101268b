//! Group commit: any number of writers wait for durability, one fsync runs at a time, and each
//! fsync covers every write committed before it started.
//!
//! A writer that committed asks for the *next* flush to start (its number is taken after the
//! commit, so that flush covers it) and waits for it to complete. A driver on tokio's blocking
//! pool runs flushes back to back while anyone waits and stops when no one does. Under load,
//! one fsync acknowledges hundreds of writes; alone, a writer pays one fsync as before.
//!
//! sled's `flush_async` is not used: it runs flushes on sled's own small I/O pool, and many
//! concurrent ones starve the log writes they wait for (sled issue #1308, a deadlock seen here
//! under 64 concurrent senders).

use std::ops::Deref;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::StoreError;

/// The database with its group-commit flusher; derefs to `sled::Db`.
#[derive(Clone)]
pub(crate) struct Db {
    inner: sled::Db,
    shared: Arc<Shared>,
    /// In a pool: the publisher of the shared trees' writes, whose acknowledgements a flush
    /// waits for too.
    replicator: Option<Arc<crate::pool::Replicator>>,
}

impl Deref for Db {
    type Target = sled::Db;
    fn deref(&self) -> &sled::Db {
        &self.inner
    }
}

struct Shared {
    state: Mutex<State>,
    done: watch::Sender<Done>,
    /// Why this database cannot be made durable: its first failed flush (sled then fails every
    /// later one too), or the reason a stand-in was made. Never cleared: the store reopens.
    failed: Mutex<Option<String>>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Default)]
struct State {
    /// Flushes started so far (the number of the last one).
    started: u64,
    /// The highest flush number anyone waits for.
    wanted: u64,
    /// A driver is running.
    running: bool,
}

#[derive(Clone)]
struct Done {
    /// The last flush completed.
    flush: u64,
    /// Its error, if it failed.
    error: Option<sled::Error>,
}

impl Db {
    pub(crate) fn new(inner: sled::Db) -> Self {
        Self::with_failure(inner, None)
    }

    /// A database whose flushes all fail with `reason`: nothing written to it is acknowledged.
    pub(crate) fn dead(inner: sled::Db, reason: String) -> Self {
        Self::with_failure(inner, Some(reason))
    }

    fn with_failure(inner: sled::Db, failed: Option<String>) -> Self {
        let (done, _) = watch::channel(Done { flush: 0, error: None });
        let shared = Shared { state: Mutex::new(State::default()), done, failed: Mutex::new(failed) };
        Self { inner, shared: Arc::new(shared), replicator: None }
    }

    /// This database as a pool member's: shared trees publish their writes through `r`, and a
    /// flush waits for their acknowledgement.
    pub(crate) fn with_replicator(mut self, r: Arc<crate::pool::Replicator>) -> Self {
        self.replicator = Some(r);
        self
    }

    /// The publisher of the shared trees, in a pool.
    pub(crate) fn replicator(&self) -> Option<Arc<crate::pool::Replicator>> {
        self.replicator.clone()
    }

    /// Why this database cannot be made durable, if it cannot.
    pub(crate) fn failure(&self) -> Option<String> {
        self.shared.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A flush is running (its driver holds a handle to the database).
    pub(crate) fn busy(&self) -> bool {
        self.shared.lock().running
    }

    /// Flushes now on this thread, outside the group commit.
    pub(crate) fn flush_now(&self) -> Result<usize, sled::Error> {
        self.inner.flush()
    }

    /// Waits until every write committed before this call is durable: flushed here, and in a
    /// pool acknowledged by JetStream.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        match &self.replicator {
            None => self.flush_local().await,
            Some(r) => {
                let ticket = r.sent();
                let (local, pool) = tokio::join!(self.flush_local(), r.acked(ticket));
                local.and(pool)
            }
        }
    }

    async fn flush_local(&self) -> Result<(), StoreError> {
        if let Some(why) = self.failure() {
            return Err(StoreError::Unavailable(why));
        }
        let mut done = self.shared.done.subscribe();
        let target = {
            let mut s = self.shared.lock();
            let target = s.started + 1;
            s.wanted = s.wanted.max(target);
            if !s.running {
                s.running = true;
                let (db, shared) = (self.inner.clone(), self.shared.clone());
                tokio::task::spawn_blocking(move || drive(db, &shared));
            }
            target
        };
        let result = done.wait_for(|d| d.flush >= target).await.map(|d| d.error.clone());
        match result {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(crate::from_sled(e)),
            Err(_) => Err(StoreError::Unavailable("the flusher stopped".into())),
        }
    }

    #[cfg(test)]
    fn flushes(&self) -> u64 {
        self.shared.lock().started
    }
}

/// Writes that are applied (readers see them) but not yet durable: the caller must
/// [`commit`](Pending::commit) it before acknowledging them. For callers that write while
/// holding a lock that must not wait for the disk (the presence engine's): write under the lock,
/// commit after letting go of it. Commits are group commits, so committing many pendings costs
/// one fsync.
#[must_use = "the write is durable only once its Pending is committed; commit it before acknowledging"]
pub struct Pending {
    db: Db,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pending")
    }
}

impl Pending {
    pub(crate) fn new(db: &Db) -> Self {
        Self { db: db.clone() }
    }

    /// Waits until the writes behind it (and every write before them) are durable. Fails with
    /// [`StoreError::Unavailable`] when storage failed in between: the writes may be lost.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.db.flush().await
    }
}

/// Runs flushes back to back while someone waits for one not started yet. The last one lets
/// go of its database handle before it wakes its waiters, so a store dropped by them closes
/// (and can be opened again) at once.
fn drive(db: sled::Db, shared: &Shared) {
    loop {
        let n = {
            let mut s = shared.lock();
            s.started += 1;
            s.started
        };
        let error = db.flush().err();
        if let Some(e) = &error {
            tracing::error!(error = %e, "store flush failed");
            let mut failed = shared.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| crate::from_sled(e.clone()).to_string());
        }
        let more = {
            let mut s = shared.lock();
            let more = s.wanted > s.started;
            s.running = more;
            more
        };
        if !more {
            drop(db);
            shared.done.send_replace(Done { flush: n, error });
            return;
        }
        shared.done.send_replace(Done { flush: n, error });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_writers_share_flushes_and_all_return() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::new(sled::Config::new().path(dir.path()).open().expect("open"));
        let tree = db.open_tree("t").expect("tree");
        let tasks: Vec<_> = (0..64u32)
            .map(|i| {
                let (db, tree) = (db.clone(), tree.clone());
                tokio::spawn(async move {
                    for j in 0..50u32 {
                        tree.insert((i * 1000 + j).to_be_bytes(), &[1]).expect("insert");
                        db.flush().await.expect("flush");
                    }
                })
            })
            .collect();
        let all = async {
            for t in tasks {
                t.await.expect("task");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(120), all)
            .await
            .expect("every writer returns (no deadlock)");
        let flushes = db.flushes();
        assert!((1..=64 * 50).contains(&flushes), "{flushes} flushes");
        assert_eq!(tree.len(), 64 * 50);
    }
}

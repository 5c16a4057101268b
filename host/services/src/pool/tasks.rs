//! Once-per-pool tasks: work only one node of the pool may do at a time.
//!
//! Each task (`archive-sinks`: delivering archive records to the sink plugins; `federation`:
//! the transports carrying the per-domain queues to other servers, see [`super::federation`])
//! is a lease in the `task_leases` bucket, like the presence groups'. Every node runs the loop:
//! the holder renews, the others try to take a free one. A task's [`Gate`] says whether this
//! node may run it now; the task waits on it, and stops at once when the lease is lost. The
//! work's progress (the sinks' cursors, the queues' marks) is in the pool's shared state, so
//! the next holder goes on where the last one stopped: a batch delivered but not yet marked is
//! delivered again (at least once, with the record's or item's id for the receiver to
//! recognise), never skipped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::Pool;
use super::lease::{Held, Leases};

/// The once-per-pool tasks.
pub const TASKS: [&str; 2] = ["archive-sinks", "federation"];

/// Whether this node may run a task now.
#[derive(Clone)]
pub struct Gate(watch::Receiver<bool>);

impl Gate {
    /// A gate always open (a standalone node runs everything).
    pub fn open() -> Self {
        let (tx, rx) = watch::channel(true);
        // Keep the sender alive for good: an open gate never closes.
        std::mem::forget(tx);
        Self(rx)
    }

    /// Whether the task may run now.
    pub fn is_open(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the task may run.
    pub async fn opened(&mut self) {
        let _ = self.0.wait_for(|open| *open).await;
    }

    /// Waits until the task must stop.
    pub async fn closed(&mut self) {
        let _ = self.0.wait_for(|open| !*open).await;
    }
}

/// Progress marks shared by the pool (`halo_<pool>_cursors` bucket): where a once-per-pool
/// task stands, so its next holder goes on from there (an archive sink's cursor: the last
/// record id it stored).
pub struct SharedCursors {
    kv: async_nats::jetstream::kv::Store,
    members: Arc<super::Members>,
}

impl SharedCursors {
    async fn open(pool: &Pool) -> anyhow::Result<Self> {
        let cluster = pool.cluster();
        let config =
            async_nats::jetstream::kv::Config { bucket: cluster.bucket("cursors"), history: 1, ..Default::default() };
        let kv = super::lease::open_bucket(cluster, config).await?;
        Ok(Self { kv, members: pool.members().clone() })
    }

    /// Record ids a sink may be given up to (excluded), this node having folded the IM log up
    /// to `applied`: no other node will still write a record below (see
    /// [`super::Members::settled_below`]).
    pub fn settled_below(&self, applied: u64) -> u64 {
        self.members.settled_below(applied)
    }

    /// The mark `name`, if any (`None` also when JetStream does not answer: the caller keeps
    /// its own).
    pub async fn get(&self, name: &str) -> Option<u64> {
        let bytes = self.kv.get(name).await.ok().flatten()?;
        std::str::from_utf8(&bytes).ok()?.parse().ok()
    }

    /// The bucket, for marks kept with their own rules (the federation queues').
    pub(crate) fn kv(&self) -> &async_nats::jetstream::kv::Store {
        &self.kv
    }

    /// Moves the mark `name` to `value`, replicated before it returns.
    pub async fn put(&self, name: &str, value: u64) -> anyhow::Result<()> {
        self.kv.put(name, value.to_string().into_bytes().into()).await?;
        Ok(())
    }
}

/// The task leases of this node.
pub struct Tasks {
    gates: HashMap<&'static str, watch::Sender<bool>>,
    held: Mutex<HashMap<&'static str, Held>>,
    leases: Leases,
    pool: Arc<Pool>,
    cursors: Arc<SharedCursors>,
}

impl Tasks {
    /// Starts the lease loop for every task in [`TASKS`].
    pub async fn start(pool: Arc<Pool>) -> anyhow::Result<Arc<Self>> {
        let leases = Leases::open(pool.cluster(), "task_leases", pool.settings().lease_ttl).await?;
        let gates = TASKS.iter().map(|t| (*t, watch::channel(false).0)).collect();
        let cursors = Arc::new(SharedCursors::open(&pool).await?);
        let this = Arc::new(Self { gates, held: Mutex::default(), leases, pool, cursors });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let every = match weak.upgrade() {
                Some(t) => t.leases.renew_every(),
                None => return,
            };
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(t) = weak.upgrade() else { break };
                t.round().await;
            }
        });
        Ok(this)
    }

    /// The pool's shared progress marks.
    pub fn cursors(&self) -> Arc<SharedCursors> {
        self.cursors.clone()
    }

    /// The gate of `task` (one of [`TASKS`]).
    pub fn gate(&self, task: &str) -> Gate {
        match self.gates.get(task) {
            Some(tx) => Gate(tx.subscribe()),
            None => {
                tracing::error!(%task, "no such pool task");
                Gate(watch::channel(false).1)
            }
        }
    }

    fn set(&self, task: &'static str, open: bool) {
        if let Some(tx) = self.gates.get(task) {
            tx.send_if_modified(|v| std::mem::replace(v, open) != open);
        }
        self.pool.members().set_task(task, open);
    }

    async fn round(&self) {
        for task in TASKS {
            let key = task.to_owned();
            let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).get(task).copied();
            match held {
                Some(mut h) => {
                    if self.leases.renew(&key, &mut h).await {
                        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(task, h);
                    } else {
                        self.held.lock().unwrap_or_else(|p| p.into_inner()).remove(task);
                        self.set(task, false);
                        tracing::warn!(%task, "pool task given up");
                    }
                }
                None => {
                    if let Some(h) = self.leases.take(&key).await {
                        self.held.lock().unwrap_or_else(|p| p.into_inner()).insert(task, h);
                        self.set(task, true);
                        tracing::info!(%task, "pool task taken: this node runs it");
                    }
                }
            }
        }
    }
}

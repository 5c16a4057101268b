//! Delivery to archive-sink plugins: one task per enabled sink, each with its own durable
//! cursor in the store. A task reads the records after its cursor (never past an id still
//! being written), hands them to the plugin in batches, and moves the cursor only when the
//! plugin says they are stored: delivery is in id order and at least once.
//!
//! A sink that fails (answers `retry`, traps, hangs past its batch deadline, answers garbage)
//! is retried with exponential backoff, and the spool keeps everything meanwhile. One that
//! answers `permanent` is disabled (with the reason admins see) until an admin enables it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use halo_core::archive::Settings;
use halo_plugin_host::{Plugin, SinkOutcome};
use halo_store::Store;
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::metrics::Metrics;

/// Records per batch.
const BATCH: usize = 2_000;
/// First retry delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an idle task looks for records anyway (a wake-up is the fast path).
const IDLE: Duration = Duration::from_millis(500);
/// Backlog counting stops here (a gauge, not an audit).
const DEPTH_CAP: u64 = 10_000_000;

/// One sink as admins see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkStatus {
    /// Plugin name.
    pub name: String,
    /// Enabled (delivering); a disabled sink keeps its cursor and holds retention back.
    pub enabled: bool,
    /// The last record id it stored.
    pub cursor: u64,
    /// Records waiting for it.
    pub depth: u64,
    /// Age of the oldest waiting record, seconds.
    pub oldest_age_secs: u64,
    /// Records it stored since the server started.
    pub delivered: u64,
    /// Failing since (ms), while it fails.
    pub failing_since: Option<u64>,
    /// Its last error.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Health {
    delivered: u64,
    failing_since: Option<u64>,
    last_error: Option<String>,
    depth: u64,
    oldest_age_secs: u64,
}

struct Running {
    plugin: Arc<Plugin>,
    health: Arc<Mutex<Health>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The running sinks.
pub(super) struct Sinks {
    store: Store,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    running: Mutex<BTreeMap<String, Running>>,
    /// Whether this node delivers (in a pool, the `archive-sinks` task's holder only).
    gate: Mutex<crate::pool::tasks::Gate>,
    /// A pool member's shared sink cursors.
    shared: Mutex<Option<Arc<crate::pool::tasks::SharedCursors>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Sinks {
    pub(super) fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            store,
            metrics,
            wake: Arc::new(Notify::new()),
            running: Mutex::default(),
            gate: Mutex::new(crate::pool::tasks::Gate::open()),
            shared: Mutex::new(None),
        }
    }

    /// Delivers only while `gate` is open (pool members: one node of the pool delivers).
    pub(super) fn set_gate(
        &self,
        gate: crate::pool::tasks::Gate,
        shared: Option<Arc<crate::pool::tasks::SharedCursors>>,
    ) {
        *lock(&self.gate) = gate;
        *lock(&self.shared) = shared;
        // Running tasks restart under the new gate.
        let plugins: Vec<Arc<Plugin>> = lock(&self.running).values().map(|r| r.plugin.clone()).collect();
        lock(&self.running).clear();
        self.set(plugins);
    }

    /// New records are in the spool.
    pub(super) fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// Runs exactly `plugins` (the enabled sinks): keeps tasks whose plugin is unchanged,
    /// restarts swapped ones (an upgrade or config change) from their stored cursor.
    pub(super) fn set(&self, plugins: Vec<Arc<Plugin>>) {
        let mut running = lock(&self.running);
        let wanted: BTreeMap<String, Arc<Plugin>> =
            plugins.into_iter().map(|p| (p.manifest().name.clone(), p)).collect();
        running.retain(|name, r| wanted.get(name).is_some_and(|p| Arc::ptr_eq(p, &r.plugin)));
        for (name, plugin) in wanted {
            if running.contains_key(&name) {
                continue;
            }
            let health = Arc::new(Mutex::new(Health::default()));
            let task = tokio::spawn(
                Delivery {
                    name: name.clone(),
                    plugin: plugin.clone(),
                    store: self.store.clone(),
                    metrics: self.metrics.clone(),
                    wake: self.wake.clone(),
                    health: health.clone(),
                    gate: lock(&self.gate).clone(),
                    shared: lock(&self.shared).clone(),
                }
                .run(),
            );
            tracing::info!(sink = %name, "archive sink started");
            running.insert(name, Running { plugin, health, task });
        }
    }

    /// Stops a removed sink.
    pub(super) fn set_removed(&self, name: &str) {
        lock(&self.running).remove(name);
        self.metrics.archive.sink_removed(name);
    }

    /// Why archiving counts as failing under `settings`, if it does: an enabled sink failing
    /// for longer than `block_after_secs`, or further behind than `block_backlog`.
    pub(super) fn failing(&self, settings: &Settings) -> Option<String> {
        let now = now_ms();
        for (name, r) in lock(&self.running).iter() {
            let h = lock(&r.health);
            if let Some(since) = h.failing_since
                && now.saturating_sub(since) >= settings.block_after_secs.saturating_mul(1000)
            {
                let err = h.last_error.as_deref().unwrap_or("unknown error");
                return Some(format!("sink {name} failing for {} s: {err}", now.saturating_sub(since) / 1000));
            }
            if h.depth > settings.block_backlog {
                return Some(format!("sink {name} is {} records behind", h.depth));
            }
        }
        None
    }

    /// Every sink with a cursor or running.
    pub(super) fn status(&self) -> Result<Vec<SinkStatus>, halo_store::StoreError> {
        let running = lock(&self.running);
        let mut out: BTreeMap<String, SinkStatus> = BTreeMap::new();
        for (name, cursor) in self.store.archive().cursors()? {
            // Not running (disabled): count its backlog here, running ones count their own.
            let (depth, oldest_age_secs) =
                if running.contains_key(&name) { (0, 0) } else { backlog(&self.store, cursor) };
            out.insert(
                name.clone(),
                SinkStatus {
                    name,
                    enabled: false,
                    cursor,
                    depth,
                    oldest_age_secs,
                    delivered: 0,
                    failing_since: None,
                    last_error: None,
                },
            );
        }
        for (name, r) in running.iter() {
            let h = lock(&r.health);
            let cursor = self.store.archive().cursor(name)?;
            // A sink that disabled itself (its trap budget, say) is counted afresh: its task
            // only retries with backoff.
            let disabled = r.plugin.status().disabled.is_some();
            let (depth, oldest_age_secs) =
                if disabled { backlog(&self.store, cursor) } else { (h.depth, h.oldest_age_secs) };
            out.insert(
                name.clone(),
                SinkStatus {
                    name: name.clone(),
                    enabled: !disabled,
                    cursor,
                    depth,
                    oldest_age_secs,
                    delivered: h.delivered,
                    failing_since: h.failing_since,
                    last_error: h.last_error.clone(),
                },
            );
        }
        Ok(out.into_values().collect())
    }
}

/// Records waiting after `cursor` (counting stops at [`DEPTH_CAP`]) and the age of the oldest,
/// seconds.
fn backlog(store: &Store, cursor: u64) -> (u64, u64) {
    let archive = store.archive();
    let depth = archive.count_after(cursor, DEPTH_CAP).unwrap_or(0);
    let oldest = archive.after(cursor, u64::MAX, 1).ok().and_then(|r| r.first().map(|r| r.at));
    (depth, oldest.map_or(0, |at| now_ms().saturating_sub(at) / 1000))
}

/// One sink's delivery loop.
struct Delivery {
    name: String,
    plugin: Arc<Plugin>,
    store: Store,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    health: Arc<Mutex<Health>>,
    gate: crate::pool::tasks::Gate,
    shared: Option<Arc<crate::pool::tasks::SharedCursors>>,
}

impl Delivery {
    /// Adopts the pool's cursor of this sink when it is ahead of this node's (another node
    /// delivered meanwhile).
    async fn adopt(&self) {
        let Some(shared) = &self.shared else { return };
        let Some(theirs) = shared.get(&self.name).await else { return };
        match self.store.archive().cursor(&self.name) {
            Ok(mine) if mine < theirs => {
                if let Err(e) = self.store.archive().set_cursor(&self.name, theirs).await {
                    tracing::warn!(sink = %self.name, error = %e, "adopting the pool's sink cursor");
                }
            }
            _ => {}
        }
    }

    async fn run(mut self) {
        // A sink has a cursor from its install on; one installed before cursors were kept gets
        // one at the start here (an existing cursor is kept). Deliveries only move a cursor
        // that exists, so a sink removed mid-batch is not given its cursor back.
        if let Err(e) = self.store.archive().add_cursor(&self.name).await {
            self.failed(format!("registering the cursor: {e}"));
        }
        let mut backoff = MIN_BACKOFF;
        let mut last_gauge = Instant::now() - Duration::from_secs(10);
        loop {
            if !self.gate.is_open() {
                // Another node delivers: follow its cursor (so retention is not held back
                // here), and take over where it stands when the lease comes here.
                self.adopt().await;
                let _ = tokio::time::timeout(Duration::from_secs(5), self.gate.opened()).await;
                if self.gate.is_open() {
                    self.adopt().await;
                }
                continue;
            }
            // Register for a wake-up before looking, so a record written meanwhile is not missed.
            let woken = self.wake.notified();
            let cursor = match self.store.archive().cursor(&self.name) {
                Ok(c) => c,
                Err(e) => {
                    self.failed(format!("reading the cursor: {e}"));
                    tokio::time::sleep(MAX_BACKOFF).await;
                    continue;
                }
            };
            if last_gauge.elapsed() >= Duration::from_secs(1) {
                last_gauge = Instant::now();
                self.gauges(cursor);
            }
            // In a pool, records other nodes are writing may land below ids stored here: stop
            // below what they may still write. The log position first, then the local bound
            // (which covers what was folded up to there and is not stored yet).
            let pool_below = self.shared.as_ref().map(|shared| {
                let applied = halo_store::EventLog::last_durable(self.store.im().log());
                shared.settled_below(applied)
            });
            let below = self.store.im().settled_below().min(pool_below.unwrap_or(u64::MAX));
            let batch = match self.store.archive().after(cursor, below, BATCH) {
                Ok(b) => b,
                Err(e) => {
                    self.failed(format!("reading the spool: {e}"));
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            let Some(last) = batch.last().map(|r| r.id) else {
                self.gauges(cursor);
                let _ = tokio::time::timeout(IDLE, woken).await;
                continue;
            };
            let n = batch.len() as u64;
            let started = Instant::now();
            // On the sink's executor thread; this task only waits.
            let outcome = self.plugin.deliver(&batch).await;
            if !self.gate.is_open() {
                // The lease was lost while delivering: the next holder delivers this batch
                // again (at least once); this node must not move the shared cursor.
                continue;
            }
            self.metrics.plugin_wait(&self.name, started.elapsed());
            match outcome {
                Ok(SinkOutcome::Stored) => {
                    if let Some(shared) = &self.shared
                        && let Err(e) = shared.put(&self.name, last).await
                    {
                        // The next holder may deliver this batch again (at least once).
                        tracing::warn!(sink = %self.name, error = %e, "saving the pool's sink cursor");
                    }
                    if let Err(e) = self.store.archive().set_cursor(&self.name, last).await {
                        self.failed(format!("saving the cursor: {e}"));
                    } else {
                        self.metrics.archive.sink_delivered(&self.name, n);
                        let mut h = lock(&self.health);
                        h.delivered += n;
                        h.failing_since = None;
                        backoff = MIN_BACKOFF;
                    }
                    continue;
                }
                Ok(SinkOutcome::Retry(why)) => self.failed(format!("sink asked to retry: {why}")),
                Ok(SinkOutcome::Permanent(why)) => {
                    let reason = format!("the sink refused records permanently: {why}");
                    tracing::error!(sink = %self.name, %reason, "archive sink disabled; records wait in the spool");
                    self.plugin.fail(&reason);
                    self.failed(reason);
                }
                Err(e) => self.failed(e.to_string()),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn failed(&self, why: String) {
        self.metrics.archive.sink_failed(&self.name);
        let mut h = lock(&self.health);
        if h.failing_since.is_none() {
            tracing::warn!(sink = %self.name, error = %why, "archive sink failing; retrying with backoff");
        }
        h.failing_since.get_or_insert_with(now_ms);
        h.last_error = Some(why);
    }

    /// Refreshes the backlog figures (counting is bounded; at most once a second).
    fn gauges(&self, cursor: u64) {
        let (depth, age) = backlog(&self.store, cursor);
        self.metrics.archive.sink_backlog(&self.name, depth, age);
        let mut h = lock(&self.health);
        h.depth = depth;
        h.oldest_age_secs = age;
    }
}

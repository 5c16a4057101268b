//! Followers of the IM log that store what its entries carry: the archive follower stores
//! archive records in the archive (the compliance spool the sinks and the archive index read),
//! the federation follower queues items for remote domains. Each reads the log in order after
//! its cursor, kept in the same transaction as what it stored (so a crash repeats a batch or
//! none of it), and wakes who waits for the result. Each one's lag (entries behind the log)
//! is the `halo_log_follower_lag{follower=…}` gauge, as is the search indexer's.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use halo_core::im::Fact;
use halo_store::{EventLog, Store, StoreError};

use crate::archive::ArchiveService;
use crate::federation::FederationService;
use crate::metrics::Metrics;

/// Entries read per pass.
const BATCH: usize = 4_096;
/// How long an idle follower waits before looking anyway (a wake-up is the fast path).
const IDLE: Duration = Duration::from_secs(1);

/// What one follower does with a batch of entries.
trait Follow: Send + Sync + 'static {
    /// Its name (cursor and metric label).
    const NAME: &'static str;
    /// Stores what `entries` carry, with the cursor at `upto`.
    fn store(&self, store: &Store, entries: &[(u64, Fact)], upto: u64) -> Result<(), StoreError>;
    /// Everything up to `seq` is stored.
    fn followed(&self, _seq: u64) {}
}

struct Archiver(Arc<ArchiveService>);

impl Follow for Archiver {
    const NAME: &'static str = halo_store::ARCHIVE_FOLLOWER;

    fn store(&self, store: &Store, entries: &[(u64, Fact)], upto: u64) -> Result<(), StoreError> {
        let records: Vec<_> = entries.iter().filter_map(|(_, f)| f.archived().cloned()).collect();
        if records.is_empty() {
            return store.set_log_cursor(Self::NAME, upto);
        }
        store.archive().store_from_log(&records, upto)?;
        self.0.written(records.len() as u64);
        Ok(())
    }

    fn followed(&self, seq: u64) {
        self.0.followed(seq);
    }
}

struct Federator(Arc<FederationService>);

impl Follow for Federator {
    const NAME: &'static str = halo_store::FEDERATION_FOLLOWER;

    fn store(&self, store: &Store, entries: &[(u64, Fact)], upto: u64) -> Result<(), StoreError> {
        let im = store.im();
        // Each item with its place in the log (a pool's queue position); a message that lost
        // an idempotency-key race is not kept, and neither are its items; in a pool, what the
        // pool carried already (at or below its domain's mark) is not queued again.
        let items: Vec<(u64, &halo_core::im::Outbound)> = entries
            .iter()
            .flat_map(|(seq, f)| {
                let items: &[halo_core::im::Outbound] = match f {
                    Fact::Posted(p) if im.kept(p) => &p.outbound,
                    Fact::Federated { items } => items,
                    _ => &[],
                };
                items.iter().enumerate().map(move |(i, o)| (halo_store::queue_position(*seq, i), o))
            })
            .filter(|(pos, o)| *pos > self.0.carried_mark(&o.domain))
            .collect();
        if items.is_empty() {
            return store.set_log_cursor(Self::NAME, upto);
        }
        store.federation().enqueue_from_log(&items, upto)?;
        let domains: BTreeSet<&str> = items.iter().map(|(_, o)| o.domain.as_str()).collect();
        for d in domains {
            self.0.wake_domain(d);
        }
        Ok(())
    }
}

/// Starts the archive and federation followers (needs a runtime).
pub fn start(store: Store, archive: Arc<ArchiveService>, federation: Arc<FederationService>, metrics: Arc<Metrics>) {
    tokio::spawn(run(store.clone(), Archiver(archive), metrics.clone()));
    tokio::spawn(run(store, Federator(federation), metrics));
}

async fn run<F: Follow>(store: Store, follower: F, metrics: Arc<Metrics>) {
    let follower = Arc::new(follower);
    let mut failures = 0u32;
    loop {
        let (mut durable, last) = {
            let im = store.im();
            (im.log().subscribe(), im.log().last_durable())
        };
        durable.borrow_and_update();
        let pass = {
            let (store, follower) = (store.clone(), follower.clone());
            tokio::task::spawn_blocking(move || pass(&store, &*follower, last)).await
        };
        let wait = match pass {
            Ok(Ok((cursor, more))) => {
                failures = 0;
                follower.followed(cursor);
                metrics.follower_lag(F::NAME, last.saturating_sub(cursor));
                metrics.log_last.set(i64::try_from(last).unwrap_or(i64::MAX));
                if more {
                    continue;
                }
                IDLE
            }
            Ok(Err(e)) => {
                if failures == 0 {
                    tracing::warn!(follower = F::NAME, error = %e, "log follower pass failed; retrying with backoff");
                }
                failures = failures.saturating_add(1);
                crate::search::backoff(Duration::from_millis(100), failures)
            }
            Err(e) => {
                tracing::error!(follower = F::NAME, error = %e, "log follower pass panicked");
                IDLE
            }
        };
        let _ = tokio::time::timeout(wait, durable.changed()).await;
    }
}

/// One batch: returns the cursor after it and whether more is waiting.
fn pass<F: Follow>(store: &Store, follower: &F, last: u64) -> Result<(u64, bool), StoreError> {
    let cursor = store.log_cursor(F::NAME)?;
    if cursor >= last {
        return Ok((cursor, false));
    }
    let entries = store.im().log().read_from(cursor + 1, BATCH)?;
    let Some(upto) = entries.last().map(|(seq, _)| *seq) else { return Ok((cursor, false)) };
    follower.store(store, &entries, upto)?;
    Ok((upto, upto < last))
}

//! The search indexer: follows the IM log into the full-text index.
//!
//! The log is the source of truth; the index trails it by a fraction of a second. Each pass
//! reads the log after the indexer's cursor (`search` in the log's cursors) and indexes the
//! messages it finds (replacing any copy, so a restart re-indexes without duplicates). The log
//! is read only up to its last durable entry, in order, so nothing lands behind the cursor.
//!
//! Nothing moves before the index commit succeeded. A failed pass (index directory not
//! writable, disk full) is retried with backoff and indexes the same messages again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_core::conversation::Conversation;
use halo_core::im::Fact;
use halo_search::{Container, Doc, SearchIndex};
use halo_store::{EventLog, SEARCH_FOLLOWER, Store, StoreError, Thread};

use crate::error::ServiceError;
use crate::metrics::Metrics;

/// Log entries read per pass.
const BATCH: usize = 5_000;
/// The longest wait between retries of a failing pass.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// The wait before retry `failures` (1, 2, …) of a pass run every `every`: doubling, at most
/// [`MAX_BACKOFF`].
pub(crate) fn backoff(every: Duration, failures: u32) -> Duration {
    backoff_to(every, failures, MAX_BACKOFF)
}

/// As [`backoff`], capped at `max`.
pub(crate) fn backoff_to(every: Duration, failures: u32, max: Duration) -> Duration {
    every.saturating_mul(1u32 << failures.min(16)).min(max)
}

/// The index and its follower task.
pub struct Indexer {
    index: Arc<SearchIndex>,
}

impl Indexer {
    /// Opens the index in `dir` and starts following the journal every `every`.
    pub fn start(store: Store, dir: &Path, every: Duration, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let index = Arc::new(SearchIndex::open(dir)?);
        let follower = Follower { store, index: index.clone(), metrics };
        tokio::spawn(follower.run(every));
        Ok(Self { index })
    }

    /// The index, for queries.
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    /// Runs `query` off the async workers.
    pub async fn search(&self, query: halo_search::SearchQuery) -> Result<Vec<halo_search::Hit>, ServiceError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.search(&query))
            .await
            .map_err(|e| ServiceError::Internal(format!("search task: {e}")))?
            .map_err(|e| ServiceError::Internal(format!("search: {e}")))
    }
}

struct Follower {
    store: Store,
    index: Arc<SearchIndex>,
    metrics: Arc<Metrics>,
}

impl Follower {
    async fn run(self, every: Duration) {
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(true) => continue,
                Ok(false) => {
                    if failures > 0 {
                        tracing::info!(failures, "search indexing works again");
                        failures = 0;
                    }
                    every
                }
                Err(e) => {
                    if failures == 0 {
                        tracing::warn!(error = %e, "search indexing pass failed; retrying with backoff");
                    }
                    failures = failures.saturating_add(1);
                    self.metrics.search_index_failures.inc();
                    backoff(every, failures)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Indexes one batch; true when more is waiting.
    async fn pass(&self) -> anyhow::Result<bool> {
        let cursor = self.store.log_cursor(SEARCH_FOLLOWER)?;
        let (entries, last) = {
            let im = self.store.im();
            (im.log().read_from(cursor + 1, BATCH)?, im.log().last_durable())
        };
        let Some(upto) = entries.last().map(|(seq, _)| *seq) else {
            self.metrics.follower_lag(SEARCH_FOLLOWER, last.saturating_sub(cursor));
            return Ok(false);
        };
        let mut docs = Vec::new();
        let mut convs: HashMap<u64, Option<Conversation>> = HashMap::new();
        let mut removed = Vec::new();
        for (_, fact) in &entries {
            // An edit replaces the message's document with its new text (same id, sender and
            // time); a deletion removes it.
            let (thread, msg, text) = match fact {
                Fact::Posted(p) => match p.message.text() {
                    Some(t) => (p.thread, p.message.clone(), t.to_owned()),
                    None => continue,
                },
                Fact::Amended(a) => match &a.change {
                    halo_core::im::Change::Edited { text, .. } => match self.store.im().message(a.thread, a.target)? {
                        Some(m) => (a.thread, m, text.clone()),
                        None => continue,
                    },
                    halo_core::im::Change::Deleted => {
                        removed.push(a.target);
                        continue;
                    }
                    halo_core::im::Change::Reacted { .. } => continue,
                },
                _ => continue,
            };
            let id = msg.id;
            let (container, audience) = match thread {
                Thread::Conversation(c) => {
                    let conv = match convs.get(&c) {
                        Some(conv) => conv.clone(),
                        None => {
                            let conv = self.store.im().conversation(c)?;
                            convs.insert(c, conv.clone());
                            conv
                        }
                    };
                    let audience = conv
                        .map(|conv| {
                            conv.participants.keys().filter(|u| conv.can_read(u, id)).map(|u| u.to_string()).collect()
                        })
                        .unwrap_or_default();
                    (Container::Conversation(c), audience)
                }
                Thread::Room(r) => (Container::Room(r), Vec::new()),
            };
            docs.push(Doc { id, container, from: msg.from.to_string(), audience, at: msg.at, text });
        }
        if !docs.is_empty() || !removed.is_empty() {
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || {
                index.add(&docs)?;
                index.remove_ids(&removed)?;
                index.commit()
            })
            .await??;
        }
        // Committed: only now does the cursor move.
        self.store.set_log_cursor(SEARCH_FOLLOWER, upto).map_err(|e: StoreError| anyhow::anyhow!(e))?;
        self.metrics.follower_lag(SEARCH_FOLLOWER, last.saturating_sub(upto));
        Ok(upto < last)
    }
}

//! The search indexer: follows the message journal into the full-text index.
//!
//! The store is the source of truth; the index trails it by a fraction of a second. Each pass
//! reads the journal after a persisted cursor and indexes what it has not seen (replacing any
//! copy, so a restart re-indexes without duplicates). Ids are assigned a moment before their
//! message is written, so the cursor only moves past messages older than [`SETTLE_MS`]: a
//! message that landed late is still picked up.
//!
//! Nothing moves before the index commit succeeded: neither the cursor nor the set of ids seen
//! above it. A failed pass (index directory not writable, disk full) is retried with backoff
//! and indexes the same messages again.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_core::conversation::Conversation;
use halo_search::{Container, Doc, SearchIndex};
use halo_store::{Store, StoreError, Thread};

use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::metrics::Metrics;

const CURSOR_KEY: &str = "search_cursor";
/// How long after its id is assigned a message is surely in the journal.
const SETTLE_MS: u64 = 5_000;
/// Journal entries read per pass.
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
        let follower = Follower { store, index: index.clone(), seen: BTreeSet::new(), cursor: None, metrics };
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
    /// Ids above the cursor already indexed.
    seen: BTreeSet<u64>,
    cursor: Option<u64>,
    metrics: Arc<Metrics>,
}

impl Follower {
    async fn run(mut self, every: Duration) {
        let mut failures = 0u32;
        loop {
            let wait = match self.pass().await {
                Ok(()) => {
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

    async fn pass(&mut self) -> anyhow::Result<()> {
        let cursor = match self.cursor {
            Some(c) => c,
            None => self.store.meta_u64(CURSOR_KEY)?.unwrap_or(0),
        };
        let entries = self.store.im().journal_after(cursor, BATCH)?;
        let settled_before = now_ms().saturating_sub(SETTLE_MS);
        let mut docs = Vec::new();
        let mut new_cursor = cursor;
        let mut settled = true;
        let mut convs: HashMap<u64, Option<Conversation>> = HashMap::new();
        let mut indexed = Vec::new();
        for (id, thread) in entries {
            let Some(msg) = self.store.im().message(thread, id)? else { continue };
            if settled && msg.at < settled_before {
                new_cursor = id;
            } else {
                settled = false;
            }
            if self.seen.contains(&id) {
                continue;
            }
            indexed.push(id);
            let Some(text) = msg.text() else { continue };
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
            docs.push(Doc { id, container, from: msg.from.to_string(), audience, at: msg.at, text: text.to_owned() });
        }
        if !docs.is_empty() {
            let index = self.index.clone();
            tokio::task::spawn_blocking(move || {
                index.add(&docs)?;
                index.commit()
            })
            .await??;
        }
        // Committed: only now are these ids done.
        self.seen.extend(indexed);
        if new_cursor > cursor {
            self.store.set_meta_u64(CURSOR_KEY, new_cursor).await.map_err(|e: StoreError| anyhow::anyhow!(e))?;
            self.seen = self.seen.split_off(&(new_cursor + 1));
        }
        self.cursor = Some(new_cursor);
        Ok(())
    }
}

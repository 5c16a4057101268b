//! The search indexer: follows the message journal into the full-text index.
//!
//! The store is the source of truth; the index trails it by a fraction of a second. Each pass
//! reads the journal after a persisted cursor and indexes what it has not seen (replacing any
//! copy, so a restart re-indexes without duplicates). Ids are assigned a moment before their
//! message is written, so the cursor only moves past messages older than [`SETTLE_MS`]: a
//! message that landed late is still picked up.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_core::conversation::Conversation;
use halo_search::{Container, Doc, SearchIndex};
use halo_store::{Store, StoreError, Thread};

use crate::clock::now_ms;

const CURSOR_KEY: &str = "search_cursor";
/// How long after its id is assigned a message is surely in the journal.
const SETTLE_MS: u64 = 5_000;
/// Journal entries read per pass.
const BATCH: usize = 5_000;

/// The index and its follower task.
pub struct Indexer {
    index: Arc<SearchIndex>,
}

impl Indexer {
    /// Opens the index in `dir` and starts following the journal every `every`.
    pub fn start(store: Store, dir: &Path, every: Duration) -> anyhow::Result<Self> {
        let index = Arc::new(SearchIndex::open(dir)?);
        let follower = Follower { store, index: index.clone(), seen: BTreeSet::new(), cursor: None };
        tokio::spawn(follower.run(every));
        Ok(Self { index })
    }

    /// The index, for queries.
    pub fn index(&self) -> &SearchIndex {
        &self.index
    }
}

struct Follower {
    store: Store,
    index: Arc<SearchIndex>,
    /// Ids above the cursor already indexed.
    seen: BTreeSet<u64>,
    cursor: Option<u64>,
}

impl Follower {
    async fn run(mut self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = self.pass().await {
                tracing::warn!(error = %e, "search indexing pass failed; retrying");
            }
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
        for (id, thread) in entries {
            let Some(msg) = self.store.im().message(thread, id)? else { continue };
            if settled && msg.at < settled_before {
                new_cursor = id;
            } else {
                settled = false;
            }
            if !self.seen.insert(id) {
                continue;
            }
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
        if new_cursor > cursor {
            self.store.set_meta_u64(CURSOR_KEY, new_cursor).await.map_err(|e: StoreError| anyhow::anyhow!(e))?;
            self.seen = self.seen.split_off(&(new_cursor + 1));
        }
        self.cursor = Some(new_cursor);
        Ok(())
    }
}

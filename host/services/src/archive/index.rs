//! The compliance archive's own full-text index (separate from users' search: it covers
//! every archived record, and nothing a user deletes touches it). A follower task reads the
//! archive after a persisted cursor, never past an id still being written, and indexes each
//! record with everyone it concerns as its audience.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_core::archive::Record;
use halo_search::{Doc, Hit, SearchIndex, SearchQuery};
use halo_store::Store;
use tokio::sync::Notify;

use crate::error::ServiceError;

const CURSOR_KEY: &str = "archive_index_cursor";
const BATCH: usize = 5_000;
const IDLE: Duration = Duration::from_millis(500);

/// The index and its follower.
pub(super) struct ArchiveIndex {
    index: Arc<SearchIndex>,
    wake: Arc<Notify>,
}

impl ArchiveIndex {
    pub(super) fn start(store: Store, dir: &Path) -> anyhow::Result<Self> {
        let index = Arc::new(SearchIndex::open(dir)?);
        let wake = Arc::new(Notify::new());
        tokio::spawn(follow(store, index.clone(), wake.clone()));
        Ok(Self { index, wake })
    }

    pub(super) fn wake(&self) {
        self.wake.notify_waiters();
    }

    pub(super) fn search(&self, q: &SearchQuery) -> Result<Vec<Hit>, ServiceError> {
        self.index.search(q).map_err(|e| ServiceError::Internal(format!("archive search: {e}")))
    }

    pub(super) fn remove(&self, ids: &[u64]) -> Result<(), ServiceError> {
        self.index.remove_ids(ids).map_err(|e| ServiceError::Internal(format!("archive index: {e}")))?;
        self.index.commit().map_err(|e| ServiceError::Internal(format!("archive index: {e}")))
    }
}

fn doc(r: &Record) -> Doc {
    let mut audience = r.participants.clone();
    audience.push(r.from.clone());
    audience.extend(r.user.clone());
    audience.sort();
    audience.dedup();
    Doc {
        id: r.id,
        container: super::container(r.place),
        from: r.from.clone(),
        audience,
        at: r.at,
        text: r.text.clone().unwrap_or_default(),
    }
}

async fn follow(store: Store, index: Arc<SearchIndex>, wake: Arc<Notify>) {
    let mut cursor = None;
    let mut failures = 0u32;
    loop {
        let woken = wake.notified();
        let mut wait = IDLE;
        match pass(&store, &index, &mut cursor).await {
            Ok(more) => {
                if failures > 0 {
                    tracing::info!(failures, "archive indexing works again");
                    failures = 0;
                }
                if more {
                    continue;
                }
            }
            Err(e) => {
                // The cursor moved only if the commit succeeded: the same records come again.
                if failures == 0 {
                    tracing::warn!(error = %e, "archive indexing pass failed; retrying with backoff");
                }
                failures = failures.saturating_add(1);
                wait = crate::search::backoff(IDLE, failures);
            }
        }
        let _ = tokio::time::timeout(wait, woken).await;
    }
}

/// Indexes one batch; true when there may be more.
async fn pass(store: &Store, index: &Arc<SearchIndex>, cursor: &mut Option<u64>) -> anyhow::Result<bool> {
    let from = match *cursor {
        Some(c) => c,
        None => store.meta_u64(CURSOR_KEY)?.unwrap_or(0),
    };
    let records = store.archive().after(from, store.im().settled_below(), BATCH)?;
    let Some(last) = records.last().map(|r| r.id) else {
        *cursor = Some(from);
        return Ok(false);
    };
    let docs: Vec<Doc> = records.iter().map(doc).collect();
    let idx = index.clone();
    tokio::task::spawn_blocking(move || {
        idx.add(&docs)?;
        idx.commit()
    })
    .await??;
    store.set_meta_u64(CURSOR_KEY, last).await?;
    *cursor = Some(last);
    Ok(records.len() == BATCH)
}

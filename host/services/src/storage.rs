//! Watches the store's health: reports it (`halo_storage_available`, `/healthz`) and, while
//! storage fails (disk full, I/O errors), tries to recover without a restart.
//!
//! Writes refused meanwhile fail with [`crate::ServiceError::StorageUnavailable`] (the server
//! answers 503 `storage_unavailable` with a `Retry-After`); the
//! store reopens its database once a probe write in the data directory succeeds (see
//! `halo_store::Store::recover`).

use std::sync::Arc;
use std::time::Duration;

use halo_store::Store;

use crate::error::ServiceError;
use crate::metrics::Metrics;

/// How often storage health is checked, and recovery first tried while it fails.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between recovery attempts (they back off while they keep failing).
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Seconds a client is told to wait before retrying a write refused for storage.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Storage health and durability, for the transport: its health check and its last flush.
pub struct Storage {
    store: Store,
}

impl Storage {
    /// Over `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Why storage refuses writes, while it does.
    pub fn unavailable(&self) -> Option<String> {
        self.store.unavailable()
    }

    /// Waits until every write so far is on disk, and snapshots the IM projection so the next
    /// start has no log tail to fold (at shutdown; a failed snapshot only makes that start
    /// slower).
    pub async fn flush(&self) -> Result<(), ServiceError> {
        self.store.flush().await?;
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || store.snapshot()).await {
            Ok(Err(e)) => tracing::warn!(error = %e, "IM snapshot at shutdown failed"),
            Err(e) => tracing::warn!(error = %e, "IM snapshot at shutdown failed"),
            Ok(Ok(_)) => {}
        }
        Ok(())
    }
}

/// Starts the watcher (needs a runtime). It stops when the runtime does.
pub fn watch(store: Store, metrics: Arc<Metrics>) {
    tokio::spawn(async move {
        let mut streak = 0u32;
        loop {
            let wait =
                if streak == 0 { CHECK_EVERY } else { crate::search::backoff_to(CHECK_EVERY, streak, MAX_RETRY) };
            tokio::time::sleep(wait).await;
            let Some(why) = store.unavailable() else {
                metrics.storage_available.set(1);
                streak = 0;
                continue;
            };
            metrics.storage_available.set(0);
            let s = store.clone();
            match tokio::task::spawn_blocking(move || s.recover()).await {
                Ok(Ok(())) => {
                    metrics.storage_available.set(1);
                    metrics.storage_recoveries.inc();
                    streak = 0;
                }
                Ok(Err(e)) => {
                    // Once per streak at warn, then quietly: the cause is known from the first.
                    if streak == 0 {
                        tracing::warn!(reason = %why, error = %e, "storage unavailable; retrying with backoff");
                    } else {
                        tracing::debug!(error = %e, "storage still unavailable");
                    }
                    streak = streak.saturating_add(1);
                }
                Err(e) => tracing::error!(error = %e, "storage recovery panicked"),
            }
        }
    });
}

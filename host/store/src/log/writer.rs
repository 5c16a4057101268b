//! The log's one writer thread: group commit.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, RwLock};

use halo_core::im::ImState;
use tokio::sync::watch;

use super::{ArchivePending, MAX_BATCH, Request};
use crate::StoreError;

/// What the writer folds each durable entry into before answering.
pub(crate) struct Projection {
    pub(crate) state: Arc<RwLock<ImState>>,
    pub(crate) pending: ArchivePending,
}

pub(super) struct Writer {
    pub(super) db: crate::flush::Db,
    pub(super) tree: sled::Tree,
    pub(super) durable: Arc<watch::Sender<u64>>,
    pub(super) last: Arc<AtomicU64>,
    pub(super) projection: Projection,
}

impl Writer {
    /// Runs until every sender is gone (the store was closed or reopened).
    pub(super) fn run(self, rx: Receiver<Request>) {
        let mut next = self.last.load(Ordering::Acquire) + 1;
        let mut batch: Vec<Request> = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            match self.write(next, &batch) {
                Ok(()) => {
                    let first_seq = next;
                    next += batch.len() as u64;
                    self.fold(first_seq, batch.drain(..));
                }
                Err(e) => {
                    tracing::error!(error = %e, "log write failed; its appends are refused");
                    for r in batch.drain(..) {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes `batch` from sequence `first` on and flushes once.
    fn write(&self, first: u64, batch: &[Request]) -> Result<(), StoreError> {
        if let Some(why) = self.db.failure() {
            return Err(StoreError::Unavailable(why));
        }
        let mut b = sled::Batch::default();
        for (i, r) in batch.iter().enumerate() {
            b.insert(&(first + i as u64).to_be_bytes(), r.bytes.as_slice());
        }
        self.tree.apply_batch(b).map_err(crate::from_sled)?;
        self.db.flush_now().map_err(crate::from_sled)?;
        if let Some(why) = self.db.failure() {
            return Err(StoreError::Unavailable(why));
        }
        Ok(())
    }

    /// Folds the durable entries into the projection in order, publishes the new last
    /// sequence number, then answers every waiter.
    fn fold(&self, first: u64, batch: std::vec::Drain<'_, Request>) {
        let mut replies = Vec::with_capacity(batch.len());
        {
            let mut state = self.projection.state.write().unwrap_or_else(|p| p.into_inner());
            for (i, r) in batch.enumerate() {
                let seq = first + i as u64;
                self.projection.pending.note(&r.fact);
                state.apply(seq, &r.fact);
                replies.push((seq, r.reply));
            }
        }
        let last = first + replies.len() as u64 - 1;
        self.last.store(last, Ordering::Release);
        self.durable.send_replace(last);
        for (seq, reply) in replies {
            let _ = reply.send(Ok(seq));
        }
    }
}

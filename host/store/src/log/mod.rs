//! The IM log: an ordered, durable, append-only sequence of [`Fact`]s, one per acknowledged IM
//! write, numbered from 1.
//!
//! [`EventLog`] is the interface (async appends that answer once durable, reads from a
//! sequence number for followers, the last durable number); [`SledLog`] is the embedded
//! implementation: a `log` tree keyed by big-endian sequence number, written by one thread
//! with group commit: it takes every append waiting, writes them in one batch, flushes once,
//! folds them into the in-memory projection ([`ImState`]) in order and only then answers
//! every waiter. Its queue is bounded: a full queue refuses appends with
//! [`StoreError::Busy`] instead of growing.
//!
//! A clustered implementation (NATS JetStream) answers the same calls: an append is
//! acknowledged once the stream stored it, the projection is folded from the stream in order.

#[cfg(test)]
mod tests;
mod writer;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use halo_core::im::{Fact, ImState};
use tokio::sync::{oneshot, watch};

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

pub(crate) const LOG: &str = "log";
/// Appends waiting for the writer before new ones are refused as busy.
pub const QUEUE_CAPACITY: usize = 20_000;
/// Most entries written in one batch (one flush).
const MAX_BATCH: usize = 4_096;

/// A boxed future, so [`EventLog`] can be a trait object.
pub type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// An ordered, durable, append-only log of IM facts.
pub trait EventLog: Send + Sync {
    /// Appends `fact`; answers its sequence number once it is durable (and folded into the
    /// projection). [`StoreError::Busy`] when the log's queue is full: retry later.
    fn append(&self, fact: Fact) -> LogFuture<'_, u64>;
    /// Up to `max` entries with sequence numbers from `seq` on, in order; never past
    /// [`EventLog::last_durable`].
    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<(u64, Fact)>, StoreError>;
    /// The last durable sequence number (0: none).
    fn last_durable(&self) -> u64;
    /// Changes to [`EventLog::last_durable`], for followers to wait on.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// A log the IM store sits on: the [`EventLog`] calls, plus reading one entry (a message's body
/// is read from its entry). [`SledLog`] on one node, `pool::JsLog` in a pool.
pub(crate) trait ImLog: EventLog {
    /// The entry `seq`, if durable.
    fn entry(&self, seq: u64) -> Result<Option<Fact>, StoreError>;
    /// The last entry of the log this node's copy is read from, as last seen (the pool's
    /// stream); the copy itself on one node.
    fn source_last(&self) -> u64 {
        self.last_durable()
    }
}

/// The IM log a store sits on, whichever it is: the embedded [`SledLog`] or, in a pool, the
/// JetStream stream ([`crate::JsLog`]). Followers use it through [`EventLog`].
#[derive(Clone)]
pub struct Log {
    inner: Arc<dyn ImLog>,
}

impl Log {
    pub(crate) fn new(inner: Arc<dyn ImLog>) -> Self {
        Self { inner }
    }

    /// The entry `seq`, if durable.
    pub(crate) fn entry(&self, seq: u64) -> Result<Option<Fact>, StoreError> {
        self.inner.entry(seq)
    }

    /// Entries of the pool's IM stream this node has not folded yet (its reader's lag behind
    /// the stream's last entry as last seen; 0 on one node, whose log is its own).
    pub fn behind(&self) -> u64 {
        self.inner.source_last().saturating_sub(self.inner.last_durable())
    }
}

impl EventLog for Log {
    fn append(&self, fact: Fact) -> LogFuture<'_, u64> {
        self.inner.append(fact)
    }

    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<(u64, Fact)>, StoreError> {
        self.inner.read_from(seq, max)
    }

    fn last_durable(&self) -> u64 {
        self.inner.last_durable()
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.subscribe()
    }
}

impl ImLog for SledLog {
    fn entry(&self, seq: u64) -> Result<Option<Fact>, StoreError> {
        self.get(seq)
    }
}

/// A request to the writer thread.
pub(crate) struct Request {
    pub(crate) fact: Fact,
    pub(crate) bytes: Vec<u8>,
    pub(crate) reply: oneshot::Sender<Result<u64, StoreError>>,
}

/// The embedded log on sled (see the module docs).
pub struct SledLog {
    tree: sled::Tree,
    queue: std::sync::mpsc::SyncSender<Request>,
    durable: Arc<watch::Sender<u64>>,
    last: Arc<AtomicU64>,
}

impl SledLog {
    /// Opens the log in `db`, folds the entries after `state.seq` into `state` (the tail after a
    /// snapshot), and starts the writer, which keeps folding new entries into `projection`.
    pub(crate) fn open(
        db: &crate::flush::Db,
        mut state: ImState,
        pending: ArchivePending,
    ) -> Result<(Self, Arc<RwLock<ImState>>), StoreError> {
        let tree = db.open_tree(LOG).db()?;
        let last_key = tree.last().db()?.map_or(0, |(k, _)| crate::keys::u64_at(&k, 0));
        if state.seq > last_key {
            tracing::warn!(
                snapshot = state.seq,
                log = last_key,
                "the snapshot is ahead of the log; rebuilding from the log"
            );
            state = ImState::default();
        }
        let from = state.seq.min(pending.stored_upto) + 1;
        for entry in entries(&tree, from, u64::MAX) {
            let (seq, fact) = entry?;
            pending.note_replayed(seq, &fact);
            if seq > state.seq {
                state.apply(seq, &fact);
            }
        }
        let last = last_key;
        let state = Arc::new(RwLock::new(state));
        let (durable, _) = watch::channel(last);
        let durable = Arc::new(durable);
        let last = Arc::new(AtomicU64::new(last));
        let (queue, rx) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let projection = writer::Projection { state: state.clone(), pending };
        let w = writer::Writer {
            db: db.clone(),
            tree: tree.clone(),
            durable: durable.clone(),
            last: last.clone(),
            projection,
        };
        std::thread::Builder::new()
            .name("halo-log".into())
            .spawn(move || w.run(rx))
            .map_err(|e| StoreError::Unavailable(format!("starting the log writer: {e}")))?;
        Ok((Self { tree, queue, durable, last }, state))
    }

    /// Encodes `fact` and queues it for the writer (refused when the queue is full).
    fn submit(&self, fact: Fact) -> Result<oneshot::Receiver<Result<u64, StoreError>>, StoreError> {
        let bytes = encode(LOG, &fact)?;
        let (reply, rx) = oneshot::channel();
        match self.queue.try_send(Request { fact, bytes, reply }) {
            Ok(()) => Ok(rx),
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                Err(StoreError::Busy(format!("{QUEUE_CAPACITY} writes are waiting for the log")))
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                Err(StoreError::Unavailable("the log writer stopped".into()))
            }
        }
    }

    /// The entry `seq`, if durable.
    pub(crate) fn get(&self, seq: u64) -> Result<Option<Fact>, StoreError> {
        entry_at(&self.tree, seq, self.last_durable())
    }

    /// Entries in the log (durable or being written).
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

impl EventLog for SledLog {
    fn append(&self, fact: Fact) -> LogFuture<'_, u64> {
        let submitted = self.submit(fact);
        Box::pin(async move { submitted?.await.map_err(|_| StoreError::Unavailable("the log writer stopped".into()))? })
    }

    fn read_from(&self, seq: u64, max: usize) -> Result<Vec<(u64, Fact)>, StoreError> {
        read_durable(&self.tree, seq, self.last_durable(), max)
    }

    fn last_durable(&self) -> u64 {
        self.last.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }
}

/// The entries of a log tree (big-endian sequence number to an encoded [`Fact`]) from `from`
/// to `upto`, decoded: how the sled log and a pool node's copy of the JetStream log are read.
pub(crate) fn entries(
    tree: &sled::Tree,
    from: u64,
    upto: u64,
) -> impl Iterator<Item = Result<(u64, Fact), StoreError>> + '_ {
    tree.range(from.to_be_bytes()..=upto.to_be_bytes()).map(|kv| {
        let (k, v) = kv.db()?;
        Ok((crate::keys::u64_at(&k, 0), decode(LOG, &v)?))
    })
}

/// Entry `seq` of a log tree, decoded, if it is durable (at most `last`).
pub(crate) fn entry_at(tree: &sled::Tree, seq: u64, last: u64) -> Result<Option<Fact>, StoreError> {
    if seq > last {
        return Ok(None);
    }
    tree.get(seq.to_be_bytes()).db()?.map(|v| decode(LOG, &v)).transpose()
}

/// Up to `max` durable entries (at most `last`) of a log tree from `seq` on: [`EventLog::read_from`].
pub(crate) fn read_durable(tree: &sled::Tree, seq: u64, last: u64, max: usize) -> Result<Vec<(u64, Fact)>, StoreError> {
    if seq > last {
        return Ok(Vec::new());
    }
    entries(tree, seq.max(1), last).take(max).collect()
}

/// Ids of archive records in the log that the archive follower has not stored yet: they hold
/// readers of the archive back (see [`crate::Im::settled_below`]) like ids still in flight.
#[derive(Clone, Default)]
pub(crate) struct ArchivePending {
    ids: Arc<Mutex<BTreeSet<u64>>>,
    /// The archive follower's cursor: entries at or below it are stored already.
    pub(crate) stored_upto: u64,
}

impl ArchivePending {
    pub(crate) fn new(stored_upto: u64) -> Self {
        Self { ids: Arc::default(), stored_upto }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<u64>> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the record `fact` carries.
    pub(crate) fn note(&self, fact: &Fact) {
        if let Some(r) = fact.archived() {
            self.lock().insert(r.id);
        }
    }

    /// Notes the record of an entry being replayed at start, if the follower has not stored it.
    pub(crate) fn note_replayed(&self, seq: u64, fact: &Fact) {
        if seq > self.stored_upto {
            self.note(fact);
        }
    }

    /// The records `ids` are stored.
    pub(crate) fn stored(&self, ids: &[u64]) {
        let mut set = self.lock();
        for id in ids {
            set.remove(id);
        }
    }

    /// The lowest id still pending.
    pub(crate) fn first(&self) -> Option<u64> {
        self.lock().first().copied()
    }
}

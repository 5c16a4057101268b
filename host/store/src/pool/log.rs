//! The IM log of a pool: a JetStream stream (`HALO_<pool>_IM`, replicated), with every node's
//! projection folded from it in stream order.
//!
//! An append publishes the fact's record (the same `FactV1` bytes as the sled log) and answers
//! with its stream sequence once JetStream acknowledged it (stored on a majority of the
//! stream's replicas) **and** this node folded it, so the writer reads its own write. One
//! ordered consumer per node reads the stream from the entry after its local copy's last one:
//! each entry is kept in the node's local `log` tree (a cache of the stream, not flushed: a
//! node that crashed reads again what it lost), noted for the archive, and folded into the
//! projection. Followers read the local copy, exactly as on one node.
//!
//! The stream sequence is the log's sequence number, so every node numbers every entry alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use halo_cluster::async_nats;
use halo_core::im::{Fact, ImState};
use tokio::sync::{Semaphore, watch};

use crate::codec::{decode, encode};
use crate::log::{ArchivePending, EventLog, LogFuture, QUEUE_CAPACITY, entries, entry_at, read_durable};
use crate::{SledResult, StoreError};

const LOG: &str = crate::log::LOG;
/// How long an append waits for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reader waits for the next entry before it asks whether the stream has newer
/// ones (then its consumer stalled, and is made again).
const STALL_CHECK: Duration = Duration::from_secs(2);
/// How long an append is sent again while JetStream refuses it (a leader election).
const RETRY_FOR: Duration = Duration::from_secs(30);

/// The IM log on a JetStream stream (see the module docs).
pub struct JsLog {
    tree: sled::Tree,
    js: jetstream::Context,
    subject: String,
    durable: Arc<watch::Sender<u64>>,
    last: Arc<AtomicU64>,
    /// The stream's last entry as last seen (see [`Fold::seen`]).
    stream_last: Arc<AtomicU64>,
    in_flight: Arc<Semaphore>,
    /// This writer's name in append ids (node, process start): unique across restarts.
    writer: String,
    /// Appends made, numbering their ids.
    appends: AtomicU64,
    /// The consumer folding the stream, stopped when the log is dropped.
    reader: tokio::task::AbortHandle,
}

impl Drop for JsLog {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The largest id (message, conversation, room, archive record) a fact introduces.
pub(crate) fn max_id(fact: &Fact) -> u64 {
    let own = match fact {
        Fact::Started { conversation, .. } => conversation.id,
        Fact::Posted(p) => p.message.id,
        Fact::RoomPut { room, .. } => room.id,
        _ => 0,
    };
    own.max(fact.archived().map_or(0, |r| r.id))
}

/// The largest id in a projection.
pub(crate) fn max_id_in(state: &ImState) -> u64 {
    let conversations = state.conversations.keys().copied().max().unwrap_or(0);
    let messages = state.threads.values().filter_map(|t| t.last()).map(|i| i.id).max().unwrap_or(0);
    let rooms = state.rooms.keys().next_back().copied().unwrap_or(0);
    conversations.max(messages).max(rooms)
}

impl JsLog {
    /// Opens the pool's stream (creating it), folds this node's local copy after `state.seq`,
    /// then reads the stream from the end of the local copy up to the stream's last entry
    /// before returning, and keeps following it. `high` learns every id folded (for
    /// [`crate::Im::reserve`]).
    pub(crate) async fn open(
        cluster: &halo_cluster::Cluster,
        db: &crate::flush::Db,
        mut state: ImState,
        pending: ArchivePending,
        high: Arc<AtomicU64>,
    ) -> Result<(Self, Arc<RwLock<ImState>>), StoreError> {
        let js = cluster.jetstream().clone();
        let subject = cluster.subject("im");
        let config = stream::Config {
            name: cluster.stream_name("IM"),
            subjects: vec![subject.clone()],
            storage: stream::StorageType::File,
            allow_direct: true,
            ..Default::default()
        };
        let stream = cluster
            .place(|num_replicas| js.get_or_create_stream(stream::Config { num_replicas, ..config.clone() }))
            .await
            .map_err(|e| unavailable("creating the IM stream", e))?;
        let stream_last = stream.cached_info().state.last_sequence;

        let tree = db.open_tree(LOG).db()?;
        let local_last = tree.last().db()?.map_or(0, |(k, _)| crate::keys::u64_at(&k, 0));
        if local_last > stream_last {
            return Err(StoreError::Corrupt(format!(
                "this node's copy of the IM log has {local_last} entries, the pool's stream {stream_last}: \
                 the data directory belongs to another pool (or the stream was deleted)"
            )));
        }
        if state.seq > local_last {
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
        high.fetch_max(max_id_in(&state), Ordering::AcqRel);

        let mut messages = ordered(&stream, local_last + 1).await?;

        let state = Arc::new(RwLock::new(state));
        let (durable, _) = watch::channel(local_last);
        let durable = Arc::new(durable);
        let last = Arc::new(AtomicU64::new(local_last));
        let stream_last = Arc::new(AtomicU64::new(stream_last));
        let fold = Fold {
            tree: tree.clone(),
            state: state.clone(),
            pending,
            high,
            durable: durable.clone(),
            last: last.clone(),
            stream_last: stream_last.clone(),
        };
        // Catch up with the stream as it was at open, then follow it.
        let caught_up = fold.stream_last.load(Ordering::Acquire);
        while last.load(Ordering::Acquire) < caught_up {
            match messages.next().await {
                Some(Ok(m)) => fold.message(&m)?,
                Some(Err(e)) => return Err(unavailable("reading the IM stream", e)),
                None => return Err(StoreError::Unavailable("the IM stream's consumer ended".into())),
            }
        }
        let reader = tokio::spawn(async move {
            // A consumer whose server died (missed heartbeats) or that ended is made again from
            // the entry after the last one folded.
            loop {
                loop {
                    let m = match tokio::time::timeout(STALL_CHECK, messages.next()).await {
                        Ok(Some(m)) => m,
                        Ok(None) => break,
                        // Quiet for a while: fine if the stream has nothing newer; a consumer
                        // stalled on a dead server otherwise (made again below).
                        Err(_) => match stream.get_info().await {
                            Ok(info) if info.state.last_sequence > fold.last.load(Ordering::Acquire) => {
                                fold.seen(info.state.last_sequence);
                                tracing::warn!("the IM stream's reader stalled; reading again");
                                break;
                            }
                            Ok(info) => {
                                fold.seen(info.state.last_sequence);
                                continue;
                            }
                            Err(_) => continue,
                        },
                    };
                    match m {
                        Ok(m) => {
                            if let Err(e) = fold.message(&m) {
                                tracing::error!(error = %e, "folding the IM stream");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "reading the IM stream; reading again");
                            break;
                        }
                    }
                }
                messages = loop {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let from = fold.last.load(Ordering::Acquire) + 1;
                    match ordered(&stream, from).await {
                        Ok(m) => break m,
                        Err(e) => tracing::warn!(error = %e, "reading the IM stream again"),
                    }
                };
            }
        })
        .abort_handle();
        let in_flight = Arc::new(Semaphore::new(QUEUE_CAPACITY));
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let writer = format!("{}-{started:x}", cluster.node_id());
        let log = Self {
            tree,
            js,
            subject,
            durable,
            last,
            stream_last,
            in_flight,
            writer,
            appends: AtomicU64::new(0),
            reader,
        };
        Ok((log, state))
    }

    /// The entry `seq`, if this node has folded it.
    pub(crate) fn get(&self, seq: u64) -> Result<Option<Fact>, StoreError> {
        entry_at(&self.tree, seq, self.last_durable())
    }

    /// Entries in this node's copy of the log.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether this node's copy is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }
}

/// What the consumer folds each entry into.
struct Fold {
    tree: sled::Tree,
    state: Arc<RwLock<ImState>>,
    pending: ArchivePending,
    high: Arc<AtomicU64>,
    durable: Arc<watch::Sender<u64>>,
    last: Arc<AtomicU64>,
    stream_last: Arc<AtomicU64>,
}

impl Fold {
    /// Notes that the stream has entries up to `seq`: from each message (its sequence plus
    /// the entries after it that the consumer has yet to deliver), and from the stream's info
    /// when the reader is quiet. What [`JsLog::source_last`] reports, at no extra request.
    fn seen(&self, seq: u64) {
        self.stream_last.fetch_max(seq, Ordering::AcqRel);
    }

    fn message(&self, m: &jetstream::Message) -> Result<(), StoreError> {
        let info = m.info().map_err(|e| StoreError::Corrupt(format!("IM stream message: {e}")))?;
        let seq = info.stream_sequence;
        self.seen(seq.saturating_add(info.pending));
        if seq <= self.last.load(Ordering::Acquire) {
            return Ok(());
        }
        let fact: Fact = decode(LOG, &m.payload)?;
        self.tree.insert(seq.to_be_bytes(), m.payload.as_ref()).db()?;
        self.pending.note(&fact);
        self.high.fetch_max(max_id(&fact), Ordering::AcqRel);
        self.state.write().unwrap_or_else(|p| p.into_inner()).apply(seq, &fact);
        self.last.store(seq, Ordering::Release);
        self.durable.send_replace(seq);
        Ok(())
    }
}

impl EventLog for JsLog {
    fn append(&self, fact: Fact) -> LogFuture<'_, u64> {
        Box::pin(async move {
            let _permit = self
                .in_flight
                .try_acquire()
                .map_err(|_| StoreError::Busy(format!("{QUEUE_CAPACITY} writes are waiting for the pool's log")))?;
            let bytes: bytes::Bytes = encode(LOG, &fact)?.into();
            // One id per append, sent again with each retry: JetStream stores it once (its
            // duplicate window is two minutes) and answers a retry with the first sequence.
            let id = format!("{}-{}", self.writer, self.appends.fetch_add(1, Ordering::Relaxed));
            let deadline = tokio::time::Instant::now() + RETRY_FOR;
            let mut pause = Duration::from_millis(50);
            let seq = loop {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.as_str());
                let attempt = async {
                    let ack = self
                        .js
                        .publish_with_headers(self.subject.clone(), headers, bytes.clone())
                        .await
                        .map_err(|e| e.to_string())?;
                    match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                        Ok(Ok(ack)) => Ok(ack.sequence),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("no acknowledgement in time".to_owned()),
                    }
                };
                match attempt.await {
                    Ok(seq) => break seq,
                    // A stream electing a new leader (a server died) refuses for a moment.
                    Err(e) if tokio::time::Instant::now() < deadline => {
                        tracing::warn!(error = %e, "an append was not acknowledged; sending it again");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(1));
                    }
                    Err(e) => return Err(unavailable("append", e)),
                }
            };
            self.stream_last.fetch_max(seq, Ordering::AcqRel);
            let mut folded = self.durable.subscribe();
            while *folded.borrow_and_update() < seq {
                if folded.changed().await.is_err() {
                    return Err(StoreError::Unavailable("the IM stream's reader stopped".into()));
                }
            }
            Ok(seq)
        })
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

/// An ordered consumer of `stream` from entry `from` on.
async fn ordered(stream: &stream::Stream, from: u64) -> Result<consumer::pull::Ordered, StoreError> {
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence { start_sequence: from },
            ..Default::default()
        })
        .await
        .map_err(|e| unavailable("reading the IM stream", e))?;
    consumer.messages().await.map_err(|e| unavailable("reading the IM stream", e))
}

impl crate::log::ImLog for JsLog {
    fn entry(&self, seq: u64) -> Result<Option<Fact>, StoreError> {
        self.get(seq)
    }

    fn source_last(&self) -> u64 {
        self.stream_last.load(Ordering::Acquire)
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("JetStream, {what}: {e}"))
}

//! The key-value half of a pool's state: every shared tree (accounts, sessions, contacts,
//! presence documents, pictures, app tokens, plugin records and storage, archive policies and
//! settings, federation rules and followers, attachments' metadata) is a JetStream KV bucket,
//! and each node keeps a replica of it in its own sled tree (see `tree.rs`).
//!
//! **Writes** are applied to the replica at once and handed to one publisher task in order; it
//! publishes them to their buckets without waiting (one connection keeps their order) and
//! counts their acknowledgements in order. [`Replicator::acked`] answers once every write handed
//! over before the call is acknowledged: that is what a pool member's flush waits for.
//! **Reads** of other nodes' writes: one watcher per bucket applies every change of the bucket
//! to the replica, in the bucket's order. At start the replica is emptied and filled from the
//! bucket (last value per key), so it never keeps a key another node deleted meanwhile.
//! **Creates** that two nodes may race (a new account's name) are a KV `create` (expected last
//! sequence 0 on the key's subject): JetStream lets exactly one of them through.
//!
//! Keys are hex-encoded (KV keys are subject tokens; the trees' keys are bytes).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use halo_cluster::async_nats;
use tokio::sync::{mpsc, watch};

use crate::StoreError;

/// The trees a pool shares as KV buckets.
pub(crate) const SHARED_TREES: &[&str] = &[
    "users",
    "retired_users",
    "sessions",
    "user_sessions",
    "presence",
    "contacts",
    "pictures",
    "app_tokens",
    "plugins",
    "plugin_kv",
    "archive_policies",
    "archive_meta",
    "fed_rules",
    "fed_followers",
    "fed_following",
    "fed_failed",
    "attachments",
];

/// Writes published and not yet acknowledged before new ones wait (the publisher applies
/// backpressure through its bounded queue).
const IN_FLIGHT: usize = 4096;

/// How long a write waits for JetStream's acknowledgement before it counts as failed.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The key [`Replicator::recover`] writes to see the pool acknowledge writes (no key of a
/// tree looks like it: those are hex).
const PROBE_KEY: &str = "_probe";

/// A key as a KV key: lowercase hex (never empty: an empty key is `_`).
pub(crate) fn kv_key(key: &[u8]) -> String {
    if key.is_empty() {
        return "_".into();
    }
    key.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a KV key made by [`kv_key`].
pub(crate) fn key_bytes(key: &str) -> Option<Vec<u8>> {
    if key == "_" {
        return Some(Vec::new());
    }
    if !key.len().is_multiple_of(2) {
        return None;
    }
    (0..key.len()).step_by(2).map(|i| u8::from_str_radix(key.get(i..i + 2)?, 16).ok()).collect()
}

struct Write {
    ticket: u64,
    subject: String,
    value: Option<bytes::Bytes>,
}

/// The publisher and watchers of a pool member's shared trees.
pub(crate) struct Replicator {
    buckets: HashMap<&'static str, kv::Store>,
    /// Tickets handed out (the last one) and the queue to the publisher, under one lock so
    /// tickets are in queue order.
    queue: Mutex<(u64, mpsc::UnboundedSender<Write>)>,
    /// The last ticket acknowledged, all before it too.
    acked: watch::Sender<u64>,
    /// Why a write failed to be acknowledged: every flush waiting fails with it, until a later
    /// write is acknowledged again.
    failure: Arc<Mutex<Option<String>>>,
    /// The replicas being watched, by tree.
    replicas: Mutex<HashMap<&'static str, sled::Tree>>,
    /// The watchers, stopped when the store is dropped (they hold the replicas open).
    watchers: Mutex<Vec<tokio::task::AbortHandle>>,
    /// Bumped each time a watcher applied a change to a tree's replica, by tree.
    changed: HashMap<&'static str, watch::Sender<u64>>,
}

impl Drop for Replicator {
    fn drop(&mut self) {
        for w in self.watchers.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
            w.abort();
        }
    }
}

impl Replicator {
    /// Creates (or opens) one bucket per shared tree with `replicas` copies and starts the
    /// publisher.
    pub(crate) async fn open(cluster: &halo_cluster::Cluster) -> Result<Arc<Self>, StoreError> {
        let js = cluster.jetstream();
        let mut buckets = HashMap::new();
        for name in SHARED_TREES {
            let config = kv::Config {
                bucket: cluster.bucket(name),
                history: 1,
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            };
            let store = cluster
                .place(|num_replicas| js.create_or_update_key_value(kv::Config { num_replicas, ..config.clone() }))
                .await
                .map_err(|e| unavailable("creating bucket", e))?;
            buckets.insert(*name, store);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let (acked, _) = watch::channel(0);
        let changed = SHARED_TREES.iter().map(|t| (*t, watch::channel(0).0)).collect();
        let this = Arc::new(Self {
            buckets,
            queue: Mutex::new((0, tx)),
            acked,
            failure: Arc::default(),
            replicas: Mutex::default(),
            watchers: Mutex::default(),
            changed,
        });
        tokio::spawn(publish(js.clone(), rx, Arc::downgrade(&this)));
        Ok(this)
    }

    /// Notes the replica of tree `name` (filled and watched by [`Replicator::sync`]).
    pub(crate) fn attach(&self, name: &'static str, tree: sled::Tree) {
        self.replicas.lock().unwrap_or_else(|p| p.into_inner()).insert(name, tree);
    }

    /// Changes to tree `name`'s replica as the bucket's watcher applies them (this node's own
    /// writes too, as they come back): a counter bumped after each.
    pub(crate) fn changes(&self, name: &str) -> Option<watch::Receiver<u64>> {
        self.changed.get(name).map(watch::Sender::subscribe)
    }

    /// Hands a put (or, for `None`, a delete) of `key` in tree `name` to the publisher.
    pub(crate) fn put(&self, name: &str, key: &[u8], value: Option<Vec<u8>>) {
        let Some(bucket) = self.buckets.get(name) else {
            tracing::error!(tree = name, "a write to a tree the pool does not share");
            return;
        };
        let subject = format!("{}{}", bucket.prefix, kv_key(key));
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.0 += 1;
        let ticket = q.0;
        // A send fails only once the publisher stopped (the runtime is shutting down): the
        // flush waiting for this ticket then fails too.
        let _ = q.1.send(Write { ticket, subject, value: value.map(Into::into) });
    }

    /// Creates `key` in tree `name` unless the bucket has it: `false` when it had.
    pub(crate) async fn create(&self, name: &str, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let Some(bucket) = self.buckets.get(name) else {
            return Err(StoreError::Unavailable(format!("tree {name} is not shared")));
        };
        let key = kv_key(key);
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(50);
        let mut retried = false;
        loop {
            match bucket.create(&key, value.to_vec().into()).await {
                Ok(_) => return Ok(true),
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    // A retry finding its own first attempt stored: that attempt created it.
                    if retried
                        && let Ok(Some(stored)) = bucket.get(&key).await
                        && stored.as_ref() == value
                    {
                        return Ok(true);
                    }
                    return Ok(false);
                }
                // A stream electing a new leader (a server died) refuses for a moment.
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, "a create was not acknowledged; sending it again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                    retried = true;
                }
                Err(e) => return Err(unavailable("create", e)),
            }
        }
    }

    /// The last ticket handed out.
    pub(crate) fn sent(&self) -> u64 {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Waits until every write up to `ticket` is acknowledged. Fails while a write went
    /// unacknowledged (the failure sticks until [`Replicator::recover`] clears it: like a
    /// failed fsync, it may have lost any write before it).
    pub(crate) async fn acked(&self, ticket: u64) -> Result<(), StoreError> {
        let mut rx = self.acked.subscribe();
        loop {
            let done = *rx.borrow_and_update() >= ticket;
            if let Some(why) = self.failure() {
                return Err(StoreError::Unavailable(why));
            }
            if done {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Unavailable("the pool's publisher stopped".into()));
            }
        }
    }

    /// After a failure: writes a probe to the pool and, once it is acknowledged, accepts writes
    /// again.
    pub(crate) async fn recover(&self) -> Result<(), StoreError> {
        if self.failure().is_none() {
            return Ok(());
        }
        let Some(bucket) = self.buckets.get("users") else { return Ok(()) };
        bucket.put(PROBE_KEY, bytes::Bytes::new()).await.map_err(|e| unavailable("probe write", e))?;
        bucket.purge(PROBE_KEY).await.map_err(|e| unavailable("probe write", e))?;
        // Everything handed over before the probe was answered by now, one way or the other.
        let ticket = self.sent();
        let mut rx = self.acked.subscribe();
        while *rx.borrow_and_update() < ticket {
            if rx.changed().await.is_err() {
                return Err(StoreError::Unavailable("the pool's publisher stopped".into()));
            }
        }
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tracing::info!("the pool acknowledges writes again");
        Ok(())
    }

    /// Why writes are not being acknowledged, if they are not.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Empties every attached replica, fills it from its bucket, and keeps it following the
    /// bucket. Returns once every replica holds its bucket's content as of the call.
    pub(crate) async fn sync(&self) -> Result<(), StoreError> {
        let replicas: Vec<(&'static str, sled::Tree)> =
            self.replicas.lock().unwrap_or_else(|p| p.into_inner()).iter().map(|(n, t)| (*n, t.clone())).collect();
        for (name, tree) in replicas {
            let Some(bucket) = self.buckets.get(name) else { continue };
            tree.clear().map_err(crate::from_sled)?;
            let mut watch = bucket.watch_with_history(">").await.map_err(|e| unavailable("watching bucket", e))?;
            let status = bucket.status().await.map_err(|e| unavailable("bucket status", e))?;
            let mut revision = 0;
            if status.values() > 0 {
                // The history is delivered first; `delta` 0 marks its last entry.
                while let Some(entry) = watch.next().await {
                    let entry = entry.map_err(|e| unavailable("reading bucket", e))?;
                    let last = entry.delta == 0;
                    revision = revision.max(entry.revision);
                    apply(&tree, name, entry);
                    if last {
                        break;
                    }
                }
            }
            let bucket = bucket.clone();
            let changed = self.changed.get(name).cloned();
            let task = tokio::spawn(async move {
                // A watch whose server died (missed heartbeats) is made again from the
                // revision after the last one applied, so no change is skipped.
                loop {
                    while let Some(entry) = watch.next().await {
                        match entry {
                            Ok(entry) => {
                                revision = revision.max(entry.revision);
                                apply(&tree, name, entry);
                                if let Some(c) = &changed {
                                    c.send_modify(|n| *n = n.wrapping_add(1));
                                }
                            }
                            Err(e) => {
                                tracing::warn!(tree = name, error = %e, "watching the pool's bucket; watching again");
                                break;
                            }
                        }
                    }
                    watch = loop {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        match bucket.watch_all_from_revision(revision + 1).await {
                            Ok(w) => break w,
                            Err(e) => tracing::warn!(tree = name, error = %e, "watching the pool's bucket again"),
                        }
                    };
                }
            });
            self.watchers.lock().unwrap_or_else(|p| p.into_inner()).push(task.abort_handle());
        }
        Ok(())
    }
}

/// Applies one change of a bucket to its replica.
fn apply(tree: &sled::Tree, name: &str, entry: kv::Entry) {
    if entry.key == PROBE_KEY {
        return;
    }
    let Some(key) = key_bytes(&entry.key) else {
        tracing::warn!(tree = name, key = %entry.key, "a key this node did not write; ignored");
        return;
    };
    let done = match entry.operation {
        kv::Operation::Put => tree.insert(key, entry.value.as_ref()).map(drop),
        kv::Operation::Delete | kv::Operation::Purge => tree.remove(key).map(drop),
    };
    if let Err(e) = done {
        tracing::error!(tree = name, error = %e, "updating the local replica");
    }
}

type AckFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>;

/// Publishes `w` and returns the wait for its acknowledgement.
async fn send(js: &jetstream::Context, w: &Write) -> AckFuture {
    let sent = match &w.value {
        Some(v) => js.publish(w.subject.clone(), v.clone()).await,
        None => {
            let mut headers = HeaderMap::new();
            headers.insert("KV-Operation", "DEL");
            js.publish_with_headers(w.subject.clone(), headers, bytes::Bytes::new()).await
        }
    };
    Box::pin(async move {
        match sent {
            Ok(ack) => match tokio::time::timeout(ACK_TIMEOUT, ack).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("no acknowledgement in time".to_owned()),
            },
            Err(e) => Err(e.to_string()),
        }
    })
}

/// The publisher: publishes writes in order without waiting, and takes their acknowledgements
/// in order. When one is refused or times out (a stream electing a new leader after a server
/// died answers "no responders" for a moment), it and every write published after it are
/// published again, in order, until they are acknowledged or [`RETRY_FOR`] has passed: the
/// bucket then ends with the writes in their order, the same as without the failure.
async fn publish(js: jetstream::Context, mut rx: mpsc::UnboundedReceiver<Write>, owner: std::sync::Weak<Replicator>) {
    let mut in_flight: VecDeque<(Write, AckFuture)> = VecDeque::new();
    loop {
        tokio::select! {
            write = rx.recv(), if in_flight.len() < IN_FLIGHT => {
                let Some(w) = write else { break };
                let ack = send(&js, &w).await;
                in_flight.push_back((w, ack));
            }
            result = async {
                match in_flight.front_mut() {
                    Some(head) => head.1.as_mut().await,
                    None => std::future::pending().await,
                }
            }, if !in_flight.is_empty() => {
                let Some(owner) = owner.upgrade() else { break };
                match result {
                    Ok(()) => {
                        if let Some((w, _)) = in_flight.pop_front() {
                            owner.acked.send_replace(w.ticket);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "a write to the pool was not acknowledged; publishing again");
                        let writes: Vec<Write> = in_flight.drain(..).map(|(w, _)| w).collect();
                        let last = writes.last().map_or(0, |w| w.ticket);
                        if let Err(e) = republish(&js, &writes).await {
                            tracing::error!(error = %e, "the pool does not acknowledge writes");
                            *owner.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                                Some(format!("the pool did not acknowledge a write: {e}"));
                        }
                        owner.acked.send_replace(last);
                    }
                }
            }
        }
    }
}

/// How long a refused write is published again before the store counts it as failed.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// Publishes `writes` again in order and waits for each, retrying for [`RETRY_FOR`].
async fn republish(js: &jetstream::Context, writes: &[Write]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + RETRY_FOR;
    let mut pause = Duration::from_millis(50);
    loop {
        tokio::time::sleep(pause).await;
        let mut acks = Vec::with_capacity(writes.len());
        for w in writes {
            acks.push(send(js, w).await);
        }
        let mut failed = None;
        for ack in acks {
            if let Err(e) = ack.await {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => return Ok(()),
            Some(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Some(_) => pause = (pause * 2).min(Duration::from_secs(1)),
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("JetStream, {what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_hex() {
        for key in [&b""[..], b"alice", &[0, 255, 16, 1], b"user\0hash"] {
            let k = kv_key(key);
            assert!(k.bytes().all(|b| b.is_ascii_hexdigit() || b == b'_'), "{k}");
            assert_eq!(key_bytes(&k).as_deref(), Some(key));
        }
        assert_eq!(key_bytes("abc"), None);
        assert_eq!(key_bytes("zz"), None);
    }
}

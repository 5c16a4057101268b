//! Who is in the pool and which users have endpoints where.
//!
//! Every node publishes a heartbeat (`halo.<pool>.hb`) each `heartbeat` with its counts, and a
//! numbered change (`halo.<pool>.dir`) when one of its users gets their first endpoint or loses
//! their last. The others keep each node's set of users in memory: a change with the next
//! number is applied, a gap (or a new incarnation: the node restarted) makes them ask the node
//! for its whole set (`halo.<pool>.dir.snap.<node>`, request/reply). A node missing four
//! heartbeats is gone, with its users. Nothing of this is durable: it is rebuilt from the live
//! nodes in a heartbeat or two.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use halo_cluster::Cluster;
use halo_core::Username;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{decode, encode};
use crate::clock::now_ms;

/// A node as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// The node's name.
    pub node: String,
    /// Its client address.
    pub http: String,
    /// When it started, ms since the Unix epoch.
    pub started_at: u64,
    /// Users with an endpoint there.
    pub users: usize,
    /// Endpoints (sockets) there.
    pub endpoints: usize,
    /// Presence groups it owns.
    pub groups: Vec<usize>,
    /// The once-per-pool tasks it runs (`search`, `archive`, `federation`, ...).
    pub tasks: Vec<String>,
    /// The NATS server it is connected to.
    pub nats_server: String,
    /// How far its copy of the IM log and its followers are behind (absent from a node of an
    /// earlier release: zeros).
    #[serde(default)]
    pub log: super::status::LogLag,
}

#[derive(Serialize, Deserialize)]
struct Heartbeat {
    incarnation: u64,
    seq: u64,
    status: NodeStatus,
}

#[derive(Serialize, Deserialize)]
struct Change {
    node: String,
    incarnation: u64,
    seq: u64,
    user: String,
    on: bool,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    incarnation: u64,
    seq: u64,
    users: Vec<String>,
}

struct Local {
    seq: u64,
    users: HashMap<Username, usize>,
    endpoints: usize,
}

struct Remote {
    incarnation: u64,
    seq: u64,
    synced: bool,
    syncing: bool,
    users: HashSet<Username>,
    last_seen: Instant,
    status: NodeStatus,
    /// The node's `writes_below` of the last heartbeat whose `applied` this node has folded
    /// (0 until one is): see [`Members::settled_below`].
    confirmed: u64,
    /// The `(applied, writes_below)` of its recent heartbeats not confirmed yet, oldest first:
    /// under steady load this node is always a little behind the latest one, never behind
    /// all of them.
    unconfirmed: VecDeque<(u64, u64)>,
}

/// Heartbeats of a node kept for [`Members::settled_below`] to confirm (older ones are
/// dropped: that only delays the sinks).
const UNCONFIRMED: usize = 16;

/// The pool's members and the user directory.
pub struct Members {
    cluster: Cluster,
    incarnation: u64,
    started_at: u64,
    http: Mutex<String>,
    local: Mutex<Local>,
    remote: RwLock<HashMap<String, Remote>>,
    changes: mpsc::UnboundedSender<Change>,
    heartbeat: Duration,
    /// What this node reports beyond its users: its groups and tasks.
    extra: Mutex<(Vec<usize>, BTreeMap<String, ()>)>,
    /// Bumped whenever a node joins or leaves.
    epoch: AtomicU64,
    /// Where this node's IM log stands, once the services joined.
    log: std::sync::OnceLock<LogReport>,
}

/// Reports this node's [`super::status::LogLag`].
type LogReport = Box<dyn Fn() -> super::status::LogLag + Send + Sync>;

impl Members {
    /// Starts publishing this node's heartbeats and changes and following the others'.
    pub async fn start(cluster: Cluster, heartbeat: Duration, http: String) -> anyhow::Result<Arc<Self>> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Change>();
        let members = Arc::new(Self {
            cluster: cluster.clone(),
            incarnation: rand::random::<u64>() | 1,
            started_at: now_ms(),
            http: Mutex::new(http),
            local: Mutex::new(Local { seq: 0, users: HashMap::new(), endpoints: 0 }),
            remote: RwLock::new(HashMap::new()),
            changes: tx,
            heartbeat,
            extra: Mutex::new((Vec::new(), BTreeMap::new())),
            epoch: AtomicU64::new(0),
            log: std::sync::OnceLock::new(),
        });
        let client = cluster.client().clone();
        let mut changes = client.subscribe(cluster.subject("dir")).await?;
        let mut beats = client.subscribe(cluster.subject("hb")).await?;
        let mut snaps = client.subscribe(cluster.subject(&format!("dir.snap.{}", cluster.node_id()))).await?;
        // Changes go out in order, from one task.
        let (c, subject) = (client.clone(), cluster.subject("dir"));
        tokio::spawn(async move {
            while let Some(change) = rx.recv().await {
                if let Some(bytes) = encode(&change) {
                    let _ = c.publish(subject.clone(), bytes).await;
                }
            }
        });
        let weak = Arc::downgrade(&members);
        tokio::spawn(async move {
            while let Some(msg) = changes.next().await {
                let Some(m) = weak.upgrade() else { break };
                if let Some(change) = decode::<Change>(&msg.payload) {
                    m.on_change(change);
                }
            }
        });
        let weak = Arc::downgrade(&members);
        tokio::spawn(async move {
            while let Some(msg) = beats.next().await {
                let Some(m) = weak.upgrade() else { break };
                if let Some(beat) = decode::<Heartbeat>(&msg.payload) {
                    m.on_heartbeat(beat);
                }
            }
        });
        let weak = Arc::downgrade(&members);
        let c = client.clone();
        tokio::spawn(async move {
            while let Some(msg) = snaps.next().await {
                let Some(m) = weak.upgrade() else { break };
                let Some(reply) = msg.reply else { continue };
                let snapshot = {
                    let local = m.local();
                    Snapshot {
                        incarnation: m.incarnation,
                        seq: local.seq,
                        users: local.users.keys().map(|u| u.to_string()).collect(),
                    }
                };
                if let Some(bytes) = encode(&snapshot) {
                    let _ = c.publish(reply, bytes).await;
                }
            }
        });
        let weak = Arc::downgrade(&members);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(heartbeat);
            loop {
                every.tick().await;
                let Some(m) = weak.upgrade() else { break };
                m.beat().await;
                m.reap();
            }
        });
        Ok(members)
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        self.cluster.node_id()
    }

    /// Records a local endpoint of `user` opened (called by the hub under its lock, so the
    /// changes go out in the order they happened).
    pub fn endpoint_opened(&self, user: &Username) {
        let mut local = self.local();
        local.endpoints += 1;
        let n = local.users.entry(user.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            local.seq += 1;
            let seq = local.seq;
            self.send_change(user, seq, true);
        }
    }

    /// Records a local endpoint of `user` closed.
    pub fn endpoint_closed(&self, user: &Username) {
        let mut local = self.local();
        local.endpoints = local.endpoints.saturating_sub(1);
        let Some(n) = local.users.get_mut(user) else { return };
        *n = n.saturating_sub(1);
        if *n == 0 {
            local.users.remove(user);
            local.seq += 1;
            let seq = local.seq;
            self.send_change(user, seq, false);
        }
    }

    fn send_change(&self, user: &Username, seq: u64, on: bool) {
        let change =
            Change { node: self.node().to_owned(), incarnation: self.incarnation, seq, user: user.to_string(), on };
        let _ = self.changes.send(change);
    }

    /// The other nodes where `user` has endpoints.
    pub fn nodes_of(&self, user: &Username) -> Vec<String> {
        let remote = self.remote.read().unwrap_or_else(|p| p.into_inner());
        remote.iter().filter(|(_, r)| r.users.contains(user)).map(|(n, _)| n.clone()).collect()
    }

    /// Whether `user` has an endpoint on another node.
    pub fn online_elsewhere(&self, user: &Username) -> bool {
        let remote = self.remote.read().unwrap_or_else(|p| p.into_inner());
        remote.values().any(|r| r.users.contains(user))
    }

    /// The live nodes (this one first) as their heartbeats describe them.
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let mut all = vec![self.status()];
        let remote = self.remote.read().unwrap_or_else(|p| p.into_inner());
        let mut others: Vec<NodeStatus> = remote.values().map(|r| r.status.clone()).collect();
        others.sort_by(|a, b| a.node.cmp(&b.node));
        all.extend(others);
        all
    }

    /// Ids below which no other live node will write an archive record this node, having
    /// folded the IM log up to `applied`, has not stored: the lowest `writes_below` of each
    /// node's heartbeats whose log position this node has reached. Ids of a pool grow per
    /// node, not across the pool (a node hands out ids above those it has seen), so a record
    /// another node is writing may land in the log after records with higher ids: the archive
    /// sinks deliver in id order only below this, so their cursor never passes a late record.
    /// A node gone (no heartbeat) holds nothing back.
    pub fn settled_below(&self, applied: u64) -> u64 {
        let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
        remote
            .values_mut()
            .map(|r| {
                while let Some((upto, below)) = r.unconfirmed.front().copied() {
                    if upto > applied {
                        break;
                    }
                    r.confirmed = r.confirmed.max(below);
                    r.unconfirmed.pop_front();
                }
                r.confirmed
            })
            .min()
            .unwrap_or(u64::MAX)
    }

    /// How many nodes are alive, this one included.
    pub fn live(&self) -> usize {
        1 + self.remote.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Bumped whenever a node joins or leaves.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Relaxed)
    }

    /// The users with an endpoint on this node.
    pub fn local_users(&self) -> Vec<Username> {
        self.local().users.keys().cloned().collect()
    }

    /// Sets this node's client address, shown to the others (known once it listens).
    pub fn set_http(&self, http: String) {
        *self.http.lock().unwrap_or_else(|p| p.into_inner()) = http;
    }

    /// Says which presence groups this node owns (shown in heartbeats).
    pub fn set_groups(&self, groups: Vec<usize>) {
        self.extra.lock().unwrap_or_else(|p| p.into_inner()).0 = groups;
    }

    /// Says this node runs (or no longer runs) the once-per-pool task `task`.
    pub fn set_task(&self, task: &str, running: bool) {
        let mut extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        if running {
            extra.1.insert(task.to_owned(), ());
        } else {
            extra.1.remove(task);
        }
    }

    /// Says how this node's IM log figures are read (shown in heartbeats; set once).
    pub fn report_log(&self, report: impl Fn() -> super::status::LogLag + Send + Sync + 'static) {
        let _ = self.log.set(Box::new(report));
    }

    /// This node's status.
    pub fn status(&self) -> NodeStatus {
        let (users, endpoints) = {
            let local = self.local();
            (local.users.len(), local.endpoints)
        };
        let (groups, tasks) = {
            let extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
            (extra.0.clone(), extra.1.keys().cloned().collect())
        };
        NodeStatus {
            node: self.node().to_owned(),
            http: self.http.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            started_at: self.started_at,
            users,
            endpoints,
            groups,
            tasks,
            nats_server: self.cluster.server().0,
            log: self.log.get().map(|report| report()).unwrap_or_default(),
        }
    }

    async fn beat(&self) {
        let seq = self.local().seq;
        let beat = Heartbeat { incarnation: self.incarnation, seq, status: self.status() };
        if let Some(bytes) = encode(&beat) {
            let _ = self.cluster.client().publish(self.cluster.subject("hb"), bytes).await;
        }
    }

    /// Forgets nodes that missed four heartbeats.
    fn reap(&self) {
        let limit = self.heartbeat * 4;
        let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
        let before = remote.len();
        remote.retain(|node, r| {
            let alive = r.last_seen.elapsed() < limit;
            if !alive {
                tracing::warn!(%node, "pool node gone (no heartbeat)");
            }
            alive
        });
        if remote.len() != before {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_heartbeat(self: &Arc<Self>, beat: Heartbeat) {
        if beat.status.node == self.node() {
            return;
        }
        let node = beat.status.node.clone();
        let sync = {
            let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
            let fresh = || Remote {
                incarnation: beat.incarnation,
                seq: 0,
                synced: false,
                syncing: false,
                users: HashSet::new(),
                last_seen: Instant::now(),
                status: beat.status.clone(),
                confirmed: 0,
                unconfirmed: VecDeque::new(),
            };
            let r = remote.entry(node.clone()).or_insert_with(|| {
                tracing::info!(node = %beat.status.node, "pool node joined");
                self.epoch.fetch_add(1, Ordering::Relaxed);
                fresh()
            });
            if r.incarnation != beat.incarnation {
                tracing::info!(%node, "pool node restarted");
                *r = fresh();
                self.epoch.fetch_add(1, Ordering::Relaxed);
            }
            r.last_seen = Instant::now();
            if r.unconfirmed.len() == UNCONFIRMED {
                r.unconfirmed.pop_front();
            }
            r.unconfirmed.push_back((beat.status.log.applied, beat.status.log.writes_below));
            r.status = beat.status;
            if r.synced && r.seq != beat.seq {
                r.synced = false;
            }
            let sync = !r.synced && !r.syncing;
            if sync {
                r.syncing = true;
            }
            sync
        };
        if sync {
            self.sync(node);
        }
    }

    fn on_change(self: &Arc<Self>, change: Change) {
        if change.node == self.node() {
            return;
        }
        let Ok(user) = Username::parse(&change.user) else { return };
        let sync = {
            let mut remote = self.remote.write().unwrap_or_else(|p| p.into_inner());
            let Some(r) = remote.get_mut(&change.node) else { return };
            if r.incarnation != change.incarnation || change.seq <= r.seq {
                return;
            }
            if r.synced && change.seq == r.seq + 1 {
                r.seq = change.seq;
                if change.on {
                    r.users.insert(user);
                } else {
                    r.users.remove(&user);
                }
                false
            } else {
                // A gap, or not synced yet: apply what is certain (it is newer than anything
                // known) and ask for the whole set.
                if change.on {
                    r.users.insert(user);
                } else {
                    r.users.remove(&user);
                }
                r.synced = false;
                let sync = !r.syncing;
                r.syncing = true;
                sync
            }
        };
        if sync {
            self.sync(change.node);
        }
    }

    /// Asks `node` for its whole set of users.
    fn sync(self: &Arc<Self>, node: String) {
        let weak = Arc::downgrade(self);
        let client = self.cluster.client().clone();
        let subject = self.cluster.subject(&format!("dir.snap.{node}"));
        tokio::spawn(async move {
            let answer =
                tokio::time::timeout(Duration::from_secs(5), client.request(subject, bytes::Bytes::new())).await;
            let Some(m) = weak.upgrade() else { return };
            let snapshot = match answer {
                Ok(Ok(msg)) => decode::<Snapshot>(&msg.payload),
                _ => None,
            };
            let mut remote = m.remote.write().unwrap_or_else(|p| p.into_inner());
            let Some(r) = remote.get_mut(&node) else { return };
            r.syncing = false;
            match snapshot {
                Some(s) if s.incarnation == r.incarnation && s.seq >= r.seq => {
                    r.seq = s.seq;
                    r.users = s.users.iter().filter_map(|u| Username::parse(u).ok()).collect();
                    r.synced = true;
                }
                // Older than what arrived meanwhile, or no answer: the next heartbeat asks again.
                _ => {}
            }
        });
    }
}

//! The pool's lag figures for `halo pool status` (`GET /api/v1/admin/pool`):
//! - each node's [`LogLag`], carried in its heartbeat: how far its reader of the IM stream
//!   is behind the stream, and how far its followers (search, archive, federation) are behind
//!   its copy of the log;
//! - the once-per-pool consumers' lag ([`consumers`]): each archive sink's cursor (the shared
//!   mark its holder writes after each stored batch) against the newest archive record;
//! - JetStream's view of the pool's streams and buckets ([`streams`]): replicas, leader, and
//!   how far each replica is behind its leader.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use halo_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Pool;

/// Followers of the IM log each node runs on its own copy.
const FOLLOWERS: [&str; 3] =
    [halo_store::SEARCH_FOLLOWER, halo_store::ARCHIVE_FOLLOWER, halo_store::FEDERATION_FOLLOWER];
/// Counting a sink's backlog stops here (a figure for admins, not an audit).
const COUNT_CAP: u64 = 10_000_000;
/// How long the status waits for JetStream's list of streams.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a node's copy of the IM log stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLag {
    /// The last entry of the IM log folded on the node (the stream's sequence number).
    pub applied: u64,
    /// Entries of the pool's IM stream the node has not folded yet: the stream's last
    /// sequence as the node last saw it, minus `applied` (`halo_log_stream_lag`).
    pub behind: u64,
    /// Entries of the node's copy each of its followers (`search`, `archive`, `federation`)
    /// has yet to process (`halo_log_follower_lag`).
    pub followers: BTreeMap<String, u64>,
    /// The lowest message or record id the node may still write (read before `applied`):
    /// every record it wrote below it is in the log at or before `applied`. The archive sinks'
    /// holder delivers no record at or above the lowest of these (see [`super::Members::settled_below`]).
    #[serde(default = "no_bound")]
    pub writes_below: u64,
}

/// A node of an earlier release says nothing: it holds nothing back.
fn no_bound() -> u64 {
    u64::MAX
}

/// What a node reports before its services joined the pool: it holds every record back.
impl Default for LogLag {
    fn default() -> Self {
        Self { applied: 0, behind: 0, followers: BTreeMap::new(), writes_below: 0 }
    }
}

/// This node's [`LogLag`].
pub fn log_lag(store: &Store) -> LogLag {
    let im = store.im();
    // First: every record below it was appended, so folded here, by the time `applied` is read.
    let writes_below = im.unwritten_below();
    let log = im.log();
    let applied = halo_store::EventLog::last_durable(log);
    let followers = FOLLOWERS
        .iter()
        .map(|f| ((*f).to_owned(), applied.saturating_sub(store.log_cursor(f).unwrap_or(applied))))
        .collect();
    LogLag { applied, behind: log.behind(), followers, writes_below }
}

/// A consumer the pool runs once (on the holder of its task's lease), and how far behind it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsumerLag {
    /// The pool task it belongs to (`archive-sinks`).
    pub task: String,
    /// The consumer (the sink plugin's name).
    pub name: String,
    /// Whether it runs (a disabled sink keeps its cursor and falls behind).
    pub enabled: bool,
    /// The node holding the task's lease (`null`: none right now, the lease is moving).
    pub node: Option<String>,
    /// The last record it stored, as the pool's shared mark says.
    pub cursor: u64,
    /// The newest record in the answering node's copy of the archive.
    pub newest: u64,
    /// Records after its cursor in that copy: what it has yet to store.
    pub behind: u64,
}

/// The archive sinks' lag, as the answering node sees it: the cursors from the pool's shared
/// marks (this node's own where the pool has none yet), the records from its copy of the
/// archive (the same records, by id, on every node).
pub async fn consumers(pool: &Pool, store: &Store) -> Vec<ConsumerLag> {
    let holder = pool.members().nodes().into_iter().find(|n| n.tasks.iter().any(|t| t == "archive-sinks"));
    let holder = holder.map(|n| n.node);
    let shared = pool.tasks().map(|t| t.cursors());
    let local = match store.archive().cursors() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading the sinks' cursors");
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(local.len());
    for (name, mine) in local {
        let theirs = match &shared {
            Some(s) => s.get(&name).await,
            None => None,
        };
        let cursor = theirs.unwrap_or(mine).max(mine);
        let archive = store.archive();
        let enabled = store.plugins().get(&name).ok().flatten().is_some_and(|r| r.enabled && r.disabled.is_none());
        out.push(ConsumerLag {
            task: "archive-sinks".into(),
            enabled,
            node: holder.clone(),
            cursor,
            newest: archive.last_id().unwrap_or(0),
            behind: archive.count_after(cursor, COUNT_CAP).unwrap_or(0),
            name,
        });
    }
    out
}

/// A replica of a stream other than its leader, as the leader reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReplicaHealth {
    /// The NATS server holding it.
    pub server: String,
    /// Whether it is up to date with the leader.
    pub current: bool,
    /// Whether the group considers it offline.
    pub offline: bool,
    /// Operations it is behind the leader.
    pub lag: u64,
    /// Milliseconds since the leader last heard from it.
    pub active_ms: u64,
}

/// One of the pool's streams (the IM log, a KV bucket, an object store) as JetStream reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct StreamHealth {
    /// The stream's name (`HALO_<pool>_IM`, `KV_halo_<pool>_<tree>`, `OBJ_halo_<pool>_<store>`).
    pub name: String,
    /// Replicas configured.
    pub replicas: usize,
    /// The server leading it (`null`: no leader, an election is under way).
    pub leader: Option<String>,
    /// Messages held.
    pub messages: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Its last sequence number.
    pub last_seq: u64,
    /// The other replicas.
    pub peers: Vec<ReplicaHealth>,
}

/// The pool's streams and buckets (those whose names carry the pool's prefix), by name, as
/// JetStream reports them now; why not when it does not answer.
pub async fn streams(pool: &Pool) -> Result<Vec<StreamHealth>, String> {
    let cluster = pool.cluster();
    let prefixes =
        [cluster.stream_name(""), format!("KV_{}", cluster.bucket("")), format!("OBJ_{}", cluster.bucket(""))];
    let list = async {
        let mut out = Vec::new();
        let mut infos = cluster.jetstream().streams();
        while let Some(info) = infos.next().await {
            let info = info.map_err(|e| e.to_string())?;
            if !prefixes.iter().any(|p| info.config.name.starts_with(p.as_str())) {
                continue;
            }
            let (leader, peers) = match info.cluster {
                Some(c) => (
                    c.leader,
                    c.replicas
                        .into_iter()
                        .map(|p| ReplicaHealth {
                            server: p.name,
                            current: p.current,
                            offline: p.offline,
                            lag: p.lag.unwrap_or(0),
                            active_ms: u64::try_from(p.active.as_millis()).unwrap_or(u64::MAX),
                        })
                        .collect(),
                ),
                None => (None, Vec::new()),
            };
            out.push(StreamHealth {
                name: info.config.name,
                replicas: info.config.num_replicas,
                leader,
                messages: info.state.messages,
                bytes: info.state.bytes,
                last_seq: info.state.last_sequence,
                peers,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    };
    tokio::time::timeout(LIST_TIMEOUT, list).await.unwrap_or_else(|_| Err("JetStream did not answer in time".into()))
}

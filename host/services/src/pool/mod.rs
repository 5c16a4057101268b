//! What makes several `halo serve` nodes one pool, on top of the NATS connection of
//! `halo-cluster` (see `docs/pool.md`):
//! - [`members`]: who is in the pool (heartbeats) and which users have endpoints on which node
//!   (a directory every node keeps in memory, fed by the others' changes), so events for a user
//!   go to the nodes holding their sockets and nowhere else;
//! - [`lease`]: leases in a JetStream key-value bucket (create, renew by revision, expire with
//!   the bucket's age limit), the one pattern behind everything that runs once per pool;
//! - [`groups`]: the presence engine's user groups, each owned by one node through a lease,
//!   inputs for a user forwarded to the owner of their group, and a group rebuilt on its new
//!   owner from the stored documents and the devices every node still holds when it moves;
//! - [`federation`]: the federation queues, the same on every node, carried by one, with the
//!   holder's progress marks shared so a failover neither loses nor repeats what was carried.
//! - [`tasks`]: the once-per-pool tasks (archive sink delivery, federation transports) by lease;
//! - [`status`]: the lag figures of `halo pool status` (each node's IM log, the once-per-pool
//!   consumers, JetStream's streams).
//!
//! A node without `--cluster` has no [`Pool`] and none of this runs.

pub mod federation;
pub mod groups;
pub mod lease;
pub mod members;
pub mod plugins;
pub mod status;
pub mod tasks;

use std::sync::Arc;
use std::time::Duration;

use halo_cluster::Cluster;
use serde::Deserialize;

pub use members::{Members, NodeStatus};

/// Pool settings (`[cluster]` in `halo.toml`, the parts the pool's runtime reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSettings {
    /// Presence user groups in the pool (16); every node must say the same.
    pub groups: usize,
    /// A lease not renewed for this long expires, and another node takes over (5 s).
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
    /// How often a node says it is alive (1 s); it is gone after four missed heartbeats.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { groups: 16, lease_ttl: Duration::from_secs(5), heartbeat: Duration::from_secs(1) }
    }
}

/// This node's membership of a pool: the NATS connection and the pool's shared runtime.
pub struct Pool {
    cluster: Cluster,
    settings: PoolSettings,
    members: Arc<Members>,
    /// The once-per-pool tasks' leases (kept alive with the pool).
    tasks: std::sync::OnceLock<Arc<tasks::Tasks>>,
}

impl Pool {
    /// Joins the pool over `cluster`: starts the heartbeat and the user directory (needs a
    /// runtime). `http` is this node's client address, shown in `halo pool status`.
    pub async fn start(cluster: Cluster, settings: PoolSettings, http: String) -> anyhow::Result<Arc<Self>> {
        let members = Members::start(cluster.clone(), settings.heartbeat, http).await?;
        Ok(Arc::new(Self { cluster, settings, members, tasks: std::sync::OnceLock::new() }))
    }

    /// The NATS connection.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        self.cluster.node_id()
    }

    /// The settings.
    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    /// The once-per-pool tasks, once the services joined.
    pub fn tasks(&self) -> Option<&Arc<tasks::Tasks>> {
        self.tasks.get()
    }

    pub(crate) fn set_tasks(&self, tasks: Arc<tasks::Tasks>) {
        let _ = self.tasks.set(tasks);
    }

    /// The members and the user directory.
    pub fn members(&self) -> &Arc<Members> {
        &self.members
    }
}

/// Encodes a pool message (MessagePack with field names).
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Option<bytes::Bytes> {
    match rmp_serde::to_vec_named(value) {
        Ok(v) => Some(v.into()),
        Err(e) => {
            tracing::error!(error = %e, "encoding a pool message");
            None
        }
    }
}

/// Decodes a pool message; `None` (logged) when it is not one.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match rmp_serde::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, "undecodable pool message");
            None
        }
    }
}

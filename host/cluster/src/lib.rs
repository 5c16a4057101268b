//! Halo's connection to a NATS JetStream cluster: what makes a `halo serve` a member of a pool.
//!
//! A pool is several `halo serve` nodes sharing one JetStream cluster (`halo serve --cluster
//! nats://HOST:PORT[,...]`, `[cluster]` in `halo.toml`). [`Cluster::connect`] opens the one
//! NATS connection a node keeps (it reconnects by itself, to any server of the cluster) and its
//! JetStream context; [`Cluster::node_id`] names the node; [`Cluster::subject`],
//! [`Cluster::stream_name`] and [`Cluster::bucket`] name the pool's subjects, streams and
//! buckets under the pool's name, so two pools can share one NATS cluster.
//!
//! The durable state on JetStream (the IM log's stream, the key-value buckets, the object store)
//! lives in `halo-store`; the runtime that makes nodes one pool (events, presence ownership,
//! once-per-pool followers) lives in `halo-services`. This crate only connects and names.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use async_nats;
use async_nats::jetstream;

/// The pool name used when none is configured.
pub const DEFAULT_POOL: &str = "halo";
/// Most replicas a stream or bucket gets when `replicas` is left to the cluster's size.
pub const MAX_AUTO_REPLICAS: usize = 3;
/// How long [`Cluster::place`] keeps asking for [`MAX_AUTO_REPLICAS`] replicas while the
/// cluster lacks the servers to place them (servers of a cluster started a moment ago are still
/// joining) before it settles for fewer.
pub const PLACEMENT_WAIT: Duration = Duration::from_secs(20);
/// How long [`Cluster::connect`] waits for a server and for JetStream to answer (a cluster
/// electing its meta leader after a restart takes a few seconds).
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// What a node needs to join a pool (`[cluster]` in `halo.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://HOST:PORT`); the client reconnects to any of them, and to the
    /// others the servers announce.
    pub urls: Vec<String>,
    /// This node's name in the pool: letters, digits, `-` and `_`, at most 64; unique per pool.
    pub node: String,
    /// Replicas of each stream and bucket (1 to 5); 0 leaves it to the cluster: as many servers
    /// as JetStream can place them on, at most [`MAX_AUTO_REPLICAS`] (see [`Cluster::place`]).
    pub replicas: usize,
    /// The pool's name, the prefix of its subjects, streams and buckets (letters, digits, `-`,
    /// `_`; default [`DEFAULT_POOL`]).
    pub pool: String,
}

impl ClusterConfig {
    /// A configuration for `urls` with node name `node`, replicas from the cluster's size and
    /// the default pool name.
    pub fn new(urls: Vec<String>, node: impl Into<String>) -> Self {
        Self { urls, node: node.into(), replicas: 0, pool: DEFAULT_POOL.to_owned() }
    }

    /// Splits a `--cluster` value (`nats://a:4222,nats://b:4222`) into URLs.
    pub fn parse_urls(value: &str) -> Vec<String> {
        value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    /// Checks the names and numbers, saying what is wrong.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.urls.is_empty() {
            return Err(ClusterError::Config("no NATS server URL given".into()));
        }
        for url in &self.urls {
            url.parse::<async_nats::ServerAddr>()
                .map_err(|e| ClusterError::Config(format!("NATS server URL {url:?}: {e}")))?;
        }
        if !valid_name(&self.node, 64) {
            return Err(ClusterError::Config(format!(
                "node name {:?}: 1 to 64 letters, digits, '-' or '_'",
                self.node
            )));
        }
        if !valid_name(&self.pool, 32) {
            return Err(ClusterError::Config(format!(
                "pool name {:?}: 1 to 32 letters, digits, '-' or '_'",
                self.pool
            )));
        }
        if self.replicas > 5 {
            return Err(ClusterError::Config(format!("replicas {}: JetStream keeps at most 5", self.replicas)));
        }
        Ok(())
    }
}

/// Whether `s` is a name usable in subjects, stream and bucket names.
pub fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What can go wrong joining a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The configuration is unusable.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// No NATS server could be reached.
    #[error("connecting to NATS: {0}")]
    Connect(String),
    /// The servers answer but JetStream does not (not enabled, no meta leader yet, no quorum).
    #[error("JetStream: {0}")]
    JetStream(String),
}

/// A node's connection to its pool; clones share it.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// What [`Cluster::place`] asks for first: the configured or automatic replicas, lowered once the cluster could not
    /// place that many (so the wait is paid once per process, not per bucket).
    placeable: AtomicUsize,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.config.node)
            .field("pool", &self.inner.config.pool)
            .field("replicas", &self.replicas())
            .finish()
    }
}

impl Cluster {
    /// Connects to the NATS servers of `config` and waits (up to [`CONNECT_DEADLINE`]) until
    /// JetStream answers, so a pool started together with its NATS cluster waits for the
    /// cluster's meta leader instead of failing.
    pub async fn connect(config: ClusterConfig) -> Result<Self, ClusterError> {
        config.validate()?;
        let addrs = config
            .urls
            .iter()
            .map(|u| u.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let node = config.node.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("halo-{}-{}", config.pool, config.node))
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let node = node.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => tracing::info!(%node, "NATS connected"),
                        async_nats::Event::Disconnected => tracing::warn!(%node, "NATS disconnected; reconnecting"),
                        other => tracing::warn!(%node, event = %other, "NATS"),
                    }
                }
            });
        let deadline = Instant::now() + CONNECT_DEADLINE;
        let client = tokio::time::timeout(CONNECT_DEADLINE, async_nats::connect_with_options(addrs, options))
            .await
            .map_err(|_| ClusterError::Connect(format!("no server of {:?} answered", config.urls)))?
            .map_err(|e| ClusterError::Connect(e.to_string()))?;
        // The client may report itself connected before the handshake's INFO arrived.
        let wait = Instant::now() + Duration::from_secs(5);
        while client.connection_state() != async_nats::connection::State::Connected && Instant::now() < wait {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let jetstream = jetstream::new(client.clone());
        loop {
            let error = match jetstream.query_account().await {
                Ok(_) => break,
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                return Err(ClusterError::JetStream(format!("not answering: {error}")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let replicas = match config.replicas {
            0 => auto_replicas(&client.server_info()),
            n => n,
        };
        let info = client.server_info();
        tracing::info!(
            node = %config.node,
            pool = %config.pool,
            server = %info.server_name,
            version = %info.version,
            cluster = info.cluster.as_deref().unwrap_or("-"),
            replicas,
            "joined the pool"
        );
        let placeable = AtomicUsize::new(replicas);
        Ok(Self { inner: Arc::new(Inner { config, client, jetstream, placeable }) })
    }

    /// This node's name in the pool.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node
    }

    /// The pool's name.
    pub fn pool(&self) -> &str {
        &self.inner.config.pool
    }

    /// The configuration the node connected with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Replicas of each stream and bucket this node creates: the configured number, or (when
    /// left to the cluster) [`MAX_AUTO_REPLICAS`] on a cluster, 1 on a single server, lowered
    /// once [`Cluster::place`] found the cluster could not place that many. Create them
    /// through [`Cluster::place`].
    pub fn replicas(&self) -> usize {
        self.inner.placeable.load(Ordering::Relaxed)
    }

    /// Creates a stream or bucket through `create` (given the replicas to ask for). Replicas
    /// configured: exactly those. Left to the cluster: [`Cluster::replicas`], and while
    /// JetStream answers that it has too few servers to place them, the same again for up to
    /// [`PLACEMENT_WAIT`] (servers still joining a cluster just started), then one fewer, down
    /// to 1 (and later calls start from there). Counting the servers a client is told of at connect time is not enough: a
    /// cluster just started (or restarted) announces only the servers routed so far, and a
    /// stream created with fewer replicas than servers stops when its one server does.
    pub async fn place<T, E, F, Fut>(&self, mut create: F) -> Result<T, E>
    where
        F: FnMut(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let mut replicas = self.replicas();
        let mut deadline = Instant::now() + PLACEMENT_WAIT;
        loop {
            let error = match create(replicas).await {
                Err(e) if self.inner.config.replicas == 0 && replicas > 1 && lacks_servers(&e.to_string()) => e,
                done => return done,
            };
            if Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            tracing::warn!(replicas, error = %error, "JetStream cannot place this many replicas; asking for one fewer");
            replicas -= 1;
            self.inner.placeable.fetch_min(replicas, Ordering::Relaxed);
            deadline = Instant::now();
        }
    }

    /// The NATS connection (core NATS: publish, subscribe, request).
    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    /// The JetStream context (streams, consumers, key-value buckets, object stores).
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    /// The pool's subject `halo.<pool>.<suffix>` (e.g. `subject("events.alice")`).
    pub fn subject(&self, suffix: &str) -> String {
        format!("halo.{}.{suffix}", self.inner.config.pool)
    }

    /// The pool's stream named `name`: `HALO_<pool>_<name>` (stream names may not hold `.`).
    pub fn stream_name(&self, name: &str) -> String {
        format!("HALO_{}_{name}", self.inner.config.pool)
    }

    /// The pool's key-value bucket or object store named `name`: `halo_<pool>_<name>`.
    pub fn bucket(&self, name: &str) -> String {
        format!("halo_{}_{name}", self.inner.config.pool)
    }

    /// The version and name of the NATS server this node is connected to now.
    pub fn server(&self) -> (String, String) {
        let info = self.inner.client.server_info();
        (info.server_name, info.version)
    }
}

/// Replicas to ask for when left to the cluster: [`MAX_AUTO_REPLICAS`] on a cluster (what it
/// cannot place, [`Cluster::place`] lowers), 1 on a server without one.
fn auto_replicas(info: &async_nats::ServerInfo) -> usize {
    if info.cluster.is_none() { 1 } else { MAX_AUTO_REPLICAS }
}

/// Whether a JetStream error says the cluster has too few servers for the replicas asked.
fn lacks_servers(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    ["insufficient resources", "no suitable peers", "replicas > 1 not supported"].iter().any(|m| error.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_on_commas() {
        assert_eq!(
            ClusterConfig::parse_urls("nats://a:1, nats://b:2,,"),
            vec!["nats://a:1".to_owned(), "nats://b:2".to_owned()]
        );
    }

    #[test]
    fn too_few_servers_is_told_from_other_errors() {
        assert!(lacks_servers("failed to create stream: insufficient resources (code 503, error code 10023)"));
        assert!(lacks_servers("JetStream error: no suitable peers for placement"));
        assert!(lacks_servers("replicas > 1 not supported in non-clustered mode"));
        assert!(!lacks_servers("timed out: didn't receive any message"));
        assert!(!lacks_servers("stream name already in use with a different configuration"));
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = ClusterConfig::new(vec!["nats://127.0.0.1:4222".into()], "node-1");
        assert_eq!(ok.validate(), Ok(()));
        let bad_node = ClusterConfig { node: "a.b".into(), ..ok.clone() };
        assert!(matches!(bad_node.validate(), Err(ClusterError::Config(m)) if m.contains("node name")));
        let no_urls = ClusterConfig { urls: vec![], ..ok.clone() };
        assert!(no_urls.validate().is_err());
        let bad_url = ClusterConfig { urls: vec!["nats://[::".into()], ..ok.clone() };
        assert!(bad_url.validate().is_err());
        let too_many = ClusterConfig { replicas: 7, ..ok.clone() };
        assert!(too_many.validate().is_err());
        let bad_pool = ClusterConfig { pool: "x y".into(), ..ok };
        assert!(bad_pool.validate().is_err());
    }
}

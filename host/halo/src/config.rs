//! Configuration, resolved once: flag > `HALO_*` environment (both via clap) > `halo.toml` >
//! default. A misspelt key in `halo.toml` is an error naming the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use halo_server::Settings;
use halo_server::settings::{HttpSettings, Limits};
use halo_services::AuthSettings;
use serde::Deserialize;

use crate::cli::{ConfigArgs, ServeArgs};

/// The default listen address: loopback only until an admin opens it up; 7420 clashes with no
/// common service.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";
/// The default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "halo-data";

/// `halo.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    log: Option<String>,
    public_metrics: Option<bool>,
    limits: Option<Limits>,
    http: Option<HttpSettings>,
    auth: Option<AuthSettings>,
    im: Option<halo_services::im::ImSettings>,
    presence: Option<halo_services::presence::PresenceSettings>,
    plugins: Option<halo_services::plugins::PluginSettings>,
    federation: Option<halo_services::federation::FederationSettings>,
    store: Option<halo_store::StoreSettings>,
    cluster: Option<ClusterFile>,
}

/// `[cluster]` in `halo.toml`: a pool member's NATS JetStream cluster.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ClusterFile {
    /// NATS server URLs; empty: not a pool member.
    urls: Vec<String>,
    /// This node's name (empty: generated once, kept in `<data>/node-id`).
    node: String,
    /// Replicas of each stream and bucket (0: the cluster's servers, at most 3).
    replicas: usize,
    /// The pool's name, prefix of its streams, buckets and subjects.
    pool: Option<String>,
    /// Presence user groups of the pool (the same on every node).
    groups: Option<usize>,
    /// Life of a lease (presence groups, once-per-pool tasks) not renewed.
    #[serde(with = "humantime_serde")]
    lease_ttl: Option<Duration>,
    /// Interval of the nodes' heartbeats.
    #[serde(with = "humantime_serde")]
    heartbeat: Option<Duration>,
}

/// Everything `halo serve` needs.
#[derive(Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub tls: Option<halo_server::TlsFiles>,
    pub log: String,
    pub settings: Settings,
    pub store: halo_store::StoreSettings,
    pub source: Option<PathBuf>,
    pub preinstall: Vec<PathBuf>,
    /// The pool to join (`--cluster`, `HALO_CLUSTER`, `[cluster]`); `None`: a standalone node.
    /// An empty `node` is resolved from the data directory by [`node_id`].
    pub cluster: Option<halo_cluster::ClusterConfig>,
    /// The pool's runtime settings (`[cluster] groups`, `lease_ttl`, `heartbeat`).
    pub pool: halo_services::pool::PoolSettings,
}

fn read_file(args: &ConfigArgs) -> anyhow::Result<(FileConfig, Option<PathBuf>)> {
    let path = match &args.config {
        Some(p) => p.clone(),
        None if Path::new("halo.toml").exists() => PathBuf::from("halo.toml"),
        None => return Ok((FileConfig::default(), None)),
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let file = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
    Ok((file, Some(path)))
}

/// The data directory the CLI and server agree on.
pub fn data_dir(args: &ConfigArgs) -> anyhow::Result<PathBuf> {
    let (file, _) = read_file(args)?;
    Ok(args.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)))
}

/// Resolves the serve configuration.
pub fn serve(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let (file, source) = read_file(&args.config)?;
    let tls_cert = args.tls_cert.clone().or(file.tls_cert);
    let tls_key = args.tls_key.clone().or(file.tls_key);
    let tls = match (tls_cert, tls_key) {
        (Some(cert), Some(key)) => Some(halo_server::TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key (tls_cert and tls_key)"),
    };
    let settings = Settings {
        limits: file.limits.unwrap_or_default(),
        http: file.http.unwrap_or_default(),
        auth: file.auth.unwrap_or_default(),
        public_metrics: file.public_metrics.unwrap_or(false),
        im: file.im.unwrap_or_default(),
        presence: file.presence.unwrap_or_default(),
        plugins: file.plugins.unwrap_or_default(),
        federation: file.federation.unwrap_or_default(),
    };
    let fed = &settings.federation;
    if fed.listen.is_some() && (fed.tls_cert.is_none() || fed.tls_key.is_none()) {
        anyhow::bail!("[federation] listen needs tls_cert and tls_key: Halo peers talk HTTPS only");
    }
    if fed.listen.is_some() && fed.domain.is_none() {
        anyhow::bail!("[federation] listen needs domain: the name peers know this server by");
    }
    if settings.limits.max_frame_bytes < 1024 || settings.limits.send_queue == 0 {
        anyhow::bail!("limits.max_frame_bytes must be at least 1024 and limits.send_queue at least 1");
    }
    if settings.limits.heartbeat.is_zero() || settings.auth.token_ttl.is_zero() {
        anyhow::bail!("limits.heartbeat and auth.token_ttl must be longer than zero");
    }
    let http = &settings.http;
    if [http.header_timeout, http.body_timeout, http.idle_timeout].iter().any(Duration::is_zero) {
        anyhow::bail!("http.header_timeout, http.body_timeout and http.idle_timeout must be longer than zero");
    }
    let store = file.store.unwrap_or_default();
    if store.cache_capacity < 1024 * 1024 {
        anyhow::bail!("[store] cache_capacity must be at least 1048576 bytes (1 MiB)");
    }
    let cluster_file = file.cluster.unwrap_or_default();
    let defaults = halo_services::pool::PoolSettings::default();
    let pool = halo_services::pool::PoolSettings {
        groups: cluster_file.groups.unwrap_or(defaults.groups),
        lease_ttl: cluster_file.lease_ttl.unwrap_or(defaults.lease_ttl),
        heartbeat: cluster_file.heartbeat.unwrap_or(defaults.heartbeat),
    };
    if pool.groups == 0 || pool.groups > 1024 || pool.lease_ttl < Duration::from_secs(1) || pool.heartbeat.is_zero() {
        anyhow::bail!("[cluster] groups must be 1 to 1024, lease_ttl at least 1s, heartbeat longer than zero");
    }
    let cluster = cluster(args, cluster_file)?;
    Ok(ServeConfig {
        data_dir: args.config.data_dir.clone().or(file.data_dir).unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        listen: args.listen.clone().or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
        tls,
        log: args.log.clone().or(file.log).unwrap_or_else(|| "info".to_owned()),
        settings,
        store,
        source,
        preinstall: args.preinstall.clone(),
        cluster,
        pool,
    })
}

/// The pool configuration: `--cluster`/`HALO_CLUSTER` and `--node`/`HALO_NODE` over `[cluster]`.
fn cluster(args: &ServeArgs, file: ClusterFile) -> anyhow::Result<Option<halo_cluster::ClusterConfig>> {
    let urls = match &args.cluster {
        Some(flag) => halo_cluster::ClusterConfig::parse_urls(flag),
        None => file.urls,
    };
    if urls.is_empty() {
        if args.cluster.is_some() {
            anyhow::bail!("--cluster needs at least one NATS URL (nats://HOST:PORT)");
        }
        return Ok(None);
    }
    let node = args.node.clone().unwrap_or(file.node);
    let pool = file.pool.unwrap_or_else(|| halo_cluster::DEFAULT_POOL.to_owned());
    let config = halo_cluster::ClusterConfig { urls, node, replicas: file.replicas, pool };
    // The node name may still be empty (generated later, in the data directory).
    let check = halo_cluster::ClusterConfig { node: "n".into(), ..config.clone() };
    if !config.node.is_empty() {
        config.validate()?;
    } else {
        check.validate()?;
    }
    Ok(Some(config))
}

/// File in the data directory keeping a node's generated name.
const NODE_ID_FILE: &str = "node-id";

/// This node's name: the configured one, else the one kept in `<data>/node-id`, else a new one
/// (`node-` and 8 hex digits) written there, so a node keeps its name across restarts.
pub fn node_id(configured: &str, data_dir: &Path) -> anyhow::Result<String> {
    if !configured.is_empty() {
        return Ok(configured.to_owned());
    }
    let path = data_dir.join(NODE_ID_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let name = text.trim();
        if halo_cluster::valid_name(name, 64) {
            return Ok(name.to_owned());
        }
        anyhow::bail!("{} holds no valid node name", path.display());
    }
    let name = format!("node-{:08x}", rand::random::<u32>());
    std::fs::write(&path, format!("{name}\n")).with_context(|| format!("writing {}", path.display()))?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_named() {
        let err = toml::from_str::<FileConfig>("listn = \"x\"").expect_err("misspelt key");
        assert!(err.to_string().contains("listn"), "{err}");
        let err = toml::from_str::<FileConfig>("[limits]\nmax_frame = 1").expect_err("misspelt key");
        assert!(err.to_string().contains("max_frame"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../examples/halo.toml");
        let file: FileConfig = toml::from_str(text).expect("examples/halo.toml parses");
        assert_eq!(file.listen.as_deref(), Some(DEFAULT_LISTEN));
        assert_eq!(file.presence.expect("presence").max_contacts, 1000);
    }

    #[test]
    fn durations_and_sections_parse() {
        let f: FileConfig = toml::from_str("[auth]\ntoken_ttl = \"2s\"\n[limits]\nheartbeat = \"5s\"").expect("valid");
        assert_eq!(f.auth.expect("auth").token_ttl, std::time::Duration::from_secs(2));
        let limits = f.limits.expect("limits");
        assert_eq!(limits.heartbeat, std::time::Duration::from_secs(5));
        assert_eq!(limits.max_frame_bytes, 64 * 1024, "unset keys keep their defaults");
        let f: FileConfig = toml::from_str("[http]\nidle_timeout = \"2m\"").expect("valid");
        let http = f.http.expect("http");
        assert_eq!(http.idle_timeout, std::time::Duration::from_secs(120));
        assert_eq!(http.header_timeout, std::time::Duration::from_secs(10), "unset keys keep their defaults");
        let err = toml::from_str::<FileConfig>("[http]\nidle = \"2m\"").expect_err("misspelt key");
        assert!(err.to_string().contains("idle"), "{err}");
    }

    #[test]
    fn cluster_section_parses_and_refuses_unknown_keys() {
        let f: FileConfig =
            toml::from_str("[cluster]\nurls = [\"nats://127.0.0.1:4222\"]\nnode = \"n1\"\nreplicas = 3")
                .expect("valid");
        let c = f.cluster.expect("cluster");
        assert_eq!((c.urls.len(), c.node.as_str(), c.replicas), (1, "n1", 3));
        let err = toml::from_str::<FileConfig>("[cluster]\nurl = \"x\"").expect_err("misspelt key");
        assert!(err.to_string().contains("url"), "{err}");
    }

    #[test]
    fn node_ids_are_kept_in_the_data_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = node_id("", dir.path()).expect("generated");
        assert!(first.starts_with("node-"), "{first}");
        assert_eq!(node_id("", dir.path()).expect("kept"), first);
        assert_eq!(node_id("n2", dir.path()).expect("configured"), "n2");
    }

    #[test]
    fn store_section_parses_and_refuses_unknown_keys() {
        let f: FileConfig = toml::from_str("[store]\ncache_capacity = 1048576").expect("valid");
        assert_eq!(f.store.expect("store").cache_capacity, 1024 * 1024);
        let err = toml::from_str::<FileConfig>("[store]\ncache_size = 1").expect_err("misspelt key");
        assert!(err.to_string().contains("cache_size"), "{err}");
    }
}

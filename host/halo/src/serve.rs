//! `halo serve`.

use std::net::TcpListener;

use anyhow::Context;
use halo_server::AppState;
use halo_services::token;
use halo_store::Store;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;
use crate::config;
use crate::local::{self, Local};

/// File (mode 0600) holding the generated bootstrap admin password.
const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

pub fn main(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = config::serve(&args)?;
    let filter = std::env::var("RUST_LOG").ok().unwrap_or_else(|| cfg.log.clone());
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&filter).with_context(|| format!("log filter {filter:?}"))?)
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve(cfg))
}

async fn serve(cfg: config::ServeConfig) -> anyhow::Result<()> {
    if let Some(src) = &cfg.source {
        tracing::info!(config = %src.display(), "configuration file");
    }
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let cluster = match &cfg.cluster {
        Some(c) => Some(join_pool(c, &cfg.data_dir).await?),
        None => None,
    };
    let db = cfg.data_dir.join("db");
    let opened = match &cluster {
        // A pool member: the pool's state on JetStream, this node's replicas and caches in db/.
        Some(cluster) => Store::open_pool(cluster, &db, cfg.store).await,
        None => Store::open_with(&db, cfg.store),
    };
    let store = opened.map_err(|e| {
        let hint = if e.is_locked() { " (is another halo running on it?)" } else { "" };
        anyhow::Error::new(e).context(format!("opening the store in {}{hint}", cfg.data_dir.display()))
    })?;

    let local_token = token::generate();
    let admin = Some(token::hash(&local_token));
    let state = match &cluster {
        Some(cluster) => {
            let pool = halo_services::pool::Pool::start(cluster.clone(), cfg.pool.clone(), String::new()).await?;
            AppState::new_pooled(store, &cfg.data_dir, cfg.settings.clone(), admin, pool).await?
        }
        None => AppState::new(store, &cfg.data_dir, cfg.settings.clone(), admin)?,
    };
    bootstrap_admin(&state, &cfg.data_dir).await?;
    state.plugins.preinstall(&cfg.preinstall).await?;

    let listener = TcpListener::bind(&cfg.listen).with_context(|| format!("listening on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}");
    let local = Local {
        url: url.clone(),
        token: local_token,
        ca_cert: cfg.tls.as_ref().map(|t| t.cert.clone()),
        pid: std::process::id(),
    };
    local.write(&cfg.data_dir)?;
    if let Some(pool) = &state.pool {
        pool.members().set_http(url.clone());
    }
    tracing::info!(%url, data_dir = %cfg.data_dir.display(), "Halo {} listening", env!("CARGO_PKG_VERSION"));

    if let Some(listen) = &cfg.settings.federation.listen {
        let fed = &cfg.settings.federation;
        let tls = match (&fed.tls_cert, &fed.tls_key) {
            (Some(cert), Some(key)) => halo_server::TlsFiles { cert: cert.clone(), key: key.clone() },
            _ => anyhow::bail!("[federation] listen needs tls_cert and tls_key"),
        };
        let listener = TcpListener::bind(listen).with_context(|| format!("federation: listening on {listen}"))?;
        tracing::info!(addr = %listener.local_addr()?, "federation listener (Halo peers)");
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = halo_server::run_federation(listener, state, tls).await {
                tracing::error!(error = %format!("{e:#}"), "federation listener stopped");
            }
        });
    }
    let result = halo_server::run(listener, state, cfg.tls.clone(), shutdown_signal()).await;
    local::Local::remove(&cfg.data_dir);
    tracing::info!("stopped");
    result
}

/// Connects to the pool's NATS JetStream cluster (waiting for JetStream to answer).
async fn join_pool(
    config: &halo_cluster::ClusterConfig,
    data_dir: &std::path::Path,
) -> anyhow::Result<halo_cluster::Cluster> {
    let node = config::node_id(&config.node, data_dir)?;
    let config = halo_cluster::ClusterConfig { node, ..config.clone() };
    let urls = config.urls.join(",");
    halo_cluster::Cluster::connect(config).await.with_context(|| format!("joining the pool at {urls}"))
}

async fn bootstrap_admin(state: &AppState, data_dir: &std::path::Path) -> anyhow::Result<()> {
    let from_env = std::env::var("HALO_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    let generated = state.accounts.bootstrap_admin(from_env).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(password) = generated {
        let path = data_dir.join(INITIAL_PASSWORD_FILE);
        local::write_private(&path, format!("{password}\n").as_bytes())?;
        eprintln!(
            "\n  Created user 'admin' with password: {password}\n  (also saved to {}; change it with `halo user passwd admin`)\n",
            path.display()
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

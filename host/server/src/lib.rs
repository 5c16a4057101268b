//! The Halo server: the HTTP/WebSocket transport over the application services
//! ([`halo_services`]).
//!
//! Start from [`run`], which serves an [`AppState`] on a bound listener (plain or TLS) until a
//! shutdown future resolves. Handlers are thin: they extract (auth is an extractor over the
//! services' principal, see [`auth`]), call a service, and map the result; a service's error
//! becomes a status in one place ([`error::ApiError`]). The [`stream::hub::Hub`] is the
//! services' outbox: it turns their events into frames for the sockets. Only this crate knows
//! the wire formats (JSON, `halo.msgpack`); it knows nothing of sled.

pub mod api;
pub mod auth;
pub mod cap;
pub mod conn;
pub mod error;
pub mod routes;
pub mod settings;
pub mod state;
pub mod stream;
pub mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::trace::TraceLayer;

pub use settings::Settings;
pub use state::AppState;

/// Certificate chain and private key (PEM files) for HTTPS/WSS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The full application: routes, the web client at `/` (the fallback), body limit and deadline,
/// request metrics and tracing.
pub fn app(state: AppState) -> axum::Router {
    let max_attachment = usize::try_from(state.attachments.max_bytes()).unwrap_or(usize::MAX);
    routes::router(state.settings.limits.max_body_bytes, state.settings.plugins.max_component_bytes, max_attachment)
        .fallback(web::serve)
        .layer(middleware::from_fn_with_state(state.settings.http.clone(), conn::body_deadline))
        .layer(middleware::from_fn(error::json_errors))
        .layer(middleware::from_fn_with_state(state.clone(), count_requests))
        .layer(middleware::from_fn(conn::refuse_over_cap))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let resp = next.run(req).await;
    state.metrics.http_request(&method, &route, resp.status().as_u16());
    resp
}

/// Serves `state` on `listener` (HTTPS/WSS when `tls` is given) until `shutdown` resolves, then
/// closes every WebSocket (1001), waits briefly for requests in flight and flushes the store.
/// Connections have the timeouts of [`Settings::http`] ([`conn`]).
pub async fn run(
    listener: std::net::TcpListener,
    state: AppState,
    tls: Option<TlsFiles>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let service = app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    let pruner = tokio::spawn(prune_sessions(state.clone()));
    {
        let (handle, hub, fed) = (handle.clone(), state.hub.clone(), state.federation.clone());
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutting down");
            // Remote contacts hear this server's users go offline while the links are up.
            fed.farewell().await;
            hub.close_all(stream::hub::CloseReason::ShuttingDown);
            handle.graceful_shutdown(Some(Duration::from_secs(5)));
        });
    }
    let server = axum_server::from_tcp(listener).handle(handle);
    let http = &state.settings.http;
    match tls {
        Some(files) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                .await
                .map_err(|e| anyhow::anyhow!("loading TLS certificate {:?} / key {:?}: {e}", files.cert, files.key))?;
            server.acceptor(conn::Acceptor::tls(config, http, state.cap.clone())).serve(service).await?;
        }
        None => server.acceptor(conn::Acceptor::plain(http, state.cap.clone())).serve(service).await?,
    }
    pruner.abort();
    state.storage.flush().await?;
    Ok(())
}

/// Serves the federation listener (Halo peers post to it; HTTPS only) on `listener`, with the
/// same connection timeouts as [`run`].
pub async fn run_federation(listener: std::net::TcpListener, state: AppState, tls: TlsFiles) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key).await.map_err(|e| {
        anyhow::anyhow!("loading the federation TLS certificate {:?} / key {:?}: {e}", tls.cert, tls.key)
    })?;
    let http = state.settings.http.clone();
    let cap = state.cap.clone();
    let app = routes::federation::peer_router()
        .layer(middleware::from_fn_with_state(http.clone(), conn::body_deadline))
        .layer(middleware::from_fn(conn::refuse_over_cap))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    let acceptor = conn::Acceptor::tls(config, &http, cap);
    axum_server::from_tcp(listener).acceptor(acceptor).serve(app.into_make_service()).await?;
    Ok(())
}

async fn prune_sessions(state: AppState) {
    let mut every = tokio::time::interval(Duration::from_secs(600));
    loop {
        every.tick().await;
        match state.accounts.prune().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(sessions = n, "pruned expired sessions"),
            Err(e) => tracing::warn!(error = %e, "pruning sessions"),
        }
    }
}

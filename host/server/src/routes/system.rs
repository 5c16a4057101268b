//! Health, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `/healthz` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` while storage fails.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
    /// `ok`, or `unavailable: <reason>` while storage refuses writes (disk full, I/O errors).
    pub storage: String,
}

/// 200 `ok` while the server is serving normally; 503 `degraded` while storage fails (writes are
/// refused with 503 `storage_unavailable`; the server recovers by itself once storage works).
#[utoipa::path(get, path = "/healthz", tag = "system", responses(
    (status = 200, description = "Serving", body = Health),
    (status = 503, description = "Serving, but storage refuses writes", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> (StatusCode, axum::Json<Health>) {
    let version = env!("CARGO_PKG_VERSION");
    match state.storage.unavailable() {
        None => (StatusCode::OK, axum::Json(Health { status: "ok", version, storage: "ok".into() })),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(Health { status: "degraded", version, storage: format!("unavailable: {why}") }),
        ),
    }
}

/// Prometheus metrics (prefix `halo_`). Needs an admin token unless `public_metrics = true`.
#[utoipa::path(get, path = "/metrics", tag = "system",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security((), ("bearer" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    admin: Result<AdminUser, ApiError>,
) -> Result<impl IntoResponse, ApiError> {
    if !state.settings.public_metrics {
        admin?;
    }
    state.metrics.users.set(state.accounts.count() as i64);
    state.metrics.storage_available.set(i64::from(state.storage.unavailable().is_none()));
    state.metrics.im_offline_queue.set(state.im.offline_depth() as i64);
    state.metrics.log_stream_lag.set(i64::try_from(state.log_lag().behind).unwrap_or(i64::MAX));
    state.plugins.refresh_metrics();
    state.archive.refresh_metrics();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()))
}

//! Health, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

use crate::auth::AdminUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// `/healthz` answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// Server version.
    pub version: &'static str,
}

/// 200 while the server is serving.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, description = "Serving", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok", version: env!("CARGO_PKG_VERSION") })
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
    state.metrics.im_offline_queue.set(state.im.offline_depth() as i64);
    state.plugins.refresh_metrics();
    state.archive.refresh_metrics();
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()))
}

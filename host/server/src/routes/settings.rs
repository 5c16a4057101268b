//! Server-wide settings an admin changes at run time.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// Run-time settings.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerSettings {
    /// Messages to users with no connected device are kept and delivered when one connects.
    /// When off, a 1:1 message to an offline user is refused (`recipient_offline`).
    pub offline_im: bool,
}

/// A change of run-time settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    /// Turn offline IM on or off.
    pub offline_im: Option<bool>,
}

/// The run-time settings.
#[utoipa::path(get, path = "/api/v1/admin/settings", tag = "users",
    responses((status = 200, body = ServerSettings), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<ServerSettings>, ApiError> {
    Ok(Json(ServerSettings { offline_im: state.im.offline_im()? }))
}

/// Changes run-time settings.
#[utoipa::path(patch, path = "/api/v1/admin/settings", tag = "users", request_body = SettingsChange,
    responses((status = 200, body = ServerSettings), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<SettingsChange>,
) -> Result<Json<ServerSettings>, ApiError> {
    if let Some(on) = req.offline_im {
        state.im.set_offline_im(on).await?;
        tracing::info!(by = admin.name(), offline_im = on, "settings changed");
    }
    Ok(Json(ServerSettings { offline_im: state.im.offline_im()? }))
}

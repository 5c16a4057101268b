//! App tokens: admins issue them so other applications (intranet pages, mail clients, calendar
//! and telephony integrations) can read presence or feed calendar and phone state.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use halo_store::AppToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// `POST /api/v1/admin/app-tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppToken {
    /// Unique name, e.g. `intranet`.
    pub name: String,
    /// Any of `presence:read`, `calendar:write`, `phone:write`.
    pub scopes: Vec<String>,
}

/// An app token (the secret only when created).
#[derive(Debug, Serialize, ToSchema)]
pub struct AppTokenView {
    /// Name.
    pub name: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Issuing admin.
    pub created_by: String,
    /// When, ms.
    pub created_at: u64,
    /// The bearer token: shown once, at creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// App tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppTokens {
    /// By name.
    pub tokens: Vec<AppTokenView>,
}

fn view(t: AppToken, token: Option<String>) -> AppTokenView {
    AppTokenView { name: t.name, scopes: t.scopes, created_by: t.created_by, created_at: t.created_at, token }
}

/// Lists app tokens.
#[utoipa::path(get, path = "/api/v1/admin/app-tokens", tag = "users", responses((status = 200, body = AppTokens), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _admin: AdminUser) -> Result<Json<AppTokens>, ApiError> {
    let tokens = state.accounts.app_tokens()?.into_iter().map(|t| view(t, None)).collect();
    Ok(Json(AppTokens { tokens }))
}

/// Issues an app token.
#[utoipa::path(post, path = "/api/v1/admin/app-tokens", tag = "users", request_body = NewAppToken,
    responses((status = 201, body = AppTokenView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<NewAppToken>,
) -> Result<(StatusCode, Json<AppTokenView>), ApiError> {
    let issued = state.accounts.issue_app_token(&admin, &req.name, req.scopes).await?;
    Ok((StatusCode::CREATED, Json(view(issued.token, Some(issued.secret)))))
}

/// Revokes an app token.
#[utoipa::path(delete, path = "/api/v1/admin/app-tokens/{name}", tag = "users", params(("name" = String, Path, description = "Token name")),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.revoke_app_token(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

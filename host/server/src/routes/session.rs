//! Login and logout.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;

use crate::api::{LoginRequest, LoginResponse};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// Exchanges a username and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/login", tag = "session",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 403, description = "Account disabled", body = ErrorBody),
        (status = 429, description = "Too many failed attempts (see Retry-After)", body = ErrorBody),
    ))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let ok = state.accounts.login(&req.username, req.password, peer.ip()).await?;
    Ok(Json(LoginResponse {
        token: ok.token,
        token_type: "Bearer",
        expires_at: ok.session.expires_at,
        user: (&ok.user).into(),
    }))
}

/// Ends the session of the token used, and closes the sockets opened with it.
#[utoipa::path(post, path = "/api/v1/logout", tag = "session",
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn logout(State(state): State<AppState>, auth: AuthUser) -> Result<StatusCode, ApiError> {
    state.accounts.logout(&auth).await?;
    Ok(StatusCode::NO_CONTENT)
}

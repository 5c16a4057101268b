//! The caller's block list: blocked users cannot start conversations with, add, or IM them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use halo_core::Username;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Blocked users.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    /// Usernames.
    pub blocked: Vec<String>,
}

/// Who the caller blocks.
#[utoipa::path(get, path = "/api/v1/me/blocked", tag = "me",
    responses((status = 200, body = BlockList), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<BlockList>, ApiError> {
    let blocked = state.store.blocks().of(&auth.user()?.username)?;
    Ok(Json(BlockList { blocked: blocked.iter().map(ToString::to_string).collect() }))
}

fn target(state: &AppState, name: &str) -> Result<Username, ApiError> {
    let unknown = || ApiError::NotFound(format!("no user named {name:?}"));
    let u = Username::parse(name).map_err(|_| unknown())?;
    state.store.users().get(&u)?.map(|_| u).ok_or_else(unknown)
}

/// Blocks a user.
#[utoipa::path(put, path = "/api/v1/me/blocked/{username}", tag = "me", params(("username" = String, Path, description = "User to block")),
    responses((status = 204, description = "Blocked"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn block(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let me = &auth.user()?.username;
    let other = target(&state, &name)?;
    if &other == me {
        return Err(ApiError::BadRequest("you cannot block yourself".into()));
    }
    state.store.blocks().set(me, &other, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unblocks a user.
#[utoipa::path(delete, path = "/api/v1/me/blocked/{username}", tag = "me", params(("username" = String, Path, description = "User to unblock")),
    responses((status = 204, description = "Unblocked"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unblock(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let other = target(&state, &name)?;
    state.store.blocks().set(&auth.user()?.username, &other, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! The caller's own account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::{ChangePasswordRequest, UpdateUserRequest, UserView};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/me", tag = "me",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_me(auth: AuthUser) -> Result<Json<UserView>, ApiError> {
    Ok(Json(auth.user()?.into()))
}

/// Updates the caller's contact card (not roles or the disabled flag).
#[utoipa::path(patch, path = "/api/v1/me", tag = "me",
    request_body = UpdateUserRequest,
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_me(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    let update: halo_core::ProfileUpdate = req.into();
    if update.touches_privileges() {
        return Err(ApiError::forbidden("roles and the disabled flag are changed by an admin"));
    }
    let user = super::users::update_account(&state, auth.user()?.username.as_str(), update).await?;
    Ok(Json((&user).into()))
}

/// Changes the caller's password; other sessions of the account end.
#[utoipa::path(put, path = "/api/v1/me/password", tag = "me",
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed"), (status = 400, body = ErrorBody), (status = 401, description = "Wrong current password or token", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.change_own_password(&auth, req.current_password, req.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}

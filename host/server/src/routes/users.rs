//! Admin routes for accounts.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use halo_core::{NewUser, ProfileUpdate, user::Profile};

use crate::api::{CreateUserRequest, ListUsersQuery, SetPasswordRequest, UpdateUserRequest, UserPage, UserView};
use crate::auth::AdminUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// Lists accounts in username order, a page at a time.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(ListUsersQuery),
    responses((status = 200, body = UserPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    _admin: AdminUser,
    Query(q): Query<ListUsersQuery>,
) -> Result<Json<UserPage>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-1000"));
    }
    let users = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(words) => state.accounts.search(words, q.after.as_deref(), limit)?,
        None => state.accounts.list(q.after.as_deref(), limit)?,
    };
    let next = (users.len() == limit).then(|| users.last().map(|u| u.username.to_string())).flatten();
    Ok(Json(UserPage { users: users.iter().map(UserView::from).collect(), next }))
}

/// Creates an account.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = CreateUserRequest,
    responses((status = 201, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, description = "Username taken (`conflict`), or retired because a deleted account had it (`username_retired`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    ApiJson(req): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let new = NewUser {
        profile: Profile {
            display_name: req.display_name,
            email: req.email,
            title: req.title,
            department: req.department,
            phone: req.phone,
        },
        roles: req.roles.into_iter().collect(),
    };
    let user = state.accounts.create(&req.username, req.password, new).await?;
    tracing::info!(by = admin.name(), username = %user.username, "admin created account");
    Ok((StatusCode::CREATED, Json((&user).into())))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Account name")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json((&state.accounts.get(&username)?).into()))
}

/// Changes an account and tells presence, whose cached card (display name, title, phone...)
/// feeds every presence view, the directory and the badge.
pub(crate) async fn update_account(
    state: &AppState,
    name: &str,
    update: ProfileUpdate,
) -> Result<halo_core::User, ApiError> {
    let user = state.accounts.update(name, update).await?;
    state.presence.refresh_account(&user.username)?;
    Ok(user)
}

/// Changes an account's contact card, roles or disabled flag. Disabling ends its sessions.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "users", request_body = UpdateUserRequest,
    params(("username" = String, Path, description = "Account name")),
    responses((status = 200, body = UserView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Would leave no enabled admin", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json((&update_account(&state, &username, req.into()).await?).into()))
}

/// Disables an account: it cannot log in, its sessions and sockets end.
#[utoipa::path(post, path = "/api/v1/users/{username}/disable", tag = "users",
    params(("username" = String, Path, description = "Account name")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn disable_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let update = ProfileUpdate { disabled: Some(true), ..Default::default() };
    Ok(Json((&update_account(&state, &username, update).await?).into()))
}

/// Enables a disabled account.
#[utoipa::path(post, path = "/api/v1/users/{username}/enable", tag = "users",
    params(("username" = String, Path, description = "Account name")),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn enable_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    let update = ProfileUpdate { disabled: Some(false), ..Default::default() };
    Ok(Json((&update_account(&state, &username, update).await?).into()))
}

/// Deletes an account with its sessions. The username is retired: no new account can take it
/// (its conversations and history stay attached to it).
#[utoipa::path(delete, path = "/api/v1/users/{username}", tag = "users",
    params(("username" = String, Path, description = "Account name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.remove(&username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resets an account's password; its sessions end.
#[utoipa::path(put, path = "/api/v1/users/{username}/password", tag = "users", request_body = SetPasswordRequest,
    params(("username" = String, Path, description = "Account name")),
    responses((status = 204, description = "Password set"), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(username): Path<String>,
    ApiJson(req): ApiJson<SetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.set_password(&username, req.password, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clears an account's failed logins, so it can log in again at once (a lockout ends).
#[utoipa::path(post, path = "/api/v1/users/{username}/unlock", tag = "users",
    params(("username" = String, Path, description = "Account name")),
    responses((status = 204, description = "Failed logins cleared"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unlock_user(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(username): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.accounts.unlock_user(&username)?;
    tracing::info!(by = admin.name(), %username, "admin unlocked logins");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the login slowdown of a client address (IPv6: its /64), giving it its whole burst of
/// attempts again.
#[utoipa::path(post, path = "/api/v1/admin/login-addresses/{address}/unlock", tag = "users",
    params(("address" = String, Path, description = "Client IP address, e.g. 192.0.2.7 or 2001:db8::1")),
    responses((status = 204, description = "Slowdown cleared"), (status = 400, description = "Not an IP address", body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unlock_address(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    let key = state.accounts.unlock_address(&address)?;
    tracing::info!(by = admin.name(), address = %key, "admin unlocked a login address");
    Ok(StatusCode::NO_CONTENT)
}

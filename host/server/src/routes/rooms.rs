//! Persistent chat rooms over REST.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use halo_core::room::{Privacy, RoomRole};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::conversations::{MessagePage, PageQuery, ReadRequest, SendRequest, limit};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::rooms::RoomChange;
use halo_services::views::{MessageView, RoomView};

/// Filter of the room list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RoomQuery {
    /// Only rooms whose name or topic contains this (case-insensitive).
    pub q: Option<String>,
    /// Only rooms the caller is a member of.
    #[serde(default)]
    pub mine: bool,
}

/// Rooms the caller can see.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// By name.
    pub rooms: Vec<RoomView>,
}

/// `POST /api/v1/rooms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Unique name (1-64 characters).
    pub name: String,
    /// Topic.
    #[serde(default)]
    pub topic: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// `open`, `closed` (default) or `secret`.
    #[schema(value_type = Option<String>)]
    pub privacy: Option<Privacy>,
}

/// `PATCH /api/v1/rooms/{id}` (managers).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    /// New name.
    pub name: Option<String>,
    /// New topic.
    pub topic: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New privacy.
    #[schema(value_type = Option<String>)]
    pub privacy: Option<Privacy>,
}

/// `PUT /api/v1/rooms/{id}/members/{username}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberRequest {
    /// `member` (default) or `manager`.
    #[schema(value_type = Option<String>)]
    pub role: Option<RoomRole>,
}

/// `PUT /api/v1/rooms/{id}/follow`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowRequest {
    /// Push posts to the caller's devices.
    pub follow: bool,
}

fn me(auth: &AuthUser) -> Result<&halo_core::Username, ApiError> {
    Ok(&auth.user()?.username)
}

/// Rooms the caller can see (secret rooms only to their members).
#[utoipa::path(get, path = "/api/v1/rooms", tag = "rooms", params(RoomQuery),
    responses((status = 200, body = RoomList), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<RoomQuery>,
) -> Result<Json<RoomList>, ApiError> {
    Ok(Json(RoomList { rooms: state.rooms.list(me(&auth)?, q.q.as_deref(), q.mine)? }))
}

/// Creates a room; the caller manages it.
#[utoipa::path(post, path = "/api/v1/rooms", tag = "rooms", request_body = CreateRoom,
    responses((status = 201, body = RoomView), (status = 400, body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<RoomView>), ApiError> {
    let privacy = req.privacy.unwrap_or(Privacy::Closed);
    let room = state.rooms.create(me(&auth)?, &req.name, &req.topic, &req.description, privacy).await?;
    Ok((StatusCode::CREATED, Json(room)))
}

/// One room.
#[utoipa::path(get, path = "/api/v1/rooms/{id}", tag = "rooms", params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = RoomView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(state.rooms.get(id, me(&auth)?)?))
}

/// Changes name, topic, description or privacy (managers).
#[utoipa::path(patch, path = "/api/v1/rooms/{id}", tag = "rooms", request_body = UpdateRoom, params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = RoomView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<UpdateRoom>,
) -> Result<Json<RoomView>, ApiError> {
    let change = RoomChange { name: req.name, topic: req.topic, description: req.description, privacy: req.privacy };
    Ok(Json(state.rooms.update(id, me(&auth)?, change).await?))
}

/// Joins an open room.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/join", tag = "rooms", params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = RoomView), (status = 403, description = "Closed room", body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn join(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(state.rooms.join(id, me(&auth)?).await?))
}

/// Leaves the room.
#[utoipa::path(post, path = "/api/v1/rooms/{id}/leave", tag = "rooms", params(("id" = u64, Path, description = "Room id")),
    responses((status = 204, description = "Left"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Last manager", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn leave(State(state): State<AppState>, auth: AuthUser, Path(id): Path<u64>) -> Result<StatusCode, ApiError> {
    let user = me(&auth)?;
    state.rooms.remove_member(id, user, user.as_str()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a member or changes their role (managers; how closed and secret rooms are joined).
#[utoipa::path(put, path = "/api/v1/rooms/{id}/members/{username}", tag = "rooms", request_body = MemberRequest,
    params(("id" = u64, Path, description = "Room id"), ("username" = String, Path, description = "Member")),
    responses((status = 200, body = RoomView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, username)): Path<(u64, String)>,
    ApiJson(req): ApiJson<MemberRequest>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(state.rooms.set_member(id, me(&auth)?, &username, req.role.unwrap_or(RoomRole::Member)).await?))
}

/// Removes a member (managers).
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/members/{username}", tag = "rooms",
    params(("id" = u64, Path, description = "Room id"), ("username" = String, Path, description = "Member")),
    responses((status = 204, description = "Removed"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, username)): Path<(u64, String)>,
) -> Result<StatusCode, ApiError> {
    state.rooms.remove_member(id, me(&auth)?, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of posts, oldest first (members; anyone for open rooms).
#[utoipa::path(get, path = "/api/v1/rooms/{id}/messages", tag = "rooms", params(("id" = u64, Path, description = "Room id"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    Ok(Json(MessagePage { messages: state.rooms.messages(id, me(&auth)?, q.before, q.after, limit(q.limit)?)? }))
}

/// Posts to the room (members).
#[utoipa::path(post, path = "/api/v1/rooms/{id}/messages", tag = "rooms", request_body = SendRequest, params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn post(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Json<MessageView>, ApiError> {
    let draft = req.draft();
    Ok(Json(state.rooms.post_draft(id, (me(&auth)?, None), (&req.text, req.format), req.key, &draft).await?))
}

/// Moves the caller's read marker.
#[utoipa::path(put, path = "/api/v1/rooms/{id}/read", tag = "rooms", request_body = ReadRequest, params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = RoomView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(state.rooms.read(id, me(&auth)?, req.upto).await?))
}

/// Follows or unfollows the room (posts pushed to the caller's devices).
#[utoipa::path(put, path = "/api/v1/rooms/{id}/follow", tag = "rooms", request_body = FollowRequest, params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = RoomView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn follow(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<FollowRequest>,
) -> Result<Json<RoomView>, ApiError> {
    Ok(Json(state.rooms.follow(id, me(&auth)?, req.follow).await?))
}

//! Conversation history over REST: list, read, page, send, add, leave, delete from history.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use halo_core::conversation::Format;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::im::Actor;
use halo_services::views::{ConversationView, MessageView};

/// Paging of the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// The previous page's `next`.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<usize>,
}

/// A page of conversations, most recent first.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboxPage {
    /// Conversations with their last message and unread count.
    pub conversations: Vec<ConversationView>,
    /// Cursor of the next page; absent on the last one.
    pub next: Option<String>,
}

/// `POST /api/v1/conversations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The other participants (one: the 1:1 with them is reused).
    pub participants: Vec<String>,
}

/// Paging of messages: the newest `limit` before `before`, or the oldest after `after`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Messages with smaller ids (older).
    pub before: Option<u64>,
    /// Messages with larger ids (newer).
    pub after: Option<u64>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<usize>,
}

/// A page of messages, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<MessageView>,
}

/// A message to send.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The text (1 byte to 16 KiB).
    pub text: String,
    /// `plain` (default) or `markdown`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub format: Format,
    /// Idempotency key: a retry with the same key is stored once.
    pub key: Option<String>,
    /// The message of the same conversation or room this one replies to (quotes).
    pub reply_to: Option<u64>,
    /// Ids of files uploaded with `POST /api/v1/attachments` (at most 10); with attachments
    /// the text may be empty.
    #[serde(default)]
    pub attachments: Vec<String>,
}

impl SendRequest {
    /// The reply and attachments asked for.
    pub fn draft(&self) -> halo_services::changes::Draft {
        halo_services::changes::Draft { reply_to: self.reply_to, attachments: self.attachments.clone() }
    }
}

/// `POST /api/v1/conversations/{id}/participants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddRequest {
    /// Who to add.
    pub user: String,
}

/// A read marker.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// Everything up to this message id is read.
    pub upto: u64,
}

/// Unread count after a read marker moved.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unread {
    /// Messages still unread.
    pub unread: u32,
}

pub(crate) fn limit(l: Option<usize>) -> Result<usize, ApiError> {
    let l = l.unwrap_or(50);
    if (1..=200).contains(&l) { Ok(l) } else { Err(ApiError::bad_request("limit must be 1-200")) }
}

fn actor(auth: &AuthUser) -> Result<Actor<'_>, ApiError> {
    Ok(Actor { user: &auth.user()?.username, endpoint: None })
}

/// The caller's conversations, most recent first, with last message and unread count.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(InboxQuery),
    responses((status = 200, body = InboxPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<InboxQuery>,
) -> Result<Json<InboxPage>, ApiError> {
    let inbox = state.im.inbox(&auth.user()?.username, q.cursor.as_deref(), limit(q.limit)?)?;
    Ok(Json(InboxPage { conversations: inbox.conversations, next: inbox.next }))
}

/// Starts a conversation (or returns the open 1:1 with a single other participant).
#[utoipa::path(post, path = "/api/v1/conversations", tag = "conversations", request_body = StartRequest,
    responses((status = 200, body = ConversationView), (status = 400, body = ErrorBody), (status = 403, description = "Blocked", body = ErrorBody), (status = 404, description = "Unknown user", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<StartRequest>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(state.im.start(actor(&auth)?, &req.participants).await?))
}

/// One conversation.
#[utoipa::path(get, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(state.im.get(&auth.user()?.username, id)?))
}

/// Deletes the conversation from the caller's history (others keep theirs; archiving is apart).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 204, description = "Deleted from your history"), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn hide(State(state): State<AppState>, auth: AuthUser, Path(id): Path<u64>) -> Result<StatusCode, ApiError> {
    state.im.hide(&auth.user()?.username, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of the conversation's messages the caller may read, oldest first.
#[utoipa::path(get, path = "/api/v1/conversations/{id}/messages", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id"), PageQuery),
    responses((status = 200, body = MessagePage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    Query(q): Query<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let messages = state.im.messages(&auth.user()?.username, id, q.before, q.after, limit(q.limit)?)?;
    Ok(Json(MessagePage { messages }))
}

/// Sends a message (as `im.send` on the stream).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/messages", tag = "conversations", request_body = SendRequest,
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Idempotency key reused, or recipient offline with offline IM off", body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<Json<MessageView>, ApiError> {
    let draft = req.draft();
    Ok(Json(state.im.send_draft(actor(&auth)?, id, (&req.text, req.format), req.key, &draft).await?))
}

/// Adds a participant; a 1:1 becomes a group and the newcomer sees messages from now on.
#[utoipa::path(post, path = "/api/v1/conversations/{id}/participants", tag = "conversations", request_body = AddRequest,
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<AddRequest>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(state.im.add(actor(&auth)?, id, &req.user).await?))
}

/// Leaves the conversation (its history up to now stays readable).
#[utoipa::path(post, path = "/api/v1/conversations/{id}/leave", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = ConversationView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn leave(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
) -> Result<Json<ConversationView>, ApiError> {
    Ok(Json(state.im.leave(actor(&auth)?, id).await?))
}

/// Moves the caller's read marker (a read receipt for the others).
#[utoipa::path(put, path = "/api/v1/conversations/{id}/read", tag = "conversations", request_body = ReadRequest,
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = Unread), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<ReadRequest>,
) -> Result<Json<Unread>, ApiError> {
    Ok(Json(Unread { unread: state.im.read(actor(&auth)?, id, req.upto).await? }))
}

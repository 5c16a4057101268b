//! What happens to messages after they are sent, over REST: edits, deletions, reactions and
//! mutes in conversations and rooms, and the attachments messages carry.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use halo_core::conversation::Format;
use halo_services::Caller;
use halo_services::attachments::INLINE_TYPES;
use halo_services::im::Actor;
use halo_services::views::{AttachmentView, MessageView};
use halo_store::Thread;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthUser, ComplianceUser};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;

/// `PATCH …/messages/{message}`: the new text.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The new text (1 byte to 16 KiB).
    pub text: String,
    /// `plain` (default) or `markdown`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub format: Format,
}

/// `PUT …/mute`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// Mute (true) or unmute (false).
    pub muted: bool,
}

/// The state after a mute changed.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Muted {
    /// Whether it is muted now.
    pub muted: bool,
}

/// `POST /api/v1/attachments?name=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name (path components and control characters are dropped).
    pub name: Option<String>,
}

fn actor(auth: &AuthUser) -> Result<Actor<'_>, ApiError> {
    Ok(Actor { user: &auth.user()?.username, endpoint: None })
}

/// Replaces the text of the caller's own message (as `message.edit`).
#[utoipa::path(patch, path = "/api/v1/conversations/{id}/messages/{message}", tag = "conversations", request_body = EditRequest,
    params(("id" = u64, Path, description = "Conversation id"), ("message" = u64, Path, description = "Message id")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, description = "Not the sender", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, description = "Deleted", body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn edit_in_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(u64, u64)>,
    ApiJson(req): ApiJson<EditRequest>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.edit(actor(&auth)?, Thread::Conversation(id), message, &req.text, req.format).await?))
}

/// Deletes the caller's own message: a tombstone stays (as `message.delete`).
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message}", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id"), ("message" = u64, Path, description = "Message id")),
    responses((status = 200, body = MessageView), (status = 403, description = "Not the sender", body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "Deleted already", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_in_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(u64, u64)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.delete(actor(&auth)?, Thread::Conversation(id), message).await?))
}

/// Adds the caller's reaction (as `message.react`).
#[utoipa::path(put, path = "/api/v1/conversations/{id}/messages/{message}/reactions/{emoji}", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id"), ("message" = u64, Path, description = "Message id"), ("emoji" = String, Path, description = "The emoji, URL-encoded")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn react_in_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(u64, u64, String)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.react(actor(&auth)?, Thread::Conversation(id), message, &emoji, true).await?))
}

/// Takes the caller's reaction back.
#[utoipa::path(delete, path = "/api/v1/conversations/{id}/messages/{message}/reactions/{emoji}", tag = "conversations",
    params(("id" = u64, Path, description = "Conversation id"), ("message" = u64, Path, description = "Message id"), ("emoji" = String, Path, description = "The emoji, URL-encoded")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unreact_in_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(u64, u64, String)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.react(actor(&auth)?, Thread::Conversation(id), message, &emoji, false).await?))
}

/// Mutes or unmutes the conversation for the caller (stored; clients do not notify for it).
#[utoipa::path(put, path = "/api/v1/conversations/{id}/mute", tag = "conversations", request_body = MuteRequest,
    params(("id" = u64, Path, description = "Conversation id")),
    responses((status = 200, body = Muted), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mute_conversation(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Json<Muted>, ApiError> {
    state.changes.mute(&auth.user()?.username, Thread::Conversation(id), req.muted).await?;
    Ok(Json(Muted { muted: req.muted }))
}

/// Replaces the text of the caller's own post.
#[utoipa::path(patch, path = "/api/v1/rooms/{id}/messages/{message}", tag = "rooms", request_body = EditRequest,
    params(("id" = u64, Path, description = "Room id"), ("message" = u64, Path, description = "Message id")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn edit_in_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(u64, u64)>,
    ApiJson(req): ApiJson<EditRequest>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.edit(actor(&auth)?, Thread::Room(id), message, &req.text, req.format).await?))
}

/// Deletes the caller's own post (a tombstone stays).
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/messages/{message}", tag = "rooms",
    params(("id" = u64, Path, description = "Room id"), ("message" = u64, Path, description = "Message id")),
    responses((status = 200, body = MessageView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_in_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message)): Path<(u64, u64)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.delete(actor(&auth)?, Thread::Room(id), message).await?))
}

/// Adds the caller's reaction to a post (members).
#[utoipa::path(put, path = "/api/v1/rooms/{id}/messages/{message}/reactions/{emoji}", tag = "rooms",
    params(("id" = u64, Path, description = "Room id"), ("message" = u64, Path, description = "Message id"), ("emoji" = String, Path, description = "The emoji, URL-encoded")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn react_in_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(u64, u64, String)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.react(actor(&auth)?, Thread::Room(id), message, &emoji, true).await?))
}

/// Takes the caller's reaction to a post back.
#[utoipa::path(delete, path = "/api/v1/rooms/{id}/messages/{message}/reactions/{emoji}", tag = "rooms",
    params(("id" = u64, Path, description = "Room id"), ("message" = u64, Path, description = "Message id"), ("emoji" = String, Path, description = "The emoji, URL-encoded")),
    responses((status = 200, body = MessageView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn unreact_in_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, message, emoji)): Path<(u64, u64, String)>,
) -> Result<Json<MessageView>, ApiError> {
    Ok(Json(state.changes.react(actor(&auth)?, Thread::Room(id), message, &emoji, false).await?))
}

/// Mutes or unmutes the room for the caller (members).
#[utoipa::path(put, path = "/api/v1/rooms/{id}/mute", tag = "rooms", request_body = MuteRequest,
    params(("id" = u64, Path, description = "Room id")),
    responses((status = 200, body = Muted), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn mute_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u64>,
    ApiJson(req): ApiJson<MuteRequest>,
) -> Result<Json<Muted>, ApiError> {
    state.changes.mute(&auth.user()?.username, Thread::Room(id), req.muted).await?;
    Ok(Json(Muted { muted: req.muted }))
}

/// Uploads a file to attach to a message (body: the file's bytes; at most
/// `[im] max_attachment_bytes`). Its type is sniffed from the content.
#[utoipa::path(post, path = "/api/v1/attachments", tag = "conversations", params(UploadQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, body = AttachmentView), (status = 400, description = "Empty", body = ErrorBody),
        (status = 413, description = "Too large", body = ErrorBody), (status = 429, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<UploadQuery>,
    body: Bytes,
) -> Result<Json<AttachmentView>, ApiError> {
    let name = q.name.unwrap_or_default();
    Ok(Json(state.attachments.upload(&auth.user()?.username, &name, body.to_vec()).await?))
}

/// A file, for its uploader and whoever may read a message carrying it (token in the header,
/// or `?token=` for `<img>` links). Images (PNG, JPEG, GIF, WebP) are shown inline; every
/// other type is a download; never sniffed, never run (`nosniff`, a sandboxing CSP).
#[utoipa::path(get, path = "/api/v1/attachments/{id}", tag = "conversations",
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "The file"), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = match &caller {
        Caller::User(p) => match &p.identity {
            halo_services::Identity::User(u) => u.username.clone(),
            halo_services::Identity::LocalAdmin => {
                return Err(ApiError::forbidden("the local admin token has no account"));
            }
        },
        Caller::App(_) => return Err(ApiError::forbidden("app tokens cannot read attachments")),
        Caller::Anonymous => return Err(ApiError::unauthorized("missing bearer token")),
    };
    let (meta, bytes) = state.attachments.download(&user, &id).await?;
    Ok(file_response(meta, bytes))
}

/// A file the compliance archive names (compliance role), whoever may read it otherwise;
/// always a download. Logged with who asked.
#[utoipa::path(get, path = "/api/v1/archive/attachments/{id}", tag = "archive",
    params(("id" = String, Path, description = "Attachment id")),
    responses((status = 200, description = "The file"), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn compliance_download(
    State(state): State<AppState>,
    officer: ComplianceUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (mut meta, bytes) = state.attachments.download_for_compliance(&id).await?;
    tracing::info!(officer = %officer.0.user()?.username, attachment = %id, "compliance attachment download");
    meta.mime = "application/octet-stream".into();
    Ok(file_response(meta, bytes))
}

/// The answer carrying a file: its type, inline only for plain images, never sniffed or run.
fn file_response(meta: AttachmentView, bytes: Vec<u8>) -> Response {
    let inline = INLINE_TYPES.contains(&meta.mime.as_str());
    let encoded: String = meta
        .name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let disposition = format!("{}; filename*=UTF-8''{encoded}", if inline { "inline" } else { "attachment" });
    let content_type = if meta.mime == "text/plain" { "text/plain; charset=utf-8".to_owned() } else { meta.mime };
    let mut response = (StatusCode::OK, bytes).into_response();
    let h = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, value(&content_type));
    h.insert(header::CONTENT_DISPOSITION, value(&disposition));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=86400"));
    h.insert(header::ETAG, value(&format!("\"{}\"", meta.sha256)));
    response
}

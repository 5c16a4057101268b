//! Compliance archiving: policy and settings (admin), status (admin or compliance), search and
//! export (compliance only).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use halo_core::archive::{Policy, Record, Settings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{AdminUser, ComplianceUser, OversightUser};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::archive::{ArchiveQuery, ArchiveStatus, PolicyView, PurgeReport};

/// A change of the global policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalPolicy {
    /// The policy for users without their own: `{"internal": bool, "external": bool}`.
    #[schema(value_type = Object)]
    pub global: Policy,
}

/// Matching records, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Records {
    /// The records (see docs/archiving.md for their fields).
    #[schema(value_type = Vec<Object>)]
    pub records: Vec<Record>,
}

/// The archiving policies.
#[utoipa::path(get, path = "/api/v1/admin/archive/policy", tag = "archive",
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_policy(State(state): State<AppState>, _admin: AdminUser) -> Json<PolicyView> {
    Json(state.archive.policy_view())
}

/// Sets the global policy.
#[utoipa::path(put, path = "/api/v1/admin/archive/policy", tag = "archive", request_body = GlobalPolicy,
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_global(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiJson(req): ApiJson<GlobalPolicy>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(state.archive.set_global(req.global).await?))
}

/// Sets a user's own policy (it wins over the global one).
#[utoipa::path(put, path = "/api/v1/admin/archive/policy/{user}", tag = "archive", request_body = Object,
    params(("user" = String, Path, description = "Username")),
    responses((status = 200, body = PolicyView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(user): Path<String>,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(state.archive.set_user(&user, Some(policy)).await?))
}

/// Removes a user's own policy (the global one applies again).
#[utoipa::path(delete, path = "/api/v1/admin/archive/policy/{user}", tag = "archive",
    params(("user" = String, Path, description = "Username")),
    responses((status = 200, body = PolicyView), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn clear_user(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(user): Path<String>,
) -> Result<Json<PolicyView>, ApiError> {
    Ok(Json(state.archive.set_user(&user, None).await?))
}

/// The archiving settings.
#[utoipa::path(get, path = "/api/v1/admin/archive/settings", tag = "archive",
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_settings(State(state): State<AppState>, _admin: AdminUser) -> Json<Settings> {
    Json(state.archive.settings())
}

/// Replaces the archiving settings (`block_on_failure`, `block_after_secs`, `block_backlog`,
/// `keep_days`; missing keys take their defaults).
#[utoipa::path(put, path = "/api/v1/admin/archive/settings", tag = "archive", request_body = Object,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_settings(
    State(state): State<AppState>,
    _admin: AdminUser,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<Json<Settings>, ApiError> {
    Ok(Json(state.archive.set_settings(settings).await?))
}

/// What to purge.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Purge records older than this many hours (default: the `keep_days` setting).
    pub older_than_hours: Option<u64>,
}

/// Applies retention now: records older than `older_than_hours` (or `keep_days`) that every
/// sink has stored are removed; ones a sink still needs are held and counted.
#[utoipa::path(post, path = "/api/v1/admin/archive/purge", tag = "archive", request_body = Option<PurgeRequest>,
    responses((status = 200, body = PurgeReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn purge(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    body: axum::body::Bytes,
) -> Result<Json<PurgeReport>, ApiError> {
    let req: PurgeRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PurgeRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?
    };
    let report = state.archive.purge(req.older_than_hours).await?;
    tracing::info!(by = admin.name(), ?report, "archive purge requested");
    Ok(Json(report))
}

/// The archive's state: records kept, settings, whether messages are being refused, and each
/// sink's cursor, backlog and health.
#[utoipa::path(get, path = "/api/v1/archive/status", tag = "archive",
    responses((status = 200, body = ArchiveStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn status(State(state): State<AppState>, _who: OversightUser) -> Result<Json<ArchiveStatus>, ApiError> {
    Ok(Json(state.archive.status()?))
}

/// Searches the compliance archive (compliance role): words, user, conversation, room and
/// date range; newest first.
#[utoipa::path(get, path = "/api/v1/archive/records", tag = "archive", params(ArchiveQuery),
    description = "The archive's index trails the archive by under a second.",
    responses((status = 200, body = Records), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    ComplianceUser(who): ComplianceUser,
    Query(q): Query<ArchiveQuery>,
) -> Result<Json<Records>, ApiError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1-1000"));
    }
    tracing::info!(by = who.name(), ?q, "compliance search");
    let archive = state.archive.clone();
    let records = tokio::task::spawn_blocking(move || archive.search(&q, limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(Records { records }))
}

/// Exports matching records as JSON Lines, oldest first (compliance role).
#[utoipa::path(get, path = "/api/v1/archive/export", tag = "archive", params(ArchiveQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    ComplianceUser(who): ComplianceUser,
    Query(q): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    tracing::info!(by = who.name(), ?q, "compliance export");
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    let archive = state.archive.clone();
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(64 * 1024);
        let result = archive.export(&q, |r| {
            if serde_json::to_writer(&mut chunk, &r).is_ok() {
                chunk.push(b'\n');
            }
            if chunk.len() >= 60 * 1024 {
                return tx.blocking_send(Ok(std::mem::take(&mut chunk))).is_ok();
            }
            true
        });
        let tail = match result {
            Ok(()) => Ok(chunk),
            Err(e) => Err(std::io::Error::other(e.to_string())),
        };
        let _ = tx.blocking_send(tail);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    Ok((
        [(CONTENT_TYPE, "application/x-ndjson"), (CONTENT_DISPOSITION, "attachment; filename=\"halo-archive.jsonl\"")],
        Body::from_stream(stream),
    )
        .into_response())
}

//! Plugin administration: inspect, install, upgrade, configure, enable, disable, remove, logs.
//! Component uploads are the raw `.wasm` bytes as the request body.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::plugins::{Inspection, PluginInfo, Upgrade};

/// Grants for an install or upgrade.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// Comma-separated capabilities to grant (a subset of what the plugin asks for); none is
    /// deny-all. On upgrade, absent keeps the old grants.
    pub grant: Option<String>,
    /// Install enabled (default true).
    pub enabled: Option<bool>,
    /// Install with this config: a JSON object of string values (for plugins with required
    /// keys, which cannot load without them).
    pub config: Option<String>,
}

impl GrantQuery {
    fn config(&self) -> Result<BTreeMap<String, String>, ApiError> {
        match &self.config {
            None => Ok(BTreeMap::new()),
            Some(c) => serde_json::from_str(c)
                .map_err(|e| ApiError::bad_request(format!("config must be a JSON object of strings: {e}"))),
        }
    }

    fn grants(&self) -> Option<Vec<String>> {
        self.grant.as_ref().map(|g| g.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
}

/// Every plugin.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    /// By name.
    pub plugins: Vec<PluginInfo>,
}

/// A plugin's recent log.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginLogs {
    /// Oldest first (the last 500).
    #[schema(value_type = Vec<Object>)]
    pub lines: Vec<halo_plugin_host::cap::log::LogLine>,
    /// Lines dropped by the flood limit.
    pub dropped: u64,
}

/// Reads a component's manifest (name, version, kind, WIT version, capabilities, config schema).
#[utoipa::path(post, path = "/api/v1/admin/plugins/inspect", tag = "plugins", request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 200, body = Inspection), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn inspect(
    State(state): State<AppState>,
    _admin: AdminUser,
    body: Bytes,
) -> Result<Json<Inspection>, ApiError> {
    Ok(Json(state.plugins.inspect(&body)?))
}

/// Installs a plugin, live.
#[utoipa::path(post, path = "/api/v1/admin/plugins", tag = "plugins", params(GrantQuery), request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 201, body = PluginInfo), (status = 400, description = "Invalid component, wrong world or WIT version", body = ErrorBody), (status = 409, description = "Installed already", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn install(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Query(q): Query<GrantQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<PluginInfo>), ApiError> {
    let config = q.config()?;
    let info =
        state.plugins.install(&body, &q.grants().unwrap_or_default(), &config, q.enabled.unwrap_or(true)).await?;
    tracing::info!(by = admin.name(), plugin = %info.name, "admin installed a plugin");
    Ok((StatusCode::CREATED, Json(info)))
}

/// Every plugin.
#[utoipa::path(get, path = "/api/v1/admin/plugins", tag = "plugins", responses((status = 200, body = PluginList), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, _admin: AdminUser) -> Json<PluginList> {
    Json(PluginList { plugins: state.plugins.list().await })
}

/// One plugin.
#[utoipa::path(get, path = "/api/v1/admin/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "Plugin")),
    responses((status = 200, body = PluginInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    Ok(Json(state.plugins.get(&name).await?))
}

/// Upgrades a plugin to a new version of it, live (calls in flight finish on the old one).
#[utoipa::path(put, path = "/api/v1/admin/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "Plugin"), GrantQuery), request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses((status = 200, body = Upgrade), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn upgrade(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
    Query(q): Query<GrantQuery>,
    body: Bytes,
) -> Result<Json<Upgrade>, ApiError> {
    Ok(Json(state.plugins.upgrade(&name, &body, q.grants().as_deref()).await?))
}

/// Removes a plugin and its storage.
#[utoipa::path(delete, path = "/api/v1/admin/plugins/{name}", tag = "plugins", params(("name" = String, Path, description = "Plugin")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.plugins.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Enables a plugin (and resets its trap budget).
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/enable", tag = "plugins", params(("name" = String, Path, description = "Plugin")),
    responses((status = 200, body = PluginInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn enable(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    Ok(Json(state.plugins.set_enabled(&name, true).await?))
}

/// Disables a plugin: presence falls back to the built-in states at once.
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/disable", tag = "plugins", params(("name" = String, Path, description = "Plugin")),
    responses((status = 200, body = PluginInfo), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn disable(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Json<PluginInfo>, ApiError> {
    Ok(Json(state.plugins.set_enabled(&name, false).await?))
}

/// Replaces a plugin's config, validated against its schema.
#[utoipa::path(put, path = "/api/v1/admin/plugins/{name}/config", tag = "plugins", params(("name" = String, Path, description = "Plugin")), request_body = BTreeMap<String, String>,
    responses((status = 200, body = PluginInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn configure(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
    ApiJson(config): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<PluginInfo>, ApiError> {
    Ok(Json(state.plugins.configure(&name, config).await?))
}

/// Sets this plugin's limits (deadline, memory, trap budget, …); `null` restores the server's.
#[utoipa::path(put, path = "/api/v1/admin/plugins/{name}/limits", tag = "plugins", params(("name" = String, Path, description = "Plugin")), request_body(content = Object),
    responses((status = 200, body = PluginInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn limits(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
    ApiJson(limits): ApiJson<Option<halo_plugin_host::PluginLimits>>,
) -> Result<Json<PluginInfo>, ApiError> {
    if let Some(l) = &limits
        && (l.deadline.is_zero() || l.memory_bytes < (1 << 20) || l.max_traps == 0)
    {
        return Err(ApiError::bad_request(
            "deadline must be above zero, memory_bytes at least 1 MiB, max_traps at least 1",
        ));
    }
    Ok(Json(state.plugins.set_limits(&name, limits).await?))
}

/// Capabilities to grant to a plugin, and to take away.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantChange {
    /// To grant: `name` or `name:value` (e.g. `kv`, `dir:/var/lib/halo/archive`), each one the
    /// plugin asks for and its kind may have.
    #[serde(default)]
    pub grant: Vec<String>,
    /// To take away: a bare name takes every grant of that capability, `name:value` that one.
    #[serde(default)]
    pub revoke: Vec<String>,
}

/// Grants capabilities to an installed plugin and takes others away, effective at once (the
/// plugin is loaded again with them).
#[utoipa::path(post, path = "/api/v1/admin/plugins/{name}/grants", tag = "plugins", params(("name" = String, Path, description = "Plugin")), request_body = GrantChange,
    responses((status = 200, body = PluginInfo), (status = 400, description = "Not asked for, not for this kind of plugin, or not granted", body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn grants(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    Path(name): Path<String>,
    ApiJson(change): ApiJson<GrantChange>,
) -> Result<Json<PluginInfo>, ApiError> {
    let info = state.plugins.change_grants(&name, &change.grant, &change.revoke).await?;
    tracing::info!(by = admin.name(), plugin = %name, grant = ?change.grant, revoke = ?change.revoke, "admin changed a plugin's grants");
    Ok(Json(info))
}

/// A plugin's recent log lines.
#[utoipa::path(get, path = "/api/v1/admin/plugins/{name}/logs", tag = "plugins", params(("name" = String, Path, description = "Plugin")),
    responses((status = 200, body = PluginLogs), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(name): Path<String>,
) -> Result<Json<PluginLogs>, ApiError> {
    let (lines, dropped) = state.plugins.logs(&name)?;
    Ok(Json(PluginLogs { lines, dropped }))
}

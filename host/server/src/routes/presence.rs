//! Presence over REST: one's own state and document, pictures, other users' presence (also for
//! other applications), the SVG badge, and calendar / phone inputs for integrations.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use halo_core::Username;
use halo_core::presence::{self, Activity, BuiltinState, CalendarActivity, CustomState, Phone};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{AuthUser, Caller};
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::presence::{MyPresence, PresencePatch, PresenceView, Viewer};

/// A state users can pick.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateInfo {
    /// Token for `presence.set`.
    pub id: String,
    /// Labels by language.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Availability number.
    pub availability: u32,
    /// Dot colour.
    pub colour: String,
    /// Built-in or defined by the organisation.
    pub custom: bool,
}

/// The states catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct States {
    /// Built-in states, then custom ones.
    pub states: Vec<StateInfo>,
}

/// `PUT /api/v1/me/presence/state`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetState {
    /// A state token (see `/api/v1/presence/states`).
    pub state: Option<String>,
    /// Or an explicit availability, 0-18500.
    pub availability: Option<u32>,
    /// With an explicit availability: an activity token.
    pub activity: Option<String>,
    /// When the manual state ends, ms since the Unix epoch.
    pub until: Option<u64>,
}

/// `PUT /api/v1/users/{username}/calendar`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarInput {
    /// `in-a-meeting`, `out-of-office`, or null to clear.
    #[schema(value_type = Option<String>)]
    pub activity: Option<CalendarActivity>,
    /// End, ms since the Unix epoch.
    pub until: Option<u64>,
    /// Meeting subject (shown to Workgroup contacts).
    pub subject: Option<String>,
}

/// `PUT /api/v1/users/{username}/phone`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhoneInput {
    /// `in-a-call`, `in-a-conference`, or null to clear.
    #[schema(value_type = Option<String>)]
    pub activity: Option<Phone>,
}

/// `GET /api/v1/presence?users=a,b,c`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchQuery {
    /// Comma-separated usernames (at most 200).
    pub users: String,
}

/// Several users' presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct Batch {
    /// In the order asked; unknown users are left out.
    pub presence: Vec<PresenceView>,
}

fn me(auth: &AuthUser) -> Result<&Username, ApiError> {
    Ok(&auth.user()?.username)
}

fn viewer(caller: &Caller) -> Viewer<'_> {
    match caller {
        Caller::User(a) => match &a.identity {
            halo_services::Identity::User(u) => Viewer::User(&u.username),
            halo_services::Identity::LocalAdmin => Viewer::App,
        },
        Caller::App(_) => Viewer::App,
        Caller::Anonymous => Viewer::Anonymous,
    }
}

/// A local user, or a user of a federated server (`name@domain`): their presence is what
/// their server last reported ("Presence unknown" until it has).
fn user(state: &AppState, name: &str) -> Result<Username, ApiError> {
    if name.contains('@') {
        return Ok(state.federation.address(name)?);
    }
    Ok(state.presence.users(&[name.to_owned()])?.remove(0))
}

/// The built-in and custom states, with labels and colours.
#[utoipa::path(get, path = "/api/v1/presence/states", tag = "presence", responses((status = 200, body = States)))]
pub async fn states(State(state): State<AppState>) -> Json<States> {
    let mut states: Vec<StateInfo> = BuiltinState::ALL
        .iter()
        .map(|b| {
            let (availability, activity) = b.value();
            let band = presence::Band::of(availability);
            let label = activity.map_or(band.label(), Activity::label);
            let label = if *b == BuiltinState::AppearOffline { "Appear offline" } else { label };
            StateInfo {
                id: b.token(),
                labels: [("en".into(), label.into())].into(),
                availability,
                colour: band.colour().into(),
                custom: false,
            }
        })
        .collect();
    states.extend(state.presence.custom_states().iter().map(|c: &CustomState| StateInfo {
        id: c.id.clone(),
        labels: c.labels.clone(),
        availability: c.availability,
        colour: c.colour.clone(),
        custom: true,
    }));
    Json(States { states })
}

/// The caller's presence and settings.
#[utoipa::path(get, path = "/api/v1/me/presence", tag = "presence",
    responses((status = 200, body = MyPresence), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_mine(State(state): State<AppState>, auth: AuthUser) -> Result<Json<MyPresence>, ApiError> {
    Ok(Json(state.presence.mine(me(&auth)?).await?))
}

/// Changes the caller's note, out-of-office note, location, phones and privacy settings.
#[utoipa::path(patch, path = "/api/v1/me/presence", tag = "presence", request_body = PresencePatch,
    responses((status = 200, body = MyPresence), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn patch_mine(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(p): ApiJson<PresencePatch>,
) -> Result<Json<MyPresence>, ApiError> {
    Ok(Json(state.presence.patch(me(&auth)?, p).await?))
}

/// Sets the caller's manual state (as `presence.set`).
#[utoipa::path(put, path = "/api/v1/me/presence/state", tag = "presence", request_body = SetState,
    responses((status = 200, body = PresenceView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn set_state(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(s): ApiJson<SetState>,
) -> Result<Json<PresenceView>, ApiError> {
    let manual = state.presence.manual(s.state.as_deref(), s.availability, s.activity.as_deref(), s.until)?;
    let view = state.presence.set_manual(me(&auth)?, Some(manual)).await?;
    Ok(Json(view))
}

/// Clears the manual state: presence follows the devices again.
#[utoipa::path(delete, path = "/api/v1/me/presence/state", tag = "presence",
    responses((status = 200, body = PresenceView)), security(("bearer" = [])))]
pub async fn reset_state(State(state): State<AppState>, auth: AuthUser) -> Result<Json<PresenceView>, ApiError> {
    let view = state.presence.set_manual(me(&auth)?, None).await?;
    Ok(Json(view))
}

/// Uploads the caller's picture (PNG, JPEG, GIF or WebP; at most `presence.max_picture_bytes`).
#[utoipa::path(put, path = "/api/v1/me/picture", tag = "presence", request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = PresenceView), (status = 400, description = "Not an image", body = ErrorBody), (status = 413, description = "Too big", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_picture(
    State(state): State<AppState>,
    auth: AuthUser,
    body: Bytes,
) -> Result<Json<PresenceView>, ApiError> {
    Ok(Json(state.presence.set_picture(me(&auth)?, &body).await?))
}

/// Removes the caller's picture.
#[utoipa::path(delete, path = "/api/v1/me/picture", tag = "presence", responses((status = 200, body = PresenceView)), security(("bearer" = [])))]
pub async fn delete_picture(State(state): State<AppState>, auth: AuthUser) -> Result<Json<PresenceView>, ApiError> {
    Ok(Json(state.presence.remove_picture(me(&auth)?).await?))
}

/// A user's picture, if the caller's access level shows it (anonymous callers see what External
/// sees). Cacheable: the URL in presence views carries its version.
#[utoipa::path(get, path = "/api/v1/users/{username}/picture", tag = "presence", params(("username" = String, Path, description = "Whose")),
    responses((status = 200, description = "The image"), (status = 304, description = "Not modified"), (status = 404, body = ErrorBody)))]
pub async fn get_picture(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let u = user(&state, &name)?;
    let picture = state.presence.picture(&u, viewer(&caller)).await?;
    let etag = format!("\"{}\"", picture.etag);
    let cache = [(header::ETAG, etag.clone()), (header::CACHE_CONTROL, "private, max-age=86400".to_owned())];
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((cache, [(header::CONTENT_TYPE, picture.content_type)], picture.bytes).into_response())
}

/// A user's presence as the caller may see it (users, and apps with `presence:read`).
#[utoipa::path(get, path = "/api/v1/users/{username}/presence", tag = "presence", params(("username" = String, Path, description = "Whose")),
    responses((status = 200, body = PresenceView), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<PresenceView>, ApiError> {
    caller.require("presence:read")?;
    Ok(Json(state.presence.view(&user(&state, &name)?, viewer(&caller)).await?))
}

/// Several users' presence at once (users, and apps with `presence:read`).
#[utoipa::path(get, path = "/api/v1/presence", tag = "presence", params(BatchQuery),
    responses((status = 200, body = Batch), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn batch(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<BatchQuery>,
) -> Result<Json<Batch>, ApiError> {
    caller.require("presence:read")?;
    let names: Vec<&str> = q.users.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if names.is_empty() || names.len() > 200 {
        return Err(ApiError::bad_request("users: 1-200 comma-separated usernames"));
    }
    let mut presence = Vec::with_capacity(names.len());
    for n in names {
        if let Ok(u) = user(&state, n) {
            presence.push(state.presence.view(&u, viewer(&caller)).await?);
        }
    }
    Ok(Json(Batch { presence }))
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An embeddable badge: a coloured dot and the state's label, as the caller may see it
/// (anonymous: what External sees, or "Presence unknown" in privacy mode). Takes `?token=`.
#[utoipa::path(get, path = "/api/v1/users/{username}/presence.svg", tag = "presence", params(("username" = String, Path, description = "Whose")),
    responses((status = 200, description = "SVG image", content_type = "image/svg+xml"), (status = 404, body = ErrorBody)))]
pub async fn badge(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let view = state.presence.view(&user(&state, &name)?, viewer(&caller)).await?;
    let label = xml_escape(&format!("{} · {}", view.display_name, view.label));
    let width = 24 + 7 * label.chars().count();
    let svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}"><rect width="{width}" height="20" rx="4" fill="#ffffff" stroke="#e1dfdd"/><circle cx="11" cy="10" r="5" fill="{colour}"/><text x="21" y="14" font-family="Segoe UI,Helvetica,Arial,sans-serif" font-size="11" fill="#323130">{label}</text></svg>"##,
        colour = xml_escape(&view.colour),
    );
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "private, max-age=15")], svg).into_response())
}

fn may_write(caller: &Caller, target: &Username, scope: &str) -> Result<(), ApiError> {
    match caller {
        Caller::User(a) if a.is_admin() => Ok(()),
        Caller::User(a) => match a.user()? {
            u if &u.username == target => Ok(()),
            _ => Err(ApiError::forbidden("you may set only your own calendar and phone state")),
        },
        other => Ok(other.require(scope)?),
    }
}

/// Sets a user's calendar state (the user, an admin, or an app with `calendar:write`).
#[utoipa::path(put, path = "/api/v1/users/{username}/calendar", tag = "presence", request_body = CalendarInput, params(("username" = String, Path, description = "Whose")),
    responses((status = 200, body = PresenceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn calendar(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(c): ApiJson<CalendarInput>,
) -> Result<Json<PresenceView>, ApiError> {
    let u = user(&state, &name)?;
    may_write(&caller, &u, "calendar:write")?;
    state.presence.set_calendar_input(&u, c.activity, c.until, c.subject).await?;
    Ok(Json(state.presence.view(&u, viewer(&caller)).await?))
}

/// Sets a user's phone state (the user, an admin, or an app with `phone:write`).
#[utoipa::path(put, path = "/api/v1/users/{username}/phone", tag = "presence", request_body = PhoneInput, params(("username" = String, Path, description = "Whose")),
    responses((status = 200, body = PresenceView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn phone(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(p): ApiJson<PhoneInput>,
) -> Result<Json<PresenceView>, ApiError> {
    let u = user(&state, &name)?;
    may_write(&caller, &u, "phone:write")?;
    state.presence.set_phone(&u, p.activity).await?;
    Ok(Json(state.presence.view(&u, viewer(&caller)).await?))
}

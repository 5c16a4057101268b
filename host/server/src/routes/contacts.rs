//! The contact list: groups, contacts with their access levels, blocking, and the directory.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use halo_core::Username;
use halo_core::contacts::ContactList;
use halo_core::presence::AccessLevel;
use halo_core::presence::engine::ContactEdit;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::presence::{PresenceView, Viewer};

/// A contact with its presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Its group.
    pub group: u32,
    /// What the owner lets this contact see: `blocked`, `external`, `colleagues`, `workgroup`,
    /// `friends_and_family`.
    #[schema(value_type = String)]
    pub level: AccessLevel,
    /// The contact's presence as the owner sees it.
    pub presence: PresenceView,
}

/// A group.
#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    /// Id.
    pub id: u32,
    /// Name.
    pub name: String,
}

/// The contact list at a glance.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactsView {
    /// Groups in display order.
    pub groups: Vec<GroupView>,
    /// Contacts by username.
    pub contacts: Vec<ContactView>,
}

/// `POST /api/v1/contacts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddContact {
    /// Who.
    pub username: String,
    /// Group id (default group when absent).
    pub group: Option<u32>,
    /// Access level (default `colleagues`).
    #[schema(value_type = Option<String>)]
    pub level: Option<AccessLevel>,
}

/// `PATCH /api/v1/contacts/{username}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditContact {
    /// Move to this group.
    pub group: Option<u32>,
    /// New access level.
    #[schema(value_type = Option<String>)]
    pub level: Option<AccessLevel>,
}

/// A new group, or a change to one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRequest {
    /// Name (1-64 characters).
    pub name: Option<String>,
    /// Position in the list (0 = first).
    pub position: Option<usize>,
}

/// Directory search.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Part of a username or display name (at least 1 character).
    pub q: String,
}

/// People found.
#[derive(Debug, Serialize, ToSchema)]
pub struct People {
    /// Up to 50, as the caller may see them.
    pub people: Vec<PresenceView>,
}

/// Blocked users.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockList {
    /// Usernames.
    pub blocked: Vec<String>,
}

fn me(auth: &AuthUser) -> Result<&Username, ApiError> {
    Ok(&auth.user()?.username)
}

async fn view(state: &AppState, owner: &Username, list: &ContactList) -> Result<ContactsView, ApiError> {
    let mut contacts = Vec::with_capacity(list.contacts.len());
    for (u, c) in &list.contacts {
        if let Ok(presence) = state.presence.view(u, Viewer::User(owner)).await {
            contacts.push(ContactView { group: c.group, level: c.level, presence });
        }
    }
    let groups = list.groups.iter().map(|g| GroupView { id: g.id, name: g.name.clone() }).collect();
    Ok(ContactsView { groups, contacts })
}

/// A local account, or a user of a federated domain (`name@domain`).
fn target(state: &AppState, name: &str) -> Result<Username, ApiError> {
    if name.contains('@') {
        return Ok(state.federation.address(name)?);
    }
    Ok(state.presence.users(&[name.to_owned()])?.remove(0))
}

/// The caller's groups and contacts with their presence.
#[utoipa::path(get, path = "/api/v1/contacts", tag = "contacts", responses((status = 200, body = ContactsView), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, auth: AuthUser) -> Result<Json<ContactsView>, ApiError> {
    let u = me(&auth)?;
    Ok(Json(view(&state, u, &state.presence.contacts(u).await?).await?))
}

/// Adds a contact (and subscribes to their presence); `name@domain` adds a user of a
/// federated server (at External unless `level` says otherwise) and asks their server for it.
#[utoipa::path(post, path = "/api/v1/contacts", tag = "contacts", request_body = AddContact,
    responses((status = 201, body = ContactsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Already a contact, or the list is full", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<AddContact>,
) -> Result<(StatusCode, Json<ContactsView>), ApiError> {
    let u = me(&auth)?;
    let who = target(&state, &req.username)?;
    // Users of other servers start at External, as in Lync.
    let default = if who.is_remote() { AccessLevel::External } else { AccessLevel::Colleagues };
    let level = req.level.unwrap_or(default);
    let list = state.presence.edit_contacts(u, ContactEdit::Add { user: who.clone(), group: req.group, level }).await?;
    if who.is_remote() {
        state.federation.follow(u, &who, true).await?;
    }
    Ok((StatusCode::CREATED, Json(view(&state, u, &list).await?)))
}

/// Moves a contact to another group or changes its access level.
#[utoipa::path(patch, path = "/api/v1/contacts/{username}", tag = "contacts", request_body = EditContact, params(("username" = String, Path, description = "Contact")),
    responses((status = 200, body = ContactsView), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
    ApiJson(req): ApiJson<EditContact>,
) -> Result<Json<ContactsView>, ApiError> {
    let u = me(&auth)?;
    let who = target(&state, &name)?;
    let list =
        state.presence.edit_contacts(u, ContactEdit::Update { user: who, group: req.group, level: req.level }).await?;
    Ok(Json(view(&state, u, &list).await?))
}

/// Removes a contact.
#[utoipa::path(delete, path = "/api/v1/contacts/{username}", tag = "contacts", params(("username" = String, Path, description = "Contact")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let u = me(&auth)?;
    let who = target(&state, &name)?;
    state.presence.edit_contacts(u, ContactEdit::Remove { user: who.clone() }).await?;
    if who.is_remote() {
        state.federation.follow(u, &who, false).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Adds a group at the end (or at `position`).
#[utoipa::path(post, path = "/api/v1/contacts/groups", tag = "contacts", request_body = GroupRequest,
    responses((status = 201, body = ContactsView), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn add_group(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<(StatusCode, Json<ContactsView>), ApiError> {
    let u = me(&auth)?;
    let name = req.name.ok_or_else(|| ApiError::bad_request("name is required"))?;
    let list = state.presence.edit_contacts(u, ContactEdit::AddGroup { name, position: req.position }).await?;
    Ok((StatusCode::CREATED, Json(view(&state, u, &list).await?)))
}

/// Renames or moves a group.
#[utoipa::path(patch, path = "/api/v1/contacts/groups/{id}", tag = "contacts", request_body = GroupRequest, params(("id" = u32, Path, description = "Group id")),
    responses((status = 200, body = ContactsView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn edit_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u32>,
    ApiJson(req): ApiJson<GroupRequest>,
) -> Result<Json<ContactsView>, ApiError> {
    let u = me(&auth)?;
    let list =
        state.presence.edit_contacts(u, ContactEdit::EditGroup { id, name: req.name, position: req.position }).await?;
    Ok(Json(view(&state, u, &list).await?))
}

/// Deletes a group; its contacts move to the default group.
#[utoipa::path(delete, path = "/api/v1/contacts/groups/{id}", tag = "contacts", params(("id" = u32, Path, description = "Group id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_group(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<u32>,
) -> Result<StatusCode, ApiError> {
    state.presence.edit_contacts(me(&auth)?, ContactEdit::RemoveGroup { id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Finds people by username or display name.
#[utoipa::path(get, path = "/api/v1/directory", tag = "contacts", params(DirectoryQuery),
    responses((status = 200, body = People), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
pub async fn directory(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(q): Query<DirectoryQuery>,
) -> Result<Json<People>, ApiError> {
    let u = me(&auth)?;
    let mut people = Vec::new();
    for user in state.accounts.find(&q.q, 50)? {
        people.push(state.presence.view(&user.username, Viewer::User(u)).await?);
    }
    Ok(Json(People { people }))
}

/// Who the caller blocks (contacts at the `blocked` level).
#[utoipa::path(get, path = "/api/v1/me/blocked", tag = "contacts", responses((status = 200, body = BlockList), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn blocked(State(state): State<AppState>, auth: AuthUser) -> Result<Json<BlockList>, ApiError> {
    let list = state.presence.contacts(me(&auth)?).await?;
    let blocked =
        list.contacts.iter().filter(|(_, c)| c.level == AccessLevel::Blocked).map(|(u, _)| u.to_string()).collect();
    Ok(Json(BlockList { blocked }))
}

/// Blocks a user: they see the caller Offline and cannot IM them. Adds them as a contact at the
/// `blocked` level (or lowers an existing contact to it).
#[utoipa::path(put, path = "/api/v1/me/blocked/{username}", tag = "contacts", params(("username" = String, Path, description = "User to block")),
    responses((status = 204, description = "Blocked"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn block(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let u = me(&auth)?;
    let who = target(&state, &name)?;
    state.presence.edit_contacts(u, ContactEdit::Block { user: who }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unblocks a user: a blocked contact goes back to the `colleagues` level.
#[utoipa::path(delete, path = "/api/v1/me/blocked/{username}", tag = "contacts", params(("username" = String, Path, description = "User to unblock")),
    responses((status = 204, description = "Unblocked"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn unblock(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let who = target(&state, &name)?;
    state.presence.edit_contacts(me(&auth)?, ContactEdit::Unblock { user: who }).await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Searching one's own history and readable rooms.

use axum::Json;
use axum::extract::{Query, State};
use halo_search::SearchQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::AuthUser;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use halo_services::views::MessageView;

/// Search criteria; all given ones must hold.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words (all must occur; `"a phrase"`, `-word`).
    pub q: Option<String>,
    /// A participant: only conversations they took part in, or their room posts.
    pub with: Option<String>,
    /// Only this conversation.
    pub conversation: Option<u64>,
    /// Only this room.
    pub room: Option<u64>,
    /// From this time (ms since the Unix epoch, inclusive).
    pub since: Option<u64>,
    /// Before this time (ms, exclusive).
    pub until: Option<u64>,
    /// Most results, 1-200 (default 50).
    pub limit: Option<usize>,
}

/// Matching messages, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    /// The messages.
    pub messages: Vec<MessageView>,
}

/// Searches the caller's conversation history and the rooms they may read.
#[utoipa::path(get, path = "/api/v1/search", tag = "conversations", params(SearchParams),
    description = "The index trails stored messages by under a second.",
    responses((status = 200, body = SearchResults), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(p): Query<SearchParams>,
) -> Result<Json<SearchResults>, ApiError> {
    let user = auth.user()?.username.clone();
    if p.q.is_none()
        && p.with.is_none()
        && p.since.is_none()
        && p.until.is_none()
        && p.conversation.is_none()
        && p.room.is_none()
    {
        return Err(ApiError::bad_request("give at least one of q, with, conversation, room, since, until"));
    }
    let limit = super::conversations::limit(p.limit)?;
    let with = p.with.map(|w| w.trim().to_ascii_lowercase());
    let query = SearchQuery {
        user: user.to_string(),
        rooms: state.rooms.readable(&user)?,
        words: p.q,
        with,
        conversation: p.conversation,
        room: p.room,
        since: p.since,
        until: p.until,
        limit,
        everyone: false,
    };
    let hits = state.search.search(query).await?;
    let messages = state.im.found(&user, &hits)?;
    Ok(Json(SearchResults { messages }))
}

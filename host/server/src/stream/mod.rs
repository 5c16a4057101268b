//! `GET /api/v1/stream`: the WebSocket through which an endpoint (a device) of a user receives
//! events and sends requests. [`hub`] tracks endpoints, [`wire`] is the frame format,
//! [`session`] runs one socket.

pub mod hub;
pub mod pool;
mod session;
mod upgrade;
pub mod wire;
pub mod ws;

use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{AuthUser, bearer};
use crate::error::ApiError;
use crate::state::AppState;
use upgrade::WsUpgrade;
use wire::{Codec, MSGPACK_PROTOCOL};

/// Query of the stream route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Bearer token, for browsers that cannot set headers on a WebSocket.
    pub token: Option<String>,
    /// Name of this endpoint (device), 1-64 characters; default `default`.
    pub endpoint: Option<String>,
}

/// The authenticated principal of a stream request: the header's token, else `?token=`.
pub struct StreamAuth(AuthUser);

impl axum::extract::FromRequestParts<AppState> for StreamAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let query: Query<StreamQuery> =
            Query::try_from_uri(&parts.uri).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
        let token = match bearer(parts)? {
            Some(t) => t.to_owned(),
            None => query.0.token.clone().ok_or(ApiError::unauthorized("missing bearer token or ?token="))?,
        };
        Ok(Self(AuthUser(state.accounts.authenticate(&token).await?)))
    }
}

/// Opens the event stream.
#[utoipa::path(get, path = "/api/v1/stream", tag = "stream",
    params(StreamQuery),
    description = "Upgrades to a WebSocket (JSON text frames, or MessagePack binary frames with subprotocol `halo.msgpack`). Frames are documented in docs/protocol.md.",
    responses(
        (status = 101, description = "Switching to WebSocket"),
        (status = 400, description = "Not a WebSocket request or bad endpoint name", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or invalid token", body = crate::error::ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    StreamAuth(auth): StreamAuth,
    Query(query): Query<StreamQuery>,
    ws: WsUpgrade,
) -> Result<Response, ApiError> {
    let user = auth.user()?.clone();
    let expires_at = auth.expires_at;
    let name = query.endpoint.unwrap_or_else(|| "default".to_owned());
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request("endpoint name must be 1-64 printable characters"));
    }
    let codec = if ws.offers(MSGPACK_PROTOCOL) { Codec::MsgPack } else { Codec::Json };
    let protocol = matches!(codec, Codec::MsgPack).then_some(MSGPACK_PROTOCOL);
    // The socket is served by one task, without tungstenite's per-socket buffers ([`ws`]).
    Ok(ws.accept(protocol, move |conn| session::run(conn, state, user, auth.token, expires_at, name, codec)))
}

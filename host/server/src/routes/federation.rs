//! Federation admin (rules, link state, queues) and the endpoint Halo peers post to (served
//! on the federation listener only; see [`halo_services::federation::peer`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use halo_core::federation::{Access, Route, Rule};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::AdminUser;
use crate::error::{ApiError, ApiJson, ErrorBody};
use crate::state::AppState;
use halo_services::federation::Overview;
use halo_services::federation::peer;

/// A domain's rule: `{"adapter": "xmpp"}` routes it through an adapter plugin,
/// `{"url": "https://peer:5271", "secret": "...", "ca": "/path/ca.pem"}` to a Halo peer,
/// `{"access": "block"}` blocks it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainRequest {
    /// `allow` (default) or `block`.
    #[schema(value_type = Option<String>)]
    pub access: Option<Access>,
    /// The adapter plugin carrying this domain.
    pub adapter: Option<String>,
    /// The Halo peer's federation URL (`https://host:port`).
    pub url: Option<String>,
    /// The secret shared with the peer (at least 16 bytes).
    pub secret: Option<String>,
    /// A PEM file of CA certificates to trust for the peer (default: public roots).
    pub ca: Option<String>,
}

impl DomainRequest {
    fn rule(self) -> Result<Rule, ApiError> {
        let access = self.access.unwrap_or(Access::Allow);
        let route = match (self.adapter, self.url) {
            (Some(_), Some(_)) => return Err(ApiError::bad_request("give either adapter or url, not both")),
            (Some(plugin), None) => Some(Route::Adapter { plugin }),
            (None, Some(url)) => {
                let secret = self.secret.ok_or_else(|| ApiError::bad_request("a Halo peer needs the shared secret"))?;
                Some(Route::Halo { url, secret, ca: self.ca })
            }
            (None, None) => None,
        };
        Ok(Rule { access, route })
    }
}

/// Federation rules, transports and queues.
#[utoipa::path(get, path = "/api/v1/admin/federation", tag = "federation",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn overview(State(state): State<AppState>, _admin: AdminUser) -> Json<Overview> {
    Json(state.federation.overview())
}

/// Sets a domain's rule (`*` for every domain without its own).
#[utoipa::path(put, path = "/api/v1/admin/federation/domains/{domain}", tag = "federation", request_body = DomainRequest,
    params(("domain" = String, Path, description = "Domain, or *")),
    responses((status = 200, body = Overview), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn put_domain(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(domain): Path<String>,
    ApiJson(req): ApiJson<DomainRequest>,
) -> Result<Json<Overview>, ApiError> {
    state.federation.put_rule(&domain, req.rule()?).await?;
    Ok(Json(state.federation.overview()))
}

/// Removes a domain's rule and drops what waits for it.
#[utoipa::path(delete, path = "/api/v1/admin/federation/domains/{domain}", tag = "federation",
    params(("domain" = String, Path, description = "Domain, or *")),
    responses((status = 204, description = "Removed"), (status = 404, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)), security(("bearer" = [])))]
pub async fn remove_domain(
    State(state): State<AppState>,
    _admin: AdminUser,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.federation.remove_rule(&domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A Halo peer's signed batch (federation listener only): answered with a signed receipt
/// ([`peer::SignedReceipt`]).
pub async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = peer::Signed {
        origin: header(peer::ORIGIN),
        timestamp: header(peer::TIMESTAMP),
        signature: header(peer::SIGNATURE),
    };
    let r = peer::receive_signed(&state.federation, signed, &body).await?;
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/json".to_owned()),
        (axum::http::HeaderName::from_static(peer::ORIGIN), r.origin),
        (axum::http::HeaderName::from_static(peer::TIMESTAMP), r.timestamp.to_string()),
        (axum::http::HeaderName::from_static(peer::SIGNATURE), r.signature),
    ];
    Ok((headers, r.body).into_response())
}

/// The federation listener's routes: the peer inbox, nothing else.
pub fn peer_router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/federation/v1/inbox", axum::routing::post(inbox))
        .layer(axum::extract::DefaultBodyLimit::max(peer::MAX_BODY))
}

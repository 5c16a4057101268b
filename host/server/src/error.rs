//! `ApiError`: the one error type HTTP handlers return, and its JSON shape
//! `{"error": code, "message": text}`.

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use halo_core::UserError;
use halo_store::StoreError;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_credentials`, `not_found`.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

/// An error answered to an HTTP client. Client faults carry their message; internal faults are
/// logged in full and answered with a generic text.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed or invalid input (400).
    #[error("{0}")]
    BadRequest(String),
    /// Missing, unknown or expired token (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Wrong username or password (401).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// Not allowed, with a message naming what (403).
    #[error("{0}")]
    Denied(String),
    /// The recipient blocked the sender (403).
    #[error("{0} does not accept messages from you")]
    Blocked(String),
    /// The recipient is in Do Not Disturb and the sender is not in their Workgroup (409).
    #[error("{0} is in Do Not Disturb; only their Workgroup contacts get through")]
    DoNotDisturb(String),
    /// Offline IM is off and the recipient has no connected device (409).
    #[error("{0} is offline and offline messages are turned off on this server")]
    RecipientOffline(String),
    /// An idempotency key was reused for a different message (409).
    #[error("this idempotency key was used for a different message")]
    IdempotencyConflict,
    /// Archiving is failing and the policy says to refuse rather than lose (503).
    #[error(
        "message not sent: compliance archiving is unavailable ({0}) and this server refuses messages it cannot archive; try again later"
    )]
    ArchiveUnavailable(String),
    /// Storage refuses writes (disk full, I/O errors): nothing was changed; retry later (503).
    /// The detail is logged, not sent.
    #[error("the server cannot store data right now; try again later")]
    StorageUnavailable(String),
    /// Too many messages too fast (429).
    #[error("sending too fast; slow down")]
    TooFast,
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// Conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// The username belonged to a deleted account and is never given out again (409).
    #[error(
        "the username {0} belonged to a deleted account and is retired: its conversations, history and archive records stay attached to that name, so no new account may take it; choose another name"
    )]
    UsernameRetired(String),
    /// Too many failed attempts; retry after the given seconds (429).
    #[error("too many failed attempts; retry in {0} s")]
    RateLimited(u64),
    /// Too many logins are waiting for a password check; retry after the given seconds (503).
    #[error("the server is busy checking passwords; retry in {0} s")]
    Busy(u64),
    /// Something broke on the server (500); the detail is logged, not sent.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status and the stable error code (also used in stream error frames).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Self::Forbidden(_) | Self::Denied(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Blocked(_) => (StatusCode::FORBIDDEN, "blocked"),
            Self::RecipientOffline(_) => (StatusCode::CONFLICT, "recipient_offline"),
            Self::DoNotDisturb(_) => (StatusCode::CONFLICT, "do_not_disturb"),
            Self::IdempotencyConflict => (StatusCode::CONFLICT, "idempotency_conflict"),
            Self::TooFast => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::ArchiveUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "archive_unavailable"),
            Self::StorageUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::UsernameRetired(_) => (StatusCode::CONFLICT, "username_retired"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl ApiError {
    /// The text shown to the client; internal details are logged instead.
    pub fn client_message(&self) -> String {
        match self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal server error; see the server log".to_owned()
            }
            Self::StorageUnavailable(detail) => {
                tracing::warn!(%detail, "write refused: storage unavailable");
                self.to_string()
            }
            other => {
                tracing::debug!(code = other.status_and_code().1, %other, "request refused");
                other.to_string()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.client_message();
        let mut resp = (status, axum::Json(ErrorBody { error: code, message })).into_response();
        let retry_after = match self {
            Self::RateLimited(secs) | Self::Busy(secs) => Some(secs),
            Self::StorageUnavailable(_) => Some(crate::storage::RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => Self::Conflict(format!("{what} exists already")),
            StoreError::Unavailable(why) => Self::StorageUnavailable(why),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<halo_core::conversation::ImError> for ApiError {
    fn from(e: halo_core::conversation::ImError) -> Self {
        use halo_core::conversation::ImError as E;
        match e {
            E::NotParticipant | E::Closed => Self::Denied(e.to_string()),
            E::AlreadyParticipant(_) => Self::Conflict(e.to_string()),
            E::TooManyParticipants
            | E::NoOtherParticipant
            | E::EmptyMessage
            | E::MessageTooLarge
            | E::ControlCharacters
            | E::BadKey
            | E::FederatedGroup => Self::BadRequest(e.to_string()),
        }
    }
}

impl From<halo_core::room::RoomError> for ApiError {
    fn from(e: halo_core::room::RoomError) -> Self {
        use halo_core::room::RoomError as E;
        match e {
            E::NotFound => Self::NotFound("no such room".into()),
            E::Forbidden(m) => Self::Forbidden(m),
            E::Invalid(m) => Self::BadRequest(m.into()),
            E::LastManager => Self::Conflict(e.to_string()),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::BadRequest(format!("invalid JSON body: {}", e.body_text()))
    }
}

/// `axum::Json`, but a malformed body is answered in the [`ErrorBody`] shape.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Middleware: every error answer of the API (`/api/…`, `/healthz`, `/metrics`) that is not
/// JSON yet is rewritten into the [`ErrorBody`] shape, keeping its status and headers. This
/// covers what no handler writes: axum's rejections of path and query parameters, `405 Method
/// Not Allowed` (an `Allow` header stays), a body over the size limit, and any layer's answer.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_api = path.starts_with("/api/") || path == "/healthz" || path == "/metrics";
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 16 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        match parts.headers.get(header::ALLOW).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty()) {
            Some(allowed) => format!("method {method} is not allowed on {path}; allowed: {allowed}"),
            None => format!("method {method} is not allowed on {path}"),
        }
    } else if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let body = ErrorBody { error: code_for_status(status), message };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal\",\"message\":\"\"}".to_vec());
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// The error code for a status answered without an [`ApiError`].
fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::CONFLICT => "conflict",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

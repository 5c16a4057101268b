//! `ApiError`: the one error type HTTP handlers return, and its JSON shape
//! `{"error": code, "message": text}`.

use axum::extract::FromRequest;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
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
    /// Too many failed attempts; retry after the given seconds (429).
    #[error("too many failed attempts; retry in {0} s")]
    RateLimited(u64),
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
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
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
            Self::RateLimited(secs) => Some(secs),
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

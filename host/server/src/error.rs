//! `ApiError`: the one error type HTTP handlers return, and its JSON shape
//! `{"error": code, "message": text}`; the one mapping from a [`ServiceError`] to a status.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use halo_core::UserError;
use halo_services::ServiceError;
use halo_services::error::STORAGE_RETRY_AFTER_SECS;

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_credentials`, `not_found`.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// When the server says when to retry (`busy`, `rate_limited`, `storage_unavailable`): how
    /// long to wait, in milliseconds (the `Retry-After` header says the same in whole seconds,
    /// rounded up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// An error answered to an HTTP client (or in a stream `error` frame): a [`ServiceError`] with
/// the status and the stable code it maps to. Client faults carry their message; internal
/// faults are logged in full and answered with a generic text.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    retry_after: Option<Duration>,
    error: ServiceError,
}

/// The one place where what went wrong becomes an HTTP status and an error code.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        use ServiceError as E;
        let (status, code, retry_after) = match &error {
            E::Invalid(_) => (StatusCode::BAD_REQUEST, "bad_request", None),
            E::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            E::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", None),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            E::Blocked(_) => (StatusCode::FORBIDDEN, "blocked", None),
            E::RecipientOffline(_) => (StatusCode::CONFLICT, "recipient_offline", None),
            E::DoNotDisturb(_) => (StatusCode::CONFLICT, "do_not_disturb", None),
            E::IdempotencyConflict => (StatusCode::CONFLICT, "idempotency_conflict", None),
            E::TooFast => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", None),
            E::ArchiveUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "archive_unavailable", None),
            E::StorageUnavailable(_) => {
                let after = Duration::from_secs(STORAGE_RETRY_AFTER_SECS);
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", Some(after))
            }
            E::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            E::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large", None),
            E::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            E::UsernameRetired(_) => (StatusCode::CONFLICT, "username_retired", None),
            E::RateLimited { retry_after } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", Some(Duration::from_secs(*retry_after)))
            }
            E::Busy { retry_after } => (StatusCode::SERVICE_UNAVAILABLE, "busy", Some(*retry_after)),
            E::PeerUnauthorized(_) => (StatusCode::UNAUTHORIZED, "federation_refused", None),
            E::PeerMalformed(_) => (StatusCode::BAD_REQUEST, "federation_refused", None),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        };
        Self { status, code, retry_after, error }
    }
}

impl ApiError {
    /// A 400 `bad_request` with `message` (input the transport itself could not read).
    pub fn bad_request(message: impl Into<String>) -> Self {
        ServiceError::Invalid(message.into()).into()
    }

    /// A 404 `not_found` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ServiceError::NotFound(message.into()).into()
    }

    /// A 403 `forbidden` with `message`.
    pub fn forbidden(message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ServiceError::forbidden(message).into()
    }

    /// A 409 `conflict` with `message`.
    pub fn conflict(message: impl Into<String>) -> Self {
        ServiceError::Conflict(message.into()).into()
    }

    /// A 401 `unauthorized` with `message`.
    pub fn unauthorized(message: &'static str) -> Self {
        ServiceError::unauthorized(message).into()
    }

    /// A 500 `internal` whose `detail` is logged, not shown.
    pub fn internal(detail: impl Into<String>) -> Self {
        ServiceError::Internal(detail.into()).into()
    }

    /// The HTTP status and the stable error code (also used in stream error frames).
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        (self.status, self.code)
    }

    /// How long the client should wait before retrying, when the server says so (the
    /// `Retry-After` header of HTTP answers, `retry_after_ms` in bodies and stream error frames).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// What went wrong.
    pub fn error(&self) -> &ServiceError {
        &self.error
    }

    /// The text shown to the client; internal details are logged instead.
    pub fn client_message(&self) -> String {
        match &self.error {
            ServiceError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal server error; see the server log".to_owned()
            }
            ServiceError::StorageUnavailable(detail) => {
                tracing::warn!(%detail, "write refused: storage unavailable");
                self.error.to_string()
            }
            other => {
                tracing::debug!(code = self.code, %other, "request refused");
                other.to_string()
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = self.client_message();
        let retry_after_ms = self.retry_after.map(millis);
        let body = ErrorBody { error: self.code, message, retry_after_ms };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&retry_after_secs(after).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<UserError> for ApiError {
    fn from(e: UserError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> Self {
        Self::bad_request(format!("invalid JSON body: {}", e.body_text()))
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
    let body = ErrorBody { error: code_for_status(status), message, retry_after_ms: None };
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"internal\",\"message\":\"\"}".to_vec());
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

/// A retry hint in whole milliseconds (saturating).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A retry hint in whole seconds for `Retry-After`, rounded up (HTTP has no finer unit).
fn retry_after_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_error_has_its_status_code_and_retry_after() {
        use ServiceError as E;
        let secs = Duration::from_secs;
        let cases: Vec<(ServiceError, u16, &str, Option<Duration>)> = vec![
            (E::Invalid("x".into()), 400, "bad_request", None),
            (E::unauthorized("x"), 401, "unauthorized", None),
            (E::InvalidCredentials, 401, "invalid_credentials", None),
            (E::forbidden("x"), 403, "forbidden", None),
            (E::Blocked("ann".into()), 403, "blocked", None),
            (E::DoNotDisturb("ann".into()), 409, "do_not_disturb", None),
            (E::RecipientOffline("ann".into()), 409, "recipient_offline", None),
            (E::IdempotencyConflict, 409, "idempotency_conflict", None),
            (E::ArchiveUnavailable("x".into()), 503, "archive_unavailable", None),
            (E::StorageUnavailable("x".into()), 503, "storage_unavailable", Some(secs(STORAGE_RETRY_AFTER_SECS))),
            (E::TooFast, 429, "rate_limited", None),
            (E::NotFound("x".into()), 404, "not_found", None),
            (E::TooLarge("x".into()), 413, "too_large", None),
            (E::Conflict("x".into()), 409, "conflict", None),
            (E::UsernameRetired("ann".into()), 409, "username_retired", None),
            (E::RateLimited { retry_after: 7 }, 429, "rate_limited", Some(secs(7))),
            (E::Busy { retry_after: secs(1) }, 503, "busy", Some(secs(1))),
            (E::Busy { retry_after: Duration::from_millis(1500) }, 503, "busy", Some(Duration::from_millis(1500))),
            (E::PeerUnauthorized("x".into()), 401, "federation_refused", None),
            (E::PeerMalformed("x".into()), 400, "federation_refused", None),
            (E::Internal("secret detail".into()), 500, "internal", None),
        ];
        for (error, status, code, retry) in cases {
            let e = ApiError::from(error);
            assert_eq!((e.status.as_u16(), e.code, e.retry_after), (status, code, retry), "{e:?}");
            let resp = e.into_response();
            let header: Option<u64> =
                resp.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()?.parse().ok());
            // Whole seconds in the header, rounded up; milliseconds in the body.
            assert_eq!((resp.status().as_u16(), header), (status, retry.map(retry_after_secs)));
        }
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(secs(1)), 1);
        let internal = ApiError::from(ServiceError::Internal("secret detail".into()));
        assert!(!internal.client_message().contains("secret"), "internal details are logged, not sent");
    }
}

//! [`ServiceError`]: what went wrong in a service, in the service's terms. The server maps each
//! variant to an HTTP status and a stable error code in one place
//! (`impl From<ServiceError> for ApiError` in `halo-server`); the texts here are what clients
//! read as `message`.

use std::borrow::Cow;

use halo_core::UserError;
use halo_store::StoreError;

/// Seconds a client is told to wait before retrying a write refused for storage.
pub const STORAGE_RETRY_AFTER_SECS: u64 = crate::storage::RETRY_AFTER_SECS;

/// An operation refused or failed. Client faults carry their message; internal faults carry a
/// detail that the transport logs instead of showing.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Malformed or invalid input.
    #[error("{0}")]
    Invalid(String),
    /// Missing, unknown or expired credentials.
    #[error("{0}")]
    Unauthorized(Cow<'static, str>),
    /// Wrong username or password.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Authenticated but not allowed.
    #[error("{0}")]
    Forbidden(Cow<'static, str>),
    /// The recipient blocked the sender.
    #[error("{0} does not accept messages from you")]
    Blocked(String),
    /// The recipient is in Do Not Disturb and the sender is not in their Workgroup.
    #[error("{0} is in Do Not Disturb; only their Workgroup contacts get through")]
    DoNotDisturb(String),
    /// Offline IM is off and the recipient has no connected device.
    #[error("{0} is offline and offline messages are turned off on this server")]
    RecipientOffline(String),
    /// An idempotency key was reused for a different message.
    #[error("this idempotency key was used for a different message")]
    IdempotencyConflict,
    /// Archiving is failing and the policy says to refuse rather than lose.
    #[error(
        "message not sent: compliance archiving is unavailable ({0}) and this server refuses messages it cannot archive; try again later"
    )]
    ArchiveUnavailable(String),
    /// Storage refuses writes (disk full, I/O errors): nothing was changed; retry later. The
    /// detail is for the log.
    #[error("the server cannot store data right now; try again later")]
    StorageUnavailable(String),
    /// Too many messages too fast (no fixed retry time).
    #[error("sending too fast; slow down")]
    TooFast,
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// An upload over its size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The username belonged to a deleted account and is never given out again.
    #[error(
        "the username {0} belonged to a deleted account and is retired: its conversations, history and archive records stay attached to that name, so no new account may take it; choose another name"
    )]
    UsernameRetired(String),
    /// Too many failed attempts.
    #[error("too many failed attempts; retry in {retry_after} s")]
    RateLimited {
        /// Seconds until an attempt may succeed.
        retry_after: u64,
    },
    /// The server is overloaded (too many logins waiting for a password check, or a write
    /// queue full): nothing was done; retry after `retry_after`. Writes refused this way were
    /// not stored, so a retry (with the same idempotency key) cannot duplicate them.
    #[error("the server is busy; retry in {} ms", retry_after.as_millis())]
    Busy {
        /// How long to wait before retrying.
        retry_after: std::time::Duration,
    },
    /// A Halo peer's request could not be authenticated (bad origin, timestamp or signature).
    #[error("{0}")]
    PeerUnauthorized(String),
    /// A Halo peer's request was authenticated but malformed.
    #[error("{0}")]
    PeerMalformed(String),
    /// Something broke on the server; the detail is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A service's result.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

impl ServiceError {
    /// An [`ServiceError::Invalid`] with `message`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    /// A [`ServiceError::Forbidden`] with `message`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Forbidden(message.into())
    }

    /// A [`ServiceError::Unauthorized`] with `message`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::Unauthorized(message.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists(what) => Self::Conflict(format!("{what} exists already")),
            StoreError::Unavailable(why) => Self::StorageUnavailable(why),
            // The IM log's queue is full: it drains within milliseconds, so the hint is short.
            StoreError::Busy(_) => Self::Busy { retry_after: std::time::Duration::from_millis(100) },
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<UserError> for ServiceError {
    fn from(e: UserError) -> Self {
        Self::Invalid(e.to_string())
    }
}

impl From<halo_core::conversation::ImError> for ServiceError {
    fn from(e: halo_core::conversation::ImError) -> Self {
        use halo_core::conversation::ImError as E;
        match e {
            E::NotParticipant | E::Closed => Self::Forbidden(e.to_string().into()),
            E::AlreadyParticipant(_) => Self::Conflict(e.to_string()),
            E::TooManyParticipants
            | E::NoOtherParticipant
            | E::EmptyMessage
            | E::MessageTooLarge
            | E::ControlCharacters
            | E::BadKey
            | E::HostedElsewhere => Self::Invalid(e.to_string()),
        }
    }
}

impl From<halo_core::room::RoomError> for ServiceError {
    fn from(e: halo_core::room::RoomError) -> Self {
        use halo_core::room::RoomError as E;
        match e {
            E::NotFound => Self::NotFound("no such room".into()),
            E::Forbidden(m) => Self::Forbidden(m.into()),
            E::Invalid(m) => Self::Invalid(m.into()),
            E::LastManager => Self::Conflict(e.to_string()),
        }
    }
}

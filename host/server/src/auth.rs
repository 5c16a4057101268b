//! Authentication as extractors: a handler taking [`AuthUser`] cannot run without a valid token,
//! one taking [`AdminUser`] cannot run for a non-admin (401 and 403 respectively).

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use halo_core::{Role, User};
use halo_store::TokenHash;

use crate::error::ApiError;
use crate::state::AppState;

/// Who a valid token belongs to.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A stored account (re-read on every request, so disabling takes effect at once).
    User(Box<User>),
    /// The local command-line tool, through the token `halo serve` writes into its data dir.
    LocalAdmin,
}

/// A request carrying a valid bearer token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    /// Who it is.
    pub principal: Principal,
    /// Hash of the token used (to end this session, or sockets opened with it).
    pub token: TokenHash,
}

impl AuthUser {
    /// The account behind the token; the local admin token has none (403).
    pub fn user(&self) -> Result<&User, ApiError> {
        match &self.principal {
            Principal::User(u) => Ok(u),
            Principal::LocalAdmin => Err(ApiError::Forbidden("the local admin token has no account; log in as a user")),
        }
    }

    /// Whether the principal may use admin routes.
    pub fn is_admin(&self) -> bool {
        match &self.principal {
            Principal::User(u) => u.has_role(Role::Admin),
            Principal::LocalAdmin => true,
        }
    }

    /// A name for logs.
    pub fn name(&self) -> &str {
        match &self.principal {
            Principal::User(u) => u.username.as_str(),
            Principal::LocalAdmin => "(local admin)",
        }
    }
}

/// The token in `Authorization: Bearer <token>`, if any.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::Unauthorized("Authorization must be 'Bearer <token>'")),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or(ApiError::Unauthorized("missing bearer token"))?;
        state.accounts.authenticate(token).await
    }
}

/// Who is calling a route that applications and anonymous viewers may use too.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in user (or the local admin).
    User(AuthUser),
    /// An application with an admin-issued app token.
    App(halo_store::AppToken),
    /// No token.
    Anonymous,
}

impl Caller {
    /// Refuses anonymous callers, and apps without `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        match self {
            Caller::User(_) => Ok(()),
            Caller::App(app) if app.scopes.iter().any(|s| s == scope) => Ok(()),
            Caller::App(_) => Err(ApiError::Denied(format!("this app token lacks the {scope} scope"))),
            Caller::Anonymous => Err(ApiError::Unauthorized("missing bearer token")),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    /// The bearer header, else `?token=` (for `<img>` and badge URLs); no token is anonymous,
    /// a bad one is 401.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let query_token =
            parts.uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_owned));
        let token = match bearer(parts)? {
            Some(t) => t.to_owned(),
            None => match query_token {
                Some(t) => t,
                None => return Ok(Caller::Anonymous),
            },
        };
        state.accounts.authenticate_any(&token).await
    }
}

/// A request from an administrator.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if !auth.is_admin() {
            return Err(ApiError::Forbidden("this route needs the admin role"));
        }
        Ok(Self(auth))
    }
}

/// A request from a compliance officer (role `compliance`): the only ones who read the
/// compliance archive. Admins manage the policy but do not read the archive unless they
/// also hold this role.
#[derive(Debug, Clone)]
pub struct ComplianceUser(pub AuthUser);

impl FromRequestParts<AppState> for ComplianceUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        match &auth.principal {
            Principal::User(u) if u.has_role(Role::Compliance) => Ok(Self(auth)),
            _ => Err(ApiError::Forbidden("this route needs the compliance role")),
        }
    }
}

/// A request from an admin or a compliance officer.
#[derive(Debug, Clone)]
pub struct OversightUser(pub AuthUser);

impl FromRequestParts<AppState> for OversightUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        let compliance = matches!(&auth.principal, Principal::User(u) if u.has_role(Role::Compliance));
        if !auth.is_admin() && !compliance {
            return Err(ApiError::Forbidden("this route needs the admin or compliance role"));
        }
        Ok(Self(auth))
    }
}

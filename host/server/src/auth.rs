//! Authentication as extractors over the services' [`Principal`]: a handler taking [`AuthUser`]
//! cannot run without a valid token, one taking [`AdminUser`] cannot run for a non-admin (401
//! and 403 respectively). The services resolve tokens and decide roles; these only read the
//! `Authorization` header (or `?token=`) and wrap the answer.

use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
pub use halo_services::{Caller, Identity, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// A request carrying a valid bearer token.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Principal);

impl Deref for AuthUser {
    type Target = Principal;

    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// The token in `Authorization: Bearer <token>`, if any.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized("Authorization must be 'Bearer <token>'")),
    }
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or(ApiError::unauthorized("missing bearer token"))?;
        Ok(Self(state.accounts.authenticate(token).await?))
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
        Ok(state.accounts.authenticate_any(&token).await?)
    }
}

/// A request from an administrator.
#[derive(Debug, Clone)]
pub struct AdminUser(pub AuthUser);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        auth.require_admin()?;
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
        auth.require_compliance()?;
        Ok(Self(auth))
    }
}

/// A request from an admin or a compliance officer.
#[derive(Debug, Clone)]
pub struct OversightUser(pub AuthUser);

impl FromRequestParts<AppState> for OversightUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        auth.require_oversight()?;
        Ok(Self(auth))
    }
}

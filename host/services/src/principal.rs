//! Who is calling: the [`Principal`] a valid bearer token resolves to
//! ([`crate::accounts::Accounts::authenticate`]), and the [`Caller`] of routes that
//! applications and anonymous viewers may use too. The transport wraps these (the server's
//! extractors); the services decide what each may do.

use std::borrow::Cow;

use halo_core::{Role, User, Username};
use halo_store::{AppToken, TokenHash};

use crate::error::ServiceError;

/// Whose token it is.
#[derive(Debug, Clone)]
pub enum Identity {
    /// A stored account (re-read on every request, so disabling takes effect at once).
    User(Box<User>),
    /// The local command-line tool, through the token `halo serve` writes into its data dir.
    LocalAdmin,
}

/// An authenticated caller: who, and the token used.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Who it is.
    pub identity: Identity,
    /// Hash of the token used (to end this session, or sockets opened with it).
    pub token: TokenHash,
    /// When the token's session ends, ms since the Unix epoch (`None`: the local admin token,
    /// which ends with the server).
    pub expires_at: Option<u64>,
}

impl Principal {
    /// The account behind the token; the local admin token has none (forbidden).
    pub fn user(&self) -> Result<&User, ServiceError> {
        match &self.identity {
            Identity::User(u) => Ok(u),
            Identity::LocalAdmin => {
                Err(ServiceError::forbidden("the local admin token has no account; log in as a user"))
            }
        }
    }

    /// The account's username; the local admin token has none (forbidden).
    pub fn username(&self) -> Result<&Username, ServiceError> {
        self.user().map(|u| &u.username)
    }

    /// Whether the principal may use admin routes.
    pub fn is_admin(&self) -> bool {
        match &self.identity {
            Identity::User(u) => u.has_role(Role::Admin),
            Identity::LocalAdmin => true,
        }
    }

    /// Whether the principal is an account holding `role` (the local admin holds none).
    pub fn has_role(&self, role: Role) -> bool {
        matches!(&self.identity, Identity::User(u) if u.has_role(role))
    }

    /// A name for logs.
    pub fn name(&self) -> &str {
        match &self.identity {
            Identity::User(u) => u.username.as_str(),
            Identity::LocalAdmin => "(local admin)",
        }
    }

    /// Refuses (forbidden, with `why`) unless the principal may use admin routes.
    pub fn require_admin(&self) -> Result<(), ServiceError> {
        if self.is_admin() { Ok(()) } else { Err(ServiceError::forbidden("this route needs the admin role")) }
    }

    /// Refuses unless the principal is a compliance officer (the only ones who read the
    /// compliance archive).
    pub fn require_compliance(&self) -> Result<(), ServiceError> {
        if self.has_role(Role::Compliance) {
            Ok(())
        } else {
            Err(ServiceError::forbidden("this route needs the compliance role"))
        }
    }

    /// Refuses unless the principal is an admin or a compliance officer.
    pub fn require_oversight(&self) -> Result<(), ServiceError> {
        if self.is_admin() || self.has_role(Role::Compliance) {
            Ok(())
        } else {
            Err(ServiceError::forbidden("this route needs the admin or compliance role"))
        }
    }
}

/// Who is calling a route that applications and anonymous viewers may use too.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A signed-in user (or the local admin).
    User(Principal),
    /// An application with an admin-issued app token.
    App(AppToken),
    /// No token.
    Anonymous,
}

impl Caller {
    /// Refuses anonymous callers, and apps without `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ServiceError> {
        match self {
            Caller::User(_) => Ok(()),
            Caller::App(app) if app.scopes.iter().any(|s| s == scope) => Ok(()),
            Caller::App(_) => Err(ServiceError::forbidden(format!("this app token lacks the {scope} scope"))),
            Caller::Anonymous => Err(ServiceError::Unauthorized(Cow::Borrowed("missing bearer token"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use halo_core::NewUser;

    use super::*;

    fn principal(roles: &[Role]) -> Principal {
        let new = NewUser { roles: roles.iter().copied().collect(), ..Default::default() };
        let user = new.into_user(Username::parse("ann").expect("name"), String::new(), 0).expect("user");
        Principal { identity: Identity::User(Box::new(user)), token: [0; 32], expires_at: Some(1) }
    }

    #[test]
    fn roles_decide_what_a_principal_may_do() {
        let local = Principal { identity: Identity::LocalAdmin, token: [0; 32], expires_at: None };
        let (plain, admin, officer) = (principal(&[]), principal(&[Role::Admin]), principal(&[Role::Compliance]));
        assert!(local.require_admin().is_ok() && local.user().is_err() && local.require_compliance().is_err());
        assert!(plain.require_admin().is_err() && plain.require_oversight().is_err());
        assert!(admin.require_admin().is_ok() && admin.require_oversight().is_ok());
        assert!(admin.require_compliance().is_err(), "admins do not read the archive");
        assert!(officer.require_compliance().is_ok() && officer.require_oversight().is_ok());
        assert!(matches!(Caller::Anonymous.require("presence:read"), Err(ServiceError::Unauthorized(_))));
        assert!(Caller::User(plain).require("presence:read").is_ok());
    }
}

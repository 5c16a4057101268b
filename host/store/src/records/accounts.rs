//! Accounts and login sessions.

use std::collections::BTreeSet;

use halo_core::user::{Profile, Role};
use halo_core::{Millis, User, Username};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};
use crate::sessions::Session;

stored!(User => UserV1, Session => SessionV1);

unit_enum! {
    /// An account's role.
    RoleV1 <=> Role, "snake_case" { User, Admin, Compliance }
}

/// An account's contact card.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ProfileV1 {
    pub(crate) display_name: Option<String>,
    pub(crate) email: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) department: Option<String>,
    pub(crate) phone: Option<String>,
}

/// `users`: an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserV1 {
    pub(crate) username: Username,
    pub(crate) profile: ProfileV1,
    pub(crate) roles: BTreeSet<RoleV1>,
    pub(crate) disabled: bool,
    pub(crate) password_hash: String,
    pub(crate) created_at: Millis,
    pub(crate) updated_at: Millis,
}

impl From<&Profile> for ProfileV1 {
    fn from(p: &Profile) -> Self {
        let Profile { display_name, email, title, department, phone } = p.clone();
        Self { display_name, email, title, department, phone }
    }
}

impl From<ProfileV1> for Profile {
    fn from(p: ProfileV1) -> Self {
        let ProfileV1 { display_name, email, title, department, phone } = p;
        Self { display_name, email, title, department, phone }
    }
}

impl From<&User> for UserV1 {
    fn from(u: &User) -> Self {
        let User { username, profile, roles, disabled, password_hash, created_at, updated_at } = u;
        Self {
            username: username.clone(),
            profile: profile.into(),
            roles: roles.iter().map(RoleV1::from).collect(),
            disabled: *disabled,
            password_hash: password_hash.clone(),
            created_at: *created_at,
            updated_at: *updated_at,
        }
    }
}

impl From<UserV1> for User {
    fn from(u: UserV1) -> Self {
        let UserV1 { username, profile, roles, disabled, password_hash, created_at, updated_at } = u;
        Self {
            username,
            profile: profile.into(),
            roles: roles.into_iter().map(Role::from).collect(),
            disabled,
            password_hash,
            created_at,
            updated_at,
        }
    }
}

/// `sessions`: a logged-in session (keyed by its token's hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SessionV1 {
    pub(crate) username: Username,
    pub(crate) created_at: Millis,
    pub(crate) expires_at: Millis,
}

impl From<&Session> for SessionV1 {
    fn from(s: &Session) -> Self {
        let Session { username, created_at, expires_at } = s;
        Self { username: username.clone(), created_at: *created_at, expires_at: *expires_at }
    }
}

impl From<SessionV1> for Session {
    fn from(s: SessionV1) -> Self {
        let SessionV1 { username, created_at, expires_at } = s;
        Self { username, created_at, expires_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::golden::pin;

    fn name(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    #[test]
    fn user_v1_is_pinned() {
        let full = User {
            username: name("alice"),
            profile: Profile {
                display_name: Some("Alice A.".into()),
                email: Some("alice@example.org".into()),
                title: Some("Engineer".into()),
                department: Some("R&D".into()),
                phone: Some("+1 555".into()),
            },
            roles: [Role::Admin, Role::Compliance].into(),
            disabled: true,
            password_hash: "$argon2id$v=19$x".into(),
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_001,
        };
        let bare = User {
            username: name("bob"),
            profile: Profile::default(),
            roles: BTreeSet::new(),
            disabled: false,
            password_hash: String::new(),
            created_at: 0,
            updated_at: 0,
        };
        pin("users", include_str!("golden/user_v1.hex"), &[full, bare]);
    }

    #[test]
    fn session_v1_is_pinned() {
        let s = Session { username: name("alice"), created_at: 1_700_000_000_000, expires_at: 1_702_592_000_000 };
        pin("sessions", include_str!("golden/session_v1.hex"), &[s]);
    }
}

//! Accounts: usernames, roles, profiles and their validation rules.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Millis;

/// Longest username accepted, in bytes.
pub const MAX_USERNAME_LEN: usize = 64;
/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: argon2 happily hashes megabytes, a login body should not.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest profile field (display name, email, title, department, phone), in characters.
pub const MAX_PROFILE_FIELD_CHARS: usize = 256;

/// Why an account operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    /// The username breaks the naming rules.
    #[error("invalid username {0:?}: use 1-64 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit")]
    InvalidUsername(String),
    /// The password is too short or too long.
    #[error("password must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_BYTES} bytes long")]
    InvalidPassword,
    /// A profile field is too long or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field's name as the API spells it.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// A local account name: lowercase ASCII letters, digits, `.`, `_`, `-`; starts with a letter or
/// digit; at most [`MAX_USERNAME_LEN`] bytes. Input is lowercased, so `Alice` and `alice` are one
/// account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Validates and normalises (lowercases) a username.
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let name = raw.trim().to_ascii_lowercase();
        let ok = !name.is_empty()
            && name.len() <= MAX_USERNAME_LEN
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && name.as_bytes()[0].is_ascii_alphanumeric();
        if ok { Ok(Self(name)) } else { Err(UserError::InvalidUsername(raw.to_owned())) }
    }

    /// Validates a local username or a federated address `name@domain` (a user of another
    /// server; see [`crate::federation`]), lowercased. Accounts are always local: only
    /// [`Username::parse`] names them.
    pub fn parse_address(raw: &str) -> Result<Self, UserError> {
        match raw.trim().split_once('@') {
            None => Self::parse(raw),
            Some((local, domain)) => {
                let local = local.to_ascii_lowercase();
                let domain =
                    crate::federation::Domain::parse(domain).map_err(|_| UserError::InvalidUsername(raw.to_owned()))?;
                if !crate::federation::valid_localpart(&local) {
                    return Err(UserError::InvalidUsername(raw.to_owned()));
                }
                Ok(Self(format!("{local}@{}", domain.as_str())))
            }
        }
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is a user of another server (`name@domain`).
    pub fn is_remote(&self) -> bool {
        self.0.contains('@')
    }

    /// The server a remote user belongs to; `None` for a local user.
    pub fn domain(&self) -> Option<&str> {
        self.0.split_once('@').map(|(_, d)| d)
    }

    /// The part before `@` (the whole name for a local user).
    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or(&self.0, |(l, _)| l)
    }
}

impl TryFrom<String> for Username {
    type Error = UserError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse_address(&s)
    }
}

impl From<Username> for String {
    fn from(u: Username) -> String {
        u.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an account may do beyond using IM and presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every account: IM, presence, contacts.
    User,
    /// Manages accounts, plugins, policies and federation.
    Admin,
    /// Searches and exports the compliance archive.
    Compliance,
}

/// Checks a password against the length rules (not its strength: that is the organisation's policy).
pub fn check_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::InvalidPassword);
    }
    Ok(())
}

/// The contact-card fields of an account, all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Name shown to others; defaults to the username.
    pub display_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Phone number, free-form.
    pub phone: Option<String>,
}

/// A stored account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The account's unique name.
    pub username: Username,
    /// Contact-card fields.
    pub profile: Profile,
    /// Roles beyond [`Role::User`], which every account has.
    pub roles: BTreeSet<Role>,
    /// A disabled account cannot log in and has no sessions.
    pub disabled: bool,
    /// PHC-format argon2 hash of the password.
    pub password_hash: String,
    /// When the account was created.
    pub created_at: Millis,
    /// When the account was last changed.
    pub updated_at: Millis,
}

impl User {
    /// Whether the account holds `role` (every account holds [`Role::User`]).
    pub fn has_role(&self, role: Role) -> bool {
        role == Role::User || self.roles.contains(&role)
    }

    /// An enabled account holding [`Role::Admin`].
    pub fn is_active_admin(&self) -> bool {
        !self.disabled && self.has_role(Role::Admin)
    }

    /// All roles, [`Role::User`] included, in a stable order.
    pub fn all_roles(&self) -> Vec<Role> {
        let mut roles: BTreeSet<Role> = self.roles.clone();
        roles.insert(Role::User);
        roles.into_iter().collect()
    }
}

/// What an admin supplies to create an account (the password is hashed by the caller).
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    /// Contact-card fields.
    pub profile: Profile,
    /// Extra roles.
    pub roles: BTreeSet<Role>,
}

impl NewUser {
    /// Builds the stored account after validating the profile.
    pub fn into_user(self, username: Username, password_hash: String, now: Millis) -> Result<User, UserError> {
        if username.is_remote() {
            return Err(UserError::InvalidUsername(username.0));
        }
        let profile = clean_profile(self.profile)?;
        Ok(User {
            username,
            profile,
            roles: without_user_role(self.roles),
            disabled: false,
            password_hash,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A partial change to an account: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileUpdate {
    /// New display name.
    pub display_name: Option<Option<String>>,
    /// New e-mail address.
    pub email: Option<Option<String>>,
    /// New title.
    pub title: Option<Option<String>>,
    /// New department.
    pub department: Option<Option<String>>,
    /// New phone number.
    pub phone: Option<Option<String>>,
    /// New role set (admin only).
    pub roles: Option<BTreeSet<Role>>,
    /// Enable or disable (admin only).
    pub disabled: Option<bool>,
}

impl ProfileUpdate {
    /// Whether the update touches what only an admin may change.
    pub fn touches_privileges(&self) -> bool {
        self.roles.is_some() || self.disabled.is_some()
    }

    /// Applies the update to `user`, validating the result.
    pub fn apply(self, user: &mut User, now: Millis) -> Result<(), UserError> {
        let mut profile = user.profile.clone();
        let fields = [
            (&mut profile.display_name, self.display_name),
            (&mut profile.email, self.email),
            (&mut profile.title, self.title),
            (&mut profile.department, self.department),
            (&mut profile.phone, self.phone),
        ];
        for (slot, change) in fields {
            if let Some(value) = change {
                *slot = value;
            }
        }
        user.profile = clean_profile(profile)?;
        if let Some(roles) = self.roles {
            user.roles = without_user_role(roles);
        }
        if let Some(disabled) = self.disabled {
            user.disabled = disabled;
        }
        user.updated_at = now;
        Ok(())
    }
}

fn without_user_role(mut roles: BTreeSet<Role>) -> BTreeSet<Role> {
    roles.remove(&Role::User);
    roles
}

/// Trims fields, turns empty ones into `None`, and checks lengths and the e-mail's shape.
fn clean_profile(p: Profile) -> Result<Profile, UserError> {
    fn field(name: &'static str, v: Option<String>) -> Result<Option<String>, UserError> {
        let Some(v) = v else { return Ok(None) };
        let v = v.trim();
        if v.is_empty() {
            return Ok(None);
        }
        if v.chars().count() > MAX_PROFILE_FIELD_CHARS {
            return Err(UserError::InvalidField { field: name, reason: "longer than 256 characters" });
        }
        if v.chars().any(char::is_control) {
            return Err(UserError::InvalidField { field: name, reason: "contains control characters" });
        }
        Ok(Some(v.to_owned()))
    }
    let email = field("email", p.email)?;
    if let Some(e) = &email {
        let valid = e.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !e.contains(' '));
        if !valid {
            return Err(UserError::InvalidField { field: "email", reason: "not an e-mail address" });
        }
    }
    Ok(Profile {
        display_name: field("display_name", p.display_name)?,
        email,
        title: field("title", p.title)?,
        department: field("department", p.department)?,
        phone: field("phone", p.phone)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_and_checked() {
        assert_eq!(Username::parse(" Alice ").map(|u| u.0), Ok("alice".into()));
        assert_eq!(Username::parse("bob.smith-2_x").map(|u| u.0), Ok("bob.smith-2_x".into()));
        for bad in ["", ".alice", "-x", "al ice", "ålice", "a@b", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn passwords_have_length_bounds() {
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
        assert!(check_password(&"x".repeat(1025)).is_err());
    }

    fn user() -> User {
        let name = Username::parse("alice").expect("valid");
        NewUser::default().into_user(name, "h".into(), 1).expect("valid")
    }

    #[test]
    fn update_sets_clears_and_validates() {
        let mut u = user();
        let up = ProfileUpdate {
            display_name: Some(Some(" Alice A ".into())),
            email: Some(Some("a@x.org".into())),
            ..Default::default()
        };
        up.apply(&mut u, 5).expect("valid update");
        assert_eq!(u.profile.display_name.as_deref(), Some("Alice A"));
        assert_eq!(u.updated_at, 5);
        ProfileUpdate { email: Some(None), ..Default::default() }.apply(&mut u, 6).expect("clear");
        assert_eq!(u.profile.email, None);
        let bad = ProfileUpdate { email: Some(Some("nope".into())), ..Default::default() };
        assert!(bad.apply(&mut u, 7).is_err());
        let bad = ProfileUpdate { title: Some(Some("x".repeat(257))), ..Default::default() };
        assert!(bad.apply(&mut u, 7).is_err());
        assert_eq!(u.updated_at, 6, "a refused update changes nothing");
    }

    #[test]
    fn roles_always_include_user() {
        let mut u = user();
        assert_eq!(u.all_roles(), vec![Role::User]);
        assert!(!u.is_active_admin());
        ProfileUpdate { roles: Some([Role::Admin, Role::User].into()), ..Default::default() }
            .apply(&mut u, 2)
            .expect("ok");
        assert_eq!(u.roles, [Role::Admin].into());
        assert!(u.is_active_admin());
        u.disabled = true;
        assert!(!u.is_active_admin());
    }
}

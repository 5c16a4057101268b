//! JSON bodies of the REST API (request and response types), with their OpenAPI schemas.

use halo_core::{Role, User};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An account as the API shows it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Unique, lowercase account name.
    pub username: String,
    /// Name shown to others (the username when unset).
    pub display_name: String,
    /// E-mail address.
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Roles; always includes `user`.
    #[schema(value_type = Vec<String>, example = json!(["user", "admin"]))]
    pub roles: Vec<Role>,
    /// A disabled account cannot log in.
    pub disabled: bool,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_at: u64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        let p = &u.profile;
        Self {
            username: u.username.to_string(),
            display_name: p.display_name.clone().unwrap_or_else(|| u.username.to_string()),
            email: p.email.clone(),
            title: p.title.clone(),
            department: p.department.clone(),
            phone: p.phone.clone(),
            roles: u.all_roles(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// `POST /api/v1/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Account name (case-insensitive).
    pub username: String,
    /// Password.
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Bearer token: send as `Authorization: Bearer <token>` (or `?token=` on the stream).
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Expiry, ms since the Unix epoch.
    pub expires_at: u64,
    /// The logged-in account.
    pub user: UserView,
}

/// `POST /api/v1/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    /// Account name: 1-64 of a-z 0-9 . _ - (lowercased).
    pub username: String,
    /// Initial password (8 to 1024 bytes).
    pub password: String,
    /// Name shown to others.
    pub display_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Extra roles: `admin`, `compliance`.
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
}

/// `PATCH` of an account: absent fields are left alone, `""` clears a text field.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    /// Name shown to others.
    pub display_name: Option<String>,
    /// E-mail address.
    pub email: Option<String>,
    /// Job title.
    pub title: Option<String>,
    /// Department.
    pub department: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// Replace the role set (admin only).
    #[schema(value_type = Option<Vec<String>>)]
    pub roles: Option<Vec<Role>>,
    /// Disable or enable the account (admin only).
    pub disabled: Option<bool>,
}

impl From<UpdateUserRequest> for halo_core::ProfileUpdate {
    fn from(r: UpdateUserRequest) -> Self {
        let text = |v: Option<String>| v.map(|s| if s.trim().is_empty() { None } else { Some(s) });
        Self {
            display_name: text(r.display_name),
            email: text(r.email),
            title: text(r.title),
            department: text(r.department),
            phone: text(r.phone),
            roles: r.roles.map(|r| r.into_iter().collect()),
            disabled: r.disabled,
        }
    }
}

/// `PUT /api/v1/users/{username}/password` (admin reset).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPasswordRequest {
    /// The new password.
    pub password: String,
}

/// `PUT /api/v1/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The current password.
    pub current_password: String,
    /// The new password.
    pub new_password: String,
}

/// Paging of `GET /api/v1/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// Return accounts after this username (the previous page's `next`).
    pub after: Option<String>,
    /// Page size, 1-1000 (default 100).
    pub limit: Option<usize>,
    /// Only accounts whose username, display name, e-mail, title or department contains this
    /// (case-insensitive).
    pub q: Option<String>,
}

/// A page of accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// Accounts in username order.
    pub users: Vec<UserView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

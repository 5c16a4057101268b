//! App tokens: admins issue them so other applications (intranet pages, mail clients, calendar
//! and telephony integrations) can read presence or feed calendar and phone state. Part of the
//! account service; [`Accounts::authenticate_any`] resolves them.

use halo_store::AppToken;

use crate::accounts::Accounts;
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::principal::Principal;
use crate::token;

/// Scopes an app token may carry.
pub const SCOPES: [&str; 3] = ["presence:read", "calendar:write", "phone:write"];

/// A newly issued app token: its record and the secret, shown once.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The stored record.
    pub token: AppToken,
    /// The bearer token.
    pub secret: String,
}

impl Accounts {
    /// Every app token, by name.
    pub fn app_tokens(&self) -> Result<Vec<AppToken>, ServiceError> {
        let mut tokens: Vec<AppToken> = self.store.presence().app_tokens()?.into_iter().map(|(_, t)| t).collect();
        tokens.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tokens)
    }

    /// Issues an app token named `name` (1-64 printable characters, unique) with `scopes`
    /// (some of [`SCOPES`]), by `admin`.
    pub async fn issue_app_token(
        &self,
        admin: &Principal,
        name: &str,
        scopes: Vec<String>,
    ) -> Result<Issued, ServiceError> {
        let name = name.trim().to_owned();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(ServiceError::invalid("name must be 1-64 printable characters"));
        }
        if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.contains(&s.as_str())) {
            return Err(ServiceError::invalid(format!("scopes must be some of {}", SCOPES.join(", "))));
        }
        let _w = self.writes.lock().await;
        if self.store.presence().app_tokens()?.iter().any(|(_, t)| t.name == name) {
            return Err(ServiceError::Conflict(format!("an app token named {name:?} exists")));
        }
        let secret = token::generate();
        let record = AppToken { name, scopes, created_by: admin.name().to_owned(), created_at: now_ms() };
        self.store.presence().put_app_token(&token::hash(&secret), &record).await?;
        tracing::info!(name = %record.name, by = %record.created_by, "app token issued");
        Ok(Issued { token: record, secret })
    }

    /// Revokes the app token named `name` (not found if none).
    pub async fn revoke_app_token(&self, name: &str) -> Result<(), ServiceError> {
        let _w = self.writes.lock().await;
        let found = self.store.presence().app_tokens()?.into_iter().find(|(_, t)| t.name == name);
        let (hash, _) = found.ok_or_else(|| ServiceError::NotFound(format!("no app token named {name:?}")))?;
        self.store.presence().remove_app_token(&hash).await?;
        tracing::info!(%name, "app token revoked");
        Ok(())
    }
}

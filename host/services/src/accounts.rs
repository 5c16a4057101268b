//! The account service: logins and sessions, throttling, and account changes with their rules
//! (the last enabled admin cannot be removed; disabling or deleting an account ends its sessions
//! and sockets).

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use halo_core::{
    NewUser, ProfileUpdate, Role, Slowdown, SlowdownRule, Throttle, ThrottleRule, User, Username, user::check_password,
};
use halo_store::{Session, Store, TokenHash};

use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::outbox::{Disconnect, Outbox};
use crate::principal::{Caller, Identity, Principal};
use crate::settings::AuthSettings;
use crate::{password, token};

/// A successful login.
pub struct LoginOk {
    /// The bearer token, shown once.
    pub token: String,
    /// The stored session.
    pub session: Session,
    /// The account.
    pub user: User,
}

/// Logins, sessions and account changes.
pub struct Accounts {
    pub(crate) store: Store,
    settings: AuthSettings,
    outbox: Arc<dyn Outbox>,
    metrics: Arc<Metrics>,
    /// Failures per username: past the limit the name is locked for the window.
    by_user: Mutex<Throttle>,
    /// Attempts per client address: past the burst the address is slowed down.
    by_ip: Mutex<Slowdown>,
    /// Serialises account changes so rules spanning accounts (the last admin) hold.
    pub(crate) writes: tokio::sync::Mutex<()>,
    local_admin: Option<TokenHash>,
}

fn lock<T>(t: &Mutex<T>) -> MutexGuard<'_, T> {
    t.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The throttling key of a client address: IPv4 as is, IPv6 by its /64 (one host's usual
/// share), so an attacker cannot hop through the addresses of one network.
pub fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(prefix))
        }
    }
}

/// A login attempt counted against its username and address; ending it decides whether it
/// stays counted. Dropped without an end (the client went away, the check was refused), it
/// gives both places back.
struct Attempt<'a> {
    accounts: &'a Accounts,
    user_key: &'a str,
    ip_key: &'a str,
    ended: bool,
}

impl Attempt<'_> {
    fn fail(mut self) {
        self.ended = true;
        lock(&self.accounts.by_user).fail(self.user_key, now_ms());
    }

    fn succeed(mut self) {
        self.ended = true;
        lock(&self.accounts.by_user).succeed(self.user_key);
        lock(&self.accounts.by_ip).refund(self.ip_key, now_ms());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.ended {
            lock(&self.accounts.by_user).abandon(self.user_key);
            lock(&self.accounts.by_ip).refund(self.ip_key, now_ms());
        }
    }
}

impl Accounts {
    /// The service over `store`; `local_admin` is the hash of the local CLI token, if any.
    pub fn new(
        store: Store,
        settings: AuthSettings,
        outbox: Arc<dyn Outbox>,
        metrics: Arc<Metrics>,
        local_admin: Option<TokenHash>,
    ) -> Self {
        let window_ms = settings.failure_window.as_millis() as u64;
        let user_rule = ThrottleRule { max_failures: settings.max_failures_per_user, window_ms };
        let ip_rule = SlowdownRule {
            burst: settings.max_failures_per_ip,
            interval_ms: (settings.ip_slowdown.as_millis() as u64).max(1),
        };
        Self {
            by_user: Mutex::new(Throttle::new(user_rule)),
            by_ip: Mutex::new(Slowdown::new(ip_rule)),
            store,
            settings,
            outbox,
            metrics,
            writes: tokio::sync::Mutex::new(()),
            local_admin,
        }
    }

    /// On an empty store, creates the `admin` account with `password`, or a random password that
    /// is returned (to be shown once). Does nothing when any account exists.
    pub async fn bootstrap_admin(&self, password: Option<String>) -> Result<Option<String>, ServiceError> {
        let _w = self.writes.lock().await;
        if !self.store.users().is_empty() {
            return Ok(None);
        }
        let generated = password.is_none();
        let password = password.unwrap_or_else(token::random_password);
        check_password(&password).map_err(|e| ServiceError::Invalid(format!("HALO_ADMIN_PASSWORD: {e}")))?;
        let name = Username::parse("admin")?;
        let hash = password::hash(password.clone()).await?;
        let new = NewUser { roles: [Role::Admin].into(), ..Default::default() };
        self.store.users().create(&new.into_user(name, hash, now_ms())?).await?;
        tracing::info!("created the bootstrap account 'admin'");
        Ok(generated.then_some(password))
    }

    /// Checks credentials and opens a session. The attempt is counted against the username and
    /// the client address *before* the password is checked, so concurrent attempts cannot get
    /// past either limit: a username with too many failures is refused for the window; an
    /// address past its burst is slowed down (refused for a few seconds at most).
    pub async fn login(&self, username: &str, password: String, ip: IpAddr) -> Result<LoginOk, ServiceError> {
        let now = now_ms();
        let user_key = username.trim().to_ascii_lowercase();
        let ip_key = address_key(ip);
        let attempt = self.begin(&user_key, &ip_key, now)?;
        let user = match Username::parse(username) {
            Ok(name) => self.store.users().get(&name)?,
            Err(_) => None,
        };
        let ok =
            password::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await.inspect_err(|_| {
                self.metrics.login("busy");
            })?;
        let user = match user {
            Some(u) if ok => u,
            _ => {
                attempt.fail();
                self.metrics.login("invalid");
                tracing::info!(username = %user_key, %ip, "failed login");
                return Err(ServiceError::InvalidCredentials);
            }
        };
        attempt.succeed();
        if user.disabled {
            self.metrics.login("disabled");
            return Err(ServiceError::forbidden("this account is disabled"));
        }
        let token = token::generate();
        let session = Session {
            username: user.username.clone(),
            created_at: now,
            expires_at: now + self.settings.token_ttl.as_millis() as u64,
        };
        self.store.sessions().insert(&token::hash(&token), &session).await?;
        self.metrics.login("ok");
        tracing::info!(username = %user.username, %ip, "login");
        Ok(LoginOk { token, session, user })
    }

    /// Counts an attempt against the address, then the username; refused ([`ServiceError::RateLimited`]) past either.
    fn begin<'a>(&'a self, user_key: &'a str, ip_key: &'a str, now: u64) -> Result<Attempt<'a>, ServiceError> {
        let refused = |retry_ms: u64, what: &str| {
            self.metrics.login("rate_limited");
            tracing::info!(username = %user_key, address = %ip_key, what, "login refused by the throttle");
            ServiceError::RateLimited { retry_after: retry_ms.div_ceil(1000) }
        };
        lock(&self.by_ip).try_begin(ip_key, now).map_err(|ms| refused(ms, "address slowed down"))?;
        if let Err(ms) = lock(&self.by_user).try_begin(user_key, now) {
            lock(&self.by_ip).refund(ip_key, now);
            return Err(refused(ms, "username locked"));
        }
        Ok(Attempt { accounts: self, user_key, ip_key, ended: false })
    }

    /// Forgets the failed logins of account `name` (an admin's unlock; not found if no such account).
    pub fn unlock_user(&self, name: &str) -> Result<(), ServiceError> {
        let user = self.get(name)?;
        lock(&self.by_user).clear(user.username.as_str());
        tracing::info!(username = %user.username, "failed logins cleared");
        Ok(())
    }

    /// Gives client address `address` its whole burst of attempts again (an admin's unlock).
    pub fn unlock_address(&self, address: &str) -> Result<String, ServiceError> {
        let ip: IpAddr =
            address.parse().map_err(|_| ServiceError::Invalid(format!("{address:?} is not an IP address")))?;
        let key = address_key(ip);
        lock(&self.by_ip).clear(&key);
        tracing::info!(address = %key, "login slowdown cleared");
        Ok(key)
    }

    /// Resolves a bearer token to its principal.
    pub async fn authenticate(&self, token: &str) -> Result<Principal, ServiceError> {
        let hash = token::hash(token);
        if self.local_admin == Some(hash) {
            return Ok(Principal { identity: Identity::LocalAdmin, token: hash, expires_at: None });
        }
        let session =
            self.store.sessions().get(&hash)?.ok_or(ServiceError::unauthorized("unknown or revoked token"))?;
        if session.expires_at <= now_ms() {
            self.store.sessions().remove(&hash).await?;
            return Err(ServiceError::unauthorized("token expired; log in again"));
        }
        let user =
            self.store.users().get(&session.username)?.ok_or(ServiceError::unauthorized("account no longer exists"))?;
        if user.disabled {
            return Err(ServiceError::unauthorized("account is disabled"));
        }
        Ok(Principal { identity: Identity::User(Box::new(user)), token: hash, expires_at: Some(session.expires_at) })
    }

    /// Resolves a user token or an app token.
    pub async fn authenticate_any(&self, token: &str) -> Result<Caller, ServiceError> {
        if let Some(app) = self.store.presence().app_token(&token::hash(token))? {
            return Ok(Caller::App(app));
        }
        Ok(Caller::User(self.authenticate(token).await?))
    }

    /// Up to `limit` enabled accounts whose username or display name contains `needle`
    /// (case-insensitive), in username order.
    pub fn find(&self, needle: &str, limit: usize) -> Result<Vec<User>, ServiceError> {
        let needle = needle.trim().to_lowercase();
        if needle.is_empty() {
            return Err(ServiceError::invalid("q must not be empty"));
        }
        let mut found = Vec::new();
        for user in self.store.users().all() {
            let user = user?;
            let display = user.profile.display_name.as_deref().unwrap_or("").to_lowercase();
            if !user.disabled && (user.username.as_str().contains(&needle) || display.contains(&needle)) {
                found.push(user);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Ends the session of `auth`'s token and closes the sockets opened with it.
    pub async fn logout(&self, auth: &Principal) -> Result<(), ServiceError> {
        if matches!(auth.identity, Identity::LocalAdmin) {
            return Err(ServiceError::Invalid("the local admin token ends when the server stops".into()));
        }
        self.store.sessions().remove(&auth.token).await?;
        self.outbox.close_token(&auth.token, Disconnect::SessionEnded);
        Ok(())
    }

    /// Creates an account.
    pub async fn create(&self, name: &str, password: String, new: NewUser) -> Result<User, ServiceError> {
        let name = Username::parse(name)?;
        if self.store.users().retired_at(&name)?.is_some() {
            return Err(ServiceError::UsernameRetired(name.to_string()));
        }
        check_password(&password)?;
        let hash = password::hash(password).await?;
        let user = new.into_user(name, hash, now_ms())?;
        let _w = self.writes.lock().await;
        if self.store.users().retired_at(&user.username)?.is_some() {
            return Err(ServiceError::UsernameRetired(user.username.to_string()));
        }
        self.store.users().create(&user).await?;
        tracing::info!(username = %user.username, "account created");
        Ok(user)
    }

    /// The account named `name` (not found if none).
    pub fn get(&self, name: &str) -> Result<User, ServiceError> {
        let parsed = Username::parse(name).map_err(|_| not_found(name))?;
        self.store.users().get(&parsed)?.ok_or_else(|| not_found(name))
    }

    /// A page of accounts after `after`.
    pub fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<User>, ServiceError> {
        let after = after.map(Username::parse).transpose()?;
        Ok(self.store.users().list(after.as_ref(), limit)?)
    }

    /// Up to `limit` accounts after `after`, in name order, whose username, display name,
    /// e-mail, title or department contains `q` (case-insensitive): a scan of the accounts,
    /// for the admin console.
    pub fn search(&self, q: &str, after: Option<&str>, limit: usize) -> Result<Vec<User>, ServiceError> {
        let q = q.to_lowercase();
        let matches = |u: &User| {
            let p = &u.profile;
            std::iter::once(Some(u.username.as_str()))
                .chain([&p.display_name, &p.email, &p.title, &p.department].map(Option::as_deref))
                .flatten()
                .any(|f| f.to_lowercase().contains(&q))
        };
        let mut cursor = after.map(Username::parse).transpose()?;
        let mut out = Vec::new();
        loop {
            let batch = self.store.users().list(cursor.as_ref(), 500)?;
            let done = batch.len() < 500;
            cursor = batch.last().map(|u| u.username.clone());
            out.extend(batch.into_iter().filter(matches).take(limit - out.len()));
            if done || out.len() >= limit {
                return Ok(out);
            }
        }
    }

    /// Number of accounts.
    pub fn count(&self) -> usize {
        self.store.users().count()
    }

    /// Changes an account. Disabling ends its sessions and sockets; the last enabled admin
    /// cannot lose the role or be disabled.
    pub async fn update(&self, name: &str, update: ProfileUpdate) -> Result<User, ServiceError> {
        let _w = self.writes.lock().await;
        let mut user = self.get(name)?;
        let was_admin = user.is_active_admin();
        update.apply(&mut user, now_ms())?;
        if was_admin && !user.is_active_admin() {
            self.ensure_other_admin(&user.username)?;
        }
        self.store.users().put(&user).await?;
        if user.disabled {
            self.end_sessions(&user.username, Disconnect::AccountDisabled, None).await?;
        }
        Ok(user)
    }

    /// Sets a new password and ends every session of the account, except `keep` (the session
    /// that changed its own password).
    pub async fn set_password(
        &self,
        name: &str,
        password: String,
        keep: Option<&TokenHash>,
    ) -> Result<(), ServiceError> {
        check_password(&password)?;
        let hash = password::hash(password).await?;
        let _w = self.writes.lock().await;
        let mut user = self.get(name)?;
        user.password_hash = hash;
        user.updated_at = now_ms();
        self.store.users().put(&user).await?;
        self.end_sessions(&user.username, Disconnect::SessionEnded, keep).await
    }

    /// Checks `current` before [`Accounts::set_password`] for a user changing their own password.
    pub async fn change_own_password(
        &self,
        auth: &Principal,
        current: String,
        new: String,
    ) -> Result<(), ServiceError> {
        let user = auth.user()?;
        if !password::verify(current, Some(user.password_hash.clone())).await? {
            return Err(ServiceError::InvalidCredentials);
        }
        self.set_password(user.username.as_str(), new, Some(&auth.token)).await
    }

    /// Deletes an account, its sessions and sockets, and retires its name for good (a new
    /// account with that name would inherit its conversations). The last enabled admin cannot
    /// be deleted.
    pub async fn remove(&self, name: &str) -> Result<(), ServiceError> {
        let _w = self.writes.lock().await;
        let user = self.get(name)?;
        if user.is_active_admin() {
            self.ensure_other_admin(&user.username)?;
        }
        self.store.remove_user(&user.username, now_ms()).await?;
        lock(&self.by_user).clear(user.username.as_str());
        self.outbox.close_user(&user.username, None, Disconnect::AccountDisabled);
        tracing::info!(username = %user.username, "account deleted");
        Ok(())
    }

    /// Deletes expired sessions (run periodically).
    pub async fn prune(&self) -> Result<usize, ServiceError> {
        let now = now_ms();
        lock(&self.by_user).prune(now);
        lock(&self.by_ip).prune(now);
        Ok(self.store.sessions().prune_expired(now).await?)
    }

    async fn end_sessions(
        &self,
        name: &Username,
        reason: Disconnect,
        keep: Option<&TokenHash>,
    ) -> Result<(), ServiceError> {
        self.store.sessions().remove_all_for(name, keep).await?;
        self.outbox.close_user(name, keep, reason);
        Ok(())
    }

    fn ensure_other_admin(&self, name: &Username) -> Result<(), ServiceError> {
        for user in self.store.users().all() {
            let user = user?;
            if &user.username != name && user.is_active_admin() {
                return Ok(());
            }
        }
        Err(ServiceError::Conflict(format!("{name} is the last enabled admin; make another admin first")))
    }
}

/// The username of an enabled account named `name` (not found otherwise): the one check every
/// service uses before addressing a user.
pub fn existing_user(store: &Store, name: &str) -> Result<Username, ServiceError> {
    let u = Username::parse(name).map_err(|_| not_found(name))?;
    match store.users().get(&u)? {
        Some(user) if !user.disabled => Ok(u),
        _ => Err(not_found(name)),
    }
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no user named {name:?}"))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::outbox::{Recorder, Sent};

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    fn accounts(dir: &std::path::Path, local_admin: Option<TokenHash>) -> (Accounts, Arc<Recorder>) {
        let store = Store::open(dir).expect("store");
        let outbox = Arc::new(Recorder::new(true));
        let accounts =
            Accounts::new(store, AuthSettings::default(), outbox.clone(), Arc::new(Metrics::new()), local_admin);
        (accounts, outbox)
    }

    fn admin() -> NewUser {
        NewUser { roles: [Role::Admin].into(), ..Default::default() }
    }

    #[tokio::test]
    async fn sessions_end_with_the_reason_the_transport_closes_them_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (accounts, outbox) = accounts(dir.path(), None);
        accounts.create("root", "a long password".into(), admin()).await.expect("root");
        accounts.create("ann", "a long password".into(), NewUser::default()).await.expect("ann");
        let login = accounts.login("ann", "a long password".into(), IP).await.expect("login");
        let principal = accounts.authenticate(&login.token).await.expect("authenticate");
        assert_eq!(principal.username().expect("a user").as_str(), "ann");
        assert!(!principal.is_admin());
        assert_eq!(principal.expires_at, Some(login.session.expires_at));

        accounts.logout(&principal).await.expect("logout");
        assert_eq!(outbox.take(), vec![Sent::CloseToken(Disconnect::SessionEnded)]);
        let err = accounts.authenticate(&login.token).await.expect_err("logged out");
        assert!(matches!(err, ServiceError::Unauthorized(_)), "{err:?}");

        accounts.remove("ann").await.expect("remove");
        assert_eq!(
            outbox.take(),
            vec![Sent::CloseUser(Username::parse("ann").expect("name"), Disconnect::AccountDisabled)]
        );
        let err = accounts.create("ann", "a long password".into(), NewUser::default()).await.expect_err("retired");
        assert!(matches!(err, ServiceError::UsernameRetired(_)), "{err:?}");
    }

    #[tokio::test]
    async fn rules_fail_with_what_went_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = crate::token::generate();
        let (accounts, _) = accounts(dir.path(), Some(crate::token::hash(&local)));
        accounts.create("root", "a long password".into(), admin()).await.expect("root");
        let err = accounts.remove("root").await.expect_err("last admin");
        assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
        let err = accounts.login("root", "wrong password".into(), IP).await.err();
        assert!(matches!(err, Some(ServiceError::InvalidCredentials)), "{err:?}");
        assert!(matches!(accounts.get("nobody"), Err(ServiceError::NotFound(_))));
        assert!(matches!(accounts.unlock_address("not an address"), Err(ServiceError::Invalid(_))));

        let local = accounts.authenticate(&local).await.expect("local admin");
        assert!(local.is_admin() && local.user().is_err());
        assert!(matches!(accounts.logout(&local).await, Err(ServiceError::Invalid(_))));
    }

    #[tokio::test]
    async fn app_tokens_are_checked_issued_resolved_and_revoked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = crate::token::generate();
        let (accounts, _) = accounts(dir.path(), Some(crate::token::hash(&local)));
        let admin = accounts.authenticate(&local).await.expect("local admin");
        let scopes = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for (name, sc) in [("", scopes(&["presence:read"])), ("intranet", scopes(&[])), ("x", scopes(&["root"]))] {
            let err = accounts.issue_app_token(&admin, name, sc).await.expect_err("invalid");
            assert!(matches!(err, ServiceError::Invalid(_)), "{err:?}");
        }
        let issued = accounts.issue_app_token(&admin, " intranet ", scopes(&["presence:read"])).await.expect("issue");
        assert_eq!((issued.token.name.as_str(), issued.token.created_by.as_str()), ("intranet", "(local admin)"));
        let err = accounts.issue_app_token(&admin, "intranet", scopes(&["phone:write"])).await.expect_err("taken");
        assert!(matches!(err, ServiceError::Conflict(_)), "{err:?}");
        let Caller::App(app) = accounts.authenticate_any(&issued.secret).await.expect("resolve") else {
            panic!("not an app")
        };
        assert_eq!(app.name, "intranet");
        assert!(Caller::App(app.clone()).require("presence:read").is_ok());
        assert!(matches!(Caller::App(app).require("calendar:write"), Err(ServiceError::Forbidden(_))));
        assert_eq!(accounts.app_tokens().expect("list").len(), 1);
        accounts.revoke_app_token("intranet").await.expect("revoke");
        assert!(matches!(accounts.revoke_app_token("intranet").await, Err(ServiceError::NotFound(_))));
        assert!(accounts.authenticate_any(&issued.secret).await.is_err());
    }
}

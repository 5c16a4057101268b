//! The services' settings with their defaults; `halo.toml` sections `[auth]`, `[im]`,
//! `[presence]`, `[plugins]` and `[federation]` map onto these.

use std::time::Duration;

use serde::Deserialize;

/// Sessions and login throttling.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// How long a bearer token stays valid after login (7 days).
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Failed logins allowed per username inside `failure_window` (5).
    pub max_failures_per_user: u32,
    /// Login attempts one client IP may make in a burst (20); a successful login gives its
    /// attempt back. Past the burst the address is slowed down, not locked out: one attempt
    /// per `ip_slowdown`, others answered 429 with a Retry-After of at most that.
    pub max_failures_per_ip: u32,
    /// Pace of a client IP past its burst (3 s): the users behind one NAT or proxy wait
    /// seconds while someone among them guesses passwords, never `failure_window`.
    #[serde(with = "humantime_serde")]
    pub ip_slowdown: Duration,
    /// Sliding window of `max_failures_per_user` (15 min).
    #[serde(with = "humantime_serde")]
    pub failure_window: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            token_ttl: Duration::from_secs(7 * 24 * 3600),
            max_failures_per_user: 5,
            max_failures_per_ip: 20,
            ip_slowdown: Duration::from_secs(3),
            failure_window: Duration::from_secs(15 * 60),
        }
    }
}

/// Everything the services need besides storage, their data directory and an outbox.
#[derive(Debug, Clone, Default)]
pub struct ServiceSettings {
    /// Sessions and login throttling.
    pub auth: AuthSettings,
    /// Instant messaging.
    pub im: crate::im::ImSettings,
    /// Presence.
    pub presence: crate::presence::PresenceSettings,
    /// Plugins.
    pub plugins: crate::plugins::PluginSettings,
    /// Federation.
    pub federation: crate::federation::FederationSettings,
}

//! Server settings with their defaults: `halo.toml` sections `[limits]` and `[http]` map onto
//! the transport's own; `[auth]`, `[im]`, `[presence]`, `[plugins]` and `[federation]` onto the
//! services' ([`halo_services::ServiceSettings`]).

use std::time::Duration;

use serde::Deserialize;

/// Protocol and resource limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket frame handled (64 KiB): enough for any IM or presence frame, small enough
    /// that a hostile client cannot make the server buffer much. Larger frames, up to
    /// [`Limits::hard_frame_bytes`], get a `frame_too_large` error; beyond that the socket closes.
    pub max_frame_bytes: usize,
    /// Largest HTTP request body (1 MiB).
    pub max_body_bytes: usize,
    /// Frames queued for one WebSocket before the endpoint is dropped as a slow consumer (256).
    pub send_queue: usize,
    /// Interval of server pings (30 s); an endpoint silent for two intervals is dropped.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// Most concurrent WebSocket endpoints per user (32).
    pub max_endpoints_per_user: usize,
}

impl Limits {
    /// Beyond this the WebSocket layer itself refuses a message and closes with 1009.
    pub fn hard_frame_bytes(&self) -> usize {
        (self.max_frame_bytes * 16).max(1 << 20)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            max_body_bytes: 1 << 20,
            send_queue: 256,
            heartbeat: Duration::from_secs(30),
            max_endpoints_per_user: 32,
        }
    }
}

/// HTTP connection timeouts (see [`crate::conn`]). WebSockets are exempt once upgraded: their
/// heartbeat ([`Limits::heartbeat`]) finds silent ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// A request's head must arrive within this once its first byte has (10 s); a new connection
    /// must complete its TLS handshake and send its first request head within it too. A client
    /// trickling header bytes (slowloris) is closed.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request body must arrive within this (30 s), extended by one second for every
    /// [`HttpSettings::body_min_rate`] bytes received; beyond it the answer is 408 `timeout`.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Bytes per second that keep extending [`HttpSettings::body_timeout`] (1024): an upload at
    /// least this fast never times out, a trickle does. 0: the body timeout is a fixed bound.
    pub body_min_rate: u64,
    /// A connection waiting for its next request is closed after this (75 s, nginx's keep-alive
    /// timeout); so is one whose client reads nothing of its answers for this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open TCP connections (HTTP and WebSocket, every listener) served at once; past it a
    /// request is answered 503 `busy` and its connection closed (see [`crate::cap`]). 0 (the
    /// default): the process's open-file limit less 320.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            body_min_rate: 1024,
            idle_timeout: Duration::from_secs(75),
            max_connections: 0,
        }
    }
}

/// Everything the server needs besides its listener and store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Protocol and resource limits.
    pub limits: Limits,
    /// HTTP connection timeouts.
    pub http: HttpSettings,
    /// Sessions and login throttling.
    pub auth: halo_services::AuthSettings,
    /// Serve `/metrics` without a token (default: admin token required).
    pub public_metrics: bool,
    /// Instant messaging.
    pub im: halo_services::im::ImSettings,
    /// Presence.
    pub presence: halo_services::presence::PresenceSettings,
    /// Plugins.
    pub plugins: halo_services::plugins::PluginSettings,
    /// Federation.
    pub federation: halo_services::federation::FederationSettings,
}

impl Settings {
    /// The services' part of the settings.
    pub fn services(&self) -> halo_services::ServiceSettings {
        halo_services::ServiceSettings {
            auth: self.auth.clone(),
            im: self.im.clone(),
            presence: self.presence.clone(),
            plugins: self.plugins.clone(),
            federation: self.federation.clone(),
        }
    }
}

//! How fast each remote domain may send messages: its own token bucket (`[federation]`
//! `remote_messages_per_sec`, `remote_burst`), instead of the per-user `[im]` allowance local
//! users have. A message over the limit is refused with `rate_limited`, which the transport
//! tells the sender (XMPP: `resource-constraint`), never dropped silently.

use std::sync::Mutex;

use halo_core::rate::{Limiter, Rate};

use crate::clock::now_ms;

/// Default messages per second per remote domain.
pub const DEFAULT_PER_SEC: f64 = 50.0;
/// Default burst per remote domain.
pub const DEFAULT_BURST: f64 = 200.0;
/// Domains whose buckets are kept (full ones are dropped first).
const MAX_DOMAINS: usize = 10_000;

/// The per-domain limiter.
pub struct DomainLimits {
    rate: Rate,
    buckets: Mutex<Limiter<String>>,
}

impl DomainLimits {
    /// Limits at `per_sec` with `burst` per domain.
    pub fn new(per_sec: f64, burst: f64) -> Self {
        let rate = Rate { per_sec: per_sec.max(0.0), burst: burst.max(1.0) };
        Self { rate, buckets: Mutex::new(Limiter::new(rate, MAX_DOMAINS)) }
    }

    /// Takes one message from `domain`'s allowance.
    pub fn take(&self, domain: &str) -> bool {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner()).take(&domain.to_owned(), now_ms())
    }

    /// The steady rate.
    pub fn per_sec(&self) -> f64 {
        self.rate.per_sec
    }
}

//! What the plugin-host benches share.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use halo_plugin_host::{CallError, CallObserver};

/// Sums the guest time the executor reports.
#[derive(Default)]
pub struct GuestTime(AtomicU64, AtomicU64);

impl CallObserver for GuestTime {
    fn call(&self, _plugin: &str, guest: Duration, _error: Option<&CallError>) {
        self.0.fetch_add(guest.as_nanos() as u64, Ordering::Relaxed);
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

impl GuestTime {
    /// The mean guest time per call since the last take, in nanoseconds; starts over.
    pub fn take(&self) -> f64 {
        let (ns, n) = (self.0.swap(0, Ordering::Relaxed), self.1.swap(0, Ordering::Relaxed));
        ns as f64 / n.max(1) as f64
    }
}

//! The connection cap ([`crate::settings::HttpSettings::max_connections`]): every accepted TCP
//! connection (HTTP, WebSocket, TLS or not) holds a [`Slot`] until it closes.
//!
//! - Up to the cap, connections are served.
//! - Past it, a connection is still read, but every request on it is answered 503 `busy` with
//!   `Retry-After` and `Connection: close`, before any WebSocket upgrade: a client learns why.
//! - Past the hard limit (the cap plus [`HEADROOM`], the file descriptors left to answer 503s),
//!   a connection is closed as soon as it is accepted.
//!
//! The default cap leaves [`RESERVE`] of the process's open-file limit (`RLIMIT_NOFILE`, raised
//! to its hard limit at start) for the store, plugins, logs and the listener itself, so the
//! server refuses connections before the kernel refuses it files. Should `accept` still fail
//! (`EMFILE`, `ENFILE`: a limit lowered from outside, other processes), axum-server's accept
//! loop backs off 50 ms and tries again; open connections keep being served.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use halo_services::metrics::Metrics;

/// Open files kept out of the default cap (store, search index, plugins, logs, listeners).
pub const RESERVE: usize = 256;
/// Connections past the cap that are still read, to answer them 503.
pub const HEADROOM: usize = 64;

/// The default cap: the open-file limit less [`RESERVE`] and [`HEADROOM`] (at least 16).
pub fn default_max_connections() -> usize {
    let soft = open_file_limit();
    soft.saturating_sub(RESERVE + HEADROOM).max(soft / 2).max(16)
}

/// The process's open-file limit (soft), after raising it to the hard limit where allowed.
pub fn open_file_limit() -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum
        && let Some(max) = limit.maximum
    {
        let raised = rustix::process::Rlimit { current: Some(max), maximum: Some(max) };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return usize::try_from(max).unwrap_or(usize::MAX);
        }
    }
    limit.current.map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX))
}

/// Counts open connections against the cap.
pub struct Cap {
    open: AtomicUsize,
    max: usize,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cap").field("open", &self.open).field("max", &self.max).finish()
    }
}

/// What an accepted connection may do.
#[derive(Debug)]
pub enum Admission {
    /// Serve it.
    Serve(Slot),
    /// Answer its requests 503 and close it.
    Refuse(Slot),
    /// Past the hard limit: close it now.
    Drop,
}

impl Cap {
    /// A cap of `max` connections (0: [`default_max_connections`]).
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Arc<Self> {
        let max = if max == 0 { default_max_connections() } else { max };
        metrics.conn.max.set(i64::try_from(max).unwrap_or(i64::MAX));
        Arc::new(Self { open: AtomicUsize::new(0), max, metrics })
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Counts a newly accepted connection.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let n = self.open.fetch_add(1, Ordering::AcqRel) + 1;
        if n > self.max.saturating_add(HEADROOM) {
            self.open.fetch_sub(1, Ordering::AcqRel);
            self.metrics.conn.refused("hard_limit");
            return Admission::Drop;
        }
        self.metrics.conn.open.inc();
        let slot = Slot(self.clone());
        if n > self.max {
            self.metrics.conn.refused("max_connections");
            Admission::Refuse(slot)
        } else {
            Admission::Serve(slot)
        }
    }
}

/// One open connection; the count drops with it.
#[derive(Debug)]
pub struct Slot(Arc<Cap>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.conn.open.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_cap_refuse_then_drop_and_a_closed_slot_frees_room() {
        let cap = Cap::new(2, Arc::new(Metrics::new()));
        let a = cap.admit();
        let _b = cap.admit();
        assert!(matches!(a, Admission::Serve(_)));
        let mut over = Vec::new();
        for _ in 0..HEADROOM {
            let r = cap.admit();
            assert!(matches!(r, Admission::Refuse(_)));
            over.push(r);
        }
        assert!(matches!(cap.admit(), Admission::Drop));
        drop(over);
        drop(a);
        assert!(matches!(cap.admit(), Admission::Serve(_)));
    }

    #[test]
    fn the_default_leaves_files_for_the_server() {
        let limit = open_file_limit();
        let max = default_max_connections();
        assert!(max < limit || limit < 16, "{max} of {limit}");
    }
}

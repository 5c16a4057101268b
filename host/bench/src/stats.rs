//! Latency histograms that travel between processes as `(value, count)` pairs, and clock helpers.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Wall-clock microseconds since the Unix epoch (shared by every process on the machine).
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// A latency histogram in microseconds, from 1 µs to 10 minutes, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    /// An empty histogram.
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant histogram bounds are valid"))
    }

    /// Records one latency in microseconds (clamped into range).
    pub fn record(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, 600_000_000));
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at `q` (0–1) in milliseconds; 0 when empty.
    pub fn ms(&self, q: f64) -> f64 {
        if self.0.is_empty() { 0.0 } else { self.0.value_at_quantile(q) as f64 / 1000.0 }
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// The samples as pairs for the wire.
    pub fn to_wire(&self) -> WireHist {
        WireHist(self.0.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect())
    }

    /// A histogram from wire pairs.
    pub fn from_wire(w: &WireHist) -> Self {
        let mut h = Self::new();
        for &(v, c) in &w.0 {
            let _ = h.0.record_n(v.clamp(1, 600_000_000), c);
        }
        h
    }
}

/// A histogram on the wire: `(value µs, count)` pairs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WireHist(pub Vec<(u64, u64)>);

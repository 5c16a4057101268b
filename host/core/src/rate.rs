//! Token buckets: a steady rate with a burst allowance (messages per second per user).

use crate::Millis;

/// A token bucket refilled at `per_sec`, holding at most `burst` tokens.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    last: Millis,
}

/// The rate and burst of a [`TokenBucket`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_sec: f64,
    /// Most tokens held.
    pub burst: f64,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: Rate, now: Millis) -> Self {
        Self { tokens: rate.burst, last: now }
    }

    /// Whether the bucket would be full at `now`: then it is the same as a new one, and a
    /// holder of many buckets may drop it.
    pub fn is_full(&self, rate: Rate, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.tokens + elapsed * rate.per_sec >= rate.burst
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Millis) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now.max(self.last);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_rate() {
        let rate = Rate { per_sec: 2.0, burst: 3.0 };
        let mut b = TokenBucket::new(rate, 0);
        assert!((0..3).all(|_| b.take(rate, 0)));
        assert!(!b.take(rate, 0));
        assert!(!b.take(rate, 400));
        assert!(b.take(rate, 500), "half a second gives one token");
        assert!(b.take(rate, 10_000) && b.take(rate, 10_000) && b.take(rate, 10_000));
        assert!(!b.take(rate, 10_000), "never more than the burst");
        assert!(!b.is_full(rate, 10_000));
        assert!(!b.is_full(rate, 11_000), "two tokens back of three");
        assert!(b.is_full(rate, 11_500), "full again: the same as a new bucket");
    }
}

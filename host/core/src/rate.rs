//! Token buckets: a steady rate with a burst allowance (messages per second per user).

use std::collections::HashMap;
use std::hash::Hash;

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
        self.take_n(rate, now, 1.0)
    }

    /// Takes `n` tokens if there are that many (e.g. bytes of an upload).
    pub fn take_n(&mut self, rate: Rate, now: Millis, n: f64) -> bool {
        let elapsed = now.saturating_sub(self.last) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate.per_sec).min(rate.burst);
        self.last = now.max(self.last);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// One [`TokenBucket`] per key (a sender), all at the same [`Rate`], bounded: past `max`
/// keys, buckets that are full again (the same as new ones) are dropped.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    max: usize,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// No buckets yet; keeps about `max` of them (more only while that many are in use).
    pub fn new(rate: Rate, max: usize) -> Self {
        Self { rate, max, buckets: HashMap::new() }
    }

    /// Takes one token from `key`'s bucket if there is one.
    pub fn take(&mut self, key: &K, now: Millis) -> bool {
        self.take_n(key, now, 1.0)
    }

    /// Takes `n` tokens from `key`'s bucket if it holds that many.
    pub fn take_n(&mut self, key: &K, now: Millis, n: f64) -> bool {
        let rate = self.rate;
        if self.buckets.len() >= self.max && !self.buckets.contains_key(key) {
            self.buckets.retain(|_, b| !b.is_full(rate, now));
        }
        match self.buckets.get_mut(key) {
            Some(b) => b.take_n(rate, now, n),
            None => {
                let mut b = TokenBucket::new(rate, now);
                let ok = b.take_n(rate, now, n);
                self.buckets.insert(key.clone(), b);
                ok
            }
        }
    }

    /// Buckets held.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_tokens_at_once() {
        let rate = Rate { per_sec: 10.0, burst: 100.0 };
        let mut l = Limiter::new(rate, 10);
        assert!(l.take_n(&"a", 0, 60.0));
        assert!(!l.take_n(&"a", 0, 60.0), "only 40 left");
        assert!(l.take_n(&"b", 0, 60.0), "per key");
        assert!(l.take_n(&"a", 2_000, 60.0), "20 more after 2 s");
        assert!(!l.take_n(&"c", 0, 101.0), "never more than the burst");
    }

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

    #[test]
    fn limiter_keeps_a_bucket_per_key_and_drops_full_ones_past_the_bound() {
        let rate = Rate { per_sec: 1.0, burst: 2.0 };
        let mut l = Limiter::new(rate, 2);
        assert!(l.take(&"a", 0) && l.take(&"a", 0));
        assert!(!l.take(&"a", 0), "a's burst is spent");
        assert!(l.take(&"b", 0), "b has its own bucket");
        assert_eq!(l.len(), 2);
        // At the bound, a new key drops the buckets that are full again (b, at 1 s), not a's.
        assert!(l.take(&"c", 1_000));
        assert_eq!(l.len(), 2);
        assert!(l.take(&"a", 1_000) && !l.take(&"a", 1_000), "a kept its state: one token back");
    }
}

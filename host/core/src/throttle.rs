//! Failure throttling (for logins): too many failures for one key inside a window locks the key
//! out until the oldest failure leaves the window.

use std::collections::{HashMap, VecDeque};

use crate::Millis;

/// How many failures a key may have inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed inside `window_ms`; the next attempt is refused.
    pub max_failures: u32,
    /// Length of the sliding window.
    pub window_ms: Millis,
}

/// Sliding-window failure counters keyed by a string (a username, an IP address).
///
/// Memory is bounded by the keys with failures inside the window; [`Throttle::prune`] forgets the rest.
#[derive(Debug)]
pub struct Throttle {
    rule: ThrottleRule,
    failures: HashMap<String, VecDeque<Millis>>,
}

impl Throttle {
    /// A throttle applying `rule` to every key.
    pub fn new(rule: ThrottleRule) -> Self {
        Self { rule, failures: HashMap::new() }
    }

    /// `Err(retry_after_ms)` when `key` is locked out at `now`.
    pub fn check(&mut self, key: &str, now: Millis) -> Result<(), Millis> {
        let Some(q) = self.failures.get_mut(key) else { return Ok(()) };
        expire(q, now, self.rule.window_ms);
        if q.len() >= self.rule.max_failures as usize {
            let oldest = q.front().copied().unwrap_or(now);
            return Err((oldest + self.rule.window_ms).saturating_sub(now).max(1));
        }
        Ok(())
    }

    /// Records a failed attempt by `key` at `now`.
    pub fn fail(&mut self, key: &str, now: Millis) {
        let q = self.failures.entry(key.to_owned()).or_default();
        expire(q, now, self.rule.window_ms);
        q.push_back(now);
        while q.len() > self.rule.max_failures as usize {
            q.pop_front();
        }
    }

    /// Forgets `key`'s failures (after a successful login).
    pub fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }

    /// Drops keys with no failure inside the window.
    pub fn prune(&mut self, now: Millis) {
        let window = self.rule.window_ms;
        self.failures.retain(|_, q| {
            expire(q, now, window);
            !q.is_empty()
        });
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }
}

fn expire(q: &mut VecDeque<Millis>, now: Millis, window: Millis) {
    while q.front().is_some_and(|&t| t + window <= now) {
        q.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleRule { max_failures: 3, window_ms: 1000 })
    }

    #[test]
    fn locks_after_max_failures_and_reopens_after_window() {
        let mut t = throttle();
        for at in [0, 10, 20] {
            assert_eq!(t.check("alice", at), Ok(()));
            t.fail("alice", at);
        }
        assert_eq!(t.check("alice", 30), Err(970));
        assert_eq!(t.check("bob", 30), Ok(()), "other keys are not affected");
        assert_eq!(t.check("alice", 1000), Ok(()), "the first failure left the window");
    }

    #[test]
    fn clear_and_prune_forget() {
        let mut t = throttle();
        t.fail("a", 0);
        t.fail("b", 500);
        t.clear("a");
        assert_eq!(t.len(), 1);
        t.prune(1500);
        assert!(t.is_empty());
    }

    #[test]
    fn memory_per_key_is_bounded() {
        let mut t = throttle();
        for at in 0..100 {
            t.fail("a", at);
        }
        assert_eq!(t.failures["a"].len(), 3);
    }
}

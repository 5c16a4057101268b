//! Login throttling, as pure rules over explicit time.
//!
//! - [`Throttle`] (per username): too many failures inside a window lock the key out until the
//!   oldest failure leaves the window. An attempt is counted when it *begins*
//!   ([`Throttle::try_begin`]), before its password is checked, so concurrent attempts cannot
//!   overtake the limit: failures plus attempts still in flight never exceed `max_failures`.
//! - [`Slowdown`] (per client address): a burst of attempts, then one per interval. The address
//!   is slowed down for seconds, never locked out for long, so the many users behind one NAT or
//!   proxy are not locked out with an attacker among them.

use std::collections::{HashMap, VecDeque};

use crate::Millis;

/// Retry hint when a key is full only because of attempts still being checked (they finish
/// within a second or so).
pub const IN_FLIGHT_RETRY_MS: Millis = 1000;

/// How many failures a key may have inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleRule {
    /// Failures allowed inside `window_ms`; the next attempt is refused.
    pub max_failures: u32,
    /// Length of the sliding window.
    pub window_ms: Millis,
}

#[derive(Debug, Default)]
struct Entry {
    failures: VecDeque<Millis>,
    in_flight: u32,
}

impl Entry {
    fn is_idle(&self) -> bool {
        self.failures.is_empty() && self.in_flight == 0
    }
}

/// Sliding-window failure counters keyed by a string (a username), counting attempts in flight.
///
/// Every successful [`Throttle::try_begin`] must be ended by exactly one of [`Throttle::fail`],
/// [`Throttle::succeed`] or [`Throttle::abandon`]. Memory is bounded by the keys with failures
/// inside the window or attempts in flight; [`Throttle::prune`] forgets the rest.
#[derive(Debug)]
pub struct Throttle {
    rule: ThrottleRule,
    entries: HashMap<String, Entry>,
}

impl Throttle {
    /// A throttle applying `rule` to every key.
    pub fn new(rule: ThrottleRule) -> Self {
        Self { rule, entries: HashMap::new() }
    }

    /// Starts an attempt by `key` at `now`, counting it at once; `Err(retry_after_ms)` when the
    /// failures inside the window plus the attempts in flight have reached the limit.
    pub fn try_begin(&mut self, key: &str, now: Millis) -> Result<(), Millis> {
        let max = self.rule.max_failures as usize;
        let window = self.rule.window_ms;
        let entry = self.entries.entry(key.to_owned()).or_default();
        expire(&mut entry.failures, now, window);
        if entry.failures.len() >= max {
            let oldest = entry.failures.front().copied().unwrap_or(now);
            return Err((oldest + window).saturating_sub(now).max(1));
        }
        if entry.failures.len() + entry.in_flight as usize >= max {
            return Err(IN_FLIGHT_RETRY_MS);
        }
        entry.in_flight += 1;
        Ok(())
    }

    /// Ends an attempt of `key` as a failure at `now`.
    pub fn fail(&mut self, key: &str, now: Millis) {
        let max = self.rule.max_failures as usize;
        let entry = self.entries.entry(key.to_owned()).or_default();
        entry.in_flight = entry.in_flight.saturating_sub(1);
        expire(&mut entry.failures, now, self.rule.window_ms);
        entry.failures.push_back(now);
        while entry.failures.len() > max {
            entry.failures.pop_front();
        }
    }

    /// Ends an attempt of `key` as a success: its failures are forgotten.
    pub fn succeed(&mut self, key: &str) {
        self.end(key, true);
    }

    /// Ends an attempt of `key` that was neither (the client went away, the check did not run).
    pub fn abandon(&mut self, key: &str) {
        self.end(key, false);
    }

    /// Forgets `key`'s failures (an admin's unlock); attempts in flight stay counted.
    pub fn clear(&mut self, key: &str) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.failures.clear();
            if entry.is_idle() {
                self.entries.remove(key);
            }
        }
    }

    /// Drops keys with no failure inside the window and no attempt in flight.
    pub fn prune(&mut self, now: Millis) {
        let window = self.rule.window_ms;
        self.entries.retain(|_, e| {
            expire(&mut e.failures, now, window);
            !e.is_idle()
        });
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn end(&mut self, key: &str, success: bool) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.in_flight = entry.in_flight.saturating_sub(1);
            if success {
                entry.failures.clear();
            }
            if entry.is_idle() {
                self.entries.remove(key);
            }
        }
    }
}

fn expire(q: &mut VecDeque<Millis>, now: Millis, window: Millis) {
    while q.front().is_some_and(|&t| t + window <= now) {
        q.pop_front();
    }
}

/// A burst of attempts, then one attempt per interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowdownRule {
    /// Attempts allowed at once (the bucket's size).
    pub burst: u32,
    /// After the burst, one more attempt per interval; also the longest wait ever asked for.
    pub interval_ms: Millis,
}

/// Per-key attempt pacing (a generic cell rate algorithm: one timestamp per key).
///
/// An attempt takes a slot when it begins ([`Slowdown::try_begin`]); an attempt that turns out
/// not to be a failure gives it back ([`Slowdown::refund`]). A refused attempt waits at most
/// one interval.
#[derive(Debug)]
pub struct Slowdown {
    rule: SlowdownRule,
    /// Per key: the time at which the bucket is full again (theoretical arrival time).
    full_at: HashMap<String, Millis>,
}

impl Slowdown {
    /// A pacer applying `rule` to every key.
    pub fn new(rule: SlowdownRule) -> Self {
        Self { rule, full_at: HashMap::new() }
    }

    /// Takes a slot for `key` at `now`; `Err(retry_after_ms)` (at most one interval) when the
    /// burst is used up.
    pub fn try_begin(&mut self, key: &str, now: Millis) -> Result<(), Millis> {
        let SlowdownRule { burst, interval_ms } = self.rule;
        let tolerance = u64::from(burst).saturating_mul(interval_ms);
        let full_at = self.full_at.get(key).copied().unwrap_or(now).max(now);
        let next = full_at.saturating_add(interval_ms);
        if next > now.saturating_add(tolerance) {
            return Err((next - tolerance - now).max(1));
        }
        self.full_at.insert(key.to_owned(), next);
        Ok(())
    }

    /// Gives back the slot of an attempt of `key` that was not a failure.
    pub fn refund(&mut self, key: &str, now: Millis) {
        if let Some(full_at) = self.full_at.get_mut(key) {
            *full_at = full_at.saturating_sub(self.rule.interval_ms);
            if *full_at <= now {
                self.full_at.remove(key);
            }
        }
    }

    /// Forgets `key` (an admin's unlock): its whole burst is available again.
    pub fn clear(&mut self, key: &str) {
        self.full_at.remove(key);
    }

    /// Drops keys whose bucket is full again.
    pub fn prune(&mut self, now: Millis) {
        self.full_at.retain(|_, &mut t| t > now);
    }

    /// Number of keys currently tracked.
    pub fn len(&self) -> usize {
        self.full_at.len()
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.full_at.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleRule { max_failures: 3, window_ms: 1000 })
    }

    /// One step of a table: an operation on key "a" at a time, and what `try_begin` answers.
    #[derive(Debug, Clone, Copy)]
    enum Op {
        Begin(Millis, Result<(), Millis>),
        Fail(Millis),
        Succeed,
        Abandon,
        Clear,
    }

    fn run(t: &mut Throttle, ops: &[Op]) {
        for (i, op) in ops.iter().enumerate() {
            match *op {
                Op::Begin(at, want) => assert_eq!(t.try_begin("a", at), want, "step {i}: {op:?}"),
                Op::Fail(at) => t.fail("a", at),
                Op::Succeed => t.succeed("a"),
                Op::Abandon => t.abandon("a"),
                Op::Clear => t.clear("a"),
            }
        }
    }

    #[test]
    fn throttle_table() {
        use Op::*;
        let cases: &[(&str, &[Op])] = &[
            (
                "sequential failures lock until the oldest leaves the window",
                &[
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(10, Ok(())),
                    Fail(10),
                    Begin(20, Ok(())),
                    Fail(20),
                    Begin(30, Err(970)),
                    Begin(999, Err(1)),
                    Begin(1000, Ok(())),
                ],
            ),
            (
                "concurrent attempts are counted before they are checked",
                &[
                    Begin(0, Ok(())),
                    Begin(0, Ok(())),
                    Begin(0, Ok(())),
                    Begin(0, Err(IN_FLIGHT_RETRY_MS)),
                    Fail(5),
                    Fail(5),
                    Fail(5),
                    Begin(6, Err(999)),
                ],
            ),
            (
                "a success clears the failures",
                &[
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(1, Ok(())),
                    Succeed,
                    Begin(2, Ok(())),
                    Begin(2, Ok(())),
                    Begin(2, Ok(())),
                    Begin(2, Err(IN_FLIGHT_RETRY_MS)),
                ],
            ),
            (
                "abandoned attempts give their place back without failing",
                &[
                    Begin(0, Ok(())),
                    Begin(0, Ok(())),
                    Begin(0, Ok(())),
                    Abandon,
                    Abandon,
                    Begin(0, Ok(())),
                    Begin(0, Ok(())),
                    Begin(0, Err(IN_FLIGHT_RETRY_MS)),
                ],
            ),
            (
                "an admin's clear unlocks, attempts in flight still count",
                &[
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(0, Ok(())),
                    Fail(0),
                    Begin(1, Err(999)),
                    Clear,
                    Begin(2, Ok(())),
                    Begin(2, Ok(())),
                    Clear,
                    Begin(2, Ok(())),
                    Begin(2, Err(IN_FLIGHT_RETRY_MS)),
                ],
            ),
        ];
        for (name, ops) in cases {
            let mut t = throttle();
            eprintln!("case: {name}");
            run(&mut t, ops);
            assert_eq!(t.try_begin("b", 0), Ok(()), "{name}: other keys are not affected");
        }
    }

    #[test]
    fn many_concurrent_attempts_check_at_most_the_limit() {
        let mut t = throttle();
        let admitted = (0..64).filter(|_| t.try_begin("a", 0).is_ok()).count();
        assert_eq!(admitted, 3);
        for _ in 0..admitted {
            t.fail("a", 1);
        }
        assert_eq!(t.try_begin("a", 2), Err(999), "the right password waits as well");
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
        assert_eq!(t.try_begin("c", 0), Ok(()));
        t.prune(5000);
        assert_eq!(t.len(), 1, "an attempt in flight is kept");
        t.abandon("c");
        assert!(t.is_empty());
    }

    #[test]
    fn memory_per_key_is_bounded() {
        let mut t = throttle();
        for at in 0..100 {
            t.fail("a", at);
        }
        assert_eq!(t.entries["a"].failures.len(), 3);
        assert_eq!(t.entries["a"].in_flight, 0, "ending more than begun does not underflow");
    }

    #[test]
    fn slowdown_table() {
        let rule = SlowdownRule { burst: 3, interval_ms: 1000 };
        // (time, refund before this attempt, expected answer)
        type Step = (Millis, bool, Result<(), Millis>);
        let cases: &[(&str, &[Step])] = &[
            (
                "a burst, then one per interval, waits never longer than one interval",
                &[
                    (0, false, Ok(())),
                    (0, false, Ok(())),
                    (0, false, Ok(())),
                    (0, false, Err(1000)),
                    (400, false, Err(600)),
                    (1000, false, Ok(())),
                    (1000, false, Err(1000)),
                    (2500, false, Ok(())),
                    (2600, false, Err(400)),
                ],
            ),
            (
                "a refund gives a slot back",
                &[(0, false, Ok(())), (0, false, Ok(())), (0, false, Ok(())), (0, true, Ok(())), (0, false, Err(1000))],
            ),
            (
                "a quiet key has its whole burst again",
                &[
                    (0, false, Ok(())),
                    (0, false, Ok(())),
                    (0, false, Ok(())),
                    (10_000, false, Ok(())),
                    (10_000, false, Ok(())),
                    (10_000, false, Ok(())),
                    (10_000, false, Err(1000)),
                ],
            ),
        ];
        for (name, steps) in cases {
            let mut s = Slowdown::new(rule);
            for (i, &(at, refund, want)) in steps.iter().enumerate() {
                if refund {
                    s.refund("ip", at);
                }
                assert_eq!(s.try_begin("ip", at), want, "{name}: step {i}");
            }
            assert_eq!(s.try_begin("other", 0), Ok(()), "{name}: other keys are not affected");
        }
    }

    #[test]
    fn slowdown_clear_and_prune() {
        let mut s = Slowdown::new(SlowdownRule { burst: 1, interval_ms: 1000 });
        assert_eq!(s.try_begin("a", 0), Ok(()));
        assert_eq!(s.try_begin("a", 0), Err(1000));
        s.clear("a");
        assert_eq!(s.try_begin("a", 0), Ok(()));
        assert_eq!(s.try_begin("b", 0), Ok(()));
        assert_eq!(s.len(), 2);
        s.prune(1000);
        assert!(s.is_empty());
        s.refund("nobody", 0);
        assert!(s.is_empty());
    }
}

//! The CPU budget of a plugin: how much guest time it may use per window before its calls are
//! refused for the rest of the window (throttled), and how many such windows in a row disable
//! it. Pure bookkeeping over instants the caller supplies, so it is tested without a clock.

use std::time::{Duration, Instant};

use crate::limits::PluginLimits;

/// What spending guest time led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within budget.
    Fine,
    /// Over budget for this window: calls are refused until it ends, with this reason.
    Throttled(String),
    /// Over budget in `cpu_strikes` windows in a row: disable it, with this reason.
    Disable(String),
}

/// One plugin's window.
#[derive(Debug)]
pub(crate) struct Budget {
    start: Instant,
    used: Duration,
    /// Why calls are refused in this window.
    throttled: Option<String>,
    /// Windows over budget in a row, this one included when it is.
    strikes: u32,
    /// Guest time ever spent.
    pub(crate) total: Duration,
}

impl Budget {
    /// A budget whose first window starts at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self { start: now, used: Duration::ZERO, throttled: None, strikes: 0, total: Duration::ZERO }
    }

    /// Whether the budget applies at all (a budget of the whole window or more never binds).
    fn applies(limits: &PluginLimits) -> bool {
        !limits.cpu_window.is_zero() && limits.cpu_budget < limits.cpu_window
    }

    /// Starts a new window when the current one is over. A window that ended within budget
    /// clears the strikes; so does a whole idle window in between.
    fn roll(&mut self, now: Instant, limits: &PluginLimits) {
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < limits.cpu_window || limits.cpu_window.is_zero() {
            return;
        }
        if self.throttled.is_none() || elapsed >= limits.cpu_window * 2 {
            self.strikes = 0;
        }
        self.start = now;
        self.used = Duration::ZERO;
        self.throttled = None;
    }

    /// Before a call: `Err(reason)` while throttled in the current window.
    pub(crate) fn check(&mut self, now: Instant, limits: &PluginLimits) -> Result<(), String> {
        self.roll(now, limits);
        match &self.throttled {
            Some(why) => Err(why.clone()),
            None => Ok(()),
        }
    }

    /// After a call that used `spent` of guest time.
    pub(crate) fn spend(&mut self, now: Instant, spent: Duration, limits: &PluginLimits) -> Verdict {
        self.total += spent;
        self.roll(now, limits);
        self.used += spent;
        if !Self::applies(limits) || self.throttled.is_some() || self.used <= limits.cpu_budget {
            return Verdict::Fine;
        }
        self.strikes += 1;
        let over = format!(
            "used {} ms of guest time within {} s (budget {} ms)",
            self.used.as_millis(),
            limits.cpu_window.as_secs_f64(),
            limits.cpu_budget.as_millis()
        );
        if limits.cpu_strikes > 0 && self.strikes >= limits.cpu_strikes {
            return Verdict::Disable(format!(
                "disabled: over its CPU budget in {} windows in a row; last: {over}",
                self.strikes
            ));
        }
        let why = format!("throttled until its window ends: {over}");
        self.throttled = Some(why.clone());
        Verdict::Throttled(why)
    }

    /// Why calls are refused now, if they are (without rolling the window).
    pub(crate) fn throttled(&self, now: Instant, limits: &PluginLimits) -> Option<String> {
        (now.saturating_duration_since(self.start) < limits.cpu_window).then(|| self.throttled.clone()).flatten()
    }

    /// Guest time used in the current window.
    pub(crate) fn used(&self, now: Instant, limits: &PluginLimits) -> Duration {
        if now.saturating_duration_since(self.start) < limits.cpu_window { self.used } else { Duration::ZERO }
    }

    /// Forgets the window and the strikes (an admin enabled the plugin again).
    pub(crate) fn reset(&mut self, now: Instant) {
        let total = self.total;
        *self = Self::new(now);
        self.total = total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(budget_ms: u64, strikes: u32) -> PluginLimits {
        PluginLimits {
            cpu_budget: Duration::from_millis(budget_ms),
            cpu_window: Duration::from_secs(10),
            cpu_strikes: strikes,
            ..PluginLimits::default()
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn within_budget_nothing_happens() {
        let (t0, l) = (Instant::now(), limits(100, 3));
        let mut b = Budget::new(t0);
        for i in 0..100 {
            assert_eq!(b.spend(t0 + MS * i, MS, &l), Verdict::Fine);
            assert!(b.check(t0 + MS * i, &l).is_ok());
        }
        assert_eq!(b.used(t0, &l), MS * 100);
    }

    #[test]
    fn over_budget_throttles_until_the_window_ends() {
        let (t0, l) = (Instant::now(), limits(100, 3));
        let mut b = Budget::new(t0);
        assert_eq!(b.spend(t0, MS * 90, &l), Verdict::Fine);
        let v = b.spend(t0 + MS, MS * 30, &l);
        assert!(
            matches!(&v, Verdict::Throttled(why) if why.contains("120 ms") && why.contains("budget 100 ms")),
            "{v:?}"
        );
        assert!(b.check(t0 + Duration::from_secs(9), &l).is_err());
        assert!(b.throttled(t0 + Duration::from_secs(9), &l).is_some());
        assert!(b.check(t0 + Duration::from_secs(10), &l).is_ok(), "a new window");
        assert_eq!(b.used(t0 + Duration::from_secs(10), &l), Duration::ZERO);
    }

    #[test]
    fn strikes_in_a_row_disable_and_a_good_window_forgives() {
        let (t0, l) = (Instant::now(), limits(100, 3));
        let w = Duration::from_secs(10);
        let mut b = Budget::new(t0);
        assert!(matches!(b.spend(t0, MS * 200, &l), Verdict::Throttled(_)));
        assert!(matches!(b.spend(t0 + w, MS * 200, &l), Verdict::Throttled(_)));
        // A window within budget clears the strikes.
        assert_eq!(b.spend(t0 + w * 2, MS * 10, &l), Verdict::Fine);
        assert!(matches!(b.spend(t0 + w * 3, MS * 200, &l), Verdict::Throttled(_)));
        assert!(matches!(b.spend(t0 + w * 4, MS * 200, &l), Verdict::Throttled(_)));
        let v = b.spend(t0 + w * 5, MS * 200, &l);
        assert!(matches!(&v, Verdict::Disable(why) if why.contains("3 windows in a row")), "{v:?}");
    }

    #[test]
    fn an_idle_window_between_forgives_too() {
        let (t0, l) = (Instant::now(), limits(100, 2));
        let w = Duration::from_secs(10);
        let mut b = Budget::new(t0);
        assert!(matches!(b.spend(t0, MS * 200, &l), Verdict::Throttled(_)));
        assert!(matches!(b.spend(t0 + w * 3, MS * 200, &l), Verdict::Throttled(_)));
    }

    #[test]
    fn no_strikes_means_throttle_only_and_a_full_budget_never_binds() {
        let (t0, w) = (Instant::now(), Duration::from_secs(10));
        let l = limits(100, 0);
        let mut b = Budget::new(t0);
        for i in 0..10 {
            assert!(matches!(b.spend(t0 + w * i, MS * 200, &l), Verdict::Throttled(_)));
        }
        let l = limits(10_000, 1);
        let mut b = Budget::new(t0);
        assert_eq!(b.spend(t0, w * 5, &l), Verdict::Fine);
        assert_eq!(b.total, w * 5);
    }
}

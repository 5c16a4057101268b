//! Per-plugin limits and their defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What one plugin may use. Defaults are what an admin gets without configuring anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Longest a call may run before it traps (50 ms): presence is recomputed inline.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Longest an archive sink may take over one batch (10 s): sinks write files or call out.
    #[serde(with = "humantime_serde")]
    pub batch_deadline: Duration,
    /// Linear memory cap per instance (64 MiB).
    pub memory_bytes: usize,
    /// Core instances, tables and memories per store (64 each: one component is several).
    pub instances: usize,
    /// Traps within `trap_window` that disable the plugin (5).
    pub max_traps: u32,
    /// Window for `max_traps` (60 s).
    #[serde(with = "humantime_serde")]
    pub trap_window: Duration,
    /// Most states a plugin may define (50).
    pub max_states: usize,
    /// Log lines per second before lines are dropped (50, bursts of 200).
    pub log_lines_per_sec: u32,
    /// Plugin-private key-value storage (1 MiB).
    pub kv_quota_bytes: u64,
    /// Disk space in a `dir` grant's directory: file sizes plus 256 bytes per entry (64 MiB).
    pub dir_quota_bytes: u64,
    /// Guest time the plugin may use per `cpu_window` (2 s, a fifth of a core) before its calls
    /// are refused until the window ends (throttled). Counted on the plugin's executor thread:
    /// wall time inside the guest for presence and federation plugins (their callers wait for
    /// it), thread CPU time for archive sinks (whose batches legitimately wait on disks and
    /// networks). A budget of the whole window or more never binds.
    #[serde(with = "humantime_serde")]
    pub cpu_budget: Duration,
    /// Window for `cpu_budget` (10 s).
    #[serde(with = "humantime_serde")]
    pub cpu_window: Duration,
    /// Windows over budget in a row that disable the plugin (3; 0: only throttle).
    pub cpu_strikes: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(50),
            batch_deadline: Duration::from_secs(10),
            memory_bytes: 64 << 20,
            instances: 64,
            max_traps: 5,
            trap_window: Duration::from_secs(60),
            max_states: 50,
            log_lines_per_sec: 50,
            kv_quota_bytes: 1 << 20,
            dir_quota_bytes: 64 << 20,
            cpu_budget: Duration::from_secs(2),
            cpu_window: Duration::from_secs(10),
            cpu_strikes: 3,
        }
    }
}

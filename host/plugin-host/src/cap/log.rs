//! `halo:plugin/log`: lines tagged with the plugin's name, rate-limited, kept in a ring buffer
//! for `halo plugin logs`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::halo::plugin::log as wit;
use crate::bindings::halo::plugin::types::Level;
use crate::executor::PluginState;

/// Lines kept per plugin.
const RING: usize = 500;

/// One logged line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// `trace` … `error`.
    pub level: &'static str,
    /// The text (at most 4 KiB kept).
    pub message: String,
}

/// A plugin's log, shared by its instances.
pub struct LogSink {
    plugin: Arc<str>,
    per_sec: u32,
    inner: Mutex<Inner>,
}

struct Inner {
    lines: VecDeque<LogLine>,
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl LogSink {
    /// A log for `plugin` allowing `per_sec` lines per second (bursts of 4×).
    pub fn new(plugin: &str, per_sec: u32) -> Arc<Self> {
        let inner =
            Inner { lines: VecDeque::new(), tokens: f64::from(per_sec) * 4.0, last: Instant::now(), dropped: 0 };
        Arc::new(Self { plugin: plugin.into(), per_sec, inner: Mutex::new(inner) })
    }

    /// Records a line unless the plugin is flooding.
    pub fn write(&self, level: &'static str, message: &str) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let burst = f64::from(self.per_sec) * 4.0;
        i.tokens = (i.tokens + now.duration_since(i.last).as_secs_f64() * f64::from(self.per_sec)).min(burst);
        i.last = now;
        if i.tokens < 1.0 {
            i.dropped += 1;
            if i.dropped.is_power_of_two() {
                tracing::warn!(plugin = %self.plugin, dropped = i.dropped, "plugin log flood: lines dropped");
            }
            return;
        }
        i.tokens -= 1.0;
        let message: String = message.chars().take(4096).collect();
        match level {
            "error" => tracing::error!(plugin = %self.plugin, "{message}"),
            "warn" => tracing::warn!(plugin = %self.plugin, "{message}"),
            "info" => tracing::info!(plugin = %self.plugin, "{message}"),
            _ => tracing::debug!(plugin = %self.plugin, "{message}"),
        }
        let at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        if i.lines.len() == RING {
            i.lines.pop_front();
        }
        i.lines.push_back(LogLine { at_ms, level, message });
    }

    /// The kept lines, oldest first, and how many were dropped.
    pub fn lines(&self) -> (Vec<LogLine>, u64) {
        let i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (i.lines.iter().cloned().collect(), i.dropped)
    }
}

/// Per-instance state: the shared sink.
pub struct LogState {
    /// Where lines go.
    pub sink: Arc<LogSink>,
}

impl wit::Host for LogState {
    fn log(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        self.sink.write(level, &message);
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<PluginState, HasSelf<LogState>>(linker, |s| &mut s.log)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floods_are_cut_and_counted() {
        let sink = LogSink::new("p", 10);
        for i in 0..1000 {
            sink.write("info", &format!("line {i}"));
        }
        let (lines, dropped) = sink.lines();
        assert_eq!(lines.len(), 40, "a burst of 4 x rate gets through");
        assert_eq!(dropped, 960);
    }
}

//! `halo:plugin/log`: lines tagged with the plugin's name, rate-limited, kept in a ring buffer
//! for `halo plugin logs` and, when the log has a file, appended to it so they survive a
//! reload and a restart. In the server's own log a line is one line: newlines and other
//! control characters a plugin writes are escaped (`\n`, `\u{1b}`), so a plugin cannot forge
//! server log lines or send escape sequences to an admin's terminal.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::halo::plugin::log as wit;
use crate::bindings::halo::plugin::types::Level;
use crate::executor::PluginState;

/// Lines kept per plugin.
const RING: usize = 500;
/// A log file is rotated (to `NAME.log.1`) past this size.
const FILE_BYTES: u64 = 512 * 1024;

/// One logged line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// `trace` … `error`.
    pub level: &'static str,
    /// The text (at most 4 KiB kept), as the plugin wrote it.
    pub message: String,
}

/// A line as read back from a log file.
#[derive(serde::Deserialize)]
struct StoredLine {
    at_ms: u64,
    level: String,
    message: String,
}

impl From<StoredLine> for LogLine {
    fn from(l: StoredLine) -> Self {
        let level = ["trace", "debug", "info", "warn", "error"].into_iter().find(|v| *v == l.level).unwrap_or("info");
        Self { at_ms: l.at_ms, level, message: l.message }
    }
}

/// `s` with control characters (C0, DEL, C1: newlines, ESC, …) and the bidirectional
/// formatting characters escaped Rust-style (`\n`, `\u{1b}`): safe on one line of a log or a
/// terminal.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A plugin's log, shared by its instances (and by the next load of the plugin after a
/// config change or an upgrade, so its lines are kept).
pub struct LogSink {
    plugin: Arc<str>,
    inner: Mutex<Inner>,
}

struct Inner {
    per_sec: u32,
    lines: VecDeque<LogLine>,
    tokens: f64,
    last: Instant,
    dropped: u64,
    file: Option<LogFile>,
}

struct LogFile {
    path: PathBuf,
    out: Option<std::fs::File>,
    bytes: u64,
}

impl LogFile {
    fn rotated(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".1");
        p.into()
    }

    /// The lines kept in the file and its rotated predecessor, oldest first.
    fn read(&self) -> VecDeque<LogLine> {
        let mut lines = VecDeque::new();
        for path in [self.rotated(), self.path.clone()] {
            let Ok(f) = std::fs::File::open(&path) else { continue };
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if let Ok(l) = serde_json::from_str::<StoredLine>(&line) {
                    if lines.len() == RING {
                        lines.pop_front();
                    }
                    lines.push_back(l.into());
                }
            }
        }
        lines
    }

    fn append(&mut self, line: &LogLine) {
        if self.out.is_none() || self.bytes > FILE_BYTES {
            if self.bytes > FILE_BYTES {
                self.out = None;
                let _ = std::fs::rename(&self.path, self.rotated());
            }
            let opened = std::fs::OpenOptions::new().create(true).append(true).open(&self.path);
            match opened {
                Ok(f) => {
                    self.bytes = f.metadata().map_or(0, |m| m.len());
                    self.out = Some(f);
                }
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot write a plugin log file");
                    return;
                }
            }
        }
        let Ok(mut json) = serde_json::to_vec(line) else { return };
        json.push(b'\n');
        if let Some(f) = &mut self.out {
            match f.write_all(&json) {
                Ok(()) => self.bytes += json.len() as u64,
                Err(_) => self.out = None,
            }
        }
    }
}

impl LogSink {
    /// A log for `plugin` allowing `per_sec` lines per second (bursts of 4×), in memory only.
    pub fn new(plugin: &str, per_sec: u32) -> Arc<Self> {
        Self::build(plugin, per_sec, None)
    }

    /// A log for `plugin` kept in `path` too (JSON lines, rotated past 512 KiB to `path.1`):
    /// the lines found there are read back first.
    pub fn with_file(plugin: &str, per_sec: u32, path: PathBuf) -> Arc<Self> {
        Self::build(plugin, per_sec, Some(LogFile { path, out: None, bytes: 0 }))
    }

    fn build(plugin: &str, per_sec: u32, file: Option<LogFile>) -> Arc<Self> {
        let lines = file.as_ref().map(LogFile::read).unwrap_or_default();
        let inner = Inner { per_sec, lines, tokens: f64::from(per_sec) * 4.0, last: Instant::now(), dropped: 0, file };
        Arc::new(Self { plugin: plugin.into(), inner: Mutex::new(inner) })
    }

    /// Changes the flood limit (the plugin's limits changed).
    pub fn set_rate(&self, per_sec: u32) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).per_sec = per_sec;
    }

    /// Records a line unless the plugin is flooding.
    pub fn write(&self, level: &'static str, message: &str) {
        let mut i = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let per_sec = i.per_sec;
        let burst = f64::from(per_sec) * 4.0;
        i.tokens = (i.tokens + now.duration_since(i.last).as_secs_f64() * f64::from(per_sec)).min(burst);
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
        let shown = escape_controls(&message);
        match level {
            "error" => tracing::error!(plugin = %self.plugin, "{shown}"),
            "warn" => tracing::warn!(plugin = %self.plugin, "{shown}"),
            "info" => tracing::info!(plugin = %self.plugin, "{shown}"),
            _ => tracing::debug!(plugin = %self.plugin, "{shown}"),
        }
        let at_ms =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        if i.lines.len() == RING {
            i.lines.pop_front();
        }
        let line = LogLine { at_ms, level, message };
        if let Some(f) = &mut i.file {
            f.append(&line);
        }
        i.lines.push_back(line);
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

    #[test]
    fn controls_are_escaped_and_plain_text_kept() {
        assert!(matches!(escape_controls("plain text, é ü 漢"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("benign\n2026 INFO forged"), "benign\\n2026 INFO forged");
        assert_eq!(
            escape_controls("\u{1b}]0;title\u{7}\r\u{9b}x\u{202e}"),
            "\\u{1b}]0;title\\u{7}\\r\\u{9b}x\\u{202e}"
        );
    }

    #[test]
    fn a_log_file_keeps_lines_for_the_next_sink() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let sink = LogSink::with_file("p", 1000, path.clone());
        for i in 0..3 {
            sink.write("warn", &format!("line {i}\nsecond"));
        }
        drop(sink);
        let again = LogSink::with_file("p", 1000, path);
        let (lines, _) = again.lines();
        assert_eq!(lines.len(), 3);
        assert_eq!((lines[2].level, lines[2].message.as_str()), ("warn", "line 2\nsecond"));
    }
}

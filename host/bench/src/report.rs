//! Progress lines (stderr) and the summary table or JSON (stdout).

use std::io::Write;

use serde::Serialize;

/// Overwrites the progress line on stderr.
pub fn progress(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r\x1b[2K{line}");
    let _ = err.flush();
}

/// Ends the progress line with a note that stays.
pub fn note(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\r\x1b[2K{line}");
}

/// One figure of a scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario (`idle`, `presence`, `im`, `plugin`, `archive`, `setup`).
    pub scenario: String,
    /// What was measured.
    pub metric: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// The target for it, if any.
    pub target: Option<String>,
}

/// One line of the Halo vs Prosody table (`--with-prosody`): the same figure of the same
/// workload on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct SideRow {
    /// The workload (`1:1 flat out`, `1:1 closed loop 50 pairs x window 10`, …).
    pub workload: String,
    /// What was measured.
    pub figure: String,
    /// Halo's figure, if Halo ran this workload.
    pub halo: Option<f64>,
    /// Prosody's figure.
    pub prosody: Option<f64>,
    /// The unit of both.
    pub unit: String,
    /// How many times better Halo is (throughput: Halo ÷ Prosody; latency: Prosody ÷ Halo);
    /// none where "better" does not apply (CPU use) or a side is missing.
    pub halo_better: Option<f64>,
}

/// Collected rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Machine and version facts.
    pub machine: serde_json::Map<String, serde_json::Value>,
    /// Every figure, in the order measured.
    pub rows: Vec<Row>,
    /// Halo and Prosody side by side (empty without `--with-prosody`).
    pub side: Vec<SideRow>,
}

impl Report {
    /// Adds a figure (and echoes it on stderr, so long runs show results as they come).
    pub fn add(&mut self, scenario: &str, metric: &str, value: f64, unit: &str, target: Option<&str>) {
        note(&format!("  {scenario:<9} {metric:<44} {:>14} {unit}", fmt_value(value)));
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            target: target.map(str::to_owned),
        });
    }

    /// Adds a line to the Halo vs Prosody table.
    pub fn side(&mut self, row: SideRow) {
        self.side.push(row);
    }

    /// The summary table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.machine {
            out.push_str(&format!("{k}: {}\n", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())));
        }
        out.push_str(&format!("\n{:<9} | {:<44} | {:>14} | {:<12} | target\n", "scenario", "metric", "value", "unit"));
        out.push_str(&format!("{}\n", "-".repeat(100)));
        for r in &self.rows {
            out.push_str(&format!(
                "{:<9} | {:<44} | {:>14} | {:<12} | {}\n",
                r.scenario,
                r.metric,
                fmt_value(r.value),
                r.unit,
                r.target.as_deref().unwrap_or("")
            ));
        }
        if !self.side.is_empty() {
            out.push_str(&self.side_table());
        }
        out
    }

    /// The Halo vs Prosody table: one line per workload and figure, both sides next to each other.
    pub fn side_table(&self) -> String {
        let opt = |v: Option<f64>| v.map(fmt_value).unwrap_or_else(|| "-".into());
        let w = self.side.iter().map(|r| r.workload.chars().count()).max().unwrap_or(8).max(8);
        let f = self.side.iter().map(|r| r.figure.chars().count()).max().unwrap_or(6).max(6);
        let mut out =
            String::from("\nHalo vs Prosody (halo_better: throughput Halo / Prosody, latency Prosody / Halo)\n");
        out.push_str(&format!(
            "{:<w$} | {:<f$} | {:>10} | {:>10} | {:<11} | halo_better\n",
            "workload", "figure", "Halo", "Prosody", "unit"
        ));
        out.push_str(&format!("{}\n", "-".repeat(w + f + 55)));
        for r in &self.side {
            out.push_str(&format!(
                "{:<w$} | {:<f$} | {:>10} | {:>10} | {:<11} | {}\n",
                r.workload,
                r.figure,
                opt(r.halo),
                opt(r.prosody),
                r.unit,
                r.halo_better.map(|x| format!("{x:.2}x")).unwrap_or_default()
            ));
        }
        out
    }
}

/// A figure with sensible precision.
pub fn fmt_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Facts about this machine: cores, memory, kernel, date.
pub fn machine() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    m.insert("cores".into(), cores.into());
    if let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo")
        && let Some(kib) = crate::server::proc_field(&meminfo, "MemTotal:")
    {
        m.insert("memory".into(), format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0).into());
    }
    if let Ok(cpu) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(model) = cpu.lines().find(|l| l.starts_with("model name"))
    {
        m.insert("cpu".into(), model.split(':').nth(1).unwrap_or_default().trim().into());
    }
    if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), k.trim().into());
    }
    m.insert("open_files_limit".into(), crate::net::raise_nofile().into());
    m.insert("unix_time".into(), crate::stats::now_ms().div_euclid(1000).into());
    m
}

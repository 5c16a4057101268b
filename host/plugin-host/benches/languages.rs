//! One presence plugin per language side by side: `cargo bench -p halo-plugin-host --bench
//! languages` (run `cargo xtask plugins` first, with componentize-py and Node.js installed).
//! For each component: its size, the time to load it with no compiled artifact cached (the
//! Cranelift compile, as at install; wall time and the process's CPU time, which a busy
//! machine inflates less), the guest time of one `derive` on the live instance (as
//! the executor measures it, so without the thread handoff every language pays alike), and
//! the instance's linear memory. Figures only; nothing fails on timing.
//!
//! The plugins: `office-hours` (Rust), `python-lunch` (componentize-py) and `js-quiet-hours`
//! (componentize-js), each configured so that `derive` publishes its state on every call.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::GuestTime;
use halo_core::presence::{Inputs, Machine, MachineState, Timers, aggregate};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{PluginLimits, Runtime};

/// The Python and JavaScript examples' config: their state all day long.
const ALL_DAY: &[(&str, &str)] = &[("start_minute", "0"), ("end_minute", "1440")];

/// A plugin to measure: label, component path, config, calls to time.
type Bench = (&'static str, &'static str, &'static [(&'static str, &'static str)], u32);

/// This process's CPU time (all threads: Cranelift compiles in parallel).
#[allow(unsafe_code)]
fn process_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc == 0 { Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32) } else { Duration::ZERO }
}

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let timers = Timers { away_after_ms: 300_000, offline_grace_ms: 10_000 };
    let inputs =
        Inputs { endpoints: [(1, Machine { state: MachineState::Active, since: 0 })].into(), ..Default::default() };
    let now = 1_796_212_800_000u64; // 12:00 UTC, a weekday
    let (builtin, _) = aggregate(&inputs, now, &timers);
    let plugins: [Bench; 3] = [
        (
            "Rust (office-hours)",
            "plugins/target/wasm32-wasip2/release/office_hours.wasm",
            &[("timezone", "UTC"), ("start", "23:59"), ("end", "23:59")],
            100_000,
        ),
        ("Python (python-lunch)", "examples/python-presence/target/python-lunch.wasm", ALL_DAY, 20_000),
        ("JavaScript (js-quiet-hours)", "examples/js-presence/target/js-quiet-hours.wasm", ALL_DAY, 20_000),
    ];
    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>14} {:>14} {:>12}",
        "plugin", "wasm bytes", "compile ms", "compile CPU", "derive ns", "derive+wait ns", "memory KiB"
    );
    for (label, rel, config, calls) in plugins {
        let path = root.join(rel);
        let Ok(bytes) = std::fs::read(&path) else {
            println!("{label:<30} missing: {} (run `cargo xtask plugins`)", path.display());
            continue;
        };
        let guest = Arc::new(GuestTime::default());
        // No cache directory: every load compiles, as an install does.
        let mut rt = Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime");
        rt.observe(guest.clone());
        let config: BTreeMap<String, String> = config.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let (started, cpu) = (Instant::now(), process_cpu());
        let plugin = rt.load(&bytes, &[], &config, PluginLimits::default()).expect("load");
        let (compile, compile_cpu) = (started.elapsed(), process_cpu().saturating_sub(cpu));
        let answer = plugin.derive("alice", &inputs, now, &builtin).expect("derive");
        assert!(answer.is_some(), "{label}: configured to publish its state on every call");
        for _ in 0..calls / 10 {
            let _ = plugin.derive("alice", &inputs, now, &builtin);
        }
        guest.take();
        let started = Instant::now();
        for i in 0..calls {
            std::hint::black_box(plugin.derive("alice", &inputs, now + u64::from(i), &builtin).ok());
        }
        let wall = started.elapsed().as_nanos() as f64 / f64::from(calls);
        let memory = plugin.status().memory_bytes;
        println!(
            "{label:<30} {:>12} {:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>12}",
            bytes.len(),
            compile.as_secs_f64() * 1e3,
            compile_cpu.as_secs_f64() * 1e3,
            guest.take(),
            wall,
            memory / 1024
        );
    }
}

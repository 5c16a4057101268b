//! Loads real components built from `plugins/` (run `cargo xtask plugins` first; `cargo xtask
//! test` does) and checks limits, traps, grants and validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use halo_core::presence::{Inputs, Machine, MachineState, Published};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{CallError, Manifest, PluginLimits, Runtime, pack};

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../plugins/target/wasm32-wasip2/release/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the plugins with `cargo xtask plugins`", path.display()))
}

fn runtime() -> Runtime {
    Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime")
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn online(now: u64) -> Inputs {
    Inputs { endpoints: [(1, Machine { state: MachineState::Active, since: now })].into(), ..Default::default() }
}

const AVAILABLE: Published = Published { availability: 3500, activity: None, custom: None };

#[test]
fn custom_states_come_from_config() {
    let rt = runtime();
    let states = r##"[{"id":"focusing","labels":{"en":"Focusing","fr":"Concentration"},"availability":6500,"colour":"#8e44ad"}]"##;
    let p =
        rt.load(&wasm("custom_states"), &[], &config(&[("states", states)]), PluginLimits::default()).expect("load");
    assert_eq!(p.manifest().name, "custom-states");
    let got = p.states().expect("states");
    assert_eq!(got[0].id, "focusing");
    assert_eq!(got[0].labels.get("fr").map(String::as_str), Some("Concentration"));
    assert_eq!(p.derive("alice", &online(0), 0, &AVAILABLE).expect("derive"), None);
    let bad = rt.load(&wasm("custom_states"), &[], &config(&[("max_states", "many")]), PluginLimits::default());
    assert!(bad.expect_err("schema").to_string().contains("max_states"));
}

#[test]
fn office_hours_derives_off_work() {
    let rt = runtime();
    let p = rt
        .load(&wasm("office_hours"), &[], &config(&[("timezone", "America/New_York")]), PluginLimits::default())
        .expect("load");
    // Thursday 2026-11-26 08:30 UTC = 03:30 in New York.
    let now = 1_796_200_200_000;
    let got = p.derive("alice", &online(now), now, &AVAILABLE).expect("derive").expect("off work");
    assert_eq!((got.availability, got.activity.map(|a| a.label())), (15_500, Some("Off work")));
    assert_eq!(p.tick_seconds().expect("tick"), Some(Duration::from_secs(60)));
}

fn hostile(mode: &str, limits: PluginLimits) -> halo_plugin_host::Plugin {
    runtime().load(&wasm("hostile"), &[], &config(&[("mode", mode)]), limits).expect("load")
}

#[test]
fn a_runaway_loop_is_stopped_at_its_deadline_then_disabled() {
    let limits = PluginLimits { max_traps: 3, ..PluginLimits::default() };
    let p = hostile("loop", limits);
    let started = Instant::now();
    let err = p.derive("alice", &online(0), 0, &AVAILABLE).expect_err("trap");
    assert!(matches!(err, CallError::Trap(ref why) if why.contains("deadline")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "stopped near its 50 ms deadline: {:?}", started.elapsed());
    assert!(p.states().is_ok(), "a fresh instance takes over after a trap");
    for _ in 0..2 {
        let _ = p.derive("alice", &online(0), 0, &AVAILABLE);
    }
    let status = p.status();
    assert!(status.disabled.as_deref().is_some_and(|d| d.contains("3 traps")), "{status:?}");
    assert!(matches!(p.states(), Err(CallError::Disabled(_))));
    p.enable();
    assert!(p.states().is_ok());
}

#[test]
fn memory_bombs_and_panics_trap_without_hurting_the_host() {
    // A long deadline, so that on a loaded machine the memory limit, not the clock, stops it.
    let slow_ok = PluginLimits { deadline: Duration::from_secs(5), ..PluginLimits::default() };
    let p = hostile("memory", slow_ok);
    let err = p.derive("alice", &online(0), 0, &AVAILABLE).expect_err("memory");
    assert!(err.to_string().contains("memory"), "{err}");
    let p = hostile("trap", PluginLimits::default());
    assert!(matches!(p.derive("alice", &online(0), 0, &AVAILABLE), Err(CallError::Trap(_))));
    assert!(p.logs().0.iter().any(|l| l.message.contains("trapped")));
}

#[test]
fn oversized_answers_and_log_floods_are_contained() {
    let slow_ok = || PluginLimits { deadline: Duration::from_secs(5), ..PluginLimits::default() };
    let p = hostile("oversized", slow_ok());
    assert!(matches!(p.derive("alice", &online(0), 0, &AVAILABLE), Err(CallError::Invalid(_))));
    assert_eq!(p.status().errors, 1);
    let p = hostile("logflood", slow_ok());
    assert_eq!(p.derive("alice", &online(0), 0, &AVAILABLE).expect("completes"), None);
    let (lines, dropped) = p.logs();
    assert!(lines.len() <= 500 && dropped > 9_000, "{} kept, {dropped} dropped", lines.len());
}

#[test]
fn kv_is_denied_by_default_and_bounded_when_granted() {
    let rt = runtime();
    // Filling the quota takes many host calls: a long deadline, so that on a loaded machine the
    // quota, not the clock, stops the plugin.
    let limits = || PluginLimits { deadline: Duration::from_secs(5), ..PluginLimits::default() };
    let denied = rt.load(&wasm("hostile"), &[], &config(&[("mode", "kv")]), limits()).expect("load");
    denied.derive("alice", &online(0), 0, &AVAILABLE).expect("runs");
    assert!(denied.logs().0.iter().any(|l| l.message.contains("after 0 writes: AccessDenied")), "{:?}", denied.logs());
    let granted = rt
        .load(&wasm("hostile"), &["kv".into(), "network".into()], &config(&[("mode", "kv")]), limits())
        .expect("load");
    assert_eq!(granted.grants(), ["kv"], "grants the manifest does not ask for are dropped");
    granted.derive("alice", &online(0), 0, &AVAILABLE).expect("runs");
    assert!(granted.logs().0.iter().any(|l| l.message.contains("QuotaExceeded")), "{:?}", granted.logs());
}

#[test]
fn invalid_components_are_refused_with_a_reason() {
    let rt = runtime();
    let err =
        |bytes: &[u8]| rt.load(bytes, &[], &BTreeMap::new(), PluginLimits::default()).expect_err("refused").to_string();
    assert!(err(b"garbage").contains("not a valid WebAssembly component"));
    assert!(err(b"\0asm\x01\0\0\0").contains("core module"));
    let newer = pack(
        &wasm("custom_states"),
        br#"{"name":"x","version":"1.0.0","kind":"presence-states","api":"halo:plugin@9.0.0"}"#,
    );
    assert!(newer.expect_err("unknown api").to_string().contains("rebuild"));
    let repacked = pack(
        &wasm("custom_states"),
        br#"{"name":"renamed","version":"2.0.0","kind":"presence-states","api":"halo:plugin@0.1.0"}"#,
    )
    .expect("pack");
    assert_eq!(Manifest::read(&repacked).expect("manifest").name, "renamed", "a packed top-level manifest wins");
}

#[test]
fn compiled_artifacts_are_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::new(Some(dir.path().to_owned()), Arc::new(MemoryKv::default())).expect("runtime");
    rt.load(&wasm("custom_states"), &[], &BTreeMap::new(), PluginLimits::default()).expect("first load compiles");
    let cached: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(cached.len(), 1);
    let p = rt
        .load(&wasm("custom_states"), &[], &BTreeMap::new(), PluginLimits::default())
        .expect("second load deserializes");
    assert!(p.states().expect("works").is_empty());
}

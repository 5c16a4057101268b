//! The plugin executor through real components built from `plugins/` (run `cargo xtask
//! plugins` first): calls from many tasks, batches, traps, deadlines and the CPU budget, and
//! that a guest never holds the caller's async worker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halo_core::presence::{Inputs, Machine, MachineState, Published};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{CallError, CallObserver, DeriveRequest, Plugin, PluginLimits, Runtime};

fn wasm(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../plugins/target/wasm32-wasip2/release/{name}.wasm"));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; build the plugins with `cargo xtask plugins`", path.display()))
}

fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn online(now: u64) -> Inputs {
    Inputs { endpoints: [(1, Machine { state: MachineState::Active, since: now })].into(), ..Default::default() }
}

const AVAILABLE: Published = Published { availability: 3500, activity: None, custom: None };

/// Thursday 2026-11-26 08:30 UTC = 03:30 in New York: off work.
const NIGHT: u64 = 1_796_200_200_000;
/// Twelve hours later, 15:30 in New York: office hours.
const DAY: u64 = NIGHT + 12 * 3_600_000;

/// Counts what the executor reports.
#[derive(Default)]
struct Counter {
    calls: std::sync::Mutex<Vec<(String, Duration, Option<String>)>>,
    invalid: std::sync::atomic::AtomicU32,
}

impl CallObserver for Counter {
    fn call(&self, plugin: &str, guest: Duration, error: Option<&CallError>) {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push((
            plugin.to_owned(),
            guest,
            error.map(|e| e.to_string()),
        ));
    }
    fn invalid(&self, _plugin: &str) {
        self.invalid.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn load(name: &str, cfg: &[(&str, &str)], limits: PluginLimits, observer: Option<Arc<Counter>>) -> Arc<Plugin> {
    let mut rt = Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime");
    if let Some(o) = observer {
        rt.observe(o);
    }
    Arc::new(rt.load(&wasm(name), &[], &config(cfg), limits).expect("load"))
}

fn office_hours(observer: Option<Arc<Counter>>) -> Arc<Plugin> {
    load("office_hours", &[("timezone", "America/New_York")], PluginLimits::default(), observer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_from_many_tasks_all_get_their_own_answer() {
    let counter = Arc::new(Counter::default());
    let p = office_hours(Some(counter.clone()));
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20u64 {
                let now = if (t + i) % 2 == 0 { NIGHT } else { DAY };
                let got = p.derive_async("alice", &online(now), now, &AVAILABLE).await.expect("derive");
                assert_eq!(got.is_some(), now == NIGHT, "task {t} call {i}");
            }
        }));
    }
    // The blocking variant from plain threads, at the same time.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let p = p.clone();
            std::thread::spawn(move || {
                for _ in 0..20 {
                    assert!(p.derive("bob", &online(NIGHT), NIGHT, &AVAILABLE).expect("derive").is_some());
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    for t in threads {
        t.join().expect("thread");
    }
    let st = p.status();
    assert_eq!((st.calls, st.traps, st.errors), (16 * 20 + 4 * 20, 0, 0), "{st:?}");
    let seen = counter.calls.lock().expect("lock");
    assert_eq!(seen.len(), 16 * 20 + 4 * 20);
    assert!(seen.iter().all(|(name, _, e)| name == "office-hours" && e.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_crosses_once_and_answers_in_order() {
    let p = office_hours(None);
    let (night, day) = (online(NIGHT), online(DAY));
    let requests: Vec<DeriveRequest<'_>> = (0..100)
        .map(|i| {
            let (inputs, now) = if i % 3 == 0 { (&night, NIGHT) } else { (&day, DAY) };
            DeriveRequest { user: "alice", inputs, now_ms: now, builtin: &AVAILABLE }
        })
        .collect();
    let answers = p.derive_many(&requests).await;
    assert_eq!(answers.len(), 100);
    for (i, a) in answers.iter().enumerate() {
        let got = a.as_ref().expect("answer");
        assert_eq!(got.is_some(), i % 3 == 0, "request {i}: {got:?}");
    }
    let blocking = {
        let p = p.clone();
        let night = online(NIGHT);
        tokio::task::spawn_blocking(move || {
            let one = [DeriveRequest { user: "bob", inputs: &night, now_ms: NIGHT, builtin: &AVAILABLE }];
            p.derive_many_blocking(&one)
        })
        .await
        .expect("join")
    };
    assert!(matches!(blocking.as_slice(), [Ok(Some(_))]), "{blocking:?}");
    assert!(p.derive_many(&[]).await.is_empty());
    // Not a presence plugin: every request gets the error, nothing crosses.
    let sink = load("jsonl_archive", &[], PluginLimits::default(), None);
    let refused = sink.derive_many(&requests[..2]).await;
    assert!(refused.iter().all(|r| matches!(r, Err(CallError::Invalid(_)))), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_recreates_the_instance_for_the_next_call_of_a_batch() {
    let limits = PluginLimits { max_traps: 10, ..PluginLimits::default() };
    let p = load("hostile", &[("mode", "trap")], limits, None);
    let inputs = online(0);
    let requests = vec![DeriveRequest { user: "alice", inputs: &inputs, now_ms: 0, builtin: &AVAILABLE }; 3];
    let answers = p.derive_many(&requests).await;
    assert!(answers.iter().all(|a| matches!(a, Err(CallError::Trap(_)))), "{answers:?}");
    assert_eq!(p.status().traps, 3, "each call ran on a fresh instance and trapped on its own");
    assert!(p.states_async().await.is_ok(), "a fresh instance takes over after a trap");
}

#[tokio::test(flavor = "current_thread")]
async fn a_looping_guest_never_holds_the_callers_worker_and_its_deadline_still_disables_it() {
    // One async worker only: were the guest run (or waited for) on it, nothing else could run
    // until the deadline.
    // The CPU budget is set not to bind (it would throttle the second 3 s call).
    let limits = PluginLimits {
        deadline: Duration::from_secs(3),
        max_traps: 2,
        cpu_budget: Duration::from_secs(60),
        cpu_window: Duration::from_secs(60),
        ..PluginLimits::default()
    };
    let p = load("hostile", &[("mode", "loop")], limits, None);
    let call = {
        let p = p.clone();
        tokio::spawn(async move { p.derive_async("alice", &online(0), 0, &AVAILABLE).await })
    };
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!call.is_finished(), "the worker ran other tasks while the guest looped");
    let err = call.await.expect("join").expect_err("deadline");
    assert!(matches!(err, CallError::Trap(ref why) if why.contains("deadline")), "{err}");
    let err = p.derive_async("alice", &online(0), 0, &AVAILABLE).await.expect_err("deadline");
    assert!(matches!(err, CallError::Trap(_)), "{err}");
    let st = p.status();
    assert!(st.disabled.as_deref().is_some_and(|d| d.contains("2 traps")), "{st:?}");
    assert!(matches!(p.derive_async("alice", &online(0), 0, &AVAILABLE).await, Err(CallError::Disabled(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_busy_for_most_of_its_deadline_is_throttled_then_disabled() {
    // 20 ms of spinning per call, well under the 1 s deadline, so it never traps; 50 ms of guest
    // time per 300 ms window, two windows over budget in a row disable it.
    let limits = PluginLimits {
        deadline: Duration::from_secs(1),
        cpu_budget: Duration::from_millis(50),
        cpu_window: Duration::from_millis(300),
        cpu_strikes: 2,
        ..PluginLimits::default()
    };
    let counter = Arc::new(Counter::default());
    let p = load("hostile", &[("mode", "slow"), ("ms", "20")], limits, Some(counter.clone()));
    let mut throttled = None;
    let mut disabled = None;
    for _ in 0..2_000 {
        match p.derive_async("alice", &online(0), 0, &AVAILABLE).await {
            Ok(None) => {}
            Err(CallError::Throttled(why)) => {
                if throttled.is_none() {
                    throttled = Some((why, p.status()));
                }
                // Pace the calls until the window ends.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(CallError::Disabled(why)) => {
                disabled = Some(why);
                break;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    let (why, st) = throttled.expect("throttled before disabled");
    assert!(why.contains("budget 50 ms"), "{why}");
    assert_eq!(st.throttled.as_deref(), Some(why.as_str()), "admins see why: {st:?}");
    assert!(st.disabled.is_none() && st.traps == 0 && st.throttled_calls >= 1, "{st:?}");
    let why = disabled.expect("disabled after two windows over budget");
    assert!(why.contains("CPU budget in 2 windows in a row"), "{why}");
    let st = p.status();
    assert_eq!(st.disabled.as_deref(), Some(why.as_str()));
    assert!(st.cpu_total_ms >= 100, "{st:?}");
    assert!(p.logs().0.iter().any(|l| l.message.contains("throttled")), "the plugin's log says so too");
    let refusals = counter
        .calls
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, g, e)| g.is_zero() && e.as_deref().is_some_and(|e| e.contains("throttled")))
        .count();
    assert!(refusals >= 1, "the observer hears of refused calls");
    // Enabling again starts with a clean budget.
    p.enable();
    assert!(p.derive_async("alice", &online(0), 0, &AVAILABLE).await.is_ok());
    assert!(p.status().throttled.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_calls_and_wrong_worlds_through_the_async_api() {
    let p = office_hours(None);
    assert_eq!(p.tick_seconds_async().await.expect("tick"), Some(Duration::from_secs(60)));
    assert!(p.states_async().await.expect("states").is_empty());
    assert!(matches!(p.deliver(&[]).await, Err(CallError::Invalid(_))));
    assert!(matches!(p.adapter_start().await, Err(CallError::Invalid(_))));
    p.disable("by a test");
    assert!(matches!(p.states_async().await, Err(CallError::Disabled(ref why)) if why == "by a test"));
    p.enable();
    assert!(p.states_async().await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_hears_of_traps_and_invalid_answers() {
    let counter = Arc::new(Counter::default());
    let limits = PluginLimits { deadline: Duration::from_secs(5), ..PluginLimits::default() };
    let p = load("hostile", &[("mode", "oversized")], limits.clone(), Some(counter.clone()));
    assert!(matches!(p.derive_async("alice", &online(0), 0, &AVAILABLE).await, Err(CallError::Invalid(_))));
    assert_eq!(counter.invalid.load(std::sync::atomic::Ordering::Relaxed), 1);
    let p = load("hostile", &[("mode", "trap")], limits, Some(counter.clone()));
    assert!(matches!(p.derive_async("alice", &online(0), 0, &AVAILABLE).await, Err(CallError::Trap(_))));
    let seen = counter.calls.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].2.is_none(), "the oversized answer came back from the guest: {seen:?}");
    assert!(seen[1].2.as_deref().is_some_and(|e| e.contains("trapped")), "{seen:?}");
}

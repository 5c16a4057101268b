//! The presence hook's cost: `cargo bench -p halo-plugin-host` (run `cargo xtask plugins`
//! first). Prints the per-call cost of the built-in aggregation alone and with each plugin's
//! `derive` (blocking, one crossing to the plugin's executor thread per call), then per user
//! through `derive_many` (one crossing per batch of 100) and through `derive_async` from a
//! tokio task, and the guest time the executor reports. Figures only; nothing fails on timing.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use common::GuestTime;
use halo_core::presence::{Inputs, Machine, MachineState, Timers, aggregate};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{DeriveRequest, PluginLimits, Runtime};

const CALLS: u32 = 200_000;
const BATCH: usize = 100;

fn main() {
    let guest = Arc::new(GuestTime::default());
    let mut rt = Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime");
    rt.observe(guest.clone());
    let tokio_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
    let timers = Timers { away_after_ms: 300_000, offline_grace_ms: 10_000 };
    let inputs =
        Inputs { endpoints: [(1, Machine { state: MachineState::Active, since: 0 })].into(), ..Default::default() };
    let now = 1_796_200_200_000u64;

    let started = Instant::now();
    for i in 0..CALLS {
        std::hint::black_box(aggregate(std::hint::black_box(&inputs), now + u64::from(i), &timers));
    }
    let builtin_ns = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
    println!("{:<28} {:>10} {:>14} {:>12}", "path", "ns/call", "calls/s", "vs built-in");
    println!("{:<28} {:>10.0} {:>14.0} {:>11.0}%", "built-in aggregate", builtin_ns, 1e9 / builtin_ns, 100.0);

    let states = r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##;
    for (name, config) in
        [("custom_states", vec![("states", states)]), ("office_hours", vec![("timezone", "Europe/Paris")])]
    {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../plugins/target/wasm32-wasip2/release/{name}.wasm"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask plugins`", path.display()));
        let config: BTreeMap<String, String> = config.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        let plugin = rt.load(&bytes, &[], &config, PluginLimits::default()).expect("load");
        for _ in 0..1000 {
            let (p, _) = aggregate(&inputs, now, &timers);
            let _ = plugin.derive("alice", &inputs, now, &p);
        }
        let started = Instant::now();
        for i in 0..CALLS {
            let (p, _) = aggregate(&inputs, now + u64::from(i), &timers);
            std::hint::black_box(plugin.derive("alice", &inputs, now + u64::from(i), &p).ok());
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(CALLS);
        println!(
            "{:<28} {:>10.0} {:>14.0} {:>11.0}%",
            format!("built-in + {name}"),
            ns,
            1e9 / ns,
            100.0 * builtin_ns / ns
        );
        println!("{:<28} {:>10.0}", format!("  {name} hook alone"), ns - builtin_ns);
        println!("{:<28} {:>10.0}", "  guest time per call", guest.take());

        let (p, _) = aggregate(&inputs, now, &timers);
        let requests = vec![DeriveRequest { user: "alice", inputs: &inputs, now_ms: now, builtin: &p }; BATCH];
        let rounds = CALLS / BATCH as u32;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(plugin.derive_many_blocking(&requests));
        }
        let ns = started.elapsed().as_nanos() as f64 / f64::from(rounds * BATCH as u32);
        println!("{:<28} {:>10.0}", format!("  derive_many of {BATCH}, per user"), ns);
        println!("{:<28} {:>10.0}", "  guest time per call", guest.take());

        let plugin = Arc::new(plugin);
        let ns = tokio_rt.block_on({
            let (plugin, inputs, p) = (plugin.clone(), inputs.clone(), p.clone());
            async move {
                tokio::spawn(async move {
                    let calls = CALLS / 10;
                    let started = Instant::now();
                    for _ in 0..calls {
                        std::hint::black_box(plugin.derive_async("alice", &inputs, now, &p).await.ok());
                    }
                    started.elapsed().as_nanos() as f64 / f64::from(calls)
                })
                .await
                .expect("task")
            }
        });
        println!("{:<28} {:>10.0}", "  derive_async from a task", ns);
        println!("{:<28} {:>10.0}", "  guest time per call", guest.take());
    }
}

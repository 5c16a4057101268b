//! The slow-plugin scenario: a presence plugin that keeps the CPU busy for `--slow-ms` on every
//! `derive` (the `hostile` test plugin in `slow` mode), while `--slow-users` users change state
//! and a prober asks `/healthz` every 20 ms. A server whose plugin calls run off its locks and
//! async workers keeps both latencies low; what the plugin's CPU budget did is reported too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::report::note;
use crate::scenarios::{Ctx, storm_with};
use crate::stats::Latency;

const SC: &str = "slow-plugin";

/// Runs the scenario (see the module doc).
pub fn slow_plugin(ctx: &mut Ctx) -> anyhow::Result<()> {
    let _ = ctx.plugin_path("hostile.wasm")?;
    ctx.install_plugin("hostile.wasm", "hostile", "")?;
    let ms = ctx.args.slow_ms;
    ctx.server.admin.call_json(
        "PUT",
        "/api/v1/admin/plugins/hostile/config",
        Some(&json!({"mode": "slow", "ms": ms.to_string()})),
    )?;
    let (s0, c0) = ctx.metric_hist("halo_plugin_call_seconds", "hostile");
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let (stop, client) = (stop.clone(), ctx.server.client(&ctx.server.admin_token));
        std::thread::spawn(move || {
            let (mut lat, mut failed) = (Latency::new(), 0u64);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                match client.call("GET", "/healthz", None) {
                    Ok(_) => lat.record(t.elapsed().as_micros() as u64),
                    Err(_) => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (lat, failed)
        })
    };
    let users = ctx.args.slow_users;
    let label = format!("{users} users, {ms} ms plugin");
    let storm = storm_with(ctx, SC, &label, users, ctx.args.storm_interval_ms.max(1000));
    stop.store(true, Ordering::Relaxed);
    let (healthz, failed) = prober.join().map_err(|_| anyhow::anyhow!("the /healthz prober panicked"))?;
    storm?;
    ctx.report.add(SC, "/healthz p50", healthz.ms(0.5), "ms", None);
    ctx.report.add(SC, "/healthz p99", healthz.ms(0.99), "ms", Some("<= 50 ms"));
    ctx.report.add(SC, "/healthz max", healthz.ms(1.0), "ms", None);
    if failed > 0 {
        ctx.report.add(SC, "/healthz failures", failed as f64, "requests", None);
    }
    let (s1, c1) = ctx.metric_hist("halo_plugin_call_seconds", "hostile");
    if c1 > c0 {
        ctx.report.add(SC, "plugin calls", c1 - c0, "calls", None);
        ctx.report.add(SC, "mean plugin call", (s1 - s0) / (c1 - c0) * 1e3, "ms", None);
    }
    let info = ctx.server.admin.call_json("GET", "/api/v1/admin/plugins/hostile", None)?;
    let status = &info["status"];
    note(&format!(
        "slow-plugin: the plugin ended {} after {} calls ({} traps, {} calls refused by its CPU budget)",
        status["disabled"].as_str().map_or("enabled".to_owned(), |why| format!("disabled: {why}")),
        status["calls"],
        status["traps"],
        status["throttled_calls"],
    ));
    if let Some(n) = status["throttled_calls"].as_f64() {
        ctx.report.add(SC, "derivations refused by the plugin's CPU budget", n, "calls", None);
    }
    ctx.server.admin.call("POST", "/api/v1/admin/plugins/hostile/disable", None)?;
    Ok(())
}

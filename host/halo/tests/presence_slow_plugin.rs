//! A slow presence plugin through the real server: its derivations run off the presence
//! shards, so while it recomputes every user for seconds, `/healthz` answers and another
//! user's change reaches a watcher at once (bounds with wide margins; the figures are in
//! BENCHMARKS.md).

mod common;

use std::time::{Duration, Instant};

use common::{Peer, TestServer, ok, plugin_cli, run, rust_plugin, wait_presence, wait_until};
use serde_json::json;

fn cli(server: &TestServer, args: &[&str]) -> String {
    ok(run(plugin_cli(server, args)))
}

/// How many times `plugin` was called, from `/metrics`.
fn calls(server: &TestServer, admin: &str, plugin: &str) -> u64 {
    let (_, metrics) = server.raw("GET", "/metrics", Some(admin), "text/plain", Vec::new());
    let prefix = format!("halo_plugin_calls_total{{plugin=\"{plugin}\"}} ");
    metrics.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn a_slow_plugin_holds_up_neither_the_server_nor_other_users_presence() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    let others: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    for n in ["alice", "bob"].into_iter().chain(others.iter().map(String::as_str)) {
        server.user(n);
    }
    let (alice_t, bob_t) = (server.login("alice", "alice-password"), server.login("bob", "bob-password"));
    let alice = server.client(Some(&alice_t));
    server
        .client(Some(&bob_t))
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "alice"})))
        .expect("contact");
    let mut bob = Peer::connect(&server, &bob_t, "desk");
    let _alice_online = Peer::connect(&server, &alice_t, "laptop");

    cli(&server, &["install", rust_plugin("hostile").to_str().expect("path")]);
    // Calls of 400 ms stay far inside the deadline, and a CPU budget of the whole window never
    // binds: the plugin is slow, never failing nor throttled.
    cli(&server, &["limits", "hostile", "deadline=5s", "max_traps=100", "cpu_budget=10s", "cpu_window=10s"]);
    // Twelve users held by presence (the ten looked at, alice and bob).
    alice.call_json("GET", &format!("/api/v1/presence?users={}", others.join(",")), None).expect("batch");
    let before = calls(&server, &admin, "hostile");

    // A plugin change re-derives every held user: twelve calls of 400 ms, one after another.
    let changed = Instant::now();
    cli(&server, &["config", "hostile", "mode=slow", "ms=400"]);

    let started = Instant::now();
    server.client(None).call_json("GET", "/healthz", None).expect("healthz");
    let healthz = started.elapsed();
    assert!(healthz < Duration::from_secs(1), "/healthz took {healthz:?} while the plugin recomputes");

    let started = Instant::now();
    alice.call_json("PUT", "/api/v1/me/presence/state", Some(&json!({"state": "busy"}))).expect("set busy");
    wait_presence(&mut bob, "alice", |p| p["state"] == "busy");
    let heard = started.elapsed();
    assert!(heard < Duration::from_secs(1), "alice's change took {heard:?} to reach bob");

    let done = calls(&server, &admin, "hostile");
    assert!(done < before + 12, "the recompute was still under way while we measured ({} calls)", done - before);
    wait_until("the recompute to finish", 120, || (calls(&server, &admin, "hostile") >= before + 12).then_some(()));
    assert!(changed.elapsed() >= Duration::from_secs(2), "the plugin's recompute took seconds");
    server.client(None).call_json("GET", "/healthz", None).expect("still serving");
}

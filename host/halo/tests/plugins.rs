//! Plugins on a running server: install, configure, upgrade, disable and remove live from the
//! CLI while clients are connected; hostile plugins; grants; restart; the Python example.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{
    Peer, TestServer, api_error, component, fails, halo, ok, plugin_cli as cli, run, rust_plugin, wait_presence,
    wait_until,
};
use serde_json::{Value, json};

const FOCUS: &str = r##"states=[{"id":"focusing","labels":{"en":"Focusing","fr":"Concentration"},"availability":6500,"colour":"#8e44ad"}]"##;

/// Creates alice and bob, bob with alice as a contact and connected; returns both tokens and
/// bob's socket.
fn alice_watched_by_bob(server: &TestServer) -> (String, String, Peer) {
    for n in ["alice", "bob"] {
        server.user(n);
    }
    let (alice_t, bob_t) = (server.login("alice", "alice-password"), server.login("bob", "bob-password"));
    let contact = json!({"username": "alice"});
    server.client(Some(&bob_t)).call_json("POST", "/api/v1/contacts", Some(&contact)).expect("contact");
    let bob = Peer::connect(server, &bob_t, "desk");
    (alice_t, bob_t, bob)
}

#[test]
fn admins_install_configure_upgrade_disable_and_remove_live() {
    let mut server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let (alice_t, bob_t, mut bob) = alice_watched_by_bob(&server);
    let mut alice = Peer::connect(&server, &alice_t, "laptop");
    assert_eq!(alice.err(json!({"type": "presence.set", "state": "focusing"})), "bad_request", "not a state yet");

    let out = ok(run(cli(&server, &["install", rust_plugin("custom_states").to_str().expect("path")])));
    assert!(out.contains("custom-states 0.1.0"), "{out}");
    ok(run(cli(&server, &["config", "custom-states", FOCUS])));
    let catalog = bob.event("presence.states");
    assert_eq!(catalog["states"][0]["id"], "focusing", "connected clients learn the new states at once");
    assert_eq!(
        common::listed_state(&server, "focusing").map(|s| s["labels"]["fr"].clone()),
        Some(json!("Concentration"))
    );
    alice.ok(json!({"type": "presence.set", "state": "focusing"}));
    let seen = wait_presence(&mut bob, "alice", |p| p["custom_state"] == "focusing");
    assert_eq!((seen["label"].as_str(), seen["colour"].as_str()), (Some("Focusing"), Some("#8e44ad")));

    // Upgrade to a new version (the same code, packed with a new manifest version).
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("m.json");
    std::fs::write(&manifest, r#"{"name":"custom-states","version":"0.2.0","kind":"presence-states","api":"halo:plugin@0.1.0","capabilities":["kv"],
        "config":{"states":{"type":"string","default":"[]"},"max_states":{"type":"integer","default":"20"}}}"#).expect("manifest");
    let v2 = dir.path().join("v2.wasm");
    ok(run({
        let mut c = halo();
        c.args(["plugin", "pack"])
            .arg(rust_plugin("custom_states"))
            .arg("--manifest")
            .arg(&manifest)
            .arg("-o")
            .arg(&v2);
        c
    }));
    let out = ok(run(cli(&server, &["upgrade", "custom-states", v2.to_str().expect("path")])));
    assert!(out.contains("+ asks for kv") && out.contains("0.2.0"), "the permission diff is shown: {out}");
    let info = ok(run(cli(&server, &["info", "custom-states", "--json"])));
    let info: Value = serde_json::from_str(info.lines().next().expect("json")).expect("json");
    assert_eq!(
        (info["version"].as_str(), info["granted"].clone()),
        (Some("0.2.0"), json!([])),
        "new capabilities are not granted silently"
    );
    assert_eq!(
        info["config"]["states"].as_str().map(|s| s.contains("focusing")),
        Some(true),
        "config survives upgrades"
    );

    ok(run(cli(&server, &["disable", "custom-states"])));
    let fallback = server.client(Some(&bob_t)).call_json("GET", "/api/v1/users/alice/presence", None).expect("view");
    assert_eq!(
        (fallback["state"].as_str(), fallback["label"].as_str()),
        (Some("busy"), Some("Busy")),
        "built-in states while disabled"
    );
    ok(run(cli(&server, &["enable", "custom-states"])));

    // Restart keeps plugins, grants and config.
    drop((alice, bob));
    server.crash_and_restart();
    let list = ok(run(cli(&server, &["list"])));
    assert!(list.contains("custom-states") && list.contains("0.2.0") && list.contains("enabled"), "{list}");
    assert!(common::listed_state(&server, "focusing").is_some());

    ok(run(cli(&server, &["remove", "custom-states"])));
    assert!(fails(run(cli(&server, &["info", "custom-states"]))).contains("no plugin named"));
    assert!(common::listed_state(&server, "focusing").is_none());
}

#[test]
fn office_hours_sets_off_work_by_config() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    server.user("alice");
    let token = server.login("alice", "alice-password");
    let mut alice = Peer::connect(&server, &token, "laptop");
    ok(run(cli(&server, &["install", rust_plugin("office_hours").to_str().expect("path"), "--disabled"])));
    // No working days at all: always outside office hours.
    ok(run(cli(&server, &["config", "office-hours", "timezone=Europe/Paris", "days=none"])));
    ok(run(cli(&server, &["enable", "office-hours"])));
    let own = wait_presence(&mut alice, "alice", |p| p["activity"] == "off-work");
    assert_eq!((own["state"].as_str(), own["label"].as_str()), (Some("away"), Some("Off work")));
    let err = fails(run(cli(&server, &["config", "office-hours", "zone=UTC"])));
    assert!(err.contains("unknown config key \"zone\""), "{err}");
    let info = ok(run(cli(&server, &["limits", "office-hours", "deadline=20ms", "max_traps=2", "--json"])));
    let info: Value = serde_json::from_str(info.lines().next().expect("json")).expect("json");
    assert_eq!((info["limits"]["deadline"].as_str(), info["limits"]["max_traps"].as_u64()), (Some("20ms"), Some(2)));
    assert!(fails(run(cli(&server, &["limits", "office-hours", "speed=11"]))).contains("unknown limit"));
    let info = ok(run(cli(&server, &["limits", "office-hours", "--reset", "--json"])));
    assert!(info.contains("\"deadline\":\"50ms\""), "{info}");
}

#[test]
fn hostile_plugins_cannot_hurt_the_server() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n[plugins.limits]\nmax_traps = 3\n");
    let (alice_t, _, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path")])));
    ok(run(cli(&server, &["config", "hostile", "mode=loop"])));
    let mut alice = Peer::connect(&server, &alice_t, "laptop");
    // Derivations run off the presence shards, the latest per user: change until three have
    // trapped. Every change reaches bob meanwhile.
    let info = wait_until("hostile to be disabled", 60, || {
        for state in ["busy", "be-right-back", "do-not-disturb", "available"] {
            alice.ok(json!({"type": "presence.set", "state": state}));
        }
        wait_presence(&mut bob, "alice", |p| p["state"] == "available");
        let info = ok(run(cli(&server, &["info", "hostile"])));
        info.contains("disabled after 3 traps").then_some(info)
    });
    assert!(info.contains("deadline"), "{info}");
    let logs = ok(run(cli(&server, &["logs", "hostile"])));
    assert!(logs.contains("trapped"), "{logs}");
    server.client(None).call_json("GET", "/healthz", None).expect("still serving");

    // A long deadline and a CPU budget that never binds from here on, so that on a loaded
    // machine each mode fails its own way (not throttled for the guest time of the one before).
    ok(run(cli(&server, &["limits", "hostile", "deadline=5s", "max_traps=100", "cpu_budget=10s", "cpu_window=10s"])));
    // `calls N · errors N · traps N` from `halo plugin info`.
    let counts = || -> [u64; 3] {
        let info = ok(run(cli(&server, &["info", "hostile"])));
        let n = |what: &str| -> u64 {
            let at = info.find(what).map_or(0, |i| i + what.len());
            info[at..].split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        [n("calls "), n("errors "), n("traps ")]
    };
    for mode in ["memory", "trap", "oversized", "logflood"] {
        let [calls, errors, traps] = counts();
        ok(run(cli(&server, &["config", "hostile", &format!("mode={mode}")])));
        ok(run(cli(&server, &["enable", "hostile"])));
        alice.ok(json!({"type": "presence.set", "state": "busy"}));
        alice.ok(json!({"type": "presence.reset"}));
        wait_presence(&mut bob, "alice", |p| p["state"] == "available");
        // Derivations run off the presence shards: this mode's fail its own way before the next.
        wait_until(&format!("hostile to fail in mode {mode}"), 60, || {
            let [c, e, t] = counts();
            match mode {
                "memory" | "trap" => t > traps,
                "oversized" => e > errors,
                _ => c > calls,
            }
            .then_some(())
        });
    }
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    let (_, metrics) = server.raw("GET", "/metrics", Some(&admin), "text/plain", Vec::new());
    assert!(metrics.contains("halo_plugin_traps_total{plugin=\"hostile\"}"), "{metrics}");
    assert!(metrics.contains("halo_plugin_errors_total{plugin=\"hostile\"}"), "oversized output counts as an error");
}

#[test]
fn a_plugin_busy_call_after_call_is_throttled_then_disabled_by_its_cpu_budget() {
    // 25 ms of spinning per derive: far under its 2 s deadline, so it never traps; a budget of
    // 20 ms per 2 s window, so one call puts a window over budget whatever the machine's speed,
    // and two such windows in a row disable it.
    let server = TestServer::with_config(
        "[presence]\ncoalesce = \"10ms\"\n[plugins.limits]\ndeadline = \"2s\"\ncpu_budget = \"20ms\"\n\
         cpu_window = \"2s\"\ncpu_strikes = 2\n",
    );
    let (alice_t, _, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--disabled"])));
    ok(run(cli(&server, &["config", "hostile", "mode=slow", "ms=25"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let mut alice = Peer::connect(&server, &alice_t, "laptop");
    let mut seen_throttled = false;
    let mut info = String::new();
    for i in 0..400 {
        let state = if i % 2 == 0 { "busy" } else { "available" };
        alice.ok(json!({"type": "presence.set", "state": state}));
        // Every change still reaches watchers: a throttled plugin keeps the built-in result.
        wait_presence(&mut bob, "alice", |p| p["state"] == state);
        info = ok(run(cli(&server, &["info", "hostile"])));
        seen_throttled |= info.contains("throttled    throttled until its window ends");
        if info.contains("disabled     disabled: over its CPU budget") {
            break;
        }
    }
    assert!(info.contains("disabled: over its CPU budget in 2 windows in a row"), "{info}");
    assert!(info.contains("traps 0"), "never trapped: {info}");
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    let (_, metrics) = server.raw("GET", "/metrics", Some(&admin), "text/plain", Vec::new());
    // Throttled before it was disabled: the counter is proof even when no `info` happened to
    // fall inside the throttled window (a busy machine).
    let throttled = metrics
        .lines()
        .find_map(|l| l.strip_prefix("halo_plugin_throttled_total{plugin=\"hostile\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(seen_throttled || throttled.is_some_and(|n| n >= 1.0), "throttled before it was disabled: {metrics}");
    server.client(None).call_json("GET", "/healthz", None).expect("still serving");
    // Enabling it again (well-behaved now) starts a clean budget.
    ok(run(cli(&server, &["config", "hostile", "mode=none"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let info = ok(run(cli(&server, &["info", "hostile"])));
    assert!(!info.contains("disabled     ") && !info.contains("throttled    "), "{info}");
}

#[test]
fn grants_are_denied_by_default_and_bad_components_refused() {
    let server = TestServer::start();
    let out = ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path")])));
    assert!(out.contains("nothing granted"), "{out}");
    let info: Value =
        serde_json::from_str(ok(run(cli(&server, &["info", "hostile", "--json"]))).lines().next().expect("json"))
            .expect("json");
    assert_eq!((info["requested"].clone(), info["granted"].clone()), (json!(["kv"]), json!([])));
    ok(run(cli(&server, &["remove", "hostile"])));
    let err =
        fails(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--grant", "network"])));
    assert!(err.contains("does not ask for \"network\""), "{err}");
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--grant", "kv"])));
    let err = fails(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--yes"])));
    assert!(err.contains("use upgrade"), "{err}");

    let admin = server.admin();
    let garbage = admin.call_bytes("POST", "/api/v1/admin/plugins", b"not wasm".to_vec(), "application/wasm");
    let (status, code) = api_error(garbage.expect_err("garbage"));
    assert_eq!((status, code.as_str()), (400, "bad_request"));
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = dir.path().join("m.json");
    std::fs::write(
        &manifest,
        r#"{"name":"future","version":"1.0.0","kind":"presence-states","api":"halo:plugin@9.0.0"}"#,
    )
    .expect("write");
    let err = fails(run({
        let mut c = halo();
        c.args(["plugin", "pack"])
            .arg(rust_plugin("custom_states"))
            .arg("--manifest")
            .arg(&manifest)
            .arg("-o")
            .arg(dir.path().join("x.wasm"));
        c
    }));
    assert!(err.contains("rebuild it"), "{err}");
    let user = server.user("mallory");
    assert_eq!(
        api_error(user.call_bytes("POST", "/api/v1/admin/plugins", vec![0], "application/wasm").expect_err("403")).0,
        403
    );
}

#[test]
fn a_python_plugin_loads_and_derives() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    server.user("alice");
    let token = server.login("alice", "alice-password");
    let mut alice = Peer::connect(&server, &token, "laptop");
    let wasm = component("examples/python-presence/target/python-lunch.wasm");
    ok(run(cli(&server, &["install", wasm.to_str().expect("path")])));
    // A lunch hour spanning the whole day. The default hour (12:00-13:00 UTC) may already have
    // published "At lunch": wait for the configured label.
    ok(run(cli(&server, &["config", "python-lunch", "start_minute=0", "end_minute=1440", "label=Lunch break"])));
    let own = wait_presence(&mut alice, "alice", |p| p["custom_state"] == "at-lunch" && p["label"] == "Lunch break");
    assert_eq!((own["label"].as_str(), own["state"].as_str()), (Some("Lunch break"), Some("be_right_back")));
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn a_scaffolded_plugin_builds_and_installs_as_is() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let crate_dir = dir.path().join("heads-down");
    let sdk = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    // `halo plugin new`, then the build it prints, then install: the .wasm it built.
    let scaffold = |name: &str, kind: &str, dir: &std::path::Path, extra: &[&str]| {
        let out = ok(run({
            let mut c = halo();
            c.args(["plugin", "new", name, "--kind", kind, "--dir"]).arg(dir).arg("--sdk").arg(&sdk);
            c
        }));
        assert!(out.contains("cargo build --release --target wasm32-wasip2"), "{out}");
        let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo");
        assert!(status.success());
        let wasm = target.join(format!("wasm32-wasip2/release/{}.wasm", name.replace('-', "_")));
        let mut args = vec!["install", wasm.to_str().expect("path")];
        args.extend_from_slice(extra);
        ok(run(cli(&server, &args)));
    };
    scaffold("heads-down", "presence-states", &crate_dir, &[]);
    assert_eq!(common::listed_state(&server, "heads-down").map(|s| s["labels"]["en"].clone()), Some(json!("Focusing")));

    // An archive sink too: it builds, installs and receives records.
    scaffold("audit-sink", "archive-sink", &dir.path().join("audit-sink"), &[]);
    let admin = server.admin();
    let policy = json!({"global": {"internal": true, "external": true}});
    admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&policy)).expect("policy");
    let alice = server.user("alice");
    server.user("bob");
    alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start");
    let stored = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let logs = admin.call_json("GET", "/api/v1/admin/plugins/audit-sink/logs", None).expect("logs");
        logs.to_string().contains("stored 1 records").then_some(())
    });
    assert!(stored.is_some(), "the scaffolded sink received the conversation start");

    // And a federation adapter: the host connects it to a gateway (played here) it was granted,
    // and messages cross both ways through it.
    let gateway = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = gateway.local_addr().expect("addr").port();
    let config = dir.path().join("gw.toml");
    std::fs::write(&config, format!("secret = \"s3cret\"\nserver_port = \"{port}\"\n")).expect("config");
    let grant = format!("net:127.0.0.1:{port}");
    let config_arg = config.display().to_string();
    scaffold(
        "line-gateway",
        "federation-adapter",
        &dir.path().join("line-gateway"),
        &["--grant", &grant, "--plugin-config", &config_arg],
    );
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/gw.test", Some(&json!({"adapter": "line-gateway"})))
        .expect("route");
    let (conn, _) = gateway.accept().expect("the host connects");
    conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
    let mut writer = conn;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("hello");
    assert_eq!(line, "HELLO s3cret\n");
    std::io::Write::write_all(&mut writer, b"WELCOME\n").expect("welcome");
    let conv = alice
        .call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob@gw.test"]})))
        .expect("start with a remote user");
    let path = format!("/api/v1/conversations/{}/messages", conv["id"]);
    alice.call_json("POST", &path, Some(&json!({"text": "hi gateway"}))).expect("send");
    line.clear();
    std::io::BufRead::read_line(&mut reader, &mut line).expect("message");
    assert_eq!(line, "MSG alice bob@gw.test hi gateway\n");
    std::io::Write::write_all(&mut writer, b"MSG bob@gw.test alice hello alice\nMSG eve@elsewhere.test alice spoof\n")
        .expect("reply");
    let got = (0..200).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let msgs = alice.call_json("GET", &path, None).ok()?;
        let texts: Vec<String> =
            msgs["messages"].as_array()?.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect();
        (texts.len() >= 2).then_some(texts)
    });
    assert_eq!(got, Some(vec!["hi gateway".to_owned(), "hello alice".to_owned()]));
    let o = admin.call_json("GET", "/api/v1/admin/federation", None).expect("overview");
    assert_eq!(o["links"]["adapter:line-gateway"]["state"], "up", "{o}");
    // The gateway spoke for a domain it does not carry: refused and counted.
    let rejected = (0..100).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        let o = admin.call_json("GET", "/api/v1/admin/federation", None).ok()?;
        (o["links"]["adapter:line-gateway"]["rejected"].as_u64()? >= 1).then_some(())
    });
    assert!(rejected.is_some(), "the spoofed message was refused");
}

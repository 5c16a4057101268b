//! Misbehaving plugins are contained, through the real server and CLI: a plugin cannot show an
//! online user Offline; invalid answers and traps however far apart disable it; that sticks
//! across config changes and restarts, with its logs; its log lines cannot forge server log
//! lines or reach an admin's terminal raw; grants are limited by kind and changed live; a
//! `dir` grant has a quota and no symlinks; oversized manifests and ambiguous components are
//! refused; old component files are deleted.

mod common;

use std::io::Read;
use std::process::Stdio;

use common::{
    Peer, TestServer, api_error, fails, halo, ok, plugin_cli as cli, plugin_info as info, run, rust_plugin,
    wait_presence, wait_until,
};
use halo_client::Client;
use serde_json::{Value, json};

/// Why `name` is disabled, if it is.
fn disabled(server: &TestServer, name: &str) -> Option<String> {
    info(server, name)["status"]["disabled"].as_str().map(str::to_owned)
}

/// The value of one Prometheus sample (`name{labels}`), 0 when absent.
fn metric(server: &TestServer, sample: &str) -> f64 {
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (_, text) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    text.lines().find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

/// Creates alice and bob, bob with alice as a contact and connected; returns alice's socket
/// and bob's.
fn alice_watched_by_bob(server: &TestServer) -> (Peer, Peer) {
    for n in ["alice", "bob"] {
        server.user(n);
    }
    let (alice_t, bob_t) = (server.login("alice", "alice-password"), server.login("bob", "bob-password"));
    let contact = json!({"username": "alice"});
    server.client(Some(&bob_t)).call_json("POST", "/api/v1/contacts", Some(&contact)).expect("contact");
    (Peer::connect(server, &alice_t, "laptop"), Peer::connect(server, &bob_t, "desk"))
}

/// Changes alice's state back and forth (each change makes plugins derive) until `done`.
fn churn<T>(alice: &mut Peer, bob: &mut Peer, what: &str, mut done: impl FnMut() -> Option<T>) -> T {
    wait_until(what, 90, || {
        for state in ["busy", "available"] {
            alice.ok(json!({"type": "presence.set", "state": state}));
            let seen = wait_presence(bob, "alice", |p| p["state"] == state);
            assert_ne!(seen["state"], "offline", "a plugin never shows an online user Offline");
        }
        done()
    })
}

/// `component` with one more `halo-manifest` custom section holding `manifest`.
fn append_manifest(component: &[u8], manifest: &str) -> Vec<u8> {
    fn leb(out: &mut Vec<u8>, mut v: usize) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            out.push(if v == 0 { b } else { b | 0x80 });
            if v == 0 {
                return;
            }
        }
    }
    let mut payload = Vec::new();
    leb(&mut payload, "halo-manifest".len());
    payload.extend_from_slice(b"halo-manifest");
    payload.extend_from_slice(manifest.as_bytes());
    let mut out = component.to_vec();
    out.push(0);
    leb(&mut out, payload.len());
    out.extend_from_slice(&payload);
    out
}

/// The `hostile` test plugin with its own manifest replaced by `manifest` (`halo plugin pack`).
fn packed(dir: &std::path::Path, plugin: &str, manifest: &str) -> Result<std::path::PathBuf, String> {
    let (m, out) = (dir.join(format!("{plugin}.json")), dir.join(format!("{plugin}-packed.wasm")));
    std::fs::write(&m, manifest).expect("manifest");
    let mut c = halo();
    c.args(["plugin", "pack"]).arg(rust_plugin(plugin)).arg("--manifest").arg(&m).arg("-o").arg(&out);
    let o = run(c);
    if o.status.success() { Ok(out) } else { Err(String::from_utf8_lossy(&o.stderr).into_owned()) }
}

#[test]
fn a_plugin_cannot_show_users_offline_and_invalid_answers_disable_it() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n[plugins.limits]\nmax_traps = 3\n");
    let (mut alice, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--disabled"])));
    ok(run(cli(&server, &["config", "hostile", "mode=offline", "availability=18200"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    // Every answer is refused (alice stays online for bob), and three of them disable it.
    let why = churn(&mut alice, &mut bob, "the offline answers to disable hostile", || disabled(&server, "hostile"));
    assert!(why.contains("disabled after 3 traps or invalid answers"), "{why}");
    assert!(why.contains("a plugin never takes presence away"), "{why}");
    let i = info(&server, "hostile");
    assert_eq!((i["status"]["traps"].as_u64(), i["status"]["errors"].as_u64()), (Some(0), Some(3)), "{i}");
    // 18000 is Offline too; 17999 (Away) is not.
    ok(run(cli(&server, &["config", "hostile", "mode=offline", "availability=18000"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    churn(&mut alice, &mut bob, "18000 refused", || {
        (info(&server, "hostile")["status"]["errors"].as_u64() > Some(0)).then_some(())
    });
    ok(run(cli(&server, &["config", "hostile", "mode=offline", "availability=17999"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    wait_presence(&mut bob, "alice", |p| p["state"] == "away");
    assert_eq!(info(&server, "hostile")["status"]["errors"].as_u64(), Some(0));

    // 50 MiB answers, over and over: refused, counted, and they disable the plugin like traps.
    ok(run(cli(&server, &["limits", "hostile", "deadline=10s", "cpu_budget=60s", "cpu_window=60s", "max_traps=5"])));
    ok(run(cli(&server, &["config", "hostile", "mode=huge", "mb=50"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let why = churn(&mut alice, &mut bob, "the huge answers to disable hostile", || disabled(&server, "hostile"));
    assert!(why.contains("disabled after 5 traps or invalid answers") && why.contains("activity"), "{why}");
    assert_eq!(info(&server, "hostile")["status"]["traps"].as_u64(), Some(0), "refused as invalid, not trapped");
    // The server holds at most one answer at a time and drops it at once (a wide bound: the
    // plugin's 64 MiB instance is freed too once it is disabled).
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("status");
    let kib = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("a /proc status field")
    };
    let (rss, peak) = (kib("VmRSS:"), kib("VmHWM:"));
    eprintln!("server after five 50 MiB answers: RSS {rss} KiB, peak {peak} KiB");
    assert!(rss < 1024 * 1024 && peak < 1024 * 1024, "server RSS {rss} KiB, peak {peak} KiB");
    server.client(None).call_json("GET", "/healthz", None).expect("still serving");
}

#[test]
fn self_disabling_sticks_across_config_and_restart_with_logs_and_counts_only_real_traps() {
    let mut server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n[plugins.limits]\nmax_traps = 3\n");
    let (mut alice, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--disabled"])));
    ok(run(cli(&server, &["config", "hostile", "mode=trap"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let why = churn(&mut alice, &mut bob, "the traps to disable hostile", || disabled(&server, "hostile"));
    assert!(why.contains("disabled after 3"), "{why}");
    let traps = metric(&server, "halo_plugin_traps_total{plugin=\"hostile\"}");
    assert_eq!(traps, 3.0);

    // Calls keep coming while it is disabled (reconnects, changes): refused, never traps.
    for _ in 0..3 {
        drop(bob);
        bob = Peer::connect(&server, &server.login("bob", "bob-password"), "desk");
        alice.ok(json!({"type": "presence.set", "state": "busy"}));
        wait_presence(&mut bob, "alice", |p| p["state"] == "busy");
        alice.ok(json!({"type": "presence.reset"}));
        wait_presence(&mut bob, "alice", |p| p["state"] == "available");
    }
    assert_eq!(metric(&server, "halo_plugin_traps_total{plugin=\"hostile\"}"), traps, "refusals are not traps");
    assert_eq!(info(&server, "hostile")["status"]["traps"].as_u64(), Some(3));
    assert!(metric(&server, "halo_plugin_refused_total{plugin=\"hostile\"}") >= 1.0);

    // A config change (well-behaved now) does not enable it, nor empty its log.
    ok(run(cli(&server, &["config", "hostile", "mode=none"])));
    assert_eq!(disabled(&server, "hostile").as_deref(), Some(why.as_str()));
    let logs = ok(run(cli(&server, &["logs", "hostile"])));
    assert!(logs.contains("trapped") && logs.contains("disabled after 3"), "{logs}");
    ok(run(cli(&server, &["limits", "hostile", "max_traps=4"])));
    assert_eq!(disabled(&server, "hostile").as_deref(), Some(why.as_str()));

    // Nor does a restart, even kill -9.
    drop((alice, bob));
    server.crash_and_restart();
    assert_eq!(disabled(&server, "hostile").as_deref(), Some(why.as_str()));
    let list = ok(run(cli(&server, &["list"])));
    assert!(list.lines().any(|l| l.starts_with("hostile") && l.contains("disabled")), "{list}");
    let logs = ok(run(cli(&server, &["logs", "hostile"])));
    assert!(logs.contains("trapped") && logs.contains("disabled after 3"), "kept across the restart: {logs}");

    // Only an admin enables it.
    ok(run(cli(&server, &["enable", "hostile"])));
    assert_eq!(disabled(&server, "hostile"), None);
    server.crash_and_restart();
    assert_eq!(disabled(&server, "hostile"), None, "enabled for good");
}

#[test]
fn plugin_log_lines_cannot_forge_server_lines_nor_reach_the_terminal_raw() {
    let server = TestServer::with_log_capture("[presence]\ncoalesce = \"10ms\"\n");
    let (mut alice, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--disabled"])));
    ok(run(cli(&server, &["config", "hostile", "mode=inject"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let raw =
        "benign\n2026-12-05T09:00:00.000000Z  INFO halo::serve: forged line\u{1b}]0;pwned\u{7}\u{1b}[31mred\u{9b}2J";
    let logs = churn(&mut alice, &mut bob, "the injected line", || {
        let out = run(cli(&server, &["logs", "hostile", "--json"]));
        let logs: Value = serde_json::from_slice(&out.stdout).ok()?;
        logs["lines"].as_array()?.iter().any(|l| l["message"] == raw).then_some(logs)
    });
    assert!(logs["dropped"].is_u64(), "--json prints the API's answer: {logs}");

    // The terminal gets escapes, one line per log line.
    let out = run(cli(&server, &["logs", "hostile"]));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!text.contains(['\u{1b}', '\u{7}', '\u{9b}']), "no raw control characters: {text:?}");
    assert!(text.lines().all(|l| !l.starts_with("2026-12-05T09:00:00")), "{text}");
    assert!(
        text.contains("benign\\n2026-12-05T09:00:00.000000Z  INFO halo::serve: forged line\\u{1b}]0;pwned"),
        "{text}"
    );

    // The server log too: the plugin's line is one line, escaped.
    let log = wait_until("the line in the server log", 20, || {
        let log = std::fs::read_to_string(server.log_path()).ok()?;
        log.contains("forged line").then_some(log)
    });
    for line in log.lines().filter(|l| l.contains("forged line")) {
        assert!(line.contains("benign\\n2026-12-05"), "not a line of its own: {line}");
    }
    assert!(!log.contains("pwned\u{7}") && !log.contains("\u{1b}]0;"), "raw escapes in the server log");

    // Every plugin verb answers JSON with --json, and a closed pipe ends `halo` quietly.
    let removed = ok(run(cli(&server, &["limits", "hostile", "max_traps=9", "--json"])));
    assert_eq!(serde_json::from_str::<Value>(removed.lines().next().expect("json")).expect("json")["name"], "hostile");
    let mut child =
        cli(&server, &["logs", "hostile"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    child.wait().expect("exit");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let removed = ok(run(cli(&server, &["remove", "hostile", "--json"])));
    assert_eq!(serde_json::from_str::<Value>(removed.trim()).expect("json"), json!({"removed": "hostile"}));
}

#[test]
fn grants_are_limited_by_kind_and_changed_live() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    // A presence plugin cannot ask for net, dir or http (nor be granted them).
    for cap in ["net", "dir", "http"] {
        let m = format!(
            r#"{{"name":"hostile","version":"0.2.0","kind":"presence-states","api":"halo:plugin@0.1.0","capabilities":["{cap}"]}}"#
        );
        let err = packed(dir.path(), "hostile", &m).expect_err("refused");
        assert!(err.contains(&format!("cannot ask for \"{cap}\"")) && err.contains("may ask for: kv"), "{err}");
    }
    let (mut alice, mut bob) = alice_watched_by_bob(&server);
    ok(run(cli(&server, &["install", rust_plugin("hostile").to_str().expect("path"), "--disabled"])));
    ok(run(cli(&server, &["config", "hostile", "mode=kv"])));
    ok(run(cli(&server, &["enable", "hostile"])));
    let logs_say = |what: &str| {
        let out = run(cli(&server, &["logs", "hostile"]));
        String::from_utf8_lossy(&out.stdout).contains(what).then_some(())
    };
    churn(&mut alice, &mut bob, "kv denied", || logs_say("AccessDenied"));

    // Granted live: the next call can write (up to its quota).
    let i: Value =
        serde_json::from_str(ok(run(cli(&server, &["grant", "hostile", "kv", "--json"]))).trim()).expect("json");
    assert_eq!(i["granted"], json!(["kv"]));
    churn(&mut alice, &mut bob, "kv granted", || logs_say("QuotaExceeded"));
    let err = fails(run(cli(&server, &["grant", "hostile", "net:127.0.0.1:5347"])));
    assert!(err.contains("cannot be granted \"net\""), "{err}");
    let err = fails(run(cli(&server, &["revoke", "hostile", "dir"])));
    assert!(err.contains("\"dir\" is not granted"), "{err}");
    let i: Value =
        serde_json::from_str(ok(run(cli(&server, &["revoke", "hostile", "kv", "--json"]))).trim()).expect("json");
    assert_eq!(i["granted"], json!([]));
    // Admins only.
    let user = server.user("mallory");
    let change = json!({"grant": ["kv"], "revoke": []});
    let denied = user.call_json("POST", "/api/v1/admin/plugins/hostile/grants", Some(&change));
    assert_eq!(api_error(denied.expect_err("403")).0, 403);
    assert_eq!(info(&server, "hostile")["granted"], json!([]));
}

#[test]
fn oversized_or_ambiguous_manifests_are_refused_and_old_files_deleted() {
    let server = TestServer::start();
    let admin = server.admin();
    let install = |bytes: Vec<u8>| admin.call_bytes("POST", "/api/v1/admin/plugins", bytes, "application/wasm");
    let sections = |n: usize| {
        serde_json::to_string(&json!({"name": "big", "version": "0.1.0", "kind": "presence-states",
            "api": "halo:plugin@0.1.0", "description": "x".repeat(n)}))
        .expect("json")
    };
    let base = std::fs::read(rust_plugin("hostile")).expect("component");
    // Two manifests (the SDK's and an appended one): ambiguous.
    let err = install(append_manifest(&base, &sections(10))).expect_err("ambiguous");
    let (status, _) = api_error(err);
    assert_eq!(status, 400);
    let err = admin.call_bytes(
        "POST",
        "/api/v1/admin/plugins/inspect",
        append_manifest(&base, &sections(10)),
        "application/wasm",
    );
    assert!(format!("{:?}", err.expect_err("ambiguous")).contains("2 `halo-manifest` sections"));

    // Oversized descriptions and config schemas, on a component packed without the SDK's
    // manifest (`pack` replaces it).
    let dir = tempfile::tempdir().expect("tempdir");
    let small = sections(10);
    let bare = std::fs::read(packed(dir.path(), "hostile", &small).expect("packed")).expect("read");
    // `pack` appended one section, the last: id, size, name length, name, the JSON.
    let payload = 1 + "halo-manifest".len() + small.len();
    let section = 1 + if payload < 128 { 1 } else { 2 } + payload;
    let bytes = append_manifest(&bare[..bare.len() - section], &sections(5000));
    let err = format!("{:?}", install(bytes).expect_err("description"));
    assert!(err.contains("the description is 5000 bytes; the limit is 4096"), "{err}");
    let keys: serde_json::Map<String, Value> =
        (0..20_000).map(|i| (format!("k{i}"), json!({"type": "string"}))).collect();
    let many = json!({"name": "big", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0", "config": keys});
    let err = packed(dir.path(), "custom_states", &many.to_string()).expect_err("keys");
    assert!(err.contains("20000 keys; the limit is 256"), "{err}");

    // Upgrade and remove leave no component or compiled artifact behind.
    ok(run(cli(&server, &["install", rust_plugin("custom_states").to_str().expect("path")])));
    let old_sha = info(&server, "custom-states")["sha256"].as_str().expect("sha").to_owned();
    let files = || -> Vec<String> {
        let mut names = Vec::new();
        for d in [server.data_dir().join("plugins"), server.data_dir().join("plugins/cache")] {
            for e in std::fs::read_dir(d).expect("dir").flatten() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names
    };
    assert!(files().iter().filter(|f| f.starts_with(&old_sha)).count() >= 2, "{:?}", files());
    let v2 = packed(
        dir.path(),
        "custom_states",
        r#"{"name":"custom-states","version":"0.2.0","kind":"presence-states","api":"halo:plugin@0.1.0",
            "config":{"states":{"type":"string","default":"[]"},"max_states":{"type":"integer","default":"20"}}}"#,
    )
    .expect("v2");
    let up = ok(run(cli(&server, &["upgrade", "custom-states", v2.to_str().expect("path"), "--json"])));
    let up: Value = serde_json::from_str(up.lines().next().expect("json")).expect("json");
    assert_eq!((up["plugin"]["version"].as_str(), up["added_capabilities"].clone()), (Some("0.2.0"), json!([])));
    let new_sha = info(&server, "custom-states")["sha256"].as_str().expect("sha").to_owned();
    assert_ne!(new_sha, old_sha);
    assert!(!files().iter().any(|f| f.starts_with(&old_sha)), "old files deleted: {:?}", files());
    assert!(files().iter().any(|f| f.starts_with(&new_sha)));
    ok(run(cli(&server, &["remove", "custom-states"])));
    assert!(!files().iter().any(|f| f.starts_with(&new_sha)), "{:?}", files());
}

/// Sends fast enough for load (the default is 5 messages/s per user).
const FAST: &str = "[im]\nmessages_per_sec = 100000.0\nburst = 100000.0\n";

fn archive_everything(admin: &Client) {
    let policy = json!({"global": {"internal": true, "external": true}});
    admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&policy)).expect("policy");
}

fn sink_status(admin: &Client, name: &str) -> Value {
    let st = admin.call_json("GET", "/api/v1/archive/status", None).expect("status");
    st["sinks"].as_array().expect("sinks").iter().find(|s| s["name"] == name).cloned().expect("sink listed")
}

fn sink_logs(admin: &Client, name: &str) -> String {
    admin.call_json("GET", &format!("/api/v1/admin/plugins/{name}/logs"), None).expect("logs").to_string()
}

#[test]
fn a_sink_failing_every_retry_is_disabled_and_its_backlog_shown() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    archive_everything(&admin);
    let bytes = std::fs::read(rust_plugin("hostile_sink")).expect("component");
    admin.call_bytes("POST", "/api/v1/admin/plugins?enabled=false", bytes, "application/wasm").expect("install");
    // Each batch runs to its deadline; the retries back off (250 ms, doubling), so traps are
    // never 3 within the 100 ms window: only "in a row" can catch them.
    let limits = json!({"batch_deadline": "200ms", "max_traps": 3, "trap_window": "100ms"});
    admin.call_json("PUT", "/api/v1/admin/plugins/hostile-sink/limits", Some(&limits)).expect("limits");
    let config = json!({"mode": "hang"});
    admin.call_json("PUT", "/api/v1/admin/plugins/hostile-sink/config", Some(&config)).expect("config");
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/enable", None).expect("enable");
    let conv =
        alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start");
    for i in 0..3 {
        let path = format!("/api/v1/conversations/{}/messages", conv["id"]);
        alice.call_json("POST", &path, Some(&json!({"text": format!("m{i}")}))).expect("send");
    }
    let why = wait_until("the sink to be disabled", 60, || {
        let p = admin.call_json("GET", "/api/v1/admin/plugins/hostile-sink", None).expect("plugin");
        p["status"]["disabled"].as_str().map(str::to_owned)
    });
    assert!(why.contains("disabled after 3 traps in a row"), "{why}");
    // Its backlog shows: the start and three messages wait for it.
    let s = wait_until("the backlog", 20, || {
        let s = sink_status(&admin, "hostile-sink");
        (s["depth"].as_u64() == Some(4)).then_some(s)
    });
    assert_eq!(s["enabled"], false, "{s}");
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/disable", None).expect("disable");
    assert_eq!(sink_status(&admin, "hostile-sink")["depth"].as_u64(), Some(4), "disabled by an admin too");
}

#[test]
fn a_dir_grant_has_a_quota_and_refuses_symlinks() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    archive_everything(&admin);
    let out = server.dir.path().join("sink-out");
    let bytes = std::fs::read(rust_plugin("hostile_sink")).expect("component");
    let grant = format!("dir:{}", out.display());
    let path = format!("/api/v1/admin/plugins?enabled=false&grant={}", halo_client::segment(&grant));
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install");
    let limits = json!({"dir_quota_bytes": 3 << 20});
    admin.call_json("PUT", "/api/v1/admin/plugins/hostile-sink/limits", Some(&limits)).expect("limits");
    let config = json!({"mode": "fill", "mb": "10"});
    admin.call_json("PUT", "/api/v1/admin/plugins/hostile-sink/config", Some(&config)).expect("config");
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/enable", None).expect("enable");
    let conv =
        alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start");
    let logs = wait_until("the fill", 30, || {
        let l = sink_logs(&admin, "hostile-sink");
        l.contains("fill:").then_some(l)
    });
    assert!(logs.contains("then refused"), "the quota stops the writes, and the guest sees why: {logs}");
    let used: u64 = std::fs::read_dir(&out).expect("dir").flatten().map(|e| e.metadata().map_or(0, |m| m.len())).sum();
    assert!(used <= 3 << 20, "{used} bytes on disk");

    let config = json!({"mode": "symlink"});
    admin.call_json("PUT", "/api/v1/admin/plugins/hostile-sink/config", Some(&config)).expect("config");
    let path = format!("/api/v1/conversations/{}/messages", conv["id"]);
    alice.call_json("POST", &path, Some(&json!({"text": "again"}))).expect("send");
    let logs = wait_until("the symlink attempt", 30, || {
        let l = sink_logs(&admin, "hostile-sink");
        l.contains("symlink:").then_some(l)
    });
    assert!(logs.contains("symlink: refused"), "{logs}");
    assert!(std::fs::symlink_metadata(out.join("escape")).is_err(), "no link planted");
}

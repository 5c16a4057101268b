//! Writing plugins without a Halo checkout, in every supported language, against a running
//! server: `halo plugin new` with the SDK shipped in the binary (scaffold, native test, build,
//! install), calendar keyword states from event titles (halo:plugin@0.1.3), and the
//! JavaScript example built with componentize-js.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    Peer, TestServer, component, halo, ok, plugin_cli as cli, plugin_info as info, run, rust_plugin, wait_presence,
    wait_until,
};
use serde_json::{Value, json};

/// The plugins' target directory, shared so the scaffold reuses what `cargo xtask plugins`
/// compiled (wit-bindgen and friends) instead of building them again.
fn plugins_target() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target")
}

/// `cargo ARGS` in `dir`, offline (only the crates already fetched), into the shared target.
fn cargo(dir: &Path, args: &[&str]) {
    let status = Command::new(env!("CARGO"))
        .args(args)
        .args(["--offline", "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", plugins_target())
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo");
    assert!(status.success(), "cargo {args:?} in {}", dir.display());
}

#[test]
fn a_plugin_scaffolded_without_a_checkout_tests_builds_and_installs() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // Only the binary: no --sdk, run from a directory outside the repository.
    let out = ok(run({
        let mut c = halo();
        c.args(["plugin", "new", "quiet-desk"]).current_dir(dir.path());
        c
    }));
    assert!(out.contains("cargo build --release --target wasm32-wasip2"), "{out}");
    let project = dir.path().join("quiet-desk");
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).expect("Cargo.toml");
    assert!(manifest.contains(r#"halo-sdk = { path = "vendor/halo-sdk" }"#), "{manifest}");
    let repo = std::fs::canonicalize(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")).expect("repo");
    assert!(!manifest.contains(repo.to_str().expect("path")), "no path into a checkout: {manifest}");
    assert!(project.join("vendor/halo-sdk/src/testing.rs").is_file());
    assert!(project.join("vendor/wit/v0.1.3/plugin.wit").is_file());

    // The author's loop: native tests against the SDK's TestHost, then the component.
    cargo(&project, &["test"]);
    cargo(&project, &["build", "--release", "--target", "wasm32-wasip2"]);
    let wasm = plugins_target().join("wasm32-wasip2/release/quiet_desk.wasm");
    ok(run(cli(&server, &["install", wasm.to_str().expect("path")])));
    assert_eq!(common::listed_state(&server, "quiet-desk").map(|s| s["labels"]["en"].clone()), Some(json!("Focusing")));

    // `halo plugin sdk` refreshes a vendored copy in place.
    std::fs::write(project.join("vendor/halo-sdk/src/lib.rs"), "stale").expect("write");
    ok(run({
        let mut c = halo();
        c.args(["plugin", "sdk"]).arg(project.join("vendor"));
        c
    }));
    let lib = std::fs::read_to_string(project.join("vendor/halo-sdk/src/lib.rs")).expect("lib.rs");
    assert!(lib.contains("pub trait PresencePlugin"), "the SDK was written again");
    // A project that exists is not overwritten.
    let again = run({
        let mut c = halo();
        c.args(["plugin", "new", "quiet-desk"]).current_dir(dir.path());
        c
    });
    assert!(!again.status.success());
}

const STATES: &str = r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"},{"id":"travelling","labels":{"en":"Travelling"},"availability":12500,"colour":"#2e86c1"}]"##;

/// Creates alice (connected) and bob (a Colleagues contact of alice's, connected); returns
/// alice's socket, bob's socket and an integration's client with `calendar:write`.
fn alice_bob_and_a_calendar(server: &TestServer) -> (Peer, Peer, halo_client::Client) {
    server.user("alice");
    server.user("bob");
    let (alice_t, bob_t) = (server.login("alice", "alice-password"), server.login("bob", "bob-password"));
    let contact = json!({"username": "alice"});
    server.client(Some(&bob_t)).call_json("POST", "/api/v1/contacts", Some(&contact)).expect("contact");
    let app = server
        .admin()
        .call_json("POST", "/api/v1/admin/app-tokens", Some(&json!({"name": "exchange", "scopes": ["calendar:write"]})))
        .expect("app token");
    let exchange = server.client(app["token"].as_str());
    (Peer::connect(server, &alice_t, "laptop"), Peer::connect(server, &bob_t, "desk"), exchange)
}

#[test]
fn calendar_titles_reach_plugins_and_pick_keyword_states_without_being_published() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let (_alice, mut bob, exchange) = alice_bob_and_a_calendar(&server);
    // custom-states is built against halo:plugin@0.1.3 (the `calendar` import).
    let out = ok(run(cli(&server, &["install", rust_plugin("custom_states").to_str().expect("path")])));
    assert!(out.contains("custom-states"), "{out}");
    let keywords = r#"calendar_keywords={"focus time": "focusing", "flight": "travelling"}"#;
    ok(run(cli(&server, &["config", "custom-states", &format!("states={STATES}"), keywords])));
    assert_eq!(info(&server, "custom-states")["api"], "halo:plugin@0.1.3");

    let calendar = |body: Value| {
        exchange.call_json("PUT", "/api/v1/users/alice/calendar", Some(&body)).expect("calendar");
    };
    calendar(json!({"activity": "in-a-meeting", "subject": "Focus time: Q3 plan"}));
    let seen = wait_presence(&mut bob, "alice", |p| p["custom_state"] == "focusing");
    assert_eq!((seen["label"].as_str(), seen["state"].as_str()), (Some("Focusing"), Some("busy")));
    assert!(!seen.to_string().contains("Q3 plan"), "the title is not published: {seen}");

    calendar(json!({"activity": "out-of-office", "subject": "FLIGHT LH 1234", "until": 4_102_444_800_000u64}));
    let seen = wait_presence(&mut bob, "alice", |p| p["custom_state"] == "travelling");
    assert_eq!(seen["state"], "be_right_back");
    assert!(!seen.to_string().contains("1234"), "{seen}");
    let card = server
        .client(Some(&server.login("bob", "bob-password")))
        .call_json("GET", "/api/v1/users/alice/presence", None)
        .expect("card");
    assert!(!card.to_string().contains("LH 1234"), "nor in the REST view: {card}");

    // No keyword: the built-in meeting state comes back; an empty calendar: available.
    calendar(json!({"activity": "in-a-meeting", "subject": "1:1 with Bob"}));
    let seen = wait_presence(&mut bob, "alice", |p| p["activity"] == "in-a-meeting" && p.get("custom_state").is_none());
    assert_eq!(seen["state"], "busy");
    calendar(json!({"activity": "in-a-meeting", "subject": "Focus time"}));
    wait_presence(&mut bob, "alice", |p| p["custom_state"] == "focusing");
    calendar(json!({"activity": null}));
    wait_presence(&mut bob, "alice", |p| p["state"] == "available" && p.get("custom_state").is_none());

    // A title over 200 characters is refused before it reaches anyone.
    let long = json!({"activity": "in-a-meeting", "subject": "x".repeat(201)});
    let err = exchange.call("PUT", "/api/v1/users/alice/calendar", Some(&long)).expect_err("too long");
    assert_eq!(common::api_error(err).0, 400);
}

#[test]
fn a_javascript_plugin_built_with_componentize_js_runs_in_a_real_server() {
    let wasm = component("examples/js-presence/target/js-quiet-hours.wasm");
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    server.user("alice");
    let token = server.login("alice", "alice-password");
    let mut alice = Peer::connect(&server, &token, "laptop");
    let out = ok(run(cli(&server, &["install", wasm.to_str().expect("path")])));
    assert!(out.contains("js-quiet-hours 0.1.0"), "{out}");
    assert_eq!(
        common::listed_state(&server, "quiet-hours").map(|s| (s["labels"]["en"].clone(), s["availability"].clone())),
        Some((json!("Quiet hours"), json!(9500)))
    );
    // Quiet all day long, with a label of the admin's: the JS derive publishes it.
    ok(run(cli(&server, &["config", "js-quiet-hours", "start_minute=0", "end_minute=1440", "label=Heads down"])));
    let own = wait_presence(&mut alice, "alice", |p| p["custom_state"] == "quiet-hours");
    assert_eq!((own["label"].as_str(), own["state"].as_str()), (Some("Heads down"), Some("do_not_disturb")));
    // A manual state is left alone.
    alice.ok(json!({"type": "presence.set", "state": "available"}));
    wait_presence(&mut alice, "alice", |p| p["state"] == "available" && p.get("custom_state").is_none());

    let status: Value = wait_until("the plugin's status", 30, || {
        let v = info(&server, "js-quiet-hours");
        (v["status"]["calls"].as_u64()? > 0).then_some(v)
    });
    assert_eq!(status["status"]["traps"], 0, "{status}");
    assert_eq!(status["status"]["errors"], 0, "{status}");
}

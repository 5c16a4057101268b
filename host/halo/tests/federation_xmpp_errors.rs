//! What the XMPP side hears when Halo refuses something, and when Halo's users go away:
//! stanza errors for refused stanzas (a stanza over `max_stanza_bytes` refused on its own
//! without dropping the link, `type='groupchat'` to a user), disco#info answered, a
//! subscription to a missing user refused; unavailable presence when a user blocks a contact,
//! when their last device leaves and when Halo stops; a wrong component secret backing off
//! with the breaker open and the reason shown. Real Prosody and slixmpp, as in
//! `federation_xmpp.rs` (skipped without them, except under `CI`).

mod common;

use common::{TestServer, ok, run, wait_until};
use serde_json::{Value, json};

#[path = "xmpp/harness.rs"]
mod harness;

use harness::*;

fn from_alice(e: &Value) -> bool {
    e["from"].as_str().and_then(|f| f.split('/').next()) == Some("alice@halo.localhost")
}

/// `halo federation status` (human output) for `server`.
fn status_text(server: &TestServer) -> String {
    let mut c = common::halo();
    c.args(["federation", "status", "--data-dir"])
        .arg(server.data_dir())
        .env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN");
    ok(run(c))
}

#[test]
fn xmpp_refusals_are_answered_and_an_oversize_stanza_keeps_the_link() {
    if !prerequisites("xmpp_refusals_are_answered_and_an_oversize_stanza_keeps_the_link") {
        return;
    }
    // A 64 KiB stanza limit, so a message Prosody takes from a client is over it.
    let mut w = world_with(json!({"max_stanza_bytes": "65536"}), "");
    befriend(&mut w);

    // disco#info to the component and to a user at it.
    w.bob.cmd(json!({"cmd": "disco", "to": COMPONENT}));
    let d = w.bob.wait("disco#info", 30, |e| e["event"] == "disco" || e["event"] == "disco_error");
    assert_eq!(d["event"], "disco", "{d}");
    assert_eq!(d["identities"], json!([["server", "im"]]), "{d}");
    assert!(d["features"].as_array().is_some_and(|f| f.contains(&json!("http://jabber.org/protocol/disco#info"))));
    w.bob.cmd(json!({"cmd": "disco", "to": "alice@halo.localhost"}));
    let d = w.bob.wait("disco#info of alice", 30, |e| e["event"] == "disco" || e["event"] == "disco_error");
    assert_eq!(d["identities"], json!([["account", "registered"]]), "{d}");

    // A groupchat message to a user: service-unavailable (RFC 6121 §8.5.2.1.1).
    w.bob.cmd(
        json!({"cmd": "message", "to": "alice@halo.localhost", "body": "group?", "type": "groupchat", "id": "gc1"}),
    );
    let e = w.bob.wait("the groupchat error", 20, |e| e["event"] == "message_error" && e["id"] == "gc1");
    assert_eq!(e["condition"], "service-unavailable", "{e}");

    // 100,000 bytes: Prosody takes it from bob, the adapter refuses that stanza alone.
    let failures = metric(&w.server, "halo_federation_link_failures", "");
    w.bob.cmd(json!({"cmd": "message", "to": "alice@halo.localhost", "body": "x", "repeat": 100_000, "id": "big1"}));
    let e = w.bob.wait("the oversize error", 30, |e| e["event"] == "message_error" && e["id"] == "big1");
    assert_eq!(e["condition"], "policy-violation", "{e}");
    // The link stayed up: the next message arrives, no link failure was counted.
    w.bob.cmd(json!({"cmd": "message", "to": "alice@halo.localhost", "body": "after the big one"}));
    let m = w.alice.event("im.message")["message"].clone();
    assert_eq!(m["text"], "after the big one", "{m}");
    assert_eq!(metric(&w.server, "halo_federation_link_failures", ""), failures);
    assert_eq!(link(&w.admin)["state"], "up");

    // A subscription to nobody: refused back (unsubscribed), not left waiting.
    w.bob.cmd(json!({"cmd": "subscribe", "to": "nobody@halo.localhost"}));
    let p = w.bob.wait("the refused subscription", 20, |e| {
        e["event"] == "presence"
            && e["type"] == "unsubscribed"
            && e["from"].as_str().is_some_and(|f| f.starts_with("nobody@halo.localhost"))
    });
    assert_eq!(p["type"], "unsubscribed");

    // Refused by Halo, answered with the stanza error of docs/federation.md.
    let refused = |w: &mut World, to: &str, body: Value, id: &str| -> Value {
        w.bob.cmd(json!({"cmd": "message", "to": to, "body": body, "id": id}));
        w.bob.wait(&format!("the error for {id}"), 20, |e| e["event"] == "message_error" && e["id"] == id)
    };
    let e = refused(&mut w, "nobody@halo.localhost", json!("anyone?"), "nobody1");
    assert_eq!((e["condition"].as_str(), e["text"].as_str()), (Some("service-unavailable"), None), "{e}");
    let e = refused(&mut w, "alice@halo.localhost", json!("y".repeat(20_000)), "long1");
    assert_eq!(e["condition"], "policy-violation", "{e}");
    assert!(e["text"].as_str().is_some_and(|t| t.contains("16384")), "{e}");
    // Do Not Disturb: bob is not in alice's Workgroup.
    w.alice.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    w.bob.wait_presence("alice@halo.localhost", Some("dnd"), None);
    let e = refused(&mut w, "alice@halo.localhost", json!("are you there?"), "dnd1");
    assert_eq!(e["condition"], "recipient-unavailable", "{e}");
    w.alice.ok(json!({"type": "presence.reset"}));
    w.bob.wait_presence("alice@halo.localhost", None, None);

    // The other way: Prosody refuses alice's message to a user it does not have; alice's
    // message shows failed, with why.
    let conv = w.alice.ok(json!({"type": "im.start", "participants": ["ghost@localhost"]}))["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    let sent = w.alice.ok(json!({"type": "im.send", "conversation": conv, "text": "boo"}));
    let failed = w.alice.event("im.failed");
    assert_eq!((failed["conversation"].as_u64(), &failed["message"]), (Some(conv), &sent["message"]["id"]), "{failed}");
    assert_eq!(failed["failure"]["to"], "ghost@localhost", "{failed}");
    assert!(failed["failure"]["code"].is_string() && failed["failure"]["reason"].is_string(), "{failed}");
    let history =
        w.alice_rest.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("history");
    assert_eq!(history["messages"][0]["failed"], failed["failure"], "{history}");

    // Counted, and shown by `halo federation status` (not only with --json).
    let rejected = link(&w.admin)["rejected"].as_u64().unwrap_or(0);
    assert!(rejected >= 6, "{}", link(&w.admin));
    let text = status_text(&w.server);
    assert!(text.contains(&format!("rejected {rejected}")), "{text}");
    assert!(text.contains("refused remote traffic from: localhost"), "{text}");
    assert_eq!(overview(&w.admin)["rejected"]["localhost"].as_u64(), Some(rejected));
}

#[test]
fn a_burst_of_a_thousand_xmpp_messages_is_each_delivered_or_answered() {
    if !prerequisites("a_burst_of_a_thousand_xmpp_messages_is_each_delivered_or_answered") {
        return;
    }
    // A tight per-domain limit, so much of the burst is refused.
    let mut w = world_with(json!({}), "[federation]\nremote_messages_per_sec = 5.0\nremote_burst = 20.0\n");
    befriend(&mut w);
    let received = |w: &World| metric(&w.server, "halo_federation_received_total", "kind=\"message\"");
    let before = received(&w);
    w.bob.cmd(json!({"cmd": "burst", "to": "alice@halo.localhost", "count": 1000, "prefix": "b"}));
    let mut answers: Vec<Value> = Vec::new();
    let (delivered, errors) =
        wait_until("every message delivered or answered", 180, || {
            answers.extend(w.bob.take_matching(|e| {
                e["event"] == "message_error" && e["id"].as_str().is_some_and(|i| i.starts_with('b'))
            }));
            let delivered = (received(&w) - before) as usize;
            (delivered + answers.len() >= 1000).then_some((delivered, answers.len()))
        });
    eprintln!("of 1000: {delivered} delivered, {errors} answered with an error");
    assert_eq!(delivered + errors, 1000);
    assert!(delivered >= 20 && errors > 0, "{delivered} delivered, {errors} refused");
    assert!(answers.iter().all(|e| e["condition"] == "resource-constraint"), "{:?}", answers.first());
}

#[test]
fn xmpp_contacts_see_alice_offline_when_blocked_when_her_last_device_leaves_and_when_halo_stops() {
    if !prerequisites("xmpp_contacts_see_alice_offline_when_blocked_when_her_last_device_leaves_and_when_halo_stops") {
        return;
    }
    let mut w = world_with(json!({}), "[presence]\noffline_grace = \"1s\"\n");
    befriend(&mut w);
    let unavailable = |e: &Value| e["event"] == "presence" && from_alice(e) && e["type"] == "unavailable";

    // Alice blocks bob: he sees her go offline.
    w.alice_rest
        .call_json("PATCH", "/api/v1/contacts/bob@localhost", Some(&json!({"level": "blocked"})))
        .expect("block bob");
    w.bob.wait("alice unavailable on block", 20, unavailable);
    // Unblocked: he sees her again.
    w.alice_rest
        .call_json("PATCH", "/api/v1/contacts/bob@localhost", Some(&json!({"level": "colleagues"})))
        .expect("unblock bob");
    w.bob.wait_presence("alice@halo.localhost", None, None);

    // Her only device leaves: offline (after the grace period).
    let _ = w.alice.ws.close(None);
    let _ = w.alice.ws.flush();
    w.bob.wait("alice unavailable after her device left", 30, unavailable);

    // Back online, then Halo stops gracefully: bob hears she is offline before the link goes.
    let token = w.server.login("alice", "alice-password");
    w.alice = common::Peer::connect(&w.server, &token, "laptop");
    w.bob.wait_presence("alice@halo.localhost", None, None);
    let status = w.server.stop();
    assert!(status.success(), "{status}");
    w.bob.wait("alice unavailable when Halo stopped", 20, unavailable);
}

#[test]
fn a_wrong_component_secret_backs_off_opens_the_breaker_and_says_why() {
    if !prerequisites("a_wrong_component_secret_backs_off_opens_the_breaker_and_says_why") {
        return;
    }
    let prosody = Prosody::start();
    let server = TestServer::with_log_capture(LIMITS);
    let admin = server.admin();
    install_xmpp_with(&admin, prosody.component, json!({"secret": "not-the-component-secret"}));
    // The secret is write-only: masked over REST and in the CLI.
    let info = admin.call_json("GET", "/api/v1/admin/plugins/xmpp", None).expect("plugin info");
    assert_eq!(info["config"]["secret"], "********", "{info}");
    assert_eq!(info["schema"]["secret"]["secret"], true, "{info}");
    let cli = common::plugin_info(&server, "xmpp");
    assert_eq!(cli["config"]["secret"], "********", "{cli}");
    let text = ok(run(common::plugin_cli(&server, &["info", "xmpp"])));
    assert!(!text.contains("not-the-component-secret"), "{text}");
    put_domain(&admin, "localhost", json!({"adapter": "xmpp"}));

    // Refused handshakes back off (0.5 s doubling): the breaker opens after five, and the
    // status says why.
    let open = wait_until("the breaker open", 60, || Some(link(&admin)).filter(|l| l["breaker"] == "open"));
    let why = open["last_error"].as_str().unwrap_or_default();
    assert!(why.contains("not-authorized") && why.contains("secret"), "{open}");
    // Five failures take at least 0.5 + 1 + 2 + 4 s of waiting, so the next try is ≥ 8 s away
    // from the fifth: not 2 a second for ever.
    let failures = open["failures"].as_u64().unwrap_or(0);
    assert!(failures >= 5, "{open}");
    let text = status_text(&server);
    assert!(text.contains("open") && text.contains("not-authorized"), "{text}");

    // The right secret: the link comes up, the breaker closes, the error is gone.
    let mut config = info["config"].clone();
    config["secret"] = json!(SECRET);
    admin.call_json("PUT", "/api/v1/admin/plugins/xmpp/config", Some(&config)).expect("fix the secret");
    let up = wait_link(&admin, "up", 90);
    assert_eq!(up["breaker"], "closed", "{up}");
    assert!(up.get("last_error").is_none_or(Value::is_null), "{up}");

    // Written back as read (masked), the secret keeps its value: the adapter links again.
    let mut config = admin.call_json("GET", "/api/v1/admin/plugins/xmpp", None).expect("info")["config"].clone();
    assert_eq!(config["secret"], "********");
    config["keepalive_seconds"] = json!("30");
    admin.call_json("PUT", "/api/v1/admin/plugins/xmpp/config", Some(&config)).expect("reconfigure");
    // The adapter logs each handshake it passes: a second one means the kept secret worked.
    let connected = || {
        let logs = admin.call_json("GET", "/api/v1/admin/plugins/xmpp/logs", None).expect("plugin logs");
        logs.to_string().matches("as halo.localhost").count()
    };
    wait_until("the adapter linked again after the reconfigure", 60, || (connected() >= 2).then_some(()));
    let logs = std::fs::read_to_string(server.log_path()).unwrap_or_default();
    assert!(!logs.contains(SECRET) && !logs.contains("not-the-component-secret"), "a secret in the log");
    drop(prosody);
}

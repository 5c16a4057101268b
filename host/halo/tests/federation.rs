//! Halo-to-Halo federation: two real servers on loopback, each with its own federation
//! listener (HTTPS, a self-signed certificate the other trusts), federating over signed
//! requests. Users add each other across servers, see presence, chat both ways; a peer that
//! is down gets its queue when it is back, presence resynced; blocked and unknown domains,
//! forged and stale requests are refused.

mod common;

use std::time::Duration;

use common::fed::{Certs, SECRET, add_contact, im_from, now_ms, org, overview, pair, peer_with, sign, token};
use common::nats::free_port;
use common::{Peer, TestServer, wait_presence, wait_until};
use serde_json::{Value, json};

fn link_state(server: &TestServer, route: &str) -> String {
    overview(server)["links"][route]["state"].as_str().unwrap_or("").to_owned()
}

#[test]
fn users_of_two_halo_servers_add_each_other_see_presence_and_chat() {
    let p = pair();
    let (ta, tb) = (token(&p.a, "alice"), token(&p.b, "bob"));
    let mut alice = Peer::connect(&p.a, &ta, "alice-laptop");
    let mut bob = Peer::connect(&p.b, &tb, "bob-laptop");

    // Each adds the other; each server grants the request and sends its user's presence.
    let list = add_contact(&p.a, &ta, "bob@b.test", "colleagues");
    assert_eq!(list["contacts"][0]["presence"]["username"], "bob@b.test");
    add_contact(&p.b, &tb, "Alice@A.test", "colleagues");
    wait_presence(&mut alice, "bob@b.test", |v| v["state"] == "available");
    wait_presence(&mut bob, "alice@a.test", |v| v["state"] == "available");

    // Presence changes cross over, note included at the Colleagues level.
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    p.a.client(Some(&ta))
        .call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "Quarter close"})))
        .expect("note");
    let seen = wait_presence(&mut bob, "alice@a.test", |v| v["state"] == "busy" && v["note"] == "Quarter close");
    assert_eq!(seen["label"], "Busy");
    let contacts = p.b.client(Some(&tb)).call_json("GET", "/api/v1/contacts", None).expect("contacts");
    assert_eq!(contacts["contacts"][0]["level"], "colleagues");
    assert_eq!(contacts["contacts"][0]["presence"]["state"], "busy");

    // Chat both ways in a 1:1.
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@b.test"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "hello from a.test <&>"}));
    let got = im_from(&mut bob, "alice@a.test");
    assert_eq!(got["text"], "hello from a.test <&>");
    let bob_conv = got["conversation"].clone();
    bob.ok(json!({"type": "im.send", "conversation": bob_conv, "text": "hi alice, b.test here"}));
    let back = im_from(&mut alice, "bob@b.test");
    assert_eq!(back["text"], "hi alice, b.test here");
    assert_eq!(back["conversation"], conv, "the reply lands in the same 1:1");

    // The 1:1 with a remote user may become a group (see federation_groups.rs).
    p.a.user("carol");
    let group = alice.ok(json!({"type": "im.add", "conversation": conv, "user": "carol"}));
    assert_eq!(group["conversation"]["kind"], "group");

    // Admins see the link up and the traffic counted.
    let o = overview(&p.a);
    assert_eq!(o["domain"], "a.test");
    assert_eq!(o["links"]["halo:b.test"]["state"], "up", "{o}");
    assert!(o["links"]["halo:b.test"]["sent"].as_u64().unwrap_or(0) >= 3, "{o}");
    assert!(o["links"]["halo:b.test"]["received"].as_u64().unwrap_or(0) >= 2, "{o}");
    assert!(o["domains"][0].get("secret").is_none() && !o.to_string().contains(SECRET), "secrets stay hidden");
    let text = ureq::get(&format!("{}/metrics", p.a.url))
        .header("authorization", &format!("Bearer {}", p.a.login("admin", common::ADMIN_PASSWORD)))
        .call()
        .expect("metrics")
        .into_body()
        .read_to_string()
        .expect("text");
    assert!(text.contains("halo_federation_sent_total{domain=\"b.test\",kind=\"message\"}"), "{text}");

    // b.test refuses a message to someone it does not have: its signed receipt says so, and
    // alice's message shows failed, with why.
    let ghost = alice.ok(json!({"type": "im.start", "participants": ["ghost@b.test"]}))["conversation"]["id"].clone();
    let sent = alice.ok(json!({"type": "im.send", "conversation": ghost, "text": "anyone?"}));
    let failed = alice.event("im.failed");
    assert_eq!((&failed["conversation"], &failed["message"]), (&ghost, &sent["message"]["id"]), "{failed}");
    assert_eq!(failed["failure"]["to"], "ghost@b.test", "{failed}");
    assert_eq!(failed["failure"]["code"], "no_such_user", "{failed}");
    let history = p.a.client(Some(&ta)).call_json("GET", &format!("/api/v1/conversations/{ghost}/messages"), None);
    let history = history.expect("history");
    assert_eq!(history["messages"][0]["failed"], failed["failure"], "{history}");
    // Delivered messages carry no failure.
    let first = p.a.client(Some(&ta)).call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None);
    assert!(first.expect("history")["messages"][0].get("failed").is_none());
}

/// The texts of `user`'s first conversation on `server`.
fn history_of(server: &TestServer, token: &str) -> Vec<String> {
    let client = server.client(Some(token));
    let Ok(convs) = client.call_json("GET", "/api/v1/conversations", None) else { return Vec::new() };
    let id = convs["conversations"][0]["id"].clone();
    let Ok(msgs) = client.call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None) else {
        return Vec::new();
    };
    msgs["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

#[test]
fn a_message_is_stored_exactly_when_it_is_queued_for_federation_so_a_retry_never_loses_it() {
    let p = pair();
    let (ta, tb) = (token(&p.a, "alice"), token(&p.b, "bob"));
    let mut alice = Peer::connect(&p.a, &ta, "alice-laptop");
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@b.test"]}))["conversation"]["id"].clone();
    let send = format!("/api/v1/conversations/{conv}/messages");
    let body = json!({"text": "sent once, delivered once", "key": "retry-1"});

    // The domain stops being routed between the start and the send: the send is refused, and
    // nothing is stored (so nothing is acknowledged that could not be queued).
    p.a.admin().call("DELETE", "/api/v1/admin/federation/domains/b.test", None).expect("remove rule");
    let refused = p.a.client(Some(&ta)).call_json("POST", &send, Some(&body)).expect_err("no route to b.test");
    assert_eq!(common::api_error(refused), (403, "forbidden".to_owned()));
    assert!(history_of(&p.a, &ta).is_empty(), "a refused message is not stored");
    assert!(overview(&p.a)["queues"]["b.test"].as_u64().unwrap_or(0) == 0, "nor queued");

    // Routed again, the client retries with the same key: stored and queued together, once.
    peer_with(&p.a, "b.test", p.b_port, &p.certs);
    let sent = p.a.client(Some(&ta)).call_json("POST", &send, Some(&body)).expect("retry");
    let again = p.a.client(Some(&ta)).call_json("POST", &send, Some(&body)).expect("a second retry");
    assert_eq!(sent["id"], again["id"], "the same message");
    assert_eq!(history_of(&p.a, &ta), ["sent once, delivered once"]);
    let delivered = wait_until("bob to get the message", 60, || {
        let texts = history_of(&p.b, &tb);
        (!texts.is_empty()).then_some(texts)
    });
    wait_until("a's queue to drain", 60, || (queued(&p.a) == 0).then_some(()));
    assert_eq!(history_of(&p.b, &tb), delivered);
    assert_eq!(delivered, ["sent once, delivered once"], "delivered exactly once");
}

#[test]
fn a_peer_that_was_down_gets_its_queue_and_presence_when_back() {
    let mut p = pair();
    let (ta, tb) = (token(&p.a, "alice"), token(&p.b, "bob"));
    let mut alice = Peer::connect(&p.a, &ta, "alice-laptop");
    add_contact(&p.a, &ta, "bob@b.test", "colleagues");
    add_contact(&p.b, &tb, "alice@a.test", "colleagues");
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@b.test"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "before"}));
    wait_until("the first message", 20, || (queued(&p.a) == 0).then_some(()));

    // b goes down: local IM on a carries on, the items wait in a's queue.
    p.b.stop();
    for text in ["while you were down 1", "while you were down 2"] {
        alice.ok(json!({"type": "im.send", "conversation": conv, "text": text}));
    }
    alice.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    wait_until("the link to b.test to fail", 30, || (link_state(&p.a, "halo:b.test") == "down").then_some(()));
    let o = overview(&p.a);
    assert!(o["queues"]["b.test"].as_u64().unwrap_or(0) >= 2, "{o}");
    assert!(o["links"]["halo:b.test"]["failures"].as_u64().unwrap_or(0) >= 1, "{o}");
    assert!(o["links"]["halo:b.test"]["last_error"].is_string(), "{o}");

    // b is back: the queue drains in order, and presence is current again.
    p.b.restart();
    let tb = p.b.login("bob", "bob-password");
    let bob = Peer::connect(&p.b, &tb, "bob-laptop");
    wait_until("a's queue to drain", 90, || (queued(&p.a) == 0).then_some(()));
    let texts = wait_until("bob's history", 20, || {
        let convs = p.b.client(Some(&tb)).call_json("GET", "/api/v1/conversations", None).ok()?;
        let id = convs["conversations"][0]["id"].clone();
        let msgs =
            p.b.client(Some(&tb)).call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None).ok()?;
        let texts: Vec<String> =
            msgs["messages"].as_array()?.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect();
        (texts.len() >= 3).then_some(texts)
    });
    assert_eq!(texts, ["before", "while you were down 1", "while you were down 2"]);
    // Presence is current on both sides again: alice's Do Not Disturb (set while b was down)
    // on b, and bob's coming online on a.
    let state_of = |server: &TestServer, token: &str, who: &str| {
        let list = server.client(Some(token)).call_json("GET", "/api/v1/contacts", None).ok()?;
        let c = list["contacts"].as_array()?.iter().find(|c| c["presence"]["username"] == who)?.clone();
        c["presence"]["state"].as_str().map(str::to_owned)
    };
    wait_until("alice's presence on b", 30, || {
        (state_of(&p.b, &tb, "alice@a.test").as_deref() == Some("do_not_disturb")).then_some(())
    });
    wait_until("bob's presence on a", 30, || {
        (state_of(&p.a, &ta, "bob@b.test").as_deref() == Some("available")).then_some(())
    });
    drop((alice, bob));
}

#[test]
fn blocked_unknown_forged_and_spoofed_traffic_is_refused() {
    let p = pair();
    p.a.user("alice");
    let tb = token(&p.b, "bob");
    let admin = p.b.admin();
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/evil.test", Some(&json!({"access": "block"})))
        .expect("block");
    let client = p.b.client(Some(&tb));
    let refused = |path: &str, body: Value| match client.call_json("POST", path, Some(&body)) {
        Err(halo_client::ClientError::Api { status, message, .. }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let (code, msg) = refused("/api/v1/contacts", json!({"username": "mallory@evil.test"}));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("blocked"), "{msg}");
    let (code, msg) = refused("/api/v1/conversations", json!({"participants": ["x@nowhere.test"]}));
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("not federated"), "{msg}");
    let (code, _) = refused("/api/v1/contacts", json!({"username": "bad<jid>@b.test"}));
    assert_eq!(code, 400);
    // Own domain: name local users without it.
    let (code, _) = refused("/api/v1/contacts", json!({"username": "alice@b.test"}));
    assert_eq!(code, 400);

    // Straight at b's federation listener.
    let agent = p.certs.agent();
    let inbox = format!("https://127.0.0.1:{}/federation/v1/inbox", p.b_port);
    let post = |origin: &str, secret: &str, ts: u64, items: Value| {
        let body = json!({"items": items}).to_string();
        let mut r = agent
            .post(&inbox)
            .header("halo-origin", origin)
            .header("halo-timestamp", &ts.to_string())
            .header("halo-signature", &sign(secret, origin, ts, body.as_bytes()))
            .send(body.as_bytes())
            .expect("request");
        let status = r.status().as_u16();
        let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (o, t, sig) = (header("halo-origin"), header("halo-timestamp"), header("halo-signature"));
        let text = r.body_mut().read_to_string().unwrap_or_default();
        // Every receipt is signed by b.test with the shared secret.
        if status == 200 {
            let ts: u64 = t.parse().expect("receipt timestamp");
            assert_eq!((o.as_str(), sign(SECRET, "b.test", ts, text.as_bytes())), ("b.test", sig), "{text}");
        }
        (status, text)
    };
    let msg = |from: &str, to: &str, text: &str| json!([{"type": "message", "from": from, "to": to, "text": text, "id": text}]);
    let mut bob = Peer::connect(&p.b, &tb, "bob-laptop");

    let (s, body) = post("a.test", "the-wrong-secret-of-many-bytes", now_ms(), msg("alice", "bob@b.test", "forged"));
    assert_eq!(s, 401, "{body}");
    let (s, body) = post("c.test", SECRET, now_ms(), msg("alice", "bob@b.test", "unknown origin"));
    assert_eq!(s, 401, "{body}");
    let (s, body) = post("evil.test", SECRET, now_ms(), msg("mallory", "bob@b.test", "blocked"));
    assert_eq!(s, 401, "{body}");
    let (s, body) = post("a.test", SECRET, now_ms() - 10 * 60 * 1000, msg("alice", "bob@b.test", "stale"));
    assert_eq!(s, 401, "{body}");
    // Signed by a.test, but speaking for another domain, or to someone who is not here.
    let (s, body) = post("a.test", SECRET, now_ms(), msg("mallory@evil.test", "bob@b.test", "spoofed"));
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("\"accepted\":0"), "{body}");
    let (s, body) = post("a.test", SECRET, now_ms(), msg("alice", "nobody@b.test", "to nobody"));
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("no user nobody"), "{body}");
    // The receipt says which item and why, as a code.
    let receipt: Value = serde_json::from_str(&body).expect("receipt");
    assert_eq!(receipt["refusals"], json!([{"index": 0, "code": "no_such_user", "reason": "no user nobody here"}]));
    // Garbage bodies.
    let ts = now_ms();
    let garbage = b"{\"items\": [{\"type\": \"telepathy\"}]}";
    let mut r = agent
        .post(&inbox)
        .header("halo-origin", "a.test")
        .header("halo-timestamp", &ts.to_string())
        .header("halo-signature", &sign(SECRET, "a.test", ts, garbage))
        .send(&garbage[..])
        .expect("request");
    assert_eq!(r.status().as_u16(), 400, "{}", r.body_mut().read_to_string().unwrap_or_default());
    // The REST API is not on the federation listener.
    let r = agent.get(&format!("https://127.0.0.1:{}/api/v1/me", p.b_port)).call().expect("request");
    assert_eq!(r.status().as_u16(), 404);

    bob.none_matching(Duration::from_millis(500), |v| v["type"] == "im.message");
    // A correctly signed message still gets through.
    let (s, body) = post("a.test", SECRET, now_ms(), msg("alice", "bob@b.test", "genuine"));
    assert_eq!((s, body.contains("\"accepted\":1")), (200, true), "{body}");
    assert_eq!(im_from(&mut bob, "alice@a.test")["text"], "genuine");
    // And a repeat of the same id is stored once, and answered as a duplicate.
    let (s, body) = post("a.test", SECRET, now_ms(), msg("alice", "bob@b.test", "genuine"));
    assert_eq!(s, 200, "{body}");
    let receipt: Value = serde_json::from_str(&body).expect("receipt");
    assert_eq!((receipt["accepted"].as_u64(), receipt["duplicates"].as_u64()), (Some(0), Some(1)), "{body}");
    let convs = client.call_json("GET", "/api/v1/conversations", None).expect("convs");
    let id = convs["conversations"][0]["id"].clone();
    let msgs = client.call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None).expect("msgs");
    assert_eq!(msgs["messages"].as_array().map(Vec::len), Some(1), "{msgs}");
    // The overview counts what the metric counts: the forged, stale, spoofed and misaddressed
    // requests from a.test, and the unknown c.test and blocked evil.test too.
    let o = overview(&p.b);
    assert_eq!(o["links"]["halo:a.test"]["rejected"].as_u64(), Some(4), "{o}");
    // (a.test may also have knocked before b had its rule, at start: counted, on no link.)
    assert!(o["rejected"]["a.test"].as_u64() >= Some(4), "{o}");
    assert_eq!(o["rejected"]["c.test"].as_u64(), Some(1), "{o}");
    assert_eq!(o["rejected"]["evil.test"].as_u64(), Some(1), "{o}");
    let token = p.b.login("admin", common::ADMIN_PASSWORD);
    let (_, metrics) = p.b.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    let metric = |domain: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with("halo_federation_rejected_total") && l.contains(&format!("domain=\"{domain}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    for d in ["a.test", "c.test", "evil.test"] {
        assert_eq!(metric(d), o["rejected"][d].as_u64().map(|n| n as f64), "{d}: {metrics}");
    }
    let mut c = common::halo();
    c.args(["federation", "status", "--data-dir"])
        .arg(p.b.data_dir())
        .env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN");
    let text = common::ok(c.output().expect("ran"));
    assert!(text.contains("rejected 4") && text.contains("c.test (1)") && text.contains("evil.test (1)"), "{text}");
    // Metrics, REST and CLI agree on the total too.
    let total: u64 = o["rejected"].as_object().map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let metric_total: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("halo_federation_rejected_total"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum();
    assert_eq!(metric_total, total as f64, "{metrics}");
}

/// The self-signed certificate recipe of docs/federation.md, run in `dir`.
fn openssl_recipe(dir: &std::path::Path) -> bool {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "825",
            "-keyout",
            "fed-privkey.pem",
            "-out",
            "fed-fullchain.pem",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "keyUsage=critical,digitalSignature",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => panic!("the openssl recipe failed: {}", String::from_utf8_lossy(&o.stderr)),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI must have openssl");
            eprintln!("SKIPPED the openssl recipe: no openssl");
            false
        }
    }
}

#[test]
fn the_docs_certificate_recipe_and_a_relative_ca_work_and_a_blocked_remote_user_sees_offline() {
    let dir = tempfile::tempdir().expect("tempdir");
    if !openssl_recipe(dir.path()) {
        return;
    }
    let certs = Certs {
        cert: dir.path().join("fed-fullchain.pem").display().to_string(),
        key: dir.path().join("fed-privkey.pem").display().to_string(),
        pem: std::fs::read(dir.path().join("fed-fullchain.pem")).expect("pem"),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    let (a_port, b_port) = (free_port(), free_port());
    let a = org("a.test", a_port, &certs);
    let b = org("b.test", b_port, &certs);
    // `--ca` relative to the CLI's directory (the servers run elsewhere).
    for (server, peer, port) in [(&a, "b.test", b_port), (&b, "a.test", a_port)] {
        let mut c = common::halo();
        c.current_dir(dir.path())
            .args(["federation", "allow", peer, "--url", &format!("https://127.0.0.1:{port}"), "--secret", SECRET])
            .args(["--ca", "fed-fullchain.pem", "--data-dir"])
            .arg(server.data_dir())
            .env_remove("HALO_SERVER")
            .env_remove("HALO_TOKEN");
        common::ok(c.output().expect("ran"));
    }
    let (ta, tb) = (token(&a, "alice"), token(&b, "bob"));
    let mut alice = Peer::connect(&a, &ta, "alice-laptop");
    let mut bob = Peer::connect(&b, &tb, "bob-laptop");
    add_contact(&a, &ta, "bob@b.test", "colleagues");
    add_contact(&b, &tb, "alice@a.test", "colleagues");
    wait_presence(&mut alice, "bob@b.test", |v| v["state"] == "available");
    wait_presence(&mut bob, "alice@a.test", |v| v["state"] == "available");

    // Remote presence is readable over REST, not only through the contact list.
    let bob_rest = b.client(Some(&tb));
    let seen = bob_rest.call_json("GET", "/api/v1/users/alice@a.test/presence", None).expect("remote presence");
    assert_eq!(
        (seen["username"].as_str(), seen["state"].as_str()),
        (Some("alice@a.test"), Some("available")),
        "{seen}"
    );

    // Alice goes DND with a note, then blocks bob: he sees her Offline, not the DND.
    alice.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    a.client(Some(&ta)).call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "heads down"}))).expect("note");
    wait_presence(&mut bob, "alice@a.test", |v| v["state"] == "do_not_disturb" && v["note"] == "heads down");
    a.client(Some(&ta))
        .call_json("PATCH", "/api/v1/contacts/bob@b.test", Some(&json!({"level": "blocked"})))
        .expect("block bob");
    wait_presence(&mut bob, "alice@a.test", |v| v["state"] == "offline");
    // Later changes do not reach him: after her change and a message queued behind it, he
    // still sees her Offline.
    alice.ok(json!({"type": "presence.set", "state": "available"}));
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@b.test"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "after the block"}));
    assert_eq!(im_from(&mut bob, "alice@a.test")["text"], "after the block");
    let seen = bob_rest.call_json("GET", "/api/v1/users/alice@a.test/presence", None).expect("remote presence");
    assert_eq!(seen["state"], "offline", "{seen}");
}

/// Items waiting in `server`'s federation queues.
fn queued(server: &TestServer) -> u64 {
    overview(server)["queues"].as_object().map_or(0, |q| q.values().filter_map(Value::as_u64).sum())
}

#[test]
fn the_cli_sets_domains_and_shows_their_state() {
    let server = TestServer::start();
    let fed = |args: &[&str]| {
        let mut c = common::halo();
        c.arg("federation").args(args).arg("--data-dir").arg(server.data_dir());
        c.env_remove("HALO_SERVER").env_remove("HALO_TOKEN").output().expect("ran")
    };
    let out = common::ok(fed(&["status"]));
    assert!(out.contains("no federated domains"), "{out}");
    common::ok(fed(&["allow", "example.org", "--adapter", "xmpp"]));
    common::ok(fed(&["block", "spam.example"]));
    let err =
        common::fails(fed(&["allow", "peer.example", "--url", "http://peer.example", "--secret", "0123456789abcdef"]));
    assert!(err.contains("must be https"), "{err}");
    let err = common::fails(fed(&["allow", "bad_domain!", "--adapter", "xmpp"]));
    assert!(err.contains("invalid domain"), "{err}");
    let err = common::fails(fed(&["allow", "example.net"]));
    assert!(err.contains("--adapter"), "{err}");
    let out = common::ok(fed(&["status"]));
    assert!(out.contains("example.org") && out.contains("adapter xmpp"), "{out}");
    assert!(out.contains("spam.example") && out.contains("block"), "{out}");
    assert!(out.contains("not installed, or not enabled"), "{out}");
    let json: Value =
        serde_json::from_str(&common::ok(fed(&["status", "--json"])).lines().collect::<String>()).expect("json");
    assert_eq!(json["domains"].as_array().map(Vec::len), Some(2));
    common::ok(fed(&["remove", "spam.example"]));
    let err = common::fails(fed(&["remove", "spam.example"]));
    assert!(err.contains("no federation rule"), "{err}");
}

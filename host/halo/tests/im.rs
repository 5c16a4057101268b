//! Instant messaging through a real `halo serve` with several WebSocket clients.

mod common;

use std::time::Duration;

use common::{Peer, TestServer, api_error, wait_until};
use serde_json::{Value, json};

fn login(server: &TestServer, name: &str) -> String {
    server.login(name, &format!("{name}-password"))
}

/// Creates users and returns their tokens.
fn users(server: &TestServer, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            server.user(n);
            login(server, n)
        })
        .collect()
}

fn start(peer: &mut Peer, with: &[&str]) -> u64 {
    peer.ok(json!({"type": "im.start", "participants": with}))["conversation"]["id"].as_u64().expect("id")
}

fn send(peer: &mut Peer, conv: u64, text: &str) -> Value {
    peer.ok(json!({"type": "im.send", "conversation": conv, "text": text}))["message"].clone()
}

#[test]
fn one_to_one_both_ways_and_to_the_senders_other_device() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut laptop = Peer::connect(&server, &t[0], "laptop");
    let mut phone = Peer::connect(&server, &t[0], "phone");
    let mut bob = Peer::connect(&server, &t[1], "desk");

    let conv = start(&mut laptop, &["bob"]);
    assert_eq!(bob.event("im.conversation")["conversation"]["participants"], json!(["alice", "bob"]));
    assert_eq!(phone.event("im.conversation")["conversation"]["id"], conv);
    assert_eq!(start(&mut laptop, &["BOB"]), conv, "the open 1:1 is reused");

    let sent = laptop.ok(json!({"type": "im.send", "conversation": conv, "text": "hi **bob**", "format": "markdown"}))
        ["message"]
        .clone();
    assert_eq!(
        (sent["from"].as_str(), sent["format"].as_str(), sent["kind"].as_str()),
        (Some("alice"), Some("markdown"), Some("text"))
    );
    let got = bob.event("im.message")["message"].clone();
    assert_eq!(got, sent);
    assert_eq!(phone.event("im.message")["message"]["id"], sent["id"], "the sender's other device gets it");
    let receipt = laptop.event("im.delivered");
    assert_eq!((receipt["user"].as_str(), receipt["message"].clone()), (Some("bob"), sent["id"].clone()));
    laptop.no_event("im.message", Duration::from_millis(200));

    let answer = send(&mut bob, conv, "hello alice");
    assert!(answer["id"].as_u64() > sent["id"].as_u64(), "ids increase");
    assert_eq!(laptop.event("im.message")["message"]["text"], "hello alice");
    assert_eq!(phone.event("im.message")["message"]["text"], "hello alice");

    let list = server.client(Some(&t[0])).call_json("GET", "/api/v1/conversations", None).expect("list");
    assert_eq!(list["conversations"][0]["last_message"]["text"], "hello alice");
    assert_eq!(list["conversations"][0]["unread"], 1);
}

#[test]
fn adding_a_third_person_shows_them_only_what_follows() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob", "carol"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let mut bob = Peer::connect(&server, &t[1], "b");
    let mut carol = Peer::connect(&server, &t[2], "c");
    let conv = start(&mut alice, &["bob"]);
    bob.event("im.conversation");
    send(&mut alice, conv, "before carol");

    let shape = alice.ok(json!({"type": "im.add", "conversation": conv, "user": "carol"}))["conversation"].clone();
    assert_eq!(
        (shape["kind"].as_str(), shape["participants"].clone()),
        (Some("group"), json!(["alice", "bob", "carol"]))
    );
    assert_eq!(carol.event("im.conversation")["conversation"]["id"], conv);
    let joined = carol.event("im.message")["message"].clone();
    assert_eq!((joined["kind"].as_str(), joined["user"].as_str()), (Some("joined"), Some("carol")));
    assert_eq!(bob.event("im.conversation")["conversation"]["kind"], "group");
    assert_eq!(alice.err(json!({"type": "im.add", "conversation": conv, "user": "carol"})), "conflict");

    send(&mut bob, conv, "welcome carol");
    assert_eq!(carol.event("im.message")["message"]["text"], "welcome carol");
    let page = |token: &str| -> Vec<String> {
        let v = server
            .client(Some(token))
            .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
            .expect("page");
        v["messages"]
            .as_array()
            .expect("list")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or(m["kind"].as_str().unwrap_or("")).to_owned())
            .collect()
    };
    assert_eq!(page(&t[2]), ["joined", "welcome carol"], "the newcomer sees from their join");
    assert_eq!(page(&t[1]), ["before carol", "joined", "welcome carol"], "the others keep the whole thread");
    assert_ne!(start(&mut alice, &["bob"]), conv, "a group is no longer the 1:1");

    bob.ok(json!({"type": "im.leave", "conversation": conv}));
    assert_eq!(alice.event("im.conversation")["conversation"]["participants"], json!(["alice", "carol"]));
    assert_eq!(bob.err(json!({"type": "im.send", "conversation": conv, "text": "still here?"})), "forbidden");
    send(&mut alice, conv, "after bob left");
    assert_eq!(
        page(&t[1]),
        ["before carol", "joined", "welcome carol", "left"],
        "a leaver keeps history up to leaving"
    );
}

#[test]
fn offline_messages_arrive_in_order_after_reconnect_and_restart() {
    let mut server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let ids: Vec<Value> = ["one", "two", "three"].iter().map(|m| send(&mut alice, conv, m)["id"].clone()).collect();

    let mut bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], 3);
    let got: Vec<Value> = (0..3).map(|_| bob.event("im.message")).collect();
    assert!(got.iter().all(|e| e["offline"] == true));
    assert_eq!(got.iter().map(|e| e["message"]["id"].clone()).collect::<Vec<_>>(), ids);
    drop(bob);

    server.crash_and_restart();
    let mut bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], 3, "unacknowledged offline messages survive kill -9");
    let texts: Vec<Value> = (0..3).map(|_| bob.event("im.message")["message"]["text"].clone()).collect();
    assert_eq!(texts, [json!("one"), json!("two"), json!("three")]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    assert_eq!(bob.ok(json!({"type": "im.ack", "upto": ids[2]}))["acked"], 3);
    let receipts: Vec<Value> = (0..3).map(|_| alice.event("im.delivered")["message"].clone()).collect();
    assert_eq!(receipts, ids);
    drop(bob);
    let bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], 0);
}

#[test]
fn offline_im_can_be_turned_off() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob", "carol"]);
    let admin = server.admin();
    let settings =
        admin.call_json("PATCH", "/api/v1/admin/settings", Some(&json!({"offline_im": false}))).expect("settings");
    assert_eq!(settings["offline_im"], false);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    assert_eq!(alice.err(json!({"type": "im.send", "conversation": conv, "text": "you there?"})), "recipient_offline");
    let msgs = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
        .expect("page");
    assert_eq!(msgs["messages"], json!([]), "nothing stored");
    let bob = Peer::connect(&server, &t[1], "b");
    send(&mut alice, conv, "now you are");
    drop(bob);
    assert_eq!(
        api_error(
            server
                .client(Some(&t[2]))
                .call("PATCH", "/api/v1/admin/settings", Some(&json!({"offline_im": true})))
                .expect_err("user")
        )
        .0,
        403
    );
}

#[test]
fn retries_with_the_same_key_are_stored_once() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let frame = json!({"type": "im.send", "conversation": conv, "text": "pay the invoice", "key": "k-42"});
    let first = alice.ok(frame.clone());
    let again = alice.ok(frame);
    assert_eq!(first, again);
    assert_eq!(
        alice.err(json!({"type": "im.send", "conversation": conv, "text": "other text", "key": "k-42"})),
        "idempotency_conflict"
    );
    let msgs = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
        .expect("page");
    assert_eq!(msgs["messages"].as_array().map(Vec::len), Some(1));
    let rest = server.client(Some(&t[0]));
    let via_rest = rest
        .call_json(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&json!({"text": "pay the invoice", "key": "k-42"})),
        )
        .expect("rest retry");
    assert_eq!(via_rest["id"], first["message"]["id"]);
}

#[test]
fn typing_and_read_receipts() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let mut bob = Peer::connect(&server, &t[1], "b");
    let mut bob2 = Peer::connect(&server, &t[1], "b2");
    let conv = start(&mut alice, &["bob"]);
    alice.ok(json!({"type": "im.typing", "conversation": conv, "typing": true}));
    let typing = bob.event("im.typing");
    assert_eq!((typing["user"].as_str(), typing["typing"].as_bool()), (Some("alice"), Some(true)));
    let m1 = send(&mut alice, conv, "one")["id"].clone();
    let m2 = send(&mut alice, conv, "two")["id"].clone();
    assert_eq!(
        server.client(Some(&t[1])).call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("get")["unread"],
        2
    );
    assert_eq!(bob.ok(json!({"type": "im.read", "conversation": conv, "upto": m1}))["unread"], 1);
    let receipt = alice.event("im.read");
    assert_eq!((receipt["user"].as_str(), receipt["upto"].clone()), (Some("bob"), m1.clone()));
    assert!(receipt.get("unread").is_none(), "others do not see the reader's unread count");
    assert_eq!(bob2.event("im.read")["unread"], 1, "the reader's other devices sync");
    let unread = server
        .client(Some(&t[1]))
        .call_json("PUT", &format!("/api/v1/conversations/{conv}/read"), Some(&json!({"upto": m2})))
        .expect("read");
    assert_eq!(unread["unread"], 0);
    let seen =
        server.client(Some(&t[0])).call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("get");
    assert_eq!(seen["read_by"], json!({"bob": m2}), "receipts survive a reload: the others' read markers");
    assert!(
        server.client(Some(&t[0])).call_json("GET", "/api/v1/conversations", None).expect("inbox")["conversations"][0]
            .get("read_by")
            .is_none(),
        "only the single-conversation answer carries them"
    );
}

#[test]
fn history_pages_and_can_be_deleted_from_ones_own_view() {
    let server = TestServer::with_config("[im]\nmessages_per_sec = 1000.0\nburst = 1000.0\n");
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let ids: Vec<u64> = (0..25).map(|i| send(&mut alice, conv, &format!("m{i}"))["id"].as_u64().expect("id")).collect();
    let c = server.client(Some(&t[1]));
    let texts = |v: &Value| {
        v["messages"]
            .as_array()
            .expect("list")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    let newest = c.call_json("GET", &format!("/api/v1/conversations/{conv}/messages?limit=10"), None).expect("page");
    assert_eq!(texts(&newest).first().map(String::as_str), Some("m15"));
    assert_eq!(texts(&newest).last().map(String::as_str), Some("m24"));
    let older = c
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages?limit=10&before={}", ids[15]), None)
        .expect("page");
    assert_eq!(texts(&older), (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>());
    let newer = c
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages?limit=3&after={}", ids[20]), None)
        .expect("page");
    assert_eq!(texts(&newer), ["m21", "m22", "m23"]);
    assert_eq!(
        api_error(c.call("GET", &format!("/api/v1/conversations/{conv}/messages?limit=500"), None).expect_err("limit"))
            .0,
        400
    );

    c.call("DELETE", &format!("/api/v1/conversations/{conv}"), None).expect("delete from history");
    assert_eq!(c.call_json("GET", "/api/v1/conversations", None).expect("list")["conversations"], json!([]));
    assert_eq!(
        texts(&c.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("page")),
        Vec::<String>::new()
    );
    let alices = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages?limit=200"), None)
        .expect("page");
    assert_eq!(texts(&alices).len(), 25, "the other side keeps theirs");
    send(&mut alice, conv, "after the delete");
    assert_eq!(
        texts(&c.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("page")),
        ["after the delete"]
    );
}

#[test]
fn search_finds_words_by_participant_and_date_within_ones_own_history() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob", "carol"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let with_bob = start(&mut alice, &["bob"]);
    let with_carol = start(&mut alice, &["carol"]);
    let m = send(&mut alice, with_bob, "The quarterly budget spreadsheet is attached");
    send(&mut alice, with_carol, "lunch at noon?");
    send(&mut alice, with_carol, "budget for the party");
    let at = m["at"].as_u64().expect("at");

    // The index trails history: once every message sent is found, nothing more comes.
    let search = |token: &str, q: &str| -> Vec<String> {
        let v = server.client(Some(token)).call_json("GET", &format!("/api/v1/search?{q}"), None).expect("search");
        v["messages"].as_array().expect("list").iter().map(|m| m["text"].as_str().unwrap_or("").to_owned()).collect()
    };
    wait_until("the index", 30, || (search(&t[0], "q=budget").len() == 2).then_some(()));
    assert_eq!(search(&t[0], "q=spreadsheet"), ["The quarterly budget spreadsheet is attached"]);
    assert_eq!(search(&t[0], "q=budget").len(), 2);
    assert_eq!(search(&t[0], "q=budget&with=carol"), ["budget for the party"]);
    assert_eq!(search(&t[1], "q=budget"), ["The quarterly budget spreadsheet is attached"], "bob sees only his");
    assert_eq!(search(&t[0], &format!("q=spreadsheet&since={}&until={}", at - 60_000, at + 1)).len(), 1);
    let c = server.client(Some(&t[0]));
    let old = c
        .call_json("GET", &format!("/api/v1/search?q=spreadsheet&until={}", at - 14 * 24 * 3600 * 1000), None)
        .expect("search");
    assert_eq!(old["messages"], json!([]), "a range weeks back finds nothing");
    let none = server.client(Some(&t[2])).call_json("GET", "/api/v1/search?q=spreadsheet", None).expect("search");
    assert_eq!(none["messages"], json!([]), "carol was not in that conversation");
    server.client(Some(&t[1])).call("DELETE", &format!("/api/v1/conversations/{with_bob}"), None).expect("delete");
    let gone = server.client(Some(&t[1])).call_json("GET", "/api/v1/search?q=spreadsheet", None).expect("search");
    assert_eq!(gone["messages"], json!([]), "deleted history is not searchable");
    assert_eq!(api_error(c.call("GET", "/api/v1/search", None).expect_err("no criteria")).0, 400);
}

#[test]
fn blocked_senders_are_refused() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob", "carol"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let bob = server.client(Some(&t[1]));
    bob.call("PUT", "/api/v1/me/blocked/alice", None).expect("block");
    assert_eq!(bob.call_json("GET", "/api/v1/me/blocked", None).expect("list")["blocked"], json!(["alice"]));
    assert_eq!(alice.err(json!({"type": "im.send", "conversation": conv, "text": "hello?"})), "blocked");
    assert_eq!(alice.err(json!({"type": "im.start", "participants": ["bob"]})), "blocked");
    let group = start(&mut alice, &["carol"]);
    assert_eq!(alice.err(json!({"type": "im.add", "conversation": group, "user": "bob"})), "blocked");
    bob.call("DELETE", "/api/v1/me/blocked/alice", None).expect("unblock");
    send(&mut alice, conv, "hello again");
}

#[test]
fn bad_requests_are_refused_and_store_nothing() {
    let server = TestServer::with_config("[im]\nmessages_per_sec = 0.01\nburst = 3\n");
    let t = users(&server, &["alice", "bob", "carol"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let mut carol = Peer::connect(&server, &t[2], "c");
    let conv = start(&mut alice, &["bob"]);
    assert_eq!(alice.err(json!({"type": "im.send", "conversation": 999_999, "text": "x"})), "not_found");
    assert_eq!(
        carol.err(json!({"type": "im.send", "conversation": conv, "text": "x"})),
        "not_found",
        "outsiders do not learn it exists"
    );
    assert_eq!(alice.err(json!({"type": "im.send", "conversation": conv, "text": "   "})), "bad_request");
    assert_eq!(
        alice.err(json!({"type": "im.send", "conversation": conv, "text": "x".repeat(16 * 1024 + 1)})),
        "bad_request"
    );
    assert_eq!(
        alice.err(json!({"type": "im.send", "conversation": conv, "text": "x", "format": "html"})),
        "bad_request"
    );
    assert_eq!(alice.err(json!({"type": "im.start", "participants": ["nobody"]})), "not_found");
    assert_eq!(alice.err(json!({"type": "im.start", "participants": []})), "bad_request");
    let many: Vec<String> = (0..100).map(|i| format!("u{i}")).collect();
    let admin = server.admin();
    for u in &many {
        admin
            .call_json("POST", "/api/v1/users", Some(&json!({"username": u, "password": "password-1"})))
            .expect("create");
    }
    assert_eq!(alice.err(json!({"type": "im.start", "participants": many})), "bad_request", "101 participants");
    let msgs = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
        .expect("page");
    assert_eq!(msgs["messages"], json!([]), "nothing was stored");

    for i in 0..3 {
        send(&mut alice, conv, &format!("burst {i}"));
    }
    assert_eq!(alice.err(json!({"type": "im.send", "conversation": conv, "text": "too fast"})), "rate_limited");
    let msgs = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
        .expect("page");
    assert_eq!(msgs["messages"].as_array().map(Vec::len), Some(3));
    assert!(alice.ok(json!({"type": "ping"}))["server_time"].is_u64(), "the socket lives on");
}

#[test]
fn im_metrics_are_exported() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    send(&mut alice, conv, "to the offline queue");
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    let (_, text) = server.raw("GET", "/metrics", Some(&admin), "text/plain", Vec::new());
    for line in ["halo_im_sent_total 1", "halo_im_offline_queue 1", "halo_im_delivery_seconds_count 1"] {
        assert!(text.contains(line), "missing {line}: {text}");
    }
}

/// A raw socket of `token` that reads its `hello` and then nothing.
fn silent_socket(server: &TestServer, token: &str) -> common::Ws {
    server.ws(token, "silent").0
}

#[test]
fn messages_acknowledged_to_the_sender_reach_an_online_recipient_after_kill_9() {
    let mut server = TestServer::with_config("[im]\nmessages_per_sec = 1000.0\nburst = 1000.0\n");
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    // Bob is online (so every message is pushed live) but his client reads nothing.
    let bob_socket = silent_socket(&server, &t[1]);
    const N: usize = 40;
    let ids: Vec<Value> = (0..N).map(|i| send(&mut alice, conv, &format!("m{i}"))["id"].clone()).collect();
    server.crash_and_restart();
    drop(bob_socket);

    let mut bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], N, "every acknowledged message waits for bob");
    let got: Vec<Value> = (0..N).map(|_| bob.event("im.message")).collect();
    assert!(got.iter().all(|e| e["offline"] == true), "from the queue");
    assert_eq!(got.iter().map(|e| e["message"]["id"].clone()).collect::<Vec<_>>(), ids, "in order");
    assert_eq!(bob.ok(json!({"type": "im.ack", "upto": ids[N - 1]}))["acked"], N);
    drop(bob);
    assert_eq!(Peer::connect(&server, &t[1], "b").hello["offline"], 0, "acknowledged: not again");
}

#[test]
fn live_messages_stay_queued_until_a_device_acknowledges_them() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let mut bob = Peer::connect(&server, &t[1], "b");
    let ids: Vec<Value> = ["one", "two", "three"].iter().map(|m| send(&mut alice, conv, m)["id"].clone()).collect();
    for id in &ids {
        let live = bob.event("im.message");
        assert_eq!((live["message"]["id"].clone(), live.get("offline")), (id.clone(), None), "pushed live");
        assert_eq!(alice.event("im.delivered")["message"], *id, "the receipt comes with the push");
    }
    // Not acknowledged: they come again on the next connect.
    drop(bob);
    let mut bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], 3);
    for id in &ids {
        let again = bob.event("im.message");
        assert_eq!((again["message"]["id"].clone(), again["offline"].clone()), (id.clone(), json!(true)));
    }
    // One acknowledgement covers everything up to its id; no second receipt for live ones.
    assert_eq!(bob.ok(json!({"type": "im.ack", "upto": ids[1]}))["acked"], 2);
    assert_eq!(bob.ok(json!({"type": "im.ack", "upto": ids[1]}))["acked"], 0, "already gone");
    let four = send(&mut alice, conv, "four")["id"].clone();
    assert_eq!(bob.event("im.message")["message"]["id"], four);
    assert_eq!(alice.event("im.delivered")["message"], four, "the next receipt is four's, not a repeat");
    assert_eq!(bob.ok(json!({"type": "im.ack", "upto": four}))["acked"], 2);
    drop(bob);
    let bob = Peer::connect(&server, &t[1], "b");
    assert_eq!(bob.hello["offline"], 0, "acknowledged live messages do not come again");
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    let (_, text) = server.raw("GET", "/metrics", Some(&admin), "text/plain", Vec::new());
    assert!(text.contains("halo_im_offline_queue 0"), "{text}");
}

#[test]
fn an_older_read_marker_tells_no_one_and_leavers_stop_seeing_markers() {
    let server = TestServer::start();
    let t = users(&server, &["alice", "bob", "carol"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let mut bob = Peer::connect(&server, &t[1], "b");
    let mut bob2 = Peer::connect(&server, &t[1], "b2");
    let mut carol = Peer::connect(&server, &t[2], "c");
    let conv = start(&mut alice, &["bob", "carol"]);
    let m1 = send(&mut alice, conv, "one")["id"].clone();
    let m2 = send(&mut alice, conv, "two")["id"].clone();
    assert_eq!(bob.ok(json!({"type": "im.read", "conversation": conv, "upto": m2}))["unread"], 0);
    assert_eq!(alice.event("im.read")["upto"], m2);
    assert_eq!(bob2.event("im.read")["upto"], m2);
    assert_eq!(carol.event("im.read")["upto"], m2);

    // An older id: the marker stays, and no frame goes out (frames are queued before the reply,
    // so a ping answered after it shows whether one was sent).
    assert_eq!(bob.ok(json!({"type": "im.read", "conversation": conv, "upto": m1}))["unread"], 0);
    let rest = server.client(Some(&t[1]));
    let unread =
        rest.call_json("PUT", &format!("/api/v1/conversations/{conv}/read"), Some(&json!({"upto": m1}))).expect("read");
    assert_eq!(unread["unread"], 0);
    for peer in [&mut alice, &mut bob2, &mut carol] {
        peer.ok(json!({"type": "ping"}));
        peer.none_matching(Duration::from_millis(50), |e| e["type"] == "im.read");
    }
    let view =
        server.client(Some(&t[0])).call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("get");
    assert_eq!(view["read_by"]["bob"], m2, "the marker did not move back");

    // Carol leaves: she gets no more read receipts and sees no markers.
    carol.ok(json!({"type": "im.leave", "conversation": conv}));
    let m3 = send(&mut alice, conv, "three")["id"].clone();
    bob.ok(json!({"type": "im.read", "conversation": conv, "upto": m3}));
    assert_eq!(alice.event("im.read")["upto"], m3);
    carol.ok(json!({"type": "ping"}));
    carol.none_matching(Duration::from_millis(50), |e| e["type"] == "im.read");
    let carols =
        server.client(Some(&t[2])).call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("get");
    assert_eq!(carols["read_by"], json!({}), "{carols}");
    let alices =
        server.client(Some(&t[0])).call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("get");
    assert_eq!(alices["read_by"], json!({"bob": m3}), "present participants still see them");
}

/// The send allowance is checked before a message id is reserved: sends refused as too fast
/// store nothing and use up no ids (with no one else writing, the next accepted message takes
/// the id after the last one, however many were refused in between), in 1:1 sends and room posts.
#[test]
fn refused_sends_reserve_no_message_id() {
    let server = TestServer::with_config("[im]\nmessages_per_sec = 2.0\nburst = 2\n");
    let t = users(&server, &["alice", "bob"]);
    let mut alice = Peer::connect(&server, &t[0], "a");
    let conv = start(&mut alice, &["bob"]);
    let room = server
        .client(Some(&t[0]))
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": "Lobby", "privacy": "open"})))
        .expect("room")["id"]
        .as_u64()
        .expect("room id");
    let first = send(&mut alice, conv, "one")["id"].as_u64().expect("id");
    let second = send(&mut alice, conv, "two")["id"].as_u64().expect("id");
    let refused = 10;
    for i in 0..refused {
        let frame = if i % 2 == 0 {
            json!({"type": "im.send", "conversation": conv, "text": format!("too fast {i}")})
        } else {
            json!({"type": "room.post", "room": room, "text": format!("too fast {i}")})
        };
        assert_eq!(alice.err(frame), "rate_limited");
    }
    // Wait for the allowance to refill; attempts refused meanwhile count as refusals too.
    let mut attempts = refused;
    let third = wait_until("the allowance to refill", 30, || {
        let v = alice.call(json!({"type": "im.send", "conversation": conv, "text": "three"}));
        attempts += 1;
        (v["type"] == "reply").then(|| v["result"]["message"]["id"].as_u64().expect("id"))
    });
    assert!(second > first);
    assert!(
        third - second < refused as u64,
        "{} sends were refused between ids {second} and {third}: a refused send reserved an id",
        attempts - 1
    );
    let msgs = server
        .client(Some(&t[0]))
        .call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None)
        .expect("page");
    let texts: Vec<&str> =
        msgs["messages"].as_array().expect("list").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"], "nothing refused was stored");
}

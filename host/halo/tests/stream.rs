//! The WebSocket stream through a real `halo serve`: auth, framing, bad input, closes.

mod common;

use std::time::Duration;

use common::{TestServer, read_close, read_json, request};
use serde_json::json;
use tungstenite::Message;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};

#[test]
fn connect_needs_a_valid_token() {
    let server = TestServer::start();
    assert_eq!(server.try_ws("", None, None).err(), Some(401));
    assert_eq!(server.try_ws("?token=halo_bogus", None, None).err(), Some(401));
    assert_eq!(server.try_ws("", Some(&server.local_token), None).err(), Some(403), "the CLI token has no account");
    let token = server.login("admin", common::ADMIN_PASSWORD);
    assert_eq!(server.try_ws(&format!("?token={token}&endpoint="), None, None).err(), Some(400), "empty endpoint name");
    let mut ws = server.try_ws(&format!("?token={token}&endpoint=browser"), None, None).expect("query token works");
    let hello = read_json(&mut ws);
    assert_eq!((hello["type"].as_str(), hello["endpoint"]["name"].as_str()), (Some("hello"), Some("browser")));
    assert_eq!(hello["max_frame_bytes"], 65536);
}

#[test]
fn requests_are_answered_by_id() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut laptop, hello) = server.ws(&token, "laptop");
    assert_eq!(hello["username"], "admin");
    let pong = request(&mut laptop, json!({"type": "ping", "id": "p1", "data": "hi"}));
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_str(), pong["result"]["data"].as_str()),
        (Some("reply"), Some("p1"), Some("hi"))
    );
    let me = request(&mut laptop, json!({"type": "whoami", "id": 2}));
    assert_eq!(me["id"], 2);
    assert_eq!(me["result"]["endpoint"]["name"], "laptop");
    assert_eq!(me["result"]["roles"], json!(["user", "admin"]));

    let (mut phone, _) = server.ws(&token, "phone");
    let eps = request(&mut phone, json!({"type": "endpoints", "id": 3}));
    let mut names: Vec<&str> =
        eps["result"]["endpoints"].as_array().expect("list").iter().filter_map(|e| e["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["laptop", "phone"]);
}

#[test]
fn msgpack_subprotocol_uses_binary_frames() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let mut ws = server.try_ws("", Some(&token), Some("halo.msgpack")).expect("ws");
    let Message::Binary(hello) = ws.read().expect("hello") else { panic!("binary hello expected") };
    let hello: serde_json::Value = rmp_serde::from_slice(&hello).expect("msgpack");
    assert_eq!(hello["type"], "hello");
    let req = rmp_serde::to_vec_named(&json!({"type": "ping", "id": 5})).expect("encode");
    ws.send(Message::Binary(req.into())).expect("send");
    let reply = loop {
        let Message::Binary(frame) = ws.read().expect("reply") else { panic!("binary frames expected") };
        let frame: serde_json::Value = rmp_serde::from_slice(&frame).expect("msgpack");
        if frame["type"] == "reply" {
            break frame;
        }
    };
    assert_eq!((reply["type"].as_str(), reply["id"].as_u64()), (Some("reply"), Some(5)));
    ws.send(Message::Text("{\"type\":\"ping\"}".into())).expect("send");
    let err = common::next_answer(&mut ws);
    assert_eq!((err["type"].as_str(), err["code"].as_str()), (Some("error"), Some("bad_frame")));
    ws.send(Message::Binary(vec![0xc1, 0x00].into())).expect("send");
    assert_eq!(common::next_answer(&mut ws)["code"], "bad_frame");
}

#[test]
fn bad_frames_get_typed_errors_and_the_socket_lives_on() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut ws, _) = server.ws(&token, "laptop");
    let cases = [
        ("{nope".to_owned(), "bad_frame", None),
        ("[1,2,3]".to_owned(), "bad_frame", None),
        (r#"{"id":"x1"}"#.to_owned(), "unknown_type", Some("x1")),
        (r#"{"type":"teleport","id":"x2"}"#.to_owned(), "unknown_type", Some("x2")),
        (r#"{"type":"ping","id":"x3","data":42}"#.to_owned(), "bad_request", Some("x3")),
        (format!(r#"{{"type":"ping","data":"{}"}}"#, "a".repeat(70_000)), "frame_too_large", None),
    ];
    for (frame, code, id) in cases {
        ws.send(Message::Text(frame.into())).expect("send");
        let err = common::next_answer(&mut ws);
        assert_eq!(
            (err["type"].as_str(), err["code"].as_str(), err["id"].as_str()),
            (Some("error"), Some(code), id),
            "{err}"
        );
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send(Message::Binary(b"{\"type\":\"ping\"}".to_vec().into())).expect("send");
    assert_eq!(common::next_answer(&mut ws)["code"], "bad_frame");
    let pong = request(&mut ws, json!({"type": "ping", "id": "after"}));
    assert_eq!(pong["id"], "after", "the socket still works");

    let (status, text) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    assert_eq!(status, 200);
    assert!(text.contains("halo_ws_frame_errors_total{code=\"unknown_type\"} 2"), "{text}");
}

#[test]
fn hostile_frames_close_only_their_socket() {
    let server = TestServer::start();
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut bystander, _) = server.ws(&token, "bystander");

    // The server may close (1009) while the client is still writing, so the client can see a
    // reset instead of the close frame: the server's close reasons are checked in its metrics.
    let (mut ws, _) = server.ws(&token, "huge");
    let _ = ws.send(Message::Text("x".repeat(2 << 20).into()));
    let _ = ws.read();

    let (mut ws, _) = server.ws(&token, "utf8");
    let frame = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    ws.send(Message::Frame(frame)).expect("send");
    assert_eq!(read_close(&mut ws).0, 1007);
    wait_for_metric(&server, &token, "halo_ws_closed_total{reason=\"message_too_big\"} 1");
    wait_for_metric(&server, &token, "halo_ws_closed_total{reason=\"invalid_utf8\"} 1");

    assert_eq!(request(&mut bystander, json!({"type": "ping", "id": 1}))["id"], 1);
    server.client(None).call_json("GET", "/healthz", None).expect("still serving");
}

#[test]
fn logout_and_disable_close_sockets() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let token = server.login("alice", "alice-password");
    let (mut ws, _) = server.ws(&token, "desk");
    let (mut ws2, _) = server.ws(&token, "desk2");
    server.client(Some(&token)).call("POST", "/api/v1/logout", None).expect("logout");
    assert_eq!(read_close(&mut ws), (4003, "session_ended".into()));
    assert_eq!(read_close(&mut ws2).0, 4003);

    let token = server.login("alice", "alice-password");
    let (mut ws, _) = server.ws(&token, "desk");
    drop(alice);
    server.admin().call_json("POST", "/api/v1/users/alice/disable", None).expect("disable");
    assert_eq!(read_close(&mut ws), (4004, "account_disabled".into()));
    assert_eq!(server.try_ws("", Some(&token), None).err(), Some(401));
}

#[test]
fn silent_endpoints_are_dropped() {
    let server = TestServer::with_config("[limits]\nheartbeat = \"500ms\"\n");
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut ws, hello) = server.ws(&token, "sleepy");
    assert_eq!(hello["heartbeat_ms"], 500);
    // Not reading means not answering pings: after two heartbeats and a second the server gives up.
    std::thread::sleep(Duration::from_millis(3000));
    wait_for_metric(&server, &token, "halo_ws_closed_total{reason=\"idle_timeout\"} 1");
    // Reading now finds the pings, then the close (or a reset when answering a ping).
    while let Ok(msg) = ws.read() {
        if let Message::Close(c) = msg {
            assert_eq!(c.map(|c| u16::from(c.code)), Some(4002));
            break;
        }
    }
}

#[test]
fn endpoints_per_user_are_capped() {
    let server = TestServer::with_config("[limits]\nmax_endpoints_per_user = 2\n");
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let _a = server.ws(&token, "a");
    let _b = server.ws(&token, "b");
    let mut c = server.try_ws("?endpoint=c", Some(&token), None).expect("handshake");
    assert_eq!(read_close(&mut c).0, 4005);
}

/// Waits (up to 10 s) until `/metrics` shows `line`.
fn wait_for_metric(server: &TestServer, admin_token: &str, line: &str) {
    let mut text = String::new();
    for _ in 0..200 {
        text = server.raw("GET", "/metrics", Some(admin_token), "text/plain", Vec::new()).1;
        if text.contains(line) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("metrics never showed {line:?}:\n{text}");
}

#[test]
fn slow_consumers_are_dropped_not_waited_for() {
    let server = TestServer::with_config("[limits]\nsend_queue = 4\n");
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (mut ws, _) = server.ws(&token, "greedy");
    // Ask for replies without ever reading them: once the socket's buffers and the queue are
    // full, the server drops this endpoint instead of buffering without bound.
    let ping = Message::Text(json!({"type": "ping", "data": "x".repeat(1000)}).to_string().into());
    for _ in 0..100_000 {
        if ws.send(ping.clone()).is_err() {
            break;
        }
    }
    wait_for_metric(&server, &token, "halo_ws_closed_total{reason=\"slow_consumer\"} 1");
    assert!(
        server
            .raw("GET", "/metrics", Some(&token), "text/plain", Vec::new())
            .1
            .contains("halo_ws_slow_consumers_total 1")
    );
}

#[test]
fn hello_comes_first_even_while_events_are_flowing() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"1ms\"\n");
    let alice = server.user("alice");
    let bob = server.user("bob");
    bob.call_json("POST", "/api/v1/contacts", Some(&json!({"username": "alice"}))).expect("contact");
    let bob_token = server.login("bob", "bob-password");
    // Alice's state changes as fast as the server takes it while bob connects again and again.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let states = ["busy", "available"];
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 20_000 {
                let body = json!({"state": states[i % 2]});
                let _ = alice.call("PUT", "/api/v1/me/presence/state", Some(&body));
                i += 1;
            }
        })
    };
    for n in 0..40 {
        let (mut ws, hello) = server.ws(&bob_token, &format!("try{n}"));
        assert_eq!(hello["type"], "hello");
        let _ = ws.close(None);
        // Read to the end of the close handshake, so this endpoint is gone before the next
        // connect (otherwise a slow server may still count more than the per-user cap).
        while ws.read().is_ok() {}
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().expect("flipper");
}

//! Halo-to-Halo groups: two real servers on loopback federating over signed HTTPS. A user of
//! the other server is added to a group conversation (a 1:1 escalated with a remote third
//! person) and to a closed room; posts cross both ways; a non-member's post to the room, and
//! a forged group item, are refused.

mod common;

use common::Peer;
use common::fed::{SECRET, now_ms, pair, sign, token};
use serde_json::{Value, json};

/// The next `kind` event whose message is from `from` (others are skipped).
fn message_from(peer: &mut Peer, kind: &str, from: &str) -> Value {
    for _ in 0..50 {
        let e = peer.event(kind);
        if e["message"]["from"] == from && e["message"]["kind"] == "text" {
            return e["message"].clone();
        }
    }
    panic!("no {kind} from {from}");
}

/// The next `im.conversation` event showing a participant `who`.
fn conversation_with(peer: &mut Peer, who: &str) -> Value {
    for _ in 0..50 {
        let e = peer.event("im.conversation");
        let c = &e["conversation"];
        if c["participants"]
            .as_array()
            .is_some_and(|p| p.iter().any(|u| u.as_str().is_some_and(|u| u.starts_with(who))))
        {
            return c.clone();
        }
    }
    panic!("no conversation with {who}");
}

#[test]
fn a_user_of_another_halo_server_takes_part_in_a_group_conversation_and_a_room() {
    let p = pair();
    let (ta, tc, tb) = (token(&p.a, "alice"), token(&p.a, "carol"), token(&p.b, "bob"));
    let mut alice = Peer::connect(&p.a, &ta, "alice-laptop");
    let mut carol = Peer::connect(&p.a, &tc, "carol-laptop");
    let mut bob = Peer::connect(&p.b, &tb, "bob-laptop");

    // A 1:1 of alice and carol, escalated with bob of b.test (this answered 404 "no user
    // named ..." before, and `bad_request` for a remote third person).
    let conv = alice.ok(json!({"type": "im.start", "participants": ["carol"]}))["conversation"]["id"].clone();
    let added = alice.ok(json!({"type": "im.add", "conversation": conv, "user": "bob@b.test"}));
    assert_eq!(added["conversation"]["kind"], "group");
    let group = format!("#c{conv}@a.test");
    // bob's server shows him the group, as a conversation with it.
    let mirror = conversation_with(&mut bob, "#c");
    assert!(mirror["participants"].as_array().is_some_and(|p| p.contains(&json!(group))), "{mirror}");
    assert_eq!(mirror["kind"], "group");

    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "welcome, bob <&>"}));
    let got = message_from(&mut bob, "im.message", "alice@a.test");
    assert_eq!(got["text"], "welcome, bob <&>");
    assert_eq!(got["conversation"], mirror["id"]);
    // Bob's reply lands in the group on a.test, for alice and carol both.
    bob.ok(json!({"type": "im.send", "conversation": mirror["id"], "text": "thanks, from b.test"}));
    let back = message_from(&mut alice, "im.message", "bob@b.test");
    assert_eq!((back["conversation"].clone(), back["text"].clone()), (conv.clone(), json!("thanks, from b.test")));
    assert_eq!(message_from(&mut carol, "im.message", "bob@b.test")["text"], "thanks, from b.test");
    // carol's post reaches bob as carol's (relayed by the host), not alice's.
    carol.ok(json!({"type": "im.send", "conversation": conv, "text": "hi bob, carol here"}));
    assert_eq!(message_from(&mut bob, "im.message", "carol@a.test")["text"], "hi bob, carol here");
    // Adding people to the group is the host's business.
    p.b.user("dave");
    assert_eq!(bob.err(json!({"type": "im.add", "conversation": mirror["id"], "user": "dave"})), "bad_request");

    // A closed room on a.test with bob as a member.
    let ca = p.a.client(Some(&ta));
    let room = ca
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": "Design", "topic": "colours", "privacy": "closed"})))
        .expect("room");
    let rid = room["id"].clone();
    ca.call_json("PUT", &format!("/api/v1/rooms/{rid}/members/carol"), Some(&json!({}))).expect("carol");
    let set = ca.call_json("PUT", &format!("/api/v1/rooms/{rid}/members/bob@b.test"), Some(&json!({}))).expect("bob");
    assert!(set["members"].as_array().is_some_and(|m| m.iter().any(|m| m["username"] == "bob@b.test")), "{set}");
    let room_mirror = conversation_with(&mut bob, &format!("#r{rid}@"));
    alice.ok(json!({"type": "room.post", "room": rid, "text": "room post for everyone"}));
    let got = message_from(&mut bob, "im.message", "alice@a.test");
    assert_eq!(
        (got["conversation"].clone(), got["text"].clone()),
        (room_mirror["id"].clone(), json!("room post for everyone"))
    );
    bob.ok(json!({"type": "im.send", "conversation": room_mirror["id"], "text": "bob posts to the room"}));
    let back = message_from(&mut carol, "room.message", "bob@b.test");
    assert_eq!(back["room"], rid);
    assert_eq!(back["text"], "bob posts to the room");
    let history = ca.call_json("GET", &format!("/api/v1/rooms/{rid}/messages"), None).expect("history");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["room post for everyone", "bob posts to the room"]);

    // bob leaves the room's conversation: he leaves the room on a.test.
    bob.ok(json!({"type": "im.leave", "conversation": room_mirror["id"]}));
    common::wait_until("bob left the room on a.test", 20, || {
        let r = ca.call_json("GET", &format!("/api/v1/rooms/{rid}"), None).ok()?;
        r["members"].as_array()?.iter().all(|m| m["username"] != "bob@b.test").then_some(())
    });
}

#[test]
fn a_closed_room_refuses_posts_and_joins_of_remote_non_members() {
    let p = pair();
    let ta = token(&p.a, "alice");
    let ca = p.a.client(Some(&ta));
    let room =
        ca.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "Board", "privacy": "closed"}))).expect("room");
    let rid = room["id"].as_u64().expect("id");
    let open = ca.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "Lobby", "privacy": "open"}))).expect("room");
    let oid = open["id"].as_u64().expect("id");

    // Straight at a's federation listener, signed by b.test.
    let agent = p.certs.agent();
    let inbox = format!("https://127.0.0.1:{}/federation/v1/inbox", p.a_port);
    let post = |items: Value| {
        let body = json!({"items": items}).to_string();
        let ts = now_ms();
        let mut r = agent
            .post(&inbox)
            .header("halo-origin", "b.test")
            .header("halo-timestamp", &ts.to_string())
            .header("halo-signature", &sign(SECRET, "b.test", ts, body.as_bytes()))
            .send(body.as_bytes())
            .expect("request");
        assert_eq!(r.status().as_u16(), 200);
        serde_json::from_str::<Value>(&r.body_mut().read_to_string().unwrap_or_default()).expect("receipt")
    };
    let group = format!("#r{rid}@a.test");
    let receipt = post(json!([
        {"type": "group_post", "from": "mallory", "to": group, "text": "let me in", "id": "m1"},
        {"type": "group_join", "from": "mallory", "to": group},
        // A user posing as a group, and a group of another server.
        {"type": "group_message", "from": "mallory", "to": "alice@a.test", "author": "mallory", "text": "x", "id": "m2"},
        {"type": "group_message", "from": "#c1@c.test", "to": "alice@a.test", "author": "mallory", "text": "x", "id": "m3"},
        {"type": "group_post", "from": "mallory", "to": "#r999@a.test", "text": "nowhere", "id": "m4"},
    ]));
    assert_eq!(receipt["accepted"], 0, "{receipt}");
    let refused = receipt["refused"].as_array().expect("refused");
    assert_eq!(refused.len(), 5, "{receipt}");
    assert!(refused[0].as_str().is_some_and(|r| r.contains("#r")), "{receipt}");
    let history = ca.call_json("GET", &format!("/api/v1/rooms/{rid}/messages"), None).expect("history");
    assert!(history["messages"].as_array().expect("messages").iter().all(|m| m["text"] != "let me in"), "{history}");
    let members = ca.call_json("GET", &format!("/api/v1/rooms/{rid}"), None).expect("room");
    assert_eq!(members["members"].as_array().map(Vec::len), Some(1), "{members}");

    // An open room takes anyone who joins; then their posts count.
    let lobby = format!("#r{oid}@a.test");
    let receipt = post(json!([
        {"type": "group_join", "from": "mallory", "to": lobby},
        {"type": "group_post", "from": "mallory", "to": lobby, "text": "hello lobby", "id": "m5"},
    ]));
    assert_eq!(receipt["accepted"], 2, "{receipt}");
    let history = ca.call_json("GET", &format!("/api/v1/rooms/{oid}/messages"), None).expect("history");
    assert!(
        history["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .any(|m| m["text"] == "hello lobby" && m["from"] == "mallory@b.test"),
        "{history}"
    );
}

#[test]
fn escalating_a_one_to_one_with_a_remote_user_makes_a_group_they_take_part_in() {
    let p = pair();
    let (ta, tc, tb) = (token(&p.a, "alice"), token(&p.a, "carol"), token(&p.b, "bob"));
    let mut alice = Peer::connect(&p.a, &ta, "alice-laptop");
    let mut carol = Peer::connect(&p.a, &tc, "carol-laptop");
    let mut bob = Peer::connect(&p.b, &tb, "bob-laptop");

    // A 1:1 across servers, then carol joins it: bob's server shows him the group.
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@b.test"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "just us"}));
    assert_eq!(message_from(&mut bob, "im.message", "alice@a.test")["text"], "just us");
    alice.ok(json!({"type": "im.add", "conversation": conv, "user": "carol"}));
    let mirror = conversation_with(&mut bob, &format!("#c{conv}@"));
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "carol is here too"}));
    let got = message_from(&mut bob, "im.message", "alice@a.test");
    assert_eq!((got["conversation"].clone(), got["text"].clone()), (mirror["id"].clone(), json!("carol is here too")));
    bob.ok(json!({"type": "im.send", "conversation": mirror["id"], "text": "hello carol"}));
    let back = message_from(&mut carol, "im.message", "bob@b.test");
    assert_eq!((back["conversation"].clone(), back["text"].clone()), (conv.clone(), json!("hello carol")));
    assert_eq!(message_from(&mut alice, "im.message", "bob@b.test")["text"], "hello carol");
}

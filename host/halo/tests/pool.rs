//! Several `halo serve` nodes as one pool, through the real binaries: three `nats-server`
//! processes in a JetStream cluster and three `halo serve --cluster` nodes on loopback. Users
//! on different nodes talk, see each other's presence, share rooms; a node killed with `kill -9`
//! loses no acknowledged message; a NATS server killed does not stop the pool; everything
//! stopped and started again keeps its state.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::nats::{Pool, create, login};
use common::{Peer, wait_presence, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const CONFIG: &str = r#"
[presence]
offline_grace = "200ms"
coalesce = "10ms"
"#;

fn add_contact(c: &Client, who: &str, level: &str) {
    c.call_json("POST", "/api/v1/contacts", Some(&json!({"username": who, "level": level}))).expect("add contact");
}

fn state_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["state"] == s
}

/// The texts of a conversation's history, oldest first, read through `c`.
fn history(c: &Client, conv: u64) -> Vec<String> {
    let mut texts = Vec::new();
    let mut after = 0u64;
    loop {
        let path = format!("/api/v1/conversations/{conv}/messages?after={after}&limit=200");
        let page = c.call_json("GET", &path, None).expect("history");
        let list = page["messages"].as_array().cloned().unwrap_or_default();
        let Some(last) = list.last().and_then(|m| m["id"].as_u64()) else { return texts };
        texts.extend(list.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)));
        after = last;
    }
}

/// Waits until `c` reads `want` as the conversation's texts.
fn wait_history(c: &Client, conv: u64, want: &[&str]) {
    wait_until("the history", 60, || (history(c, conv) == want).then_some(()));
}

#[test]
fn users_on_three_nodes_talk_share_rooms_and_see_presence() {
    let pool = Pool::start(CONFIG);
    let [n1, n2, n3] = [&pool.nodes[0], &pool.nodes[1], &pool.nodes[2]];
    for name in ["alice", "bob", "carol", "dave"] {
        create(n1, name);
    }
    let (alice_token, alice_rest) = login(n1, "alice");
    let (bob_token, bob_rest) = login(n2, "bob");
    let (carol_token, carol_rest) = login(n3, "carol");
    add_contact(&alice_rest, "bob", "workgroup");
    add_contact(&bob_rest, "alice", "colleagues");
    add_contact(&carol_rest, "alice", "colleagues");
    add_contact(&alice_rest, "carol", "external");

    // bob's devices and carol first, so alice's coming online is a change they hear of.
    let mut bob_desk = Peer::connect(n2, &bob_token, "desk");
    let mut bob_phone = Peer::connect(n3, &bob_token, "phone");
    let mut carol = Peer::connect(n3, &carol_token, "laptop");
    for i in 0..3 {
        pool.wait_users(i, &[("node2", 1), ("node3", 2)]);
    }
    let mut alice = Peer::connect(n1, &alice_token, "desk");
    for i in 0..3 {
        pool.wait_users(i, &[("node1", 1)]);
    }

    // Presence: bob's devices on nodes 2 and 3 see alice (node 1) come online and change.
    wait_presence(&mut bob_desk, "alice", state_is("available"));
    wait_presence(&mut bob_phone, "alice", state_is("available"));
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    wait_presence(&mut bob_desk, "alice", state_is("busy"));
    wait_presence(&mut bob_phone, "alice", state_is("busy"));
    // Access levels hold across nodes: bob (Workgroup to alice) sees her note, carol
    // (External) does not.
    alice_rest.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "Quarter close"}))).expect("note");
    let seen = wait_presence(&mut bob_phone, "alice", |p| p["note"] == "Quarter close");
    assert_eq!(seen["state"], "busy");
    let ext = carol_rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("view");
    assert!(ext.get("note").is_none(), "External sees no note: {ext}");
    assert_eq!(ext["state"], "busy");
    let seen_by_carol = wait_presence(&mut carol, "alice", state_is("busy"));
    assert!(seen_by_carol.get("note").is_none(), "nor in events: {seen_by_carol}");

    // IM both ways: alice (node 1) to bob (nodes 2 and 3), bob's phone back.
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob"]}))["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "hello across nodes"}));
    for peer in [&mut bob_desk, &mut bob_phone] {
        let m = peer.event("im.message");
        assert_eq!(m["message"]["text"], "hello across nodes", "{m}");
    }
    let d = alice.event("im.delivered");
    assert_eq!(d["user"], "bob");
    bob_phone.ok(json!({"type": "im.send", "conversation": conv, "text": "hi from the phone"}));
    assert_eq!(alice.event("im.message")["message"]["text"], "hi from the phone");
    assert_eq!(bob_desk.event("im.message")["message"]["text"], "hi from the phone", "the sender's other device");
    wait_history(&bob_rest, conv, &["hello across nodes", "hi from the phone"]);
    wait_history(&alice_rest, conv, &["hello across nodes", "hi from the phone"]);

    // A group conversation: carol (node 3) joins.
    alice.ok(json!({"type": "im.add", "conversation": conv, "user": "carol"}));
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "welcome carol"}));
    let welcome = (0..5).map(|_| carol.event("im.message")).find(|m| m["message"]["text"] == "welcome carol");
    assert!(welcome.is_some(), "carol, on node 3, gets the group's message");

    // A room: created on node 1, joined on node 2, a post from node 3 reaches everyone.
    let room = alice_rest
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": "finance", "privacy": "open"})))
        .expect("room")["id"]
        .as_u64()
        .expect("room id");
    // Another node knows the room once its reader of the IM log folded it (normally within a
    // millisecond; later on a loaded machine): join once it is there.
    for (who, rest) in [("bob", &bob_rest), ("carol", &carol_rest)] {
        wait_until(&format!("{who} able to join the room"), 30, || {
            rest.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).ok()
        });
    }
    carol_rest
        .call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "budget is in"})))
        .expect("post");
    for peer in [&mut alice, &mut bob_desk, &mut bob_phone] {
        // After the joins (room messages of their own kind), the post.
        let post = (0..5).map(|_| peer.event("room.message")).find(|m| m["message"]["kind"] == "text");
        assert_eq!(post.map(|m| m["message"]["text"].clone()), Some(json!("budget is in")));
    }

    // Offline delivery: dave has never connected; alice's message waits for him on node 2.
    let dave_conv =
        alice.ok(json!({"type": "im.start", "participants": ["dave"]}))["conversation"]["id"].as_u64().expect("id");
    alice.ok(json!({"type": "im.send", "conversation": dave_conv, "text": "read this when you are in"}));
    let (dave_token, _) = login(n2, "dave");
    let mut dave = Peer::connect(n2, &dave_token, "desk");
    let m = dave.event("im.message");
    assert_eq!(
        (m["message"]["text"].as_str(), m["offline"].as_bool()),
        (Some("read this when you are in"), Some(true))
    );

    // alice goes offline: bob sees it on both nodes.
    drop(alice);
    wait_presence(&mut bob_desk, "alice", state_is("offline"));
    wait_presence(&mut bob_phone, "alice", state_is("offline"));

    // Ending sessions reaches every node: bob changes his password through a new session on
    // node 1; his other sessions end, and his sockets on nodes 2 and 3 are closed.
    let (_, bob_elsewhere) = login(n1, "bob");
    let change = json!({"current_password": "bob-password", "new_password": "bob-password-2"});
    bob_elsewhere.call("PUT", "/api/v1/me/password", Some(&change)).expect("change");
    for peer in [&mut bob_desk, &mut bob_phone] {
        let (code, _) = common::read_close(&mut peer.ws);
        assert_eq!(code, 4003, "session ended");
    }
}

#[test]
fn a_node_killed_under_load_loses_no_acknowledged_message() {
    let mut pool = Pool::start(CONFIG);
    for name in ["alice", "bob"] {
        create(&pool.nodes[0], name);
    }
    let (alice_token, _) = login(&pool.nodes[0], "alice");
    let (bob_token, _) = login(&pool.nodes[1], "bob");
    let mut alice = Peer::connect(&pool.nodes[0], &alice_token, "desk");
    let _bob = Peer::connect(&pool.nodes[1], &bob_token, "desk");
    let conv =
        alice.ok(json!({"type": "im.start", "participants": ["bob"]}))["conversation"]["id"].as_u64().expect("id");

    // bob sends from node 2 in a thread; node 2 is killed while he does; he reconnects to
    // node 3 and goes on, resending what was not acknowledged with the same key.
    let urls: Vec<String> = pool.nodes.iter().map(|n| n.url.clone()).collect();
    let sender = std::thread::spawn(move || {
        let mut acked: BTreeMap<u32, u64> = BTreeMap::new();
        let mut node = 1;
        let mut i = 0u32;
        while i < 200 {
            let client = Client::new(&urls[node], Some(bob_token.clone()), None).expect("client");
            let body = json!({"text": format!("m{i}"), "key": format!("k{i}")});
            match client.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&body)) {
                Ok(m) => {
                    acked.insert(i, m["id"].as_u64().unwrap_or_default());
                    i += 1;
                }
                // Node 2 is gone (or dying): the client moves to node 3 and retries the same key.
                Err(_) => node = 2,
            }
        }
        acked
    });
    wait_until("some messages", 60, || {
        let n = history(&pool.nodes[0].client(Some(&alice_token)), conv).len();
        (n >= 20).then_some(())
    });
    pool.nodes[1].kill();
    let acked = sender.join().expect("sender");
    assert_eq!(acked.len(), 200);
    // Every acknowledged message is there exactly once, on every live node.
    for i in [0, 2] {
        let texts = history(&pool.nodes[i].client(Some(&alice_token)), conv);
        for n in 0..200 {
            let want = format!("m{n}");
            assert_eq!(texts.iter().filter(|t| **t == want).count(), 1, "{want} on node {}: {texts:?}", i + 1);
        }
    }
    // The dead node's presence groups moved: alice still gets bob's presence through node 3.
    let (bob_token, _) = login(&pool.nodes[2], "bob");
    wait_until("groups to move", 60, || {
        let s = pool.status(0);
        let groups = s["groups"].as_array()?;
        groups.iter().all(|g| g.is_string() && g != "node2").then_some(())
    });
    // alice's first socket took the whole load unread; a fresh one for what follows.
    drop(alice);
    let mut alice = Peer::connect(&pool.nodes[0], &alice_token, "laptop");
    add_contact(&pool.nodes[0].client(Some(&alice_token)), "bob", "colleagues");
    let mut bob3 = Peer::connect(&pool.nodes[2], &bob_token, "phone");
    wait_presence(&mut alice, "bob", state_is("available"));
    bob3.ok(json!({"type": "presence.set", "state": "busy"}));
    wait_presence(&mut alice, "bob", state_is("busy"));
}

#[test]
fn a_killed_nats_server_does_not_stop_the_pool_and_state_survives_a_full_restart() {
    let mut pool = Pool::start(CONFIG);
    create(&pool.nodes[0], "alice");
    create(&pool.nodes[0], "bob");
    let (alice_token, alice_rest) = login(&pool.nodes[0], "alice");
    let conv = alice_rest
        .call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]})))
        .expect("start")["id"]
        .as_u64()
        .expect("id");
    // `replicas` left to the cluster: every stream and bucket of the pool is R3 on the three
    // servers (not fewer, as counting the servers announced at connect time could give).
    let replicas = pool.nats.stream_replicas();
    assert!(replicas.keys().any(|s| s == "HALO_halo_IM"), "{replicas:?}");
    assert!(replicas.values().all(|n| *n == 3), "{replicas:?}");
    pool.nats.kill(2);
    // While JetStream elects new leaders for what the dead server led (a few seconds), writes
    // are refused with 503 storage_unavailable; the client retries with the same key.
    for n in 0..10 {
        let body = json!({"text": format!("x{n}"), "key": format!("x{n}")});
        let path = format!("/api/v1/conversations/{conv}/messages");
        wait_until("the pool to serve with one NATS server down", 60, || {
            alice_rest.call_json("POST", &path, Some(&body)).ok()
        });
    }
    let (bob_token, bob_rest) = login(&pool.nodes[1], "bob");
    let want: Vec<String> = (0..10).map(|n| format!("x{n}")).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    wait_history(&bob_rest, conv, &want);
    pool.nats.restart(2);

    // Stop everything, start everything: the state is intact.
    for node in &mut pool.nodes {
        node.stop();
    }
    pool.nats.stop_all();
    pool.nats.start_all();
    for node in &mut pool.nodes {
        node.restart();
    }
    pool.wait_formed();
    let alice_rest = pool.nodes[2].client(Some(&alice_token));
    let texts = history(&alice_rest, conv);
    assert_eq!(texts, (0..10).map(|n| format!("x{n}")).collect::<Vec<_>>());
    let bob_rest2 = pool.nodes[0].client(Some(&bob_token));
    assert_eq!(history(&bob_rest2, conv).len(), 10, "sessions survive too");
    let _ = bob_rest;
    let mut alice = Peer::connect(&pool.nodes[1], &alice_token, "desk");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "after the restart"}));
    assert!(wait_secs(30, || history(&pool.nodes[0].client(Some(&alice_token)), conv).len() == 11));
}

fn wait_secs(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

const FOCUS: &str = r##"states=[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##;

#[test]
fn a_plugin_installed_through_one_node_runs_on_every_node() {
    let pool = Pool::start(CONFIG);
    let plugin = common::rust_plugin("custom_states");
    let cli = |args: &[&str]| common::ok(common::run(common::plugin_cli(&pool.nodes[0], args)));
    cli(&["install", plugin.to_str().expect("path")]);
    cli(&["config", "custom-states", FOCUS]);
    // Node 3 lists the state and lets a user pick it.
    wait_until("node 3 to load the plugin", 60, || common::listed_state(&pool.nodes[2], "focusing"));
    create(&pool.nodes[0], "erin");
    let (token, _) = login(&pool.nodes[2], "erin");
    let mut erin = Peer::connect(&pool.nodes[2], &token, "desk");
    let own = erin.ok(json!({"type": "presence.set", "state": "focusing"}))["presence"].clone();
    assert_eq!(own["custom_state"], "focusing", "{own}");
    // Disabled through node 2: gone on node 3 too.
    common::ok(common::run(common::plugin_cli(&pool.nodes[1], &["disable", "custom-states"])));
    wait_until("node 3 to drop the state", 60, || {
        common::listed_state(&pool.nodes[2], "focusing").is_none().then_some(())
    });
}

//! Persistent chat rooms through a real `halo serve`: privacy modes, roles, posts, unread,
//! following and search.

mod common;

use std::time::Duration;

use common::{Peer, TestServer, api_error, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

fn setup(server: &TestServer, names: &[&str]) -> Vec<Client> {
    names.iter().map(|n| server.user(n)).collect()
}

fn create(c: &Client, name: &str, privacy: &str) -> u64 {
    let room = c
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": name, "topic": "t", "privacy": privacy})))
        .expect("create");
    assert_eq!(room["my_role"], "manager");
    room["id"].as_u64().expect("id")
}

fn names(v: &Value) -> Vec<String> {
    v["rooms"].as_array().expect("rooms").iter().map(|r| r["name"].as_str().unwrap_or("").to_owned()).collect()
}

#[test]
fn privacy_modes_decide_who_finds_reads_and_joins() {
    let server = TestServer::start();
    let c = setup(&server, &["alice", "bob"]);
    let (alice, bob) = (&c[0], &c[1]);
    let open = create(alice, "Open Plaza", "open");
    let closed = create(alice, "Closed Club", "closed");
    let secret = create(alice, "Secret Lab", "secret");
    alice
        .call_json("POST", &format!("/api/v1/rooms/{open}/messages"), Some(&json!({"text": "welcome all"})))
        .expect("post");
    alice
        .call_json("POST", &format!("/api/v1/rooms/{closed}/messages"), Some(&json!({"text": "members only"})))
        .expect("post");

    assert_eq!(
        names(&bob.call_json("GET", "/api/v1/rooms", None).expect("list")),
        ["Closed Club", "Open Plaza"],
        "secret rooms stay hidden"
    );
    assert_eq!(names(&bob.call_json("GET", "/api/v1/rooms?q=plaza", None).expect("search")), ["Open Plaza"]);
    assert_eq!(api_error(bob.call("GET", &format!("/api/v1/rooms/{secret}"), None).expect_err("secret")).0, 404);
    let closed_view = bob.call_json("GET", &format!("/api/v1/rooms/{closed}"), None).expect("closed is visible");
    assert!(closed_view.get("members").is_none(), "but not its members");

    let page = bob.call_json("GET", &format!("/api/v1/rooms/{open}/messages"), None).expect("open rooms are readable");
    assert_eq!(page["messages"][0]["text"], "welcome all");
    assert_eq!(
        api_error(bob.call("GET", &format!("/api/v1/rooms/{closed}/messages"), None).expect_err("closed")).0,
        403
    );
    let post = json!({"text": "hi"});
    assert_eq!(
        api_error(bob.call("POST", &format!("/api/v1/rooms/{open}/messages"), Some(&post)).expect_err("not a member"))
            .0,
        403
    );

    bob.call_json("POST", &format!("/api/v1/rooms/{open}/join"), None).expect("join open");
    bob.call_json("POST", &format!("/api/v1/rooms/{open}/messages"), Some(&post)).expect("members post");
    assert_eq!(api_error(bob.call("POST", &format!("/api/v1/rooms/{closed}/join"), None).expect_err("closed")).0, 403);
    assert_eq!(api_error(bob.call("POST", &format!("/api/v1/rooms/{secret}/join"), None).expect_err("secret")).0, 404);

    alice.call_json("PUT", &format!("/api/v1/rooms/{secret}/members/bob"), Some(&json!({}))).expect("invite");
    let lab = bob.call_json("GET", &format!("/api/v1/rooms/{secret}"), None).expect("now visible");
    assert_eq!(lab["my_role"], "member");
    assert_eq!(
        names(&bob.call_json("GET", "/api/v1/rooms?mine=true", None).expect("mine")),
        ["Open Plaza", "Secret Lab"]
    );
    let dup = json!({"name": "open plaza"});
    assert_eq!(api_error(bob.call("POST", "/api/v1/rooms", Some(&dup)).expect_err("names are unique")).0, 409);
}

#[test]
fn roles_decide_who_manages() {
    let server = TestServer::start();
    let c = setup(&server, &["alice", "bob", "carol"]);
    let (alice, bob) = (&c[0], &c[1]);
    let room = create(alice, "Ops", "closed");
    alice
        .call_json("PUT", &format!("/api/v1/rooms/{room}/members/bob"), Some(&json!({"role": "member"})))
        .expect("add bob");
    let change = json!({"topic": "incident 42"});
    assert_eq!(
        api_error(bob.call("PATCH", &format!("/api/v1/rooms/{room}"), Some(&change)).expect_err("member")).0,
        403
    );
    assert_eq!(
        api_error(
            bob.call("PUT", &format!("/api/v1/rooms/{room}/members/carol"), Some(&json!({}))).expect_err("member")
        )
        .0,
        403
    );
    assert_eq!(
        alice.call_json("PATCH", &format!("/api/v1/rooms/{room}"), Some(&change)).expect("manager")["topic"],
        "incident 42"
    );
    assert_eq!(
        api_error(alice.call("POST", &format!("/api/v1/rooms/{room}/leave"), None).expect_err("last manager")).0,
        409
    );
    alice
        .call_json("PUT", &format!("/api/v1/rooms/{room}/members/bob"), Some(&json!({"role": "manager"})))
        .expect("promote");
    bob.call("DELETE", &format!("/api/v1/rooms/{room}/members/alice"), None).expect("a manager removes");
    assert_eq!(
        api_error(alice.call("GET", &format!("/api/v1/rooms/{room}/messages"), None).expect_err("removed")).0,
        403
    );
    let bad = json!({"name": ""});
    assert_eq!(
        api_error(bob.call("PATCH", &format!("/api/v1/rooms/{room}"), Some(&bad)).expect_err("empty name")).0,
        400
    );
    assert_eq!(
        api_error(
            bob.call("PUT", &format!("/api/v1/rooms/{room}/members/nobody"), Some(&json!({}))).expect_err("unknown")
        )
        .0,
        404
    );
}

#[test]
fn a_refused_post_without_a_body_leaves_the_connection_usable() {
    // The client sends `POST …/leave` without a body; the server answers 409 without reading
    // one. Had the request carried an (empty, chunked) body the server never read, the server
    // would close the connection after answering, and the next call on the same keep-alive
    // connection could fail with "Peer disconnected" (1 in 15 here, under load).
    let server = TestServer::start();
    let c = setup(&server, &["alice", "bob"]);
    let alice = &c[0];
    let room = create(alice, "Ops", "closed");
    for role in ["member", "manager"].iter().cycle().take(200) {
        let refused = alice.call("POST", &format!("/api/v1/rooms/{room}/leave"), None).expect_err("last manager");
        assert_eq!(api_error(refused).0, 409);
        alice
            .call_json("PUT", &format!("/api/v1/rooms/{room}/members/bob"), Some(&json!({"role": role})))
            .expect("the next call on the same connection");
        alice
            .call_json("PUT", &format!("/api/v1/rooms/{room}/members/bob"), Some(&json!({"role": "member"})))
            .expect("bob a member again");
    }
}

#[test]
fn posts_persist_page_count_unread_and_reach_followers() {
    let server = TestServer::with_config("[im]\nmessages_per_sec = 1000.0\nburst = 1000.0\n");
    let c = setup(&server, &["alice", "bob"]);
    let (alice, bob) = (&c[0], &c[1]);
    let room = create(alice, "Design", "open");
    bob.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");
    let bob_token = server.login("bob", "bob-password");
    let mut bob_ws = Peer::connect(&server, &bob_token, "desk");
    let alice_token = server.login("alice", "alice-password");
    let mut alice_ws = Peer::connect(&server, &alice_token, "laptop");

    let posted =
        alice_ws.ok(json!({"type": "room.post", "room": room, "text": "new palette", "key": "p1"}))["message"].clone();
    assert_eq!(posted["room"], room);
    assert_eq!(bob_ws.event("room.message")["message"], posted);
    assert_eq!(
        alice_ws.ok(json!({"type": "room.post", "room": room, "text": "new palette", "key": "p1"}))["message"],
        posted,
        "idempotent"
    );
    for i in 0..12 {
        alice
            .call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": format!("p{i}")})))
            .expect("post");
    }
    let view = bob.call_json("GET", &format!("/api/v1/rooms/{room}"), None).expect("view");
    assert_eq!(view["unread"], 13);
    let last = bob.call_json("GET", &format!("/api/v1/rooms/{room}/messages?limit=5"), None).expect("page");
    let msgs = last["messages"].as_array().expect("list");
    assert_eq!(msgs.len(), 5);
    assert_eq!(msgs[4]["text"], "p11");
    let upto = msgs[4]["id"].clone();
    assert_eq!(
        bob.call_json("PUT", &format!("/api/v1/rooms/{room}/read"), Some(&json!({"upto": upto}))).expect("read")["unread"],
        0
    );
    assert_eq!(
        alice.call_json("GET", &format!("/api/v1/rooms/{room}"), None).expect("view")["unread"],
        0,
        "own posts are read"
    );

    for i in 0..12 {
        assert_eq!(bob_ws.event("room.message")["message"]["text"], format!("p{i}"), "followers get every post");
    }
    bob.call_json("PUT", &format!("/api/v1/rooms/{room}/follow"), Some(&json!({"follow": false}))).expect("unfollow");
    alice.call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "quiet"}))).expect("post");
    bob_ws.no_event("room.message", Duration::from_millis(300));
    assert_eq!(
        bob.call_json("GET", &format!("/api/v1/rooms/{room}"), None).expect("view")["unread"],
        1,
        "still counted"
    );

    let found = wait_until("the post indexed", 30, || {
        let found =
            bob.call_json("GET", &format!("/api/v1/search?q=palette&room={room}"), None).expect("search")["messages"]
                .clone();
        found.as_array().is_some_and(|a| !a.is_empty()).then_some(found)
    });
    assert_eq!(found[0]["text"], "new palette");
    let outsider = server.user("carol");
    let closed = create(alice, "Board", "closed");
    alice
        .call_json("POST", &format!("/api/v1/rooms/{closed}/messages"), Some(&json!({"text": "palette budget"})))
        .expect("post");
    // Once a member finds it, the index has it: an outsider still does not.
    wait_until("the post indexed", 30, || {
        let hits = alice.call_json("GET", "/api/v1/search?q=budget", None).expect("search");
        hits["messages"].as_array().is_some_and(|m| !m.is_empty()).then_some(())
    });
    let hits = outsider.call_json("GET", "/api/v1/search?q=budget", None).expect("search");
    assert_eq!(hits["messages"], json!([]), "closed rooms are not searchable by outsiders");
    assert_eq!(bob_ws.err(json!({"type": "room.post", "room": closed, "text": "let me in"})), "forbidden");
    assert_eq!(bob_ws.err(json!({"type": "room.post", "room": 424242, "text": "?"})), "not_found");
}

#[test]
fn rooms_survive_a_restart() {
    let mut server = TestServer::start();
    let c = setup(&server, &["alice"]);
    let room = create(&c[0], "Archive", "secret");
    c[0].call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "kept"}))).expect("post");
    server.crash_and_restart();
    let alice = server.client(Some(&server.login("alice", "alice-password")));
    let page = alice.call_json("GET", &format!("/api/v1/rooms/{room}/messages"), None).expect("page");
    assert_eq!(page["messages"][0]["text"], "kept");
}

#[test]
fn posts_are_rate_limited_per_user_sharing_the_im_allowance() {
    // A burst of 3 and a slow refill: a fourth message within the test never fits.
    let server = TestServer::with_config("[im]\nmessages_per_sec = 0.01\nburst = 3\n");
    let c = setup(&server, &["alice", "bob"]);
    let (alice, bob) = (&c[0], &c[1]);
    let room = create(alice, "Busy", "open");
    bob.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");
    let path = format!("/api/v1/rooms/{room}/messages");
    let first = alice.call_json("POST", &path, Some(&json!({"text": "one", "key": "k1"}))).expect("post 1");
    alice.call_json("POST", &path, Some(&json!({"text": "two"}))).expect("post 2");
    // An IM draws on the same allowance.
    let mut alice_ws = Peer::connect(&server, &server.login("alice", "alice-password"), "a");
    let conv = alice_ws.ok(json!({"type": "im.start", "participants": ["bob"]}))["conversation"]["id"].clone();
    alice_ws.ok(json!({"type": "im.send", "conversation": conv, "text": "three"}));

    let refused = alice.call("POST", &path, Some(&json!({"text": "four"}))).expect_err("too fast");
    assert_eq!(api_error(refused), (429, "rate_limited".to_owned()));
    assert_eq!(alice_ws.err(json!({"type": "room.post", "room": room, "text": "four"})), "rate_limited");
    assert_eq!(alice_ws.err(json!({"type": "im.send", "conversation": conv, "text": "four"})), "rate_limited");
    assert_eq!(
        alice.call_json("POST", &path, Some(&json!({"text": "one", "key": "k1"}))).expect("a retry is no new post"),
        first
    );
    assert!(alice_ws.ok(json!({"type": "ping"}))["server_time"].is_u64(), "the socket lives on");
    bob.call_json("POST", &path, Some(&json!({"text": "bob's own allowance"}))).expect("others may post");

    let page = bob.call_json("GET", &path, None).expect("page");
    let texts: Vec<&str> =
        page["messages"].as_array().expect("list").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["one", "two", "bob's own allowance"], "refused posts are not stored");
}

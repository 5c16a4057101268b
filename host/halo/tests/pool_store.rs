//! The pool's durable state on NATS JetStream, through the real binaries: three `nats-server`
//! processes in a JetStream cluster and `halo serve --cluster` nodes on loopback.

mod common;

use common::nats::{NatsCluster, halo_node};
use common::{fails, halo, run, wait_until};
use serde_json::json;

#[test]
fn a_node_joins_a_jetstream_cluster_and_serves() {
    let nats = NatsCluster::start(3);
    let node = halo_node(&nats, "n1", "");
    let health = node.client(None).call_json("GET", "/healthz", None).expect("healthz");
    assert_eq!(health["status"], "ok", "{health}");
    // The admin bootstrapped on the pool logs in.
    node.admin();
}

#[test]
fn bad_cluster_settings_are_refused_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut c = halo();
    c.args(["serve", "--listen", "127.0.0.1:0", "--cluster", "nats://127.0.0.1:4222", "--node", "no.dots"])
        .arg("--data-dir")
        .arg(&data);
    let err = fails(run(c));
    assert!(err.contains("node name"), "{err}");
    let toml = dir.path().join("halo.toml");
    std::fs::write(&toml, "[cluster]\nurls = [\"nats://127.0.0.1:4222\"]\nreplica = 3\n").expect("write");
    let mut c = halo();
    c.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&toml).arg("--data-dir").arg(&data);
    let err = fails(run(c));
    assert!(err.contains("replica"), "{err}");
}

/// Starts a conversation of `from` with `to` and sends `text`; returns the conversation's id.
fn send(from: &halo_client::Client, to: &str, text: &str) -> u64 {
    let conv = from.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": [to]}))).expect("start");
    let id = conv["id"].as_u64().expect("conversation id");
    let sent = from
        .call_json("POST", &format!("/api/v1/conversations/{id}/messages"), Some(&json!({"text": text})))
        .expect("send");
    assert_eq!(sent["text"], text, "{sent}");
    id
}

/// The texts of conversation `id` as `client` reads them (an error: the conversation has not
/// reached the client's node yet).
fn try_texts(client: &halo_client::Client, id: u64) -> Result<Vec<String>, halo_client::ClientError> {
    let page = client.call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None)?;
    Ok(page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect())
}

fn texts(client: &halo_client::Client, id: u64) -> Vec<String> {
    try_texts(client, id).expect("history")
}

/// Waits until `client` reads `text` in conversation `id`.
fn wait_text(client: &halo_client::Client, id: u64, text: &str) {
    wait_until(&format!("{text:?} in conversation {id}"), 30, || {
        try_texts(client, id).ok()?.iter().any(|t| t == text).then_some(())
    });
}

/// Logs `user` in on `node` (password `<user>-password`), once the account reached the node's
/// replica (asked as the admin: failed logins would lock the name).
fn login_on(node: &common::TestServer, user: &str) -> halo_client::Client {
    let admin = node.admin();
    wait_until(&format!("{user} known on {}", node.url), 60, || {
        admin.call_json("GET", &format!("/api/v1/users/{user}"), None).ok()
    });
    node.client(Some(&node.login(user, &format!("{user}-password"))))
}

#[test]
fn accounts_and_messages_written_through_one_node_are_read_through_another() {
    let nats = NatsCluster::start(3);
    let n1 = halo_node(&nats, "n1", "");
    let n2 = halo_node(&nats, "n2", "");
    let alice = n1.user("alice");
    n1.user("bob");
    // The account created through node 1 logs in through node 2.
    let bob = login_on(&n2, "bob");
    let me = bob.call_json("GET", "/api/v1/me", None).expect("me");
    assert_eq!(me["username"], "bob", "{me}");
    // A message sent through node 1 is in bob's history through node 2, and in his inbox.
    let id = send(&alice, "bob", "hello from node 1");
    wait_text(&bob, id, "hello from node 1");
    let inbox = bob.call_json("GET", "/api/v1/conversations", None).expect("inbox");
    assert!(inbox.to_string().contains(&id.to_string()), "{inbox}");
    // And back: bob answers through node 2, alice reads it through node 1.
    bob.call_json("POST", &format!("/api/v1/conversations/{id}/messages"), Some(&json!({"text": "hi from 2"})))
        .expect("answer");
    wait_text(&alice, id, "hi from 2");
    assert_eq!(texts(&alice, id), ["hello from node 1", "hi from 2"], "one copy each, in order");
    // A name taken through node 1 is taken through node 2.
    let err = n2
        .admin()
        .call_json("POST", "/api/v1/users", Some(&json!({"username": "alice", "password": "x-password-1"})))
        .expect_err("taken");
    assert_eq!(common::api_error(err).0, 409);
}

#[test]
fn stopping_and_starting_every_node_and_every_nats_server_keeps_the_state() {
    let mut nats = NatsCluster::start(3);
    let mut n1 = halo_node(&nats, "n1", "");
    let mut n2 = halo_node(&nats, "n2", "");
    let alice = n1.user("alice");
    n1.user("bob");
    let id = send(&alice, "bob", "kept across a full restart");
    let bob = login_on(&n2, "bob");
    wait_text(&bob, id, "kept across a full restart");
    drop((alice, bob));
    assert!(n1.stop().success());
    assert!(n2.stop().success());
    nats.stop_all();
    nats.start_all();
    n2.restart();
    n1.restart();
    for node in [&n1, &n2] {
        let alice = login_on(node, "alice");
        assert_eq!(texts(&alice, id), ["kept across a full restart"]);
    }
    // And the pool takes writes again, seen from the other node.
    let bob = login_on(&n2, "bob");
    bob.call_json("POST", &format!("/api/v1/conversations/{id}/messages"), Some(&json!({"text": "after"})))
        .expect("send after restart");
    wait_text(&login_on(&n1, "alice"), id, "after");
}

#[test]
fn writes_go_on_when_one_nats_server_is_killed() {
    let mut nats = NatsCluster::start(3);
    let n1 = halo_node(&nats, "n1", "");
    let n2 = halo_node(&nats, "n2", "");
    let alice = n1.user("alice");
    n1.user("bob");
    for victim in 0..3 {
        nats.kill(victim);
        // R3 on three servers: two left are a quorum for every stream and bucket.
        let name = format!("carol{victim}");
        let body = json!({"username": name, "password": format!("{name}-password")});
        let created = n1.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("created with a server down");
        assert_eq!(created["username"], name.as_str(), "{created}");
        let carol = login_on(&n2, &name);
        let text = format!("sent with server {victim} down");
        let id = send(&alice, &name, &text);
        wait_text(&carol, id, &text);
        nats.restart(victim);
    }
}

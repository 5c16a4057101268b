//! The IM log through a real `halo serve`: the in-memory state (inboxes, unread counts, read
//! markers, deletions, delivery queues, history) comes back after a clean stop (from the
//! snapshot written at shutdown), without a snapshot (from the whole log) and after `kill -9`
//! (snapshot plus the log's tail); the followers report their lag on `/metrics`.

mod common;

use common::{TestServer, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const FAST: &str = "[im]\nmessages_per_sec = 1000.0\nburst = 1000.0\n";

fn send(c: &Client, conv: u64, text: &str) -> u64 {
    let m = c.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": text})));
    m.expect("send")["id"].as_u64().expect("id")
}

/// What a user sees: each conversation of their inbox (id, unread, last text) and its history.
fn view(c: &Client) -> Vec<(u64, Value, Value, Vec<String>)> {
    let inbox = c.call_json("GET", "/api/v1/conversations", None).expect("inbox");
    let convs = inbox["conversations"].as_array().cloned().unwrap_or_default();
    convs
        .iter()
        .map(|conv| {
            let id = conv["id"].as_u64().expect("id");
            let page = c.call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None).expect("history");
            let texts = page
                .as_array()
                .map_or(Vec::new(), |ms| ms.iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect());
            (id, conv["unread"].clone(), conv["last_message"]["text"].clone(), texts)
        })
        .collect()
}

#[test]
fn inboxes_and_history_come_back_from_the_snapshot_the_whole_log_or_after_kill_9() {
    let mut server = TestServer::with_config(FAST);
    let [alice, bob, carol] = ["alice", "bob", "carol"].map(|n| server.user(n));
    let start = |c: &Client, with: &[&str]| {
        let conv = c.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": with})));
        conv.expect("start")["id"].as_u64().expect("id")
    };
    let ab = start(&alice, &["bob"]);
    let group = start(&alice, &["bob", "carol"]);
    for i in 0..5 {
        send(&alice, ab, &format!("ab {i}"));
        send(&carol, group, &format!("group {i}"));
    }
    let read_to = send(&bob, ab, "bob answers");
    send(&alice, ab, "after bob");
    bob.call("PUT", &format!("/api/v1/conversations/{ab}/read"), Some(&json!({"upto": read_to}))).expect("read");
    carol.call("DELETE", &format!("/api/v1/conversations/{group}"), None).expect("delete from history");
    let before: Vec<_> = [&alice, &bob, &carol].iter().map(|c| view(c)).collect();
    assert_eq!(before[1].iter().find(|v| v.0 == ab).map(|v| v.1.clone()), Some(json!(1)), "bob: {:?}", before[1]);
    assert!(before[2].iter().all(|v| v.0 != group), "carol deleted the group from her history");

    let again = |server: &TestServer, what: &str| {
        let after: Vec<_> = ["alice", "bob", "carol"]
            .iter()
            .map(|n| view(&server.client(Some(&server.login(n, &format!("{n}-password"))))))
            .collect();
        assert_eq!(after, before, "{what}");
    };
    server.stop();
    let snapshot = server.data_dir().join("db").join("im-snapshot.v1");
    assert!(snapshot.exists(), "a clean stop writes a snapshot");
    server.restart();
    again(&server, "from the snapshot");

    server.stop();
    std::fs::remove_file(&snapshot).expect("remove the snapshot");
    server.restart();
    again(&server, "from the whole log");

    // The snapshot written at the last stop is gone: what follows is the log's tail.
    server.crash_and_restart();
    again(&server, "after kill -9");
}

fn metrics(server: &TestServer) -> String {
    let admin = server.login("admin", common::ADMIN_PASSWORD);
    server.raw("GET", "/metrics", Some(&admin), "text/plain", Vec::new()).1
}

#[test]
fn log_followers_report_their_lag() {
    let server = TestServer::with_config(FAST);
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    let conv = alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]})));
    let conv = conv.expect("start")["id"].as_u64().expect("id");
    for i in 0..3 {
        send(&alice, conv, &format!("m{i}"));
    }
    let text = wait_until("every follower at the end of the log", 30, || {
        let text = metrics(&server);
        ["search", "archive", "federation"]
            .iter()
            .all(|f| text.lines().any(|l| l == format!("halo_log_follower_lag{{follower=\"{f}\"}} 0")))
            .then_some(text)
    });
    assert!(text.lines().any(|l| l == "halo_log_last_seq 4"), "a start and three messages: {text}");
}

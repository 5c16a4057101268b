//! A data directory written by a released Halo (`tests/fixtures/release-5d71f63.tar.gz`, made by
//! `tests/fixtures/make-release-datadir.sh`; see the README there) still means the same thing to
//! this build: the current server starts on a copy of it and answers, through the API, what the
//! release answered (histories, unread counts, read markers, messages deleted from one's
//! history, rooms, user search, the compliance archive), delivers the offline queue, honours the
//! old idempotency keys, and takes new messages after the old ones. This is the gate for any
//! change of the on-disk format: such a change must migrate the directory on start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Peer, TestServer, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const FIXTURE: &str = "release-5d71f63";

fn fixture(ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(format!("{FIXTURE}.{ext}"))
}

/// A server started on a copy of the release's data directory.
fn upgraded() -> TestServer {
    TestServer::with_setup("", |data: &Path| {
        let parent = data.parent().expect("data dir has a parent");
        let status =
            Command::new("tar").arg("-xzf").arg(fixture("tar.gz")).arg("-C").arg(parent).status().expect("run tar");
        assert!(status.success(), "unpacking the fixture failed");
        assert!(data.join("db").exists() || std::fs::read_dir(data).expect("data dir").next().is_some());
    })
}

/// Whether `actual` says at least what `expected` says: every field of an expected object is in
/// the actual one with the same meaning (new fields are allowed), arrays match element by
/// element. Returns where they differ.
fn covers(actual: &Value, expected: &Value, at: &str) -> Result<(), String> {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            for (k, ev) in e {
                let av = a.get(k).ok_or_else(|| format!("{at}.{k}: missing (expected {ev})"))?;
                covers(av, ev, &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(e)) => {
            if a.len() != e.len() {
                return Err(format!("{at}: {} items, expected {}: {actual} vs {expected}", a.len(), e.len()));
            }
            for (i, (av, ev)) in a.iter().zip(e).enumerate() {
                covers(av, ev, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ if actual == expected => Ok(()),
        _ => Err(format!("{at}: {actual}, expected {expected}")),
    }
}

fn assert_covers(what: &str, actual: &Value, expected: &Value) {
    if let Err(e) = covers(actual, expected, what) {
        panic!("after the upgrade, {e}");
    }
}

fn get(c: &Client, path: &str) -> Value {
    match c.call_json("GET", path, None) {
        Ok(v) => v,
        Err(halo_client::ClientError::Api { status, .. }) if (400..500).contains(&status) => Value::Null,
        Err(e) => panic!("GET {path}: {e}"),
    }
}

fn login(server: &TestServer, user: &str) -> Client {
    server.client(Some(&server.login(user, &format!("{user}-password"))))
}

/// The id of the message with `text` among `messages`.
fn id_of(messages: &Value, text: &str) -> u64 {
    messages["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["text"] == text)
        .and_then(|m| m["id"].as_u64())
        .unwrap_or_else(|| panic!("no message {text:?} in {messages}"))
}

#[test]
fn a_data_dir_written_by_the_release_means_the_same_after_the_upgrade() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("json")).expect("fixture answers")).expect("json");
    let server = upgraded();

    for (user, want) in expected["users"].as_object().expect("users") {
        let c = login(&server, user);
        assert_covers(&format!("{user}'s inbox"), &get(&c, "/api/v1/conversations?limit=100"), &want["inbox"]);
        for (conv, w) in want["conversations"].as_object().expect("conversations") {
            let view = get(&c, &format!("/api/v1/conversations/{conv}"));
            assert_covers(&format!("{user}'s conversation {conv}"), &view, &w["view"]);
            let msgs = get(&c, &format!("/api/v1/conversations/{conv}/messages?limit=200"));
            assert_covers(&format!("{user}'s history of {conv}"), &msgs, &w["messages"]);
        }
        assert_covers(&format!("{user}'s rooms"), &get(&c, "/api/v1/rooms"), &want["rooms"]);
        let rooms = want["rooms"]["rooms"].as_array().expect("rooms");
        let room = rooms.iter().find(|r| r["name"] == "lobby").and_then(|r| r["id"].as_u64()).expect("the lobby");
        let posts = get(&c, &format!("/api/v1/rooms/{room}/messages?limit=200"));
        assert_covers(&format!("{user}'s room history"), &posts, &want["room_messages"]);
        // The search index may be rebuilt on start: wait for it, then compare.
        let found = wait_until("user search", 60, || {
            let f = get(&c, "/api/v1/search?q=budget");
            covers(&f, &want["search_budget"], "").is_ok().then_some(f)
        });
        assert_covers(&format!("{user}'s search"), &found, &want["search_budget"]);
    }

    let officer = login_officer(&server);
    let mut out = Vec::new();
    officer.download("/api/v1/archive/export", &mut out).expect("export");
    let records: Vec<Value> =
        String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_covers("the archive export", &Value::Array(records), &expected["archive_export"]);
    for (query, key) in [("q=budget", "archive_search_budget"), ("user=dave", "archive_search_dave")] {
        let found = wait_until("archive search", 60, || {
            let f = get(&officer, &format!("/api/v1/archive/records?{query}"));
            covers(&f, &expected[key], "").is_ok().then_some(f)
        });
        assert_covers(&format!("archive search {query}"), &found, &expected[key]);
    }

    // Offline queues: everything others wrote in a user's conversations since they joined,
    // oldest first, and nothing more once acknowledged.
    for user in ["dave", "carol"] {
        let mut want: Vec<u64> = Vec::new();
        for w in expected["users"][user]["conversations"].as_object().expect("conversations").values() {
            if let Some(msgs) = w["messages"]["messages"].as_array() {
                want.extend(msgs.iter().filter(|m| m["from"] != *user).filter_map(|m| m["id"].as_u64()));
            }
        }
        want.sort_unstable();
        want.dedup();
        let token = server.login(user, &format!("{user}-password"));
        let mut peer = Peer::connect(&server, &token, "phone");
        let n = peer.hello["offline"].as_u64().expect("hello.offline") as usize;
        let got: Vec<u64> = (0..n)
            .map(|_| {
                let e = peer.event("im.message");
                assert_eq!(e["offline"], true, "{e}");
                e["message"]["id"].as_u64().expect("id")
            })
            .collect();
        assert_eq!(got, want, "{user}'s offline queue");
        peer.ok(json!({"type": "im.ack", "upto": got.last().copied().unwrap_or(0)}));
        drop(peer);
        let again = Peer::connect(&server, &token, "laptop");
        assert_eq!(again.hello["offline"], 0, "{user}'s queue is empty once acknowledged");
    }

    // Old idempotency keys still answer with the stored message, or refuse other content.
    let (alice, bob) = (login(&server, "alice"), login(&server, "bob"));
    let convs = &expected["users"]["bob"]["conversations"];
    let (ab, ab_msgs) = convs
        .as_object()
        .expect("conversations")
        .iter()
        .find(|(_, w)| w["view"]["kind"] == "direct" && w["messages"].to_string().contains("hello bob"))
        .expect("the alice-bob 1:1");
    let first = id_of(&ab_msgs["messages"], "hello bob, the budget is attached");
    let resent = alice
        .call_json(
            "POST",
            &format!("/api/v1/conversations/{ab}/messages"),
            Some(&json!({"text": "hello bob, the budget is attached", "key": "alice-key-1"})),
        )
        .expect("resend with the old key");
    assert_eq!(resent["id"], first, "the old key answers with the stored message");
    let other = alice.call(
        "POST",
        &format!("/api/v1/conversations/{ab}/messages"),
        Some(&json!({"text": "something else", "key": "alice-key-1"})),
    );
    assert_eq!(common::api_error(other.expect_err("key reused")), (409, "idempotency_conflict".to_owned()));

    // New messages go after the old ones and count as unread where they should.
    let max_old = max_id(&expected);
    let unread_before = expected["users"]["bob"]["conversations"][ab.as_str()]["view"]["unread"].as_u64().unwrap_or(0);
    let sent = alice
        .call_json("POST", &format!("/api/v1/conversations/{ab}/messages"), Some(&json!({"text": "after the upgrade"})))
        .expect("send after the upgrade");
    assert!(sent["id"].as_u64().expect("id") > max_old, "new ids follow the old ones");
    let view = bob.call_json("GET", &format!("/api/v1/conversations/{ab}"), None).expect("view");
    assert_eq!(view["unread"].as_u64(), Some(unread_before + 1));
}

fn login_officer(server: &TestServer) -> Client {
    server.client(Some(&server.login("officer", "officer-password")))
}

/// The largest message or conversation id anywhere in the release's answers.
fn max_id(v: &Value) -> u64 {
    match v {
        Value::Object(o) => {
            o.iter().map(|(k, v)| if k == "id" { v.as_u64().unwrap_or(0) } else { max_id(v) }).max().unwrap_or(0)
        }
        Value::Array(a) => a.iter().map(max_id).max().unwrap_or(0),
        _ => 0,
    }
}

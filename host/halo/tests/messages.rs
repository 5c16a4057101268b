//! What users of Teams, Slack and Element expect of messages, through a real `halo serve`:
//! attachments (size limit, sniffed type, access, safe headers, durability, archive), edits
//! and deletions (events, history, every version archived), replies, mentions, reactions,
//! mutes, and the admin's user search.

mod common;

use common::{Peer, TestServer, api_error, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

/// A GET with `token` as bearer: (status, headers, body).
fn fetch(server: &TestServer, path: &str, token: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent
        .get(format!("{}{path}", server.url))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .expect("http");
    let headers =
        resp.headers().iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())).collect();
    let body = resp.body_mut().read_to_vec().unwrap_or_default();
    (resp.status().as_u16(), headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

fn upload(server: &TestServer, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let path = format!("/api/v1/attachments?name={name}");
    let (status, body) = server.raw("POST", &path, Some(token), "application/octet-stream", bytes.to_vec());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn token(server: &TestServer, name: &str) -> String {
    server.login(name, &format!("{name}-password"))
}

fn archive_everything(server: &TestServer) -> Client {
    let admin = server.admin();
    admin
        .call_json(
            "PUT",
            "/api/v1/admin/archive/policy",
            Some(&json!({"global": {"internal": true, "external": true}})),
        )
        .expect("policy");
    let body = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
    admin.call_json("POST", "/api/v1/users", Some(&body)).expect("officer");
    server.client(Some(&token(server, "officer")))
}

fn export(officer: &Client) -> Vec<Value> {
    let mut out = Vec::new();
    officer.download("/api/v1/archive/export", &mut out).expect("export");
    String::from_utf8_lossy(&out).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn start(c: &Client, with: &str) -> u64 {
    let conv = c.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": [with]}))).expect("start");
    conv["id"].as_u64().expect("id")
}

#[test]
fn attachments_are_limited_sniffed_private_durable_and_archived() {
    let mut server = TestServer::with_config("[im]\nmax_attachment_bytes = 4096\n");
    let officer = archive_everything(&server);
    let (alice, _bob, _carol) = (server.user("alice"), server.user("bob"), server.user("carol"));
    let (ta, tb, tc) = (token(&server, "alice"), token(&server, "bob"), token(&server, "carol"));

    let (status, png) = upload(&server, &ta, "..%2F..%2Fcat.png", PNG);
    assert_eq!(status, 200, "{png}");
    assert_eq!(
        (png["mime"].as_str(), png["name"].as_str(), png["size"].as_u64()),
        (Some("image/png"), Some("cat.png"), Some(PNG.len() as u64))
    );
    let id = png["id"].as_str().expect("id").to_owned();
    let (status, html) = upload(&server, &ta, "page.html", b"<html><script>alert(1)</script></html>");
    assert_eq!(status, 200);
    assert_ne!(html["mime"], "text/html", "the type is sniffed and risky types are not kept: {html}");

    let (status, big) = upload(&server, &ta, "big.bin", &vec![7u8; 5000]);
    assert_eq!(status, 413, "over [im] max_attachment_bytes: {big}");
    assert_eq!(big["error"], "payload_too_large");
    assert_eq!(upload(&server, &ta, "empty", b"").0, 400);
    assert_eq!(upload(&server, "not-a-token", "a.png", PNG).0, 401);

    // Before a message carries it, only its uploader reads it.
    assert_eq!(fetch(&server, &format!("/api/v1/attachments/{id}"), &ta).0, 200);
    assert_eq!(fetch(&server, &format!("/api/v1/attachments/{id}"), &tb).0, 403);
    assert_eq!(fetch(&server, "/api/v1/attachments/../../etc/passwd", &ta).0, 404);
    assert_eq!(fetch(&server, "/api/v1/attachments/ffffffffffffffffffffffffffffffff", &ta).0, 404);

    let conv = start(&alice, "bob");
    let bob = server.client(Some(&tb));
    let stolen = json!({"text": "mine now", "attachments": [id]});
    assert_eq!(
        api_error(
            bob.call("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&stolen)).expect_err("not his")
        )
        .0,
        400,
        "only the uploader attaches a file"
    );
    let msg = alice
        .call_json(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&json!({"text": "", "attachments": [id, html["id"]]})),
        )
        .expect("a message of files needs no text");
    assert_eq!(msg["attachments"][0]["sha256"], png["sha256"]);
    assert_eq!(msg["attachments"].as_array().map(Vec::len), Some(2));

    let (status, headers, body) = fetch(&server, &format!("/api/v1/attachments/{id}"), &tb);
    assert_eq!(status, 200, "a participant reads it");
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let img = agent.get(format!("{}/api/v1/attachments/{id}?token={tb}", server.url)).call().expect("http");
    assert_eq!(img.status().as_u16(), 200, "the token may come in the query, for <img> links");
    assert_eq!(body, PNG);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(header(&headers, "content-disposition").starts_with("inline; filename*=UTF-8''cat.png"));
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-security-policy").contains("sandbox"));
    let (status, headers, _) =
        fetch(&server, &format!("/api/v1/attachments/{}", html["id"].as_str().unwrap_or("")), &tb);
    assert_eq!(status, 200);
    assert!(header(&headers, "content-disposition").starts_with("attachment;"), "not an image: a download");
    assert!(!header(&headers, "content-type").contains("html"));
    assert_eq!(fetch(&server, &format!("/api/v1/attachments/{id}"), &tc).0, 403, "carol is not a participant");

    // Durable: a kill -9 loses neither the file nor who may read it.
    server.crash_and_restart();
    let tb = token(&server, "bob");
    assert_eq!(fetch(&server, &format!("/api/v1/attachments/{id}"), &tb).2, PNG);

    // The restarted server listens elsewhere.
    drop(officer);
    let officer = server.client(Some(&token(&server, "officer")));
    let record = wait_until("the archive record", 30, || {
        export(&officer).into_iter().find(|r| r["id"] == msg["id"] && r["event"] == "message")
    });
    assert_eq!(record["attachments"][0]["sha256"], png["sha256"], "the archive names the file by hash: {record}");
    assert_eq!(record["attachments"][0]["size"], PNG.len());
    let (status, headers, body) =
        fetch(&server, &format!("/api/v1/archive/attachments/{id}"), &token(&server, "officer"));
    assert_eq!((status, body.as_slice()), (200, PNG), "the compliance officer fetches what the archive names");
    assert!(header(&headers, "content-disposition").starts_with("attachment;"));
    assert_eq!(fetch(&server, &format!("/api/v1/archive/attachments/{id}"), &tb).0, 403, "users do not");
}

#[test]
fn uploads_have_an_hourly_byte_budget_per_user() {
    let server = TestServer::with_config("[im]\nattachment_bytes_per_hour = 100\n");
    let (_ann, _ben) = (server.user("ann"), server.user("ben"));
    let (ta, tb) = (token(&server, "ann"), token(&server, "ben"));
    assert_eq!(upload(&server, &ta, "a.txt", &[b'a'; 60]).0, 200);
    let (status, refused) = upload(&server, &ta, "b.txt", &[b'b'; 60]);
    assert_eq!((status, refused["error"].as_str()), (429, Some("rate_limited")), "{refused}");
    assert_eq!(upload(&server, &tb, "c.txt", &[b'c'; 60]).0, 200, "the budget is per user");
}

#[test]
fn edits_deletions_and_reactions_reach_participants_history_and_the_archive() {
    let server = TestServer::start();
    let officer = archive_everything(&server);
    let (alice, bob) = (server.user("alice"), server.user("bob"));
    let conv = start(&alice, "bob");
    let mut peer = Peer::connect(&server, &token(&server, "bob"), "bob-laptop");
    let sent = alice
        .call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "budget is 10k"})))
        .expect("send");
    let id = sent["id"].as_u64().expect("id");
    peer.event("im.message");

    let path = format!("/api/v1/conversations/{conv}/messages/{id}");
    let edited = alice.call_json("PATCH", &path, Some(&json!({"text": "budget is 12k"}))).expect("edit");
    assert_eq!(edited["text"], "budget is 12k");
    assert!(edited["edited_at"].is_u64());
    let changed = peer.event("message.changed");
    assert_eq!(
        (changed["message"]["id"].as_u64(), changed["message"]["text"].as_str()),
        (Some(id), Some("budget is 12k"))
    );
    assert_eq!(api_error(bob.call("PATCH", &path, Some(&json!({"text": "mine"}))).expect_err("not his")).0, 403);
    assert_eq!(api_error(alice.call("PATCH", &path, Some(&json!({"text": " "}))).expect_err("blank")).0, 400);

    let reacted = peer.ok(json!({"type": "message.react", "conversation": conv, "message": id, "emoji": "👍"}));
    assert_eq!(reacted["message"]["reactions"], json!([{"emoji": "👍", "count": 1, "users": ["bob"]}]));
    assert_eq!(
        peer.err(json!({"type": "message.react", "conversation": conv, "message": id, "emoji": "yes"})),
        "bad_request"
    );
    assert_eq!(
        peer.err(json!({"type": "message.react", "conversation": conv, "room": 1, "message": id, "emoji": "👍"})),
        "bad_request"
    );
    alice.call_json("PUT", &format!("{path}/reactions/%F0%9F%91%8D"), None).expect("alice agrees");
    alice.call_json("PUT", &format!("{path}/reactions/%F0%9F%91%8D"), None).expect("twice changes nothing");
    let page = bob.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("history");
    assert_eq!(page["messages"][0]["reactions"][0]["users"], json!(["bob", "alice"]));
    assert_eq!(page["messages"][0]["text"], "budget is 12k", "history shows the latest text");

    let deleted = alice.call_json("DELETE", &path, None).expect("delete");
    assert!(deleted["deleted_at"].is_u64() && deleted.get("text").is_none(), "{deleted}");
    let changed = wait_until("the tombstone", 10, || {
        let c = peer.event("message.changed");
        c["message"]["deleted_at"].is_u64().then_some(c)
    });
    assert!(changed["message"].get("text").is_none());
    let page = bob.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("history");
    assert!(page["messages"][0].get("text").is_none() && page["messages"][0]["deleted_at"].is_u64());
    assert!(page["messages"][0].get("reactions").is_none());
    assert_eq!(api_error(alice.call("PATCH", &path, Some(&json!({"text": "back"}))).expect_err("deleted")).0, 409);
    let list = bob.call_json("GET", "/api/v1/conversations", None).expect("list");
    assert!(list["conversations"][0]["last_message"].get("text").is_none(), "the preview hides it too");

    // The compliance archive keeps what was said: every version, and the deleted text.
    let records = wait_until("the change records", 30, || {
        let r: Vec<Value> = export(&officer).into_iter().filter(|r| r["id"] == id || r["of"] == id).collect();
        (r.len() == 5).then_some(r)
    });
    let events: Vec<&str> = records.iter().map(|r| r["event"].as_str().unwrap_or("")).collect();
    assert_eq!(events, ["message", "edited", "reacted", "reacted", "deleted"]);
    assert_eq!(records[0]["text"], "budget is 10k");
    assert_eq!(records[1]["text"], "budget is 12k");
    assert_eq!(records[2]["emoji"], "👍");

    // A deleted message is no longer found by search.
    wait_until("search drops it", 30, || {
        let found = bob.call_json("GET", "/api/v1/search?q=budget", None).ok()?;
        found["messages"].as_array().is_some_and(Vec::is_empty).then_some(())
    });
}

#[test]
fn replies_quote_and_mentions_notify_members_only() {
    let server = TestServer::start();
    let (alice, bob, carol, _dave) =
        (server.user("alice"), server.user("bob"), server.user("carol"), server.user("dave"));
    let room =
        alice.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "ops", "privacy": "open"}))).expect("room");
    let room = room["id"].as_u64().expect("id");
    for c in [&bob, &carol] {
        c.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");
    }
    carol.call_json("PUT", &format!("/api/v1/rooms/{room}/follow"), Some(&json!({"follow": false}))).expect("unfollow");
    let mut carol_peer = Peer::connect(&server, &token(&server, "carol"), "carol-phone");
    let first = alice
        .call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "deploy at 5?"})))
        .expect("post");
    let reply = bob
        .call_json(
            "POST",
            &format!("/api/v1/rooms/{room}/messages"),
            Some(&json!({"text": "@alice yes, @Carol please watch; @dave is not here", "reply_to": first["id"]})),
        )
        .expect("reply");
    assert_eq!(reply["reply_to"], first["id"]);
    assert_eq!(reply["quote"], json!({"id": first["id"], "from": "alice", "text": "deploy at 5?"}));
    assert_eq!(reply["mentions"], json!(["alice", "carol"]), "only members are mentioned");

    let mention = carol_peer.event("mention");
    assert_eq!(mention["message"]["id"], reply["id"], "a mention reaches a member who does not follow the room");
    carol_peer.no_event("room.message", std::time::Duration::from_millis(300));
    let page = carol.call_json("GET", &format!("/api/v1/rooms/{room}/messages"), None).expect("page");
    let mine: Vec<bool> =
        page["messages"].as_array().expect("messages").iter().filter_map(|m| m["mentions_me"].as_bool()).collect();
    assert_eq!(mine, [false, true]);

    let bad = json!({"text": "re", "reply_to": 999_999});
    assert_eq!(
        api_error(bob.call("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&bad)).expect_err("no such")).0,
        400
    );
    // A reply to a conversation's message from a room is refused: replies stay in their thread.
    let conv = start(&alice, "bob");
    let cross = json!({"text": "re", "reply_to": first["id"]});
    assert_eq!(
        api_error(
            alice.call("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&cross)).expect_err("cross")
        )
        .0,
        400
    );
}

#[test]
fn mutes_are_per_user_and_survive_a_crash() {
    let mut server = TestServer::start();
    let (alice, bob, carol) = (server.user("alice"), server.user("bob"), server.user("carol"));
    let conv = start(&alice, "bob");
    alice.call_json("PUT", &format!("/api/v1/conversations/{conv}/mute"), Some(&json!({"muted": true}))).expect("mute");
    let room =
        alice.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "lobby", "privacy": "open"}))).expect("room");
    let room = room["id"].as_u64().expect("id");
    alice.call_json("PUT", &format!("/api/v1/rooms/{room}/mute"), Some(&json!({"muted": true}))).expect("mute room");
    assert_eq!(
        api_error(
            carol
                .call("PUT", &format!("/api/v1/rooms/{room}/mute"), Some(&json!({"muted": true})))
                .expect_err("member")
        )
        .0,
        403
    );
    assert_eq!(
        api_error(
            carol
                .call("PUT", &format!("/api/v1/conversations/{conv}/mute"), Some(&json!({"muted": true})))
                .expect_err("x")
        )
        .0,
        404
    );
    bob.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "hi"})))
        .expect("send");
    server.crash_and_restart();
    // The restarted server listens elsewhere.
    let (alice, bob) = (server.client(Some(&token(&server, "alice"))), server.client(Some(&token(&server, "bob"))));
    let view = alice.call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("conv");
    assert_eq!((view["muted"].as_bool(), view["unread"].as_u64()), (Some(true), Some(1)), "muted, and still counted");
    assert_eq!(bob.call_json("GET", &format!("/api/v1/conversations/{conv}"), None).expect("conv")["muted"], false);
    let rooms = alice.call_json("GET", "/api/v1/rooms?mine=true", None).expect("rooms");
    assert_eq!(rooms["rooms"][0]["muted"], true);
}

#[test]
fn admins_search_users_by_name_mail_or_department() {
    let server = TestServer::start();
    let admin = server.admin();
    for (name, dept) in [("ann", "Sales"), ("bert", "Ops"), ("cyril", "sales"), ("dora", "Legal")] {
        let body = json!({"username": name, "password": "long-password", "department": dept});
        admin.call_json("POST", "/api/v1/users", Some(&body)).expect("create");
    }
    let names = |v: Value| -> Vec<String> {
        v["users"].as_array().expect("users").iter().map(|u| u["username"].as_str().unwrap_or("").to_owned()).collect()
    };
    assert_eq!(names(admin.call_json("GET", "/api/v1/users?q=SALES", None).expect("q")), ["ann", "cyril"]);
    let page = admin.call_json("GET", "/api/v1/users?q=sales&limit=1", None).expect("page");
    assert_eq!(page["next"], "ann");
    assert_eq!(names(admin.call_json("GET", "/api/v1/users?q=sales&after=ann", None).expect("next")), ["cyril"]);
    assert_eq!(names(admin.call_json("GET", "/api/v1/users?q=dor", None).expect("name")), ["dora"]);
    let ann = server.client(Some(&server.login("ann", "long-password")));
    assert_eq!(api_error(ann.call("GET", "/api/v1/users?q=a", None).expect_err("admin only")).0, 403);
}

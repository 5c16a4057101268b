//! Attachments in a pool, through the real binaries (three `nats-server`s, three `halo serve
//! --cluster` nodes): a file uploaded through one node is downloaded through every node — by
//! the recipient and by a compliance officer from the archive — also once the node that took
//! the upload was killed with `kill -9`; a file of the largest size allowed goes through the
//! object store's chunks intact; unknown ids are 404 and oversize uploads 413 on every node.

mod common;

use common::TestServer;
use common::nats::{Pool, create, login};
use serde_json::{Value, json};

/// Uploads count against the message allowance: room for the test's few.
const CONFIG: &str = "[im]\nmessages_per_sec = 1000.0\nburst = 1000.0\n";
/// `[im] max_attachment_bytes` by default.
const MAX: usize = 10 * 1024 * 1024;

/// A GET with `token` as bearer: (status, body).
fn fetch(node: &TestServer, path: &str, token: &str) -> (u16, Vec<u8>) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent
        .get(format!("{}{path}", node.url))
        .header("authorization", format!("Bearer {token}"))
        .call()
        .expect("http");
    let body = resp.body_mut().with_config().limit(2 * MAX as u64).read_to_vec().unwrap_or_default();
    (resp.status().as_u16(), body)
}

fn upload(node: &TestServer, token: &str, name: &str, bytes: &[u8]) -> (u16, Value) {
    let path = format!("/api/v1/attachments?name={name}");
    let (status, body) = node.raw("POST", &path, Some(token), "application/octet-stream", bytes.to_vec());
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Offers an upload of `len` bytes (its `Content-Length`) and reads the answer without sending
/// the body: a node refusing the size answers at once (sending 10 MiB first would race the
/// node closing the connection).
fn offer(node: &TestServer, token: &str, len: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = node.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30))).expect("timeout");
    let head = format!(
        "POST /api/v1/attachments?name=over.bin HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/octet-stream\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// `n` bytes that compress to nothing and sniff as no known type.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    // Not a magic number of any type, whatever the seed.
    out[0] = 0;
    out
}

/// Whether `node` holds a file of attachment `id` in its cache.
fn cached(node: &TestServer, id: &str) -> bool {
    node.data_dir().join("db").join("attachments").join(id).exists()
}

fn download(node: &TestServer, id: &str, token: &str) -> Vec<u8> {
    let (status, body) = fetch(node, &format!("/api/v1/attachments/{id}"), token);
    assert_eq!(status, 200, "attachment {id} through {}: {}", node.url, String::from_utf8_lossy(&body));
    body
}

#[test]
fn attachments_uploaded_through_one_node_are_read_through_every_node_and_survive_its_kill() {
    let mut pool = Pool::start(CONFIG);
    let admin = pool.nodes[0].admin();
    for name in ["alice", "bob", "carol"] {
        create(&pool.nodes[0], name);
    }
    let officer = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
    admin.call_json("POST", "/api/v1/users", Some(&officer)).expect("officer");
    let everything = json!({"global": {"internal": true, "external": true}});
    admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&everything)).expect("policy");
    let (ta, alice) = login(&pool.nodes[0], "alice");

    // alice uploads through node 1: a small file, and one of the largest size allowed (80
    // chunks of the object store).
    let small = b"minutes of the meeting".to_vec();
    let big = noise(MAX, 7);
    let (status, a) = upload(&pool.nodes[0], &ta, "minutes.txt", &small);
    assert_eq!(status, 200, "{a}");
    let (status, b) = upload(&pool.nodes[0], &ta, "dump.bin", &big);
    assert_eq!(status, 200, "{b}");
    let (small_id, big_id) = (a["id"].as_str().expect("id").to_owned(), b["id"].as_str().expect("id").to_owned());
    assert_eq!(b["size"].as_u64(), Some(MAX as u64));
    let conv =
        alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start")["id"]
            .as_u64()
            .expect("id");
    let sent = alice
        .call_json(
            "POST",
            &format!("/api/v1/conversations/{conv}/messages"),
            Some(&json!({"text": "the files", "attachments": [small_id, big_id]})),
        )
        .expect("send");
    assert_eq!(sent["attachments"].as_array().map(Vec::len), Some(2), "{sent}");

    // bob reads them through nodes 2 and 3: neither had a file of them before.
    let (tb2, _) = login(&pool.nodes[1], "bob");
    let (tb3, _) = login(&pool.nodes[2], "bob");
    assert!(!cached(&pool.nodes[1], &small_id) && !cached(&pool.nodes[2], &big_id), "only node 1 has the files");
    common::wait_until("the message on node 2", 60, || {
        (fetch(&pool.nodes[1], &format!("/api/v1/attachments/{small_id}"), &tb2).0 == 200).then_some(())
    });
    assert_eq!(download(&pool.nodes[1], &small_id, &tb2), small);
    assert!(download(&pool.nodes[1], &big_id, &tb2) == big, "the big file through node 2 is intact");
    assert!(cached(&pool.nodes[1], &big_id), "node 2 keeps what it fetched");
    common::wait_until("the message on node 3", 60, || {
        (fetch(&pool.nodes[2], &format!("/api/v1/attachments/{small_id}"), &tb3).0 == 200).then_some(())
    });
    assert_eq!(download(&pool.nodes[2], &small_id, &tb3), small);
    // The uploader reads through another node too; carol, in no conversation carrying it, not.
    let (ta3, _) = login(&pool.nodes[2], "alice");
    assert_eq!(download(&pool.nodes[2], &small_id, &ta3), small);
    let (tc, _) = login(&pool.nodes[1], "carol");
    assert_eq!(fetch(&pool.nodes[1], &format!("/api/v1/attachments/{small_id}"), &tc).0, 403);

    // Unknown and malformed ids are 404 on every node; an oversize upload is refused on every
    // node (the limit is each node's `[im] max_attachment_bytes`).
    for (i, node) in pool.nodes.iter().enumerate() {
        let (token, _) = login(node, "alice");
        for id in ["ffffffffffffffffffffffffffffffff", "..%2F..%2Fetc%2Fpasswd", "nope"] {
            let (status, body) = fetch(node, &format!("/api/v1/attachments/{id}"), &token);
            assert_eq!(status, 404, "node {}: {id}: {}", i + 1, String::from_utf8_lossy(&body));
        }
        let (status, body) = offer(node, &token, MAX + 1);
        assert_eq!((status, body["error"].as_str()), (413, Some("payload_too_large")), "node {}: {body}", i + 1);
    }

    // Node 1, which took the upload, dies: the files come from the pool's object store.
    pool.nodes[0].kill();
    assert!(!cached(&pool.nodes[2], &big_id), "node 3 has not read the big file yet");
    assert!(download(&pool.nodes[2], &big_id, &tb3) == big, "the big file through node 3 after node 1 died");
    assert_eq!(download(&pool.nodes[1], &small_id, &tb2), small);
    // The compliance officer reads the archived file through node 3.
    let (to, _) = login(&pool.nodes[2], "officer");
    let (status, body) = fetch(&pool.nodes[2], &format!("/api/v1/archive/attachments/{small_id}"), &to);
    assert_eq!((status, body), (200, small.clone()));
    let (status, _) = fetch(&pool.nodes[2], "/api/v1/archive/attachments/ffffffffffffffffffffffffffffffff", &to);
    assert_eq!(status, 404);

    // Uploads go on through the live nodes: node 2 takes one, node 3 serves it.
    let (ta2, _) = login(&pool.nodes[1], "alice");
    let third = noise(300_000, 11);
    let (status, c) = upload(&pool.nodes[1], &ta2, "after.bin", &third);
    assert_eq!(status, 200, "{c}");
    let third_id = c["id"].as_str().expect("id").to_owned();
    common::wait_until("the upload's metadata on node 3", 60, || {
        (fetch(&pool.nodes[2], &format!("/api/v1/attachments/{third_id}"), &ta3).0 == 200).then_some(())
    });
    assert!(download(&pool.nodes[2], &third_id, &ta3) == third);
}

//! `[http]` timeouts: idle connections, slow request heads (slowloris), slow bodies and slow TLS
//! handshakes are closed; kept-alive connections last `idle_timeout`, not `header_timeout`;
//! WebSockets are exempt once upgraded. Only wide upper bounds on time.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, TestServer};
use serde_json::json;

/// Short head and body timeouts; a kept-alive connection may idle for a minute.
const SHORT_HEAD_AND_BODY: &str = "[http]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"60s\"\n";
/// Every timeout short.
const ALL_SHORT: &str = "[http]\nheader_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"1s\"\n";
/// Far beyond every configured timeout: a connection still open then was never closed.
const BOUND: Duration = Duration::from_secs(15);

fn connect(server: &TestServer) -> TcpStream {
    let addr = server.url.split("://").nth(1).expect("address");
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(300))).expect("read timeout");
    s
}

/// Reads one chunk: `None` once the server has closed (EOF or reset), `Some(empty)` when nothing
/// arrived within the read timeout.
fn read_some(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => None,
        Ok(n) => Some(buf[..n].to_vec()),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Some(Vec::new()),
        Err(_) => None,
    }
}

/// Writes `drip`, then `then` for ever, one byte per read timeout (300 ms) until the server
/// closes; returns what it answered. Panics if the connection outlives [`BOUND`].
fn drip_until_closed(s: &mut TcpStream, drip: &[u8], then: u8) -> String {
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut drip = drip.iter().copied().chain(std::iter::repeat(then));
    let mut writable = true;
    while start.elapsed() < BOUND {
        if writable && let Some(b) = drip.next() {
            writable = s.write_all(&[b]).is_ok();
        }
        match read_some(s) {
            Some(bytes) => answer.extend(bytes),
            None => return String::from_utf8_lossy(&answer).into_owned(),
        }
    }
    panic!("still open after {BOUND:?}; answered {:?}", String::from_utf8_lossy(&answer));
}

/// Reads until the server closes; returns what it answered. Panics if the connection outlives
/// [`BOUND`].
fn wait_closed(s: &mut TcpStream) -> String {
    let start = Instant::now();
    let mut answer = Vec::new();
    while start.elapsed() < BOUND {
        match read_some(s) {
            Some(bytes) => answer.extend(bytes),
            None => return String::from_utf8_lossy(&answer).into_owned(),
        }
    }
    panic!("still open after {BOUND:?}; answered {:?}", String::from_utf8_lossy(&answer));
}

/// Sends a `GET /healthz` and reads its answer (the status line and JSON body).
fn get_healthz(s: &mut TcpStream) -> String {
    get(s, "/healthz")
}

/// Sends a `GET` for `path` and reads its whole answer.
fn get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: halo\r\n\r\n").as_bytes()).expect("send request");
    let start = Instant::now();
    let mut answer = Vec::new();
    while start.elapsed() < BOUND {
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= len {
                return text;
            }
        }
        match read_some(s) {
            Some(bytes) => answer.extend(bytes),
            None => panic!("closed while answering: {:?}", String::from_utf8_lossy(&answer)),
        }
    }
    panic!("no answer within {BOUND:?}");
}

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let server = TestServer::with_config(SHORT_HEAD_AND_BODY);
    let mut s = connect(&server);
    assert_eq!(wait_closed(&mut s), "", "closed without an answer");
    // The server still serves.
    assert!(get_healthz(&mut connect(&server)).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_request_head_trickling_in_is_closed() {
    let server = TestServer::with_config(SHORT_HEAD_AND_BODY);
    // A byte every 300 ms never completes the head: header_timeout runs from the first byte,
    // on a new connection as on a kept-alive one (idle_timeout is a minute).
    let mut s = connect(&server);
    let answer = drip_until_closed(&mut s, b"GET /healthz HTTP/1.1\r\nHost: halo\r\nX-Slow: ", b'a');
    assert!(!answer.contains("200 OK"), "{answer}");
    let mut s = connect(&server);
    assert!(get_healthz(&mut s).starts_with("HTTP/1.1 200"));
    let answer = drip_until_closed(&mut s, b"GET /healthz HTTP/1.1\r\nHost: halo\r\nX-Slow: ", b'a');
    assert!(!answer.contains("200 OK"), "{answer}");
    // Meanwhile, and after, other clients are served.
    assert!(get_healthz(&mut connect(&server)).starts_with("HTTP/1.1 200"));
}

#[test]
fn a_body_trickling_in_gets_408_and_the_connection_closes() {
    let server = TestServer::with_config(SHORT_HEAD_AND_BODY);
    let mut s = connect(&server);
    let head =
        "POST /api/v1/login HTTP/1.1\r\nHost: halo\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n";
    s.write_all(head.as_bytes()).expect("send head");
    let answer = drip_until_closed(&mut s, br#"{"username": "admin", "password": ""#, b'a');
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"));
    assert_eq!(body["error"], "timeout", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[test]
fn a_steady_body_may_take_longer_than_body_timeout() {
    let server = TestServer::with_config(SHORT_HEAD_AND_BODY);
    // 20 KB in ten pieces 300 ms apart: about 3 s in all, three times body_timeout, but each
    // 2 KB earns two more seconds at the default body_min_rate of 1 KiB/s.
    let json = json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string();
    let mut body = json.into_bytes();
    body.resize(20_000, b' ');
    let mut s = connect(&server);
    let head = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: halo\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("send head");
    let mut answer = Vec::new();
    for piece in body.chunks(2000) {
        s.write_all(piece).expect("send piece");
        // Pacing: nothing is due before the body is complete.
        answer.extend(read_some(&mut s).expect("still open"));
    }
    let start = Instant::now();
    while !String::from_utf8_lossy(&answer).contains("\"token\"") && start.elapsed() < BOUND {
        answer.extend(read_some(&mut s).expect("still open"));
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_kept_alive_connection_outlasts_header_timeout_but_not_idle_timeout() {
    let server = TestServer::with_config(SHORT_HEAD_AND_BODY);
    let mut s = connect(&server);
    assert!(get_healthz(&mut s).starts_with("HTTP/1.1 200"));
    // Three times header_timeout with nothing sent: idle, not a slow head.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(read_some(&mut s), Some(Vec::new()), "closed while idle for less than idle_timeout");
    }
    assert!(get_healthz(&mut s).starts_with("HTTP/1.1 200"), "the same connection serves again");

    let server = TestServer::with_config(ALL_SHORT);
    let mut s = connect(&server);
    assert!(get_healthz(&mut s).starts_with("HTTP/1.1 200"));
    assert!(get_healthz(&mut s).starts_with("HTTP/1.1 200"), "kept alive");
    assert_eq!(wait_closed(&mut s), "", "closed once idle, without an answer");
}

#[test]
fn a_client_that_stops_reading_its_answers_is_closed() {
    let server = TestServer::with_config(ALL_SHORT);
    let one = get(&mut connect(&server), "/js/chatview.js").len();
    let request = b"GET /js/chatview.js HTTP/1.1\r\nHost: halo\r\n\r\n";
    // Far more answers (about 56 MB) than the sockets' buffers hold, never read: once writes
    // have waited idle_timeout the server gives up instead of holding the answers for ever.
    let count = 4000;
    let mut s = connect(&server);
    s.set_write_timeout(Some(BOUND)).expect("write timeout");
    s.write_all(&request.repeat(count)).expect("send requests");
    std::thread::sleep(Duration::from_secs(3));
    let mut received = 0;
    let start = Instant::now();
    while let Some(bytes) = read_some(&mut s) {
        received += bytes.len();
        assert!(start.elapsed() < BOUND, "still open after {BOUND:?}");
    }
    assert!(received < count * one, "{received} bytes: every answer was sent");
}

#[test]
fn normal_requests_and_idle_websockets_are_not_cut() {
    let server = TestServer::with_config(ALL_SHORT);
    let token = server.login("admin", ADMIN_PASSWORD);
    let me = server.client(Some(&token)).call_json("GET", "/api/v1/me", None).expect("me");
    assert_eq!(me["username"], "admin");

    // A WebSocket silent for three times every timeout (the heartbeat is 30 s) stays open.
    let (mut ws, _) = server.ws(&token, "quiet");
    std::thread::sleep(Duration::from_secs(3));
    let reply = common::request(&mut ws, json!({"type": "ping", "id": 1, "data": "still here"}));
    assert_eq!(reply["type"], "reply", "{reply}");
}

#[test]
fn a_tls_handshake_trickling_in_is_closed() {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, keyfile) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).expect("write cert");
    std::fs::write(&keyfile, key.key_pair.serialize_pem()).expect("write key");
    let args = vec!["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), keyfile.display().to_string()];
    let server = TestServer::build(SHORT_HEAD_AND_BODY, args, Some(key.cert.pem().into_bytes()), true);
    // A handshake record announcing 512 bytes, then one byte per 300 ms.
    let mut s = connect(&server);
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).expect("record header");
    drip_until_closed(&mut s, &[], 0);
    // A silent one too.
    wait_closed(&mut connect(&server));
    assert!(server.client(None).call("GET", "/healthz", None).is_ok(), "HTTPS still served");
}

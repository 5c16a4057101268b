//! Issue #15, accounts and edges: the login throttle under concurrency, the per-address
//! slowdown and admin unlocks, retired usernames, JSON for every API error, and the stream's
//! closes (token expiry, protocol violations), and the store-open hint.

mod common;

use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::{ADMIN_PASSWORD, TestServer, api_error, fails, halo, ok, read_close};
use serde_json::{Value, json};

/// A login over raw HTTP: `(status, Retry-After seconds, body)`.
fn login(url: &str, username: &str, password: &str) -> (u16, Option<u64>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let resp = agent
        .post(format!("{url}/api/v1/login"))
        .send_json(json!({"username": username, "password": password}))
        .expect("http");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let body = resp.into_body().read_to_string().unwrap_or_default();
    (status, retry, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Runs `n` logins at once (threads released together); returns every `(status, retry)`.
fn burst(url: &str, n: usize, who: impl Fn(usize) -> (String, String)) -> Vec<(u16, Option<u64>)> {
    let gate = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (gate, url, (user, pw)) = (gate.clone(), url.to_owned(), who(i));
            std::thread::spawn(move || {
                gate.wait();
                let (status, retry, _) = login(&url, &user, &pw);
                (status, retry)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("thread")).collect()
}

fn count(results: &[(u16, Option<u64>)], status: u16) -> usize {
    results.iter().filter(|r| r.0 == status).count()
}

#[test]
fn concurrent_wrong_passwords_are_checked_at_most_the_limit() {
    let server = TestServer::with_config("[auth]\nmax_failures_per_user = 5\nmax_failures_per_ip = 1000\n");
    server.user("alice");
    let admin = server.admin();
    let results = burst(&server.url, 64, |_| ("alice".into(), "wrong-password".into()));
    let (checked, refused) = (count(&results, 401), count(&results, 429));
    assert_eq!(checked + refused, 64, "only 401 and 429: {results:?}");
    // Each attempt is counted before its password is checked, and each checked one failed.
    assert_eq!(checked, 5, "wrong passwords checked (limit 5): {results:?}");
    assert!(results.iter().filter(|r| r.0 == 429).all(|r| r.1.is_some_and(|s| s >= 1)), "429 has Retry-After");

    let (status, retry, body) = login(&server.url, "alice", "alice-password");
    assert_eq!((status, body["error"].as_str()), (429, Some("rate_limited")), "the right password waits too");
    assert!(retry.is_some_and(|s| s > 60), "locked for the failure window: {retry:?}");

    admin.call("POST", "/api/v1/users/alice/unlock", None).expect("unlock");
    assert_eq!(login(&server.url, "alice", "alice-password").0, 200, "an admin's unlock ends the lockout");
    let (status, code) = api_error(admin.call("POST", "/api/v1/users/nobody/unlock", None).expect_err("unknown"));
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let alice = server.client(Some(&server.login("alice", "alice-password")));
    let (status, _) = api_error(alice.call("POST", "/api/v1/users/alice/unlock", None).expect_err("not admin"));
    assert_eq!(status, 403);
}

#[test]
fn one_address_is_slowed_down_not_locked_out() {
    let server = TestServer::with_config("[auth]\nmax_failures_per_ip = 8\nip_slowdown = \"2s\"\n");
    server.user("bob");
    let admin = server.admin();
    let started = std::time::Instant::now();
    let results = burst(&server.url, 40, |i| (format!("ghost{i}"), "wrong-password".into()));
    let (checked, refused) = (count(&results, 401), count(&results, 429));
    assert_eq!(checked + refused, 40, "only 401 and 429: {results:?}");
    // The burst, plus one per 2 s the burst itself took on a loaded machine.
    let allowed = 8 + started.elapsed().as_secs() as usize / 2 + 1;
    assert!((1..=allowed).contains(&checked), "{checked} made-up names were checked (burst 8)");
    assert!(
        results.iter().filter(|r| r.0 == 429).all(|r| r.1.is_some_and(|s| (1..=2).contains(&s))),
        "the address waits at most ip_slowdown: {results:?}"
    );

    // bob, behind the same address, waits seconds, not the failure window.
    let (status, retry, _) = login(&server.url, "bob", "bob-password");
    if status == 429 {
        let wait = retry.expect("Retry-After");
        assert!((1..=2).contains(&wait), "{wait}");
        std::thread::sleep(Duration::from_secs(wait));
        assert_eq!(login(&server.url, "bob", "bob-password").0, 200, "after Retry-After bob gets in");
    } else {
        assert_eq!(status, 200);
    }

    // Used up again (every attempt takes a place), then an admin ends the slowdown.
    let slowed = (0..50).any(|i| login(&server.url, &format!("ghost{i}"), "wrong").0 == 429);
    assert!(slowed, "the address is slowed down again");
    admin.call("POST", "/api/v1/admin/login-addresses/127.0.0.1/unlock", None).expect("unlock address");
    assert_eq!(login(&server.url, "bob", "bob-password").0, 200);
    let (status, code) =
        api_error(admin.call("POST", "/api/v1/admin/login-addresses/not-an-ip/unlock", None).expect_err("bad"));
    assert_eq!((status, code.as_str()), (400, "bad_request"));
}

#[test]
fn cli_unlocks_an_account_and_an_address() {
    let server =
        TestServer::with_config("[auth]\nmax_failures_per_user = 2\nmax_failures_per_ip = 3\nip_slowdown = \"10m\"\n");
    server.user("carol");
    let token = server.login("admin", ADMIN_PASSWORD);
    for _ in 0..2 {
        assert_eq!(login(&server.url, "carol", "wrong").0, 401);
    }
    assert_eq!(login(&server.url, "carol", "carol-password").0, 429);
    let cli = |args: &[&str]| {
        let mut cmd = halo();
        cmd.arg("user").args(args).args(["--server", &server.url, "--token", &token]);
        cmd.output().expect("run halo")
    };
    assert!(ok(cli(&["unlock", "carol"])).contains("unlocked carol"));
    // The failures above used the address's burst of 3; carol's right password was refunded.
    assert_eq!(login(&server.url, "ghost", "wrong").0, 401);
    assert_eq!(login(&server.url, "carol", "carol-password").0, 429, "the address is slowed down");
    assert!(ok(cli(&["unlock", "--address", "127.0.0.1"])).contains("unlocked address 127.0.0.1"));
    assert_eq!(login(&server.url, "carol", "carol-password").0, 200);
    let err = fails(cli(&["unlock", "nobody"]));
    assert!(err.contains("404"), "{err}");
}

#[test]
fn a_deleted_username_is_retired() {
    let mut server = TestServer::start();
    let admin = server.admin();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let conv =
        alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start");
    let conv = conv["id"].as_u64().expect("conversation id");
    let msgs = format!("/api/v1/conversations/{conv}/messages");
    alice.call_json("POST", &msgs, Some(&json!({"text": "the secret plan"}))).expect("send");
    bob.call_json("POST", &msgs, Some(&json!({"text": "agreed"}))).expect("reply");

    admin.call("DELETE", "/api/v1/users/bob", None).expect("delete bob");
    let again = json!({"username": "bob", "password": "another-password"});
    let err = admin.call("POST", "/api/v1/users", Some(&again)).expect_err("retired");
    let text = err.to_string();
    assert_eq!(api_error(err), (409, "username_retired".to_owned()));
    assert!(text.contains("retired"), "{text}");
    let upper = json!({"username": "BOB", "password": "another-password"});
    assert_eq!(api_error(admin.call("POST", "/api/v1/users", Some(&upper)).expect_err("case")).0, 409);

    assert_eq!(login(&server.url, "bob", "bob-password").0, 401, "the old password opens nothing");
    assert_eq!(api_error(bob.call("GET", "/api/v1/me", None).expect_err("old token")).0, 401);
    let users = admin.call_json("GET", "/api/v1/users", None).expect("list");
    assert!(!users.to_string().contains("\"bob\""), "retired names are not listed: {users}");
    let history = alice.call_json("GET", &msgs, None).expect("alice still reads the conversation");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(texts.contains(&"the secret plan") && texts.contains(&"agreed"), "{history}");

    server.stop();
    server.restart();
    let admin = server.admin();
    assert_eq!(api_error(admin.call("POST", "/api/v1/users", Some(&again)).expect_err("still retired")).0, 409);
    let mut cmd = halo();
    cmd.args(["user", "add", "bob", "--password-stdin", "--server", &server.url, "--token", &server.local_token]);
    let out = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(b"another-password\n")?;
            c.wait_with_output()
        })
        .expect("run halo");
    let err = fails(out);
    assert!(err.contains("username_retired") || err.contains("retired"), "{err}");
}

/// Bad path parameters, bad query parameters and wrong methods on every route of the OpenAPI
/// document, unknown routes, and an oversized body: every error answer is `{"error","message"}`.
#[test]
fn every_api_error_is_json() {
    let server = TestServer::start();
    let token = server.login("admin", ADMIN_PASSWORD);
    let spec: Value =
        serde_json::from_str(&server.raw("GET", "/api/v1/openapi.json", None, "text/plain", Vec::new()).1)
            .expect("spec");
    let paths = spec["paths"].as_object().expect("paths");
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    let bad_values = ["%FF", "-1", "x%20y", "99999999999999999999999"];
    let bad_query = "?limit=abc&after=%FF&before=-1&offset=x&n=-5&ttl_secs=big&upto=nope";
    let mut checked = 0;
    let mut check = |method: &str, path: &str, body: &[u8]| {
        let (status, text) = server.raw(method, path, Some(&token), "application/json", body.to_vec());
        if status >= 400 {
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: {status} {text:?}"));
            assert!(v["error"].is_string() && v["message"].is_string(), "{method} {path}: {status} {v}");
            checked += 1;
        }
    };
    for (template, ops) in paths {
        if template.contains("logout") {
            continue;
        }
        let defined: Vec<String> = ops.as_object().expect("ops").keys().map(|m| m.to_uppercase()).collect();
        for method in methods {
            let concrete = template.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>();
            let concrete = concrete.join("/");
            if !defined.iter().any(|d| d == method) {
                check(method, &concrete, b"[");
                continue;
            }
            if template.contains('{') {
                for bad in bad_values {
                    let path = template
                        .split('/')
                        .map(|s| if s.starts_with('{') { bad } else { s })
                        .collect::<Vec<_>>()
                        .join("/");
                    check(method, &format!("{path}{bad_query}"), b"[");
                }
            } else if method == "GET" {
                check(method, &format!("{concrete}{bad_query}"), b"");
            }
        }
    }
    for (method, path) in [("GET", "/api/v1/nothing-here"), ("DELETE", "/api/v2/users"), ("POST", "/healthz")] {
        check(method, path, b"");
    }
    assert!(checked > 200, "only {checked} error answers were checked");

    // A body over the limit, announced by its length: refused before it is read.
    let mut tcp = std::net::TcpStream::connect(server.url.trim_start_matches("http://")).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    tcp.write_all(
        b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50000000\r\n\r\n",
    )
    .expect("write");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = std::io::Read::read(&mut tcp, &mut buf) {
        answer.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&answer);
        if n == 0 || text.contains("\r\n\r\n{") && text.trim_end().ends_with('}') {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or("")).expect("json body");
    assert_eq!(body["error"], "payload_too_large", "{body}");
}

#[test]
fn a_stream_closes_when_its_token_expires() {
    let server = TestServer::with_config("[auth]\ntoken_ttl = \"5s\"\n");
    let token = server.login("admin", ADMIN_PASSWORD);
    let (mut ws, _) = server.ws(&token, "exp");
    assert_eq!(read_close(&mut ws), (4003, "token_expired".to_owned()));
}

#[test]
fn websocket_protocol_violations_close_with_1002() {
    let server = TestServer::start();
    let token = server.login("admin", ADMIN_PASSWORD);
    let frames: [(&str, &[u8]); 3] = [
        ("reserved opcode", &[0x83, 0x80, 1, 2, 3, 4]),
        ("reserved bit", &[0xC1, 0x80, 1, 2, 3, 4]),
        ("unmasked client frame", &[0x81, 0x00]),
    ];
    for (i, (what, bytes)) in frames.into_iter().enumerate() {
        let (mut ws, _) = server.ws(&token, &format!("bad{i}"));
        match ws.get_mut() {
            tungstenite::stream::MaybeTlsStream::Plain(s) => s.write_all(bytes).expect("write"),
            _ => panic!("plain socket expected"),
        }
        assert_eq!(read_close(&mut ws), (1002, "protocol_error".to_owned()), "{what}");
    }
}

#[test]
fn the_store_hint_is_only_for_a_held_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("db"), b"not a directory").expect("write");
    let out = halo()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("HALO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run halo");
    let err = fails(out);
    assert!(err.contains("opening the store") && !err.contains("another halo"), "{err}");

    let server = TestServer::start();
    let out = halo()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(server.data_dir())
        .env("HALO_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .expect("run halo");
    let err = fails(out);
    assert!(err.contains("is another halo running on it?"), "{err}");
}

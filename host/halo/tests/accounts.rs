//! Accounts, sessions and the admin REST API, through a real `halo serve`.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{ADMIN_PASSWORD, TestServer, api_error};
use serde_json::json;

#[test]
fn bootstrap_admin_gets_a_random_password_once() {
    let server = TestServer::build("", Vec::new(), None, false);
    let path = server.data_dir().join("initial-admin-password");
    let password = std::fs::read_to_string(&path).expect("password file");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let password = password.trim();
    assert!(password.len() >= 16);
    let token = server.login("admin", password);
    let me = server.client(Some(&token)).call_json("GET", "/api/v1/me", None).expect("me");
    assert_eq!(me["roles"], json!(["user", "admin"]));
    let (status, code) = api_error(server.client(None).login("admin", ADMIN_PASSWORD).expect_err("not the env one"));
    assert_eq!((status, code.as_str()), (401, "invalid_credentials"));
}

#[test]
fn bootstrap_admin_takes_the_env_password_and_survives_restart() {
    let mut server = TestServer::start();
    assert!(!server.data_dir().join("initial-admin-password").exists());
    let alice = server.user("alice");
    assert_eq!(alice.call_json("GET", "/api/v1/me", None).expect("me")["username"], "alice");
    server.crash_and_restart();
    server.login("alice", "alice-password");
    server.login("admin", ADMIN_PASSWORD);
    let users = server.admin().call_json("GET", "/api/v1/users", None).expect("list");
    assert_eq!(users["users"].as_array().map(Vec::len), Some(2), "no second admin was bootstrapped: {users}");
}

#[test]
fn login_logout_and_wrong_credentials() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let anon = server.client(None);
    assert_eq!(
        api_error(anon.login("alice", "wrong-password").expect_err("wrong")),
        (401, "invalid_credentials".into())
    );
    assert_eq!(
        api_error(anon.login("nobody", "whatever-pw").expect_err("unknown")),
        (401, "invalid_credentials".into())
    );
    assert_eq!(
        api_error(anon.login("bad name!", "whatever-pw").expect_err("invalid")),
        (401, "invalid_credentials".into())
    );
    let login = anon.login("ALICE", "alice-password").expect("case-insensitive username");
    assert_eq!(login["token_type"], "Bearer");
    assert_eq!(login["user"]["username"], "alice");

    alice.call("POST", "/api/v1/logout", None).expect("logout");
    assert_eq!(api_error(alice.call("GET", "/api/v1/me", None).expect_err("logged out")).0, 401);
    let other = server.client(Some(login["token"].as_str().expect("token")));
    other.call_json("GET", "/api/v1/me", None).expect("other session still valid");
}

#[test]
fn failed_logins_are_rate_limited_per_user_and_per_ip() {
    let server =
        TestServer::with_config("[auth]\nmax_failures_per_user = 3\nmax_failures_per_ip = 6\nip_slowdown = \"10m\"\n");
    server.user("alice");
    server.user("bob");
    let anon = server.client(None);
    for _ in 0..3 {
        assert_eq!(api_error(anon.login("alice", "wrong-password").expect_err("wrong")).0, 401);
    }
    let (status, code) = api_error(anon.login("alice", "alice-password").expect_err("locked"));
    assert_eq!((status, code.as_str()), (429, "rate_limited"), "even the right password waits");
    let (status, body) = server.raw(
        "POST",
        "/api/v1/login",
        None,
        "application/json",
        br#"{"username":"alice","password":"x"}"#.to_vec(),
    );
    assert_eq!(status, 429, "{body}");
    anon.login("bob", "bob-password").expect("another user is not locked out");

    for n in 0..3 {
        let _ = anon.login(&format!("ghost{n}"), "wrong-password");
    }
    let (status, _) = api_error(anon.login("bob", "bob-password").expect_err("ip slowed down"));
    assert_eq!(status, 429, "six attempts from one address use its burst; then one per ip_slowdown");
}

#[test]
fn tokens_expire() {
    let server = TestServer::with_config("[auth]\ntoken_ttl = \"2s\"\n");
    server.user("alice");
    let login = server.client(None).login("alice", "alice-password").expect("login");
    let expires_at = login["expires_at"].as_u64().expect("expires_at");
    let alice = server.client(login["token"].as_str());
    let now_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64;
    // Accepted only before `expires_at`, refused from then on, however long this (busy) machine
    // takes between two calls: the server and the test read the same clock.
    let (status, code) = common::wait_until("the token to expire", 30, || {
        let asked = now_ms();
        match alice.call("GET", "/api/v1/me", None) {
            Ok(_) => {
                assert!(asked < expires_at, "accepted at {asked}, after it expired at {expires_at}");
                None
            }
            Err(e) => {
                let answered = now_ms();
                assert!(answered >= expires_at, "refused at {answered}, before it expires at {expires_at}");
                Some(api_error(e))
            }
        }
    });
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
}

#[test]
fn admin_routes_need_an_admin() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let anon = server.client(None);
    let bogus = server.client(Some("halo_not-a-real-token"));
    let routes = [
        ("GET", "/api/v1/users"),
        ("POST", "/api/v1/users"),
        ("GET", "/api/v1/users/alice"),
        ("PATCH", "/api/v1/users/alice"),
        ("DELETE", "/api/v1/users/alice"),
        ("POST", "/api/v1/users/alice/disable"),
        ("POST", "/api/v1/users/alice/enable"),
        ("PUT", "/api/v1/users/alice/password"),
        ("GET", "/metrics"),
    ];
    let body = json!({});
    for (method, path) in routes {
        let b = (method != "GET" && method != "DELETE").then_some(&body);
        assert_eq!(api_error(anon.call(method, path, b).expect_err(path)).0, 401, "{method} {path} without token");
        assert_eq!(api_error(bogus.call(method, path, b).expect_err(path)).0, 401, "{method} {path} bad token");
        assert_eq!(api_error(alice.call(method, path, b).expect_err(path)).0, 403, "{method} {path} as user");
    }
    assert_eq!(api_error(anon.call("GET", "/api/v1/me", None).expect_err("me")).0, 401);
    let (status, body) = server.raw("GET", "/api/v1/me", None, "text/plain", Vec::new());
    assert_eq!(status, 401);
    let err: serde_json::Value = serde_json::from_str(&body).expect("json error");
    assert_eq!(err["error"], "unauthorized");
    assert!(err["message"].as_str().is_some_and(|m| m.contains("token")));
}

#[test]
fn admin_manages_accounts() {
    let server = TestServer::start();
    let admin = server.admin();
    let created = admin
        .call_json(
            "POST",
            "/api/v1/users",
            Some(&json!({"username": "Carol", "password": "carol-password", "display_name": "Carol C",
                "email": "carol@example.org", "title": "Engineer", "department": "R&D", "phone": "+1 555", "roles": ["compliance"]})),
        )
        .expect("create");
    assert_eq!(created["username"], "carol");
    assert_eq!(created["roles"], json!(["user", "compliance"]));
    assert_eq!(created["department"], "R&D");
    let dup = json!({"username": "carol", "password": "carol-password"});
    assert_eq!(api_error(admin.call("POST", "/api/v1/users", Some(&dup)).expect_err("dup")), (409, "conflict".into()));
    for bad in [
        json!({"username": "bad name", "password": "long-enough"}),
        json!({"username": "dave", "password": "short"}),
        json!({"username": "dave", "password": "long-enough", "email": "nope"}),
        json!({"username": "dave", "password": "long-enough", "roles": ["king"]}),
    ] {
        assert_eq!(api_error(admin.call("POST", "/api/v1/users", Some(&bad)).expect_err("bad")).0, 400, "{bad}");
    }

    let carol = server.client(Some(&server.login("carol", "carol-password")));
    let updated =
        admin.call_json("PATCH", "/api/v1/users/carol", Some(&json!({"title": "Lead", "phone": ""}))).expect("patch");
    assert_eq!((updated["title"].as_str(), updated["phone"].as_str()), (Some("Lead"), None));
    assert_eq!(admin.call_json("GET", "/api/v1/users/carol", None).expect("get")["title"], "Lead");

    admin.call_json("POST", "/api/v1/users/carol/disable", None).expect("disable");
    assert_eq!(api_error(carol.call("GET", "/api/v1/me", None).expect_err("disabled")).0, 401, "sessions end");
    assert_eq!(api_error(server.client(None).login("carol", "carol-password").expect_err("disabled")).0, 403);
    admin.call_json("POST", "/api/v1/users/carol/enable", None).expect("enable");

    admin.call("PUT", "/api/v1/users/carol/password", Some(&json!({"password": "new-carol-pw"}))).expect("reset");
    assert_eq!(api_error(server.client(None).login("carol", "carol-password").expect_err("old")).0, 401);
    server.login("carol", "new-carol-pw");

    admin.call("DELETE", "/api/v1/users/carol", None).expect("delete");
    assert_eq!(api_error(admin.call("GET", "/api/v1/users/carol", None).expect_err("gone")).0, 404);
    assert_eq!(api_error(admin.call("DELETE", "/api/v1/users/nobody", None).expect_err("unknown")).0, 404);

    assert_eq!(api_error(admin.call("DELETE", "/api/v1/users/admin", None).expect_err("last admin")).0, 409);
    let demote = json!({"roles": ["user"]});
    assert_eq!(api_error(admin.call("PATCH", "/api/v1/users/admin", Some(&demote)).expect_err("last admin")).0, 409);
}

#[test]
fn users_page_through_the_list() {
    let server = TestServer::start();
    let admin = server.admin();
    for n in 0..5 {
        admin
            .call_json("POST", "/api/v1/users", Some(&json!({"username": format!("u{n}"), "password": "password-1"})))
            .expect("create");
    }
    let first = admin.call_json("GET", "/api/v1/users?limit=4", None).expect("page 1");
    assert_eq!(first["users"].as_array().map(Vec::len), Some(4));
    let next = first["next"].as_str().expect("next");
    let second = admin.call_json("GET", &format!("/api/v1/users?limit=4&after={next}"), None).expect("page 2");
    let names: Vec<&str> =
        second["users"].as_array().expect("users").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["u3", "u4"]);
    assert!(second["next"].is_null());
    assert_eq!(api_error(admin.call("GET", "/api/v1/users?limit=0", None).expect_err("bad limit")).0, 400);
}

#[test]
fn users_edit_their_own_card_and_password() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let other_session = server.client(Some(&server.login("alice", "alice-password")));
    let me = alice.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": "Alice A."}))).expect("patch me");
    assert_eq!(me["display_name"], "Alice A.");
    let escalate = json!({"roles": ["admin"]});
    assert_eq!(api_error(alice.call("PATCH", "/api/v1/me", Some(&escalate)).expect_err("no self-promotion")).0, 403);

    let wrong = json!({"current_password": "nope-nope", "new_password": "alice-new-pw"});
    assert_eq!(api_error(alice.call("PUT", "/api/v1/me/password", Some(&wrong)).expect_err("wrong current")).0, 401);
    let change = json!({"current_password": "alice-password", "new_password": "alice-new-pw"});
    alice.call("PUT", "/api/v1/me/password", Some(&change)).expect("change");
    alice.call_json("GET", "/api/v1/me", None).expect("this session stays");
    assert_eq!(api_error(other_session.call("GET", "/api/v1/me", None).expect_err("others end")).0, 401);
    server.login("alice", "alice-new-pw");
}

#[test]
fn malformed_requests_get_clear_errors() {
    let server = TestServer::start();
    let token = server.login("admin", ADMIN_PASSWORD);
    let cases: [(&str, &str, Vec<u8>); 5] = [
        ("/api/v1/login", "application/json", b"{not json".to_vec()),
        ("/api/v1/login", "application/json", br#"{"username":"admin"}"#.to_vec()),
        ("/api/v1/login", "application/json", br#"{"username":"admin","password":"x","extra":1}"#.to_vec()),
        ("/api/v1/login", "text/plain", br#"{"username":"admin","password":"x"}"#.to_vec()),
        ("/api/v1/users", "application/json", b"\xff\xfe".to_vec()),
    ];
    for (path, ct, body) in cases {
        let (status, text) = server.raw("POST", path, Some(&token), ct, body);
        assert!(status == 400 || status == 415, "{path}: {status} {text}");
        let err: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("json error body: {text}"));
        assert_eq!(err["error"], "bad_request", "{text}");
    }
    // A body over the limit is refused from its Content-Length, before it is read.
    let addr = server.url.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: 2000000\r\nconnection: close\r\n\r\n"
    );
    std::io::Write::write_all(&mut conn, head.as_bytes()).expect("send head");
    let mut answer = String::new();
    let _ = std::io::Read::read_to_string(&mut conn, &mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let (status, _) = server.raw("GET", "/api/v1/nothing-here", Some(&token), "text/plain", Vec::new());
    assert_eq!(status, 404);
    server.client(None).call("GET", "/healthz", None).expect("still serving");
}

#[test]
fn openapi_lists_every_route() {
    let server = TestServer::start();
    let doc = server.client(None).call_json("GET", "/api/v1/openapi.json", None).expect("openapi");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    let mut paths: Vec<String> = doc["paths"].as_object().expect("paths").keys().cloned().collect();
    paths.sort();
    assert_eq!(
        paths,
        [
            "/api/v1/admin/app-tokens",
            "/api/v1/admin/app-tokens/{name}",
            "/api/v1/admin/archive/policy",
            "/api/v1/admin/archive/policy/{user}",
            "/api/v1/admin/archive/purge",
            "/api/v1/admin/archive/settings",
            "/api/v1/admin/federation",
            "/api/v1/admin/federation/domains/{domain}",
            "/api/v1/admin/login-addresses/{address}/unlock",
            "/api/v1/admin/plugins",
            "/api/v1/admin/plugins/inspect",
            "/api/v1/admin/plugins/{name}",
            "/api/v1/admin/plugins/{name}/config",
            "/api/v1/admin/plugins/{name}/disable",
            "/api/v1/admin/plugins/{name}/enable",
            "/api/v1/admin/plugins/{name}/grants",
            "/api/v1/admin/plugins/{name}/limits",
            "/api/v1/admin/plugins/{name}/logs",
            "/api/v1/admin/pool",
            "/api/v1/admin/settings",
            "/api/v1/archive/attachments/{id}",
            "/api/v1/archive/export",
            "/api/v1/archive/records",
            "/api/v1/archive/status",
            "/api/v1/attachments",
            "/api/v1/attachments/{id}",
            "/api/v1/contacts",
            "/api/v1/contacts/groups",
            "/api/v1/contacts/groups/{id}",
            "/api/v1/contacts/{username}",
            "/api/v1/conversations",
            "/api/v1/conversations/{id}",
            "/api/v1/conversations/{id}/leave",
            "/api/v1/conversations/{id}/messages",
            "/api/v1/conversations/{id}/messages/{message}",
            "/api/v1/conversations/{id}/messages/{message}/reactions/{emoji}",
            "/api/v1/conversations/{id}/mute",
            "/api/v1/conversations/{id}/participants",
            "/api/v1/conversations/{id}/read",
            "/api/v1/directory",
            "/api/v1/login",
            "/api/v1/logout",
            "/api/v1/me",
            "/api/v1/me/blocked",
            "/api/v1/me/blocked/{username}",
            "/api/v1/me/password",
            "/api/v1/me/picture",
            "/api/v1/me/presence",
            "/api/v1/me/presence/state",
            "/api/v1/presence",
            "/api/v1/presence/states",
            "/api/v1/rooms",
            "/api/v1/rooms/{id}",
            "/api/v1/rooms/{id}/follow",
            "/api/v1/rooms/{id}/join",
            "/api/v1/rooms/{id}/leave",
            "/api/v1/rooms/{id}/members/{username}",
            "/api/v1/rooms/{id}/messages",
            "/api/v1/rooms/{id}/messages/{message}",
            "/api/v1/rooms/{id}/messages/{message}/reactions/{emoji}",
            "/api/v1/rooms/{id}/mute",
            "/api/v1/rooms/{id}/read",
            "/api/v1/search",
            "/api/v1/stream",
            "/api/v1/users",
            "/api/v1/users/{username}",
            "/api/v1/users/{username}/calendar",
            "/api/v1/users/{username}/disable",
            "/api/v1/users/{username}/enable",
            "/api/v1/users/{username}/password",
            "/api/v1/users/{username}/phone",
            "/api/v1/users/{username}/picture",
            "/api/v1/users/{username}/presence",
            "/api/v1/users/{username}/presence.svg",
            "/api/v1/users/{username}/unlock",
            "/healthz",
            "/metrics",
        ]
    );
    let methods = doc["paths"]["/api/v1/users/{username}"].as_object().expect("methods");
    for m in ["get", "patch", "delete"] {
        assert!(methods.contains_key(m), "{m} documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[test]
fn metrics_are_prometheus_text_for_admins() {
    let server = TestServer::start();
    let _ = server.client(None).login("admin", "wrong-password");
    let admin_token = server.login("admin", ADMIN_PASSWORD);
    let (status, text) = server.raw("GET", "/metrics", Some(&admin_token), "text/plain", Vec::new());
    assert_eq!(status, 200);
    for line in [
        "halo_logins_total{result=\"invalid\"} 1",
        "halo_logins_total{result=\"ok\"} 1",
        "halo_users 1",
        "halo_ws_connections 0",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(
        text.contains("halo_http_requests_total{method=\"POST\",route=\"/api/v1/login\",status=\"401\"} 1"),
        "{text}"
    );
    assert!(text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).all(|l| l.starts_with("halo_")), "{text}");

    let public = TestServer::with_config("public_metrics = true\n");
    let (status, _) = public.raw("GET", "/metrics", None, "text/plain", Vec::new());
    assert_eq!(status, 200);
}

#[test]
fn clean_shutdown_removes_the_local_credentials() {
    let mut server = TestServer::start();
    let local = server.data_dir().join("local.json");
    assert!(local.exists());
    assert!(server.stop().success());
    assert!(!local.exists());
}

//! What the services decide, answered through a real `halo serve`: refusals keep their
//! statuses and error codes on the paths that moved out of the handlers (pictures, the
//! presence document, calendar input, app tokens, the directory), and one presence change,
//! shared by its watchers, reaches a JSON and a MessagePack socket alike.

mod common;

use common::{TestServer, api_error, read_json};
use serde_json::{Value, json};

const CONFIG: &str = r##"
[presence]
coalesce = "10ms"
max_picture_bytes = 1000
"##;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

fn error_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn refusals_keep_their_status_and_code() {
    let server = TestServer::with_config(CONFIG);
    let ann = server.user("ann");
    let token = server.login("ann", "ann-password");

    // Pictures: too big (413 too_large), not an image (400), none to see (404).
    let big = [PNG, &[0u8; 1000]].concat();
    let (status, body) = server.raw("PUT", "/api/v1/me/picture", Some(&token), "image/png", big);
    assert_eq!((status, error_of(&body).as_str()), (413, "too_large"), "{body}");
    let (status, body) = server.raw("PUT", "/api/v1/me/picture", Some(&token), "image/png", b"GIF? no".to_vec());
    assert_eq!((status, error_of(&body).as_str()), (400, "bad_request"), "{body}");
    let (status, body) = server.raw("GET", "/api/v1/users/ann/picture", Some(&token), "text/plain", Vec::new());
    assert_eq!((status, error_of(&body).as_str()), (404, "not_found"), "{body}");
    let (status, body) = server.raw("PUT", "/api/v1/me/picture", Some(&token), "image/png", PNG.to_vec());
    assert_eq!(status, 200, "{body}");
    let (status, _) = server.raw("DELETE", "/api/v1/me/picture", Some(&token), "text/plain", Vec::new());
    assert_eq!(status, 200);

    // The presence document: a bad field changes nothing.
    let e = ann.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "x", "idle_minutes": 0})));
    assert_eq!(api_error(e.expect_err("idle 0")), (400, "bad_request".into()));
    let mine = ann.call_json("GET", "/api/v1/me/presence", None).expect("mine");
    assert!(mine["presence"].get("note").is_none_or(Value::is_null), "{mine}");
    let mine = ann.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "here", "idle_minutes": 9})));
    assert_eq!(mine.expect("patch")["idle_minutes"], 9);

    // Calendar input: the subject is checked.
    let long = json!({"activity": "in-a-meeting", "subject": "s".repeat(201)});
    let e = ann.call_json("PUT", "/api/v1/users/ann/calendar", Some(&long)).expect_err("long subject");
    assert_eq!(api_error(e), (400, "bad_request".into()));
    let e = ann.call_json("PUT", "/api/v1/users/nobody/calendar", Some(&json!({"activity": null})));
    assert_eq!(api_error(e.expect_err("no such user")), (404, "not_found".into()));

    // App tokens: checked, unique, revoked once; only admins issue them.
    let admin = server.admin();
    let issue = |name: &str, scopes: Value| {
        admin.call_json("POST", "/api/v1/admin/app-tokens", Some(&json!({"name": name, "scopes": scopes})))
    };
    assert_eq!(api_error(issue(" ", json!(["presence:read"])).expect_err("name")), (400, "bad_request".into()));
    assert_eq!(api_error(issue("crm", json!(["root"])).expect_err("scope")), (400, "bad_request".into()));
    issue("crm", json!(["presence:read"])).expect("issue");
    assert_eq!(api_error(issue("crm", json!(["phone:write"])).expect_err("taken")), (409, "conflict".into()));
    admin.call("DELETE", "/api/v1/admin/app-tokens/crm", None).expect("revoke");
    let e = admin.call("DELETE", "/api/v1/admin/app-tokens/crm", None).expect_err("gone");
    assert_eq!(api_error(e), (404, "not_found".into()));
    let e = ann.call_json("GET", "/api/v1/admin/app-tokens", None).expect_err("not an admin");
    assert_eq!(api_error(e), (403, "forbidden".into()));

    // The directory needs something to look for.
    let e = ann.call_json("GET", "/api/v1/directory?q=%20", None).expect_err("empty");
    assert_eq!(api_error(e), (400, "bad_request".into()));
    let found = ann.call_json("GET", "/api/v1/directory?q=ann", None).expect("directory");
    assert_eq!(found["people"][0]["username"], "ann", "{found}");
}

#[test]
fn one_presence_change_reaches_json_and_msgpack_watchers_alike() {
    let server = TestServer::with_config(CONFIG);
    for n in ["ann", "bob", "cat"] {
        server.user(n);
    }
    let tokens: Vec<String> = ["ann", "bob", "cat"].iter().map(|n| server.login(n, &format!("{n}-password"))).collect();
    for t in &tokens[1..] {
        let c = server.client(Some(t));
        c.call_json("POST", "/api/v1/contacts", Some(&json!({"username": "ann", "level": "colleagues"}))).expect("add");
    }
    let (_ann_device, _) = server.ws(&tokens[0], "ann");
    let (mut bob, _) = server.ws(&tokens[1], "json");
    let mut cat = server.try_ws("?endpoint=msgpack", Some(&tokens[2]), Some("halo.msgpack")).expect("msgpack ws");
    assert_eq!(read_json(&mut cat)["type"], "hello");
    let ann = server.client(Some(&tokens[0]));
    ann.call_json("PUT", "/api/v1/me/presence/state", Some(&json!({"state": "busy"}))).expect("busy");
    let busy = |ws: &mut common::Ws| loop {
        let v = read_json(ws);
        if v["type"] == "presence" && v["presence"]["username"] == "ann" && v["presence"]["state"] == "busy" {
            return v;
        }
    };
    let (json_frame, msgpack_frame) = (busy(&mut bob), busy(&mut cat));
    assert_eq!(json_frame, msgpack_frame, "the same frame in either encoding");
}

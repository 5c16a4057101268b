//! The `halo` command-line tool against a real server: local discovery, --server/--token, errors.

mod common;

use std::io::Write;
use std::process::{Output, Stdio};

use common::{ADMIN_PASSWORD, TestServer, fails, halo, ok};

fn run(server: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = halo();
    cmd.arg("user").args(args).arg("--data-dir").arg(server.data_dir());
    cmd.env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn halo");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("halo ran")
}

#[test]
fn user_verbs_find_the_local_server() {
    let server = TestServer::start();
    let out = ok(run(
        &server,
        &["add", "bob", "--display-name", "Bob B", "--email", "bob@example.org", "--password-stdin"],
        Some("bob-password\n"),
    ));
    assert!(out.contains("created bob"), "{out}");
    server.login("bob", "bob-password");

    let list = ok(run(&server, &["list"], None));
    assert!(list.contains("bob") && list.contains("Bob B") && list.contains("admin"), "{list}");
    let json: serde_json::Value = serde_json::from_str(&ok(run(&server, &["list", "--json"], None))).expect("json");
    assert_eq!(json.as_array().map(Vec::len), Some(2));
    assert!(ok(run(&server, &["show", "bob"], None)).contains("bob@example.org"));

    ok(run(&server, &["disable", "bob"], None));
    assert_eq!(common::api_error(server.client(None).login("bob", "bob-password").expect_err("disabled")).0, 403);
    ok(run(&server, &["enable", "bob"], None));
    ok(run(&server, &["passwd", "bob", "--password-stdin"], Some("bob-new-password\n")));
    server.login("bob", "bob-new-password");
    ok(run(&server, &["remove", "bob"], None));
    let err = fails(run(&server, &["show", "bob"], None));
    assert!(err.contains("no user named") && err.contains("404"), "{err}");
}

#[test]
fn user_verbs_take_server_and_token() {
    let server = TestServer::start();
    let token = server.login("admin", ADMIN_PASSWORD);
    let mut cmd = halo();
    cmd.args(["user", "add", "carol", "--admin", "--password-stdin", "--data-dir", "/nonexistent"]);
    cmd.args(["--server", &server.url, "--token", &token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child.stdin.take().expect("stdin").write_all(b"carol-password\n").expect("write");
    ok(child.wait_with_output().expect("ran"));
    let me =
        server.client(Some(&server.login("carol", "carol-password"))).call_json("GET", "/api/v1/me", None).expect("me");
    assert_eq!(me["roles"], serde_json::json!(["user", "admin"]));

    let out = halo().args(["user", "list", "--server", &server.url, "--token", "halo_wrong"]).output().expect("ran");
    let err = fails(out);
    assert!(err.contains("401"), "{err}");
    let user_token = server.login("carol", "carol-password");
    let out =
        halo().args(["user", "list", "--server", &server.url]).env("HALO_TOKEN", user_token).output().expect("ran");
    ok(out);
}

#[test]
fn user_verbs_explain_failures() {
    let server = TestServer::start();
    let err = fails(run(&server, &["add", "dave"], None));
    assert!(err.contains("--password-stdin"), "no terminal to prompt on: {err}");
    let err = fails(run(&server, &["add", "dave", "--password-stdin"], Some("short\n")));
    assert!(err.contains("password must be"), "{err}");
    let err = fails(run(&server, &["remove", "admin"], None));
    assert!(err.contains("last enabled admin"), "{err}");

    let empty = tempfile::tempdir().expect("tempdir");
    let out = halo().args(["user", "list", "--data-dir"]).arg(empty.path()).output().expect("ran");
    let err = fails(out);
    assert!(err.contains("no local server found"), "{err}");
    let out =
        halo().args(["user", "list", "--server", "http://127.0.0.1:9"]).env_remove("HALO_TOKEN").output().expect("ran");
    assert!(fails(out).contains("--token"));
    let out = halo().args(["user", "list", "--server", "http://127.0.0.1:9", "--token", "x"]).output().expect("ran");
    assert!(fails(out).contains("cannot reach"));
    assert!(fails(halo().args(["user"]).output().expect("ran")).contains("Usage"));
}

#[test]
fn serve_refuses_a_bad_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("halo.toml");
    std::fs::write(&path, "listn = \"127.0.0.1:1\"\n").expect("write");
    let out = halo().arg("serve").arg("--config").arg(&path).current_dir(dir.path()).output().expect("ran");
    let err = fails(out);
    assert!(err.contains("listn"), "the misspelt key is named: {err}");
}

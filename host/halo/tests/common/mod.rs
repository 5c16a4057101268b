//! Test harness: runs the real `halo serve` on 127.0.0.1:0 with a temp data dir and talks to it
//! over HTTP and WebSocket.
#![allow(dead_code)]

pub mod fed;
pub mod ingest;
pub mod nats;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halo_client::Client;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;
use tungstenite::stream::MaybeTlsStream;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub type Ws = tungstenite::WebSocket<MaybeTlsStream<std::net::TcpStream>>;

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub url: String,
    pub local_token: String,
    child: Option<Child>,
    config: Option<String>,
    extra_args: Vec<String>,
    ca: Option<Vec<u8>>,
    /// Write the server's stderr (its log) to [`TestServer::log_path`] instead of the test's.
    capture_log: bool,
}

pub fn halo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_halo"))
}

/// `halo plugin ARGS` for `server`: the CLI finds it through its data dir's `local.json`.
pub fn plugin_cli(server: &TestServer, args: &[&str]) -> Command {
    let mut c = halo();
    c.arg("plugin")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN");
    c
}

/// Runs `c` to its end.
pub fn run(mut c: Command) -> std::process::Output {
    c.output().expect("halo ran")
}

/// `halo plugin info NAME --json`.
pub fn plugin_info(server: &TestServer, name: &str) -> Value {
    let out = ok(run(plugin_cli(server, &["info", name, "--json"])));
    serde_json::from_str(out.lines().next().expect("json")).expect("json")
}

impl TestServer {
    /// A server with default settings and admin password [`ADMIN_PASSWORD`].
    pub fn start() -> Self {
        Self::with_config("")
    }

    /// A server whose `halo.toml` holds `toml`.
    pub fn with_config(toml: &str) -> Self {
        Self::build(toml, Vec::new(), None, true)
    }

    pub fn build(toml: &str, extra_args: Vec<String>, ca: Option<Vec<u8>>, admin_password: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = (!toml.is_empty()).then(|| toml.to_owned());
        let mut s = Self {
            dir,
            url: String::new(),
            local_token: String::new(),
            child: None,
            config,
            extra_args,
            ca,
            capture_log: false,
        };
        s.spawn(admin_password);
        s
    }

    /// A server whose `halo.toml` holds `toml`, logging (at `warn`) to [`TestServer::log_path`].
    pub fn with_log_capture(toml: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = (!toml.is_empty()).then(|| toml.to_owned());
        let (url, local_token) = (String::new(), String::new());
        let mut s =
            Self { dir, url, local_token, child: None, config, extra_args: Vec::new(), ca: None, capture_log: true };
        s.spawn(true);
        s
    }

    /// Where a server started with [`TestServer::with_log_capture`] writes its log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// A server whose data directory is first handed to `setup` (e.g. to mount a file system
    /// on it); the directory exists, empty, when `setup` runs.
    pub fn with_setup(toml: &str, setup: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = (!toml.is_empty()).then(|| toml.to_owned());
        let extra_args = Vec::new();
        let mut s = Self {
            dir,
            url: String::new(),
            local_token: String::new(),
            child: None,
            config,
            extra_args,
            ca: None,
            capture_log: false,
        };
        std::fs::create_dir_all(s.data_dir()).expect("data dir");
        setup(&s.data_dir());
        s.spawn(true);
        s
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self, admin_password: bool) {
        let data = self.data_dir();
        let _ = std::fs::remove_file(data.join("local.json"));
        let mut cmd = halo();
        cmd.arg("serve").arg("--data-dir").arg(&data).arg("--listen").arg("127.0.0.1:0");
        if let Some(toml) = &self.config {
            let path = self.dir.path().join("halo.toml");
            std::fs::write(&path, toml).expect("write halo.toml");
            cmd.arg("--config").arg(path);
        }
        cmd.args(&self.extra_args)
            .current_dir(self.dir.path())
            .env_remove("RUST_LOG")
            .env("HALO_LOG", std::env::var("HALO_TEST_LOG").unwrap_or_else(|_| "warn".into()));
        if admin_password {
            cmd.env("HALO_ADMIN_PASSWORD", ADMIN_PASSWORD);
        } else {
            cmd.env_remove("HALO_ADMIN_PASSWORD");
        }
        let stderr = if self.capture_log {
            let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
            Stdio::from(log)
        } else {
            Stdio::inherit()
        };
        let child = cmd.stdout(Stdio::null()).stderr(stderr).spawn().expect("spawn halo");
        self.child = Some(child);
        let local = self.wait_for_local(&data.join("local.json"));
        self.url = local["url"].as_str().expect("url").to_owned();
        self.local_token = local["token"].as_str().expect("token").to_owned();
        self.wait_healthy();
    }

    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.client(None).call("GET", "/healthz", None).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("halo did not become healthy");
    }

    /// `kill -9`, then start again on the same data dir.
    pub fn crash_and_restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("wait");
        }
        self.spawn(true);
    }

    /// `kill -9`, leaving it down ([`TestServer::restart`] starts it again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9");
            c.wait().expect("wait");
        }
    }

    /// Starts again on the same data dir after [`TestServer::stop`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn(true);
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().expect("wait")
    }

    pub fn client(&self, token: Option<&str>) -> Client {
        Client::new(&self.url, token.map(str::to_owned), self.ca.as_deref()).expect("client")
    }

    pub fn login(&self, user: &str, password: &str) -> String {
        let resp = self.client(None).login(user, password).unwrap_or_else(|e| panic!("login {user}: {e}"));
        resp["token"].as_str().expect("token").to_owned()
    }

    pub fn admin(&self) -> Client {
        self.client(Some(&self.login("admin", ADMIN_PASSWORD)))
    }

    /// Creates `name` with password `<name>-password` and returns a client logged in as them.
    pub fn user(&self, name: &str) -> Client {
        let body = json!({"username": name, "password": format!("{name}-password")});
        self.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("create user");
        self.client(Some(&self.login(name, &format!("{name}-password"))))
    }

    /// Raw HTTP for bad-input cases: `(status, body)`.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> (u16, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.header("content-type", content_type).body(body).expect("request");
        let resp = agent.run(req).expect("http");
        let status = resp.status().as_u16();
        (status, resp.into_body().read_to_string().unwrap_or_default())
    }

    fn ws_request(
        &self,
        query: &str,
        token: Option<&str>,
        protocol: Option<&str>,
    ) -> tungstenite::handshake::client::Request {
        let url = format!("{}/api/v1/stream{query}", self.url.replacen("http", "ws", 1));
        let mut req = url.into_client_request().expect("ws request");
        if let Some(t) = token {
            req.headers_mut().insert("authorization", format!("Bearer {t}").parse().expect("header"));
        }
        if let Some(p) = protocol {
            req.headers_mut().insert("sec-websocket-protocol", p.parse().expect("header"));
        }
        req
    }

    /// Opens a stream; `Err(status)` when the handshake is refused.
    pub fn try_ws(&self, query: &str, token: Option<&str>, protocol: Option<&str>) -> Result<Ws, u16> {
        match tungstenite::connect(self.ws_request(query, token, protocol)) {
            Ok((mut ws, _)) => {
                if let MaybeTlsStream::Plain(s) = ws.get_mut() {
                    s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
                }
                Ok(ws)
            }
            Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }

    /// Opens a JSON stream and reads its `hello`.
    pub fn ws(&self, token: &str, endpoint: &str) -> (Ws, Value) {
        let mut ws = self.try_ws(&format!("?endpoint={endpoint}"), Some(token), None).expect("ws");
        let hello = read_json(&mut ws);
        assert_eq!(hello["type"], "hello", "{hello}");
        (ws, hello)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TestServer {
    /// Waits for the started server's `local.json`; fails at once if the server exits first
    /// (its stderr, inherited, says why).
    fn wait_for_local(&mut self, path: &Path) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(v) = serde_json::from_str(&text)
            {
                return v;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                panic!("halo serve exited before it was ready: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not appear", path.display());
    }
}

/// Reads the next data frame as JSON, skipping pings.
pub fn read_json(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("read frame") {
            tungstenite::Message::Text(t) => return serde_json::from_str(&t).expect("json frame"),
            tungstenite::Message::Binary(b) => return rmp_serde::from_slice(&b).expect("msgpack frame"),
            tungstenite::Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

/// Sends a JSON request and reads the answer (a `reply` or `error`), skipping events.
pub fn request(ws: &mut Ws, frame: Value) -> Value {
    ws.send(tungstenite::Message::Text(frame.to_string().into())).expect("send");
    next_answer(ws)
}

/// Reads until a `reply` or `error` frame.
pub fn next_answer(ws: &mut Ws) -> Value {
    loop {
        let v = read_json(ws);
        if v["type"] == "reply" || v["type"] == "error" {
            return v;
        }
    }
}

/// Reads until the server closes; returns the close code and reason.
pub fn read_close(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Close(Some(c))) => return (c.code.into(), c.reason.to_string()),
            Ok(tungstenite::Message::Close(None)) => return (1005, String::new()),
            Ok(_) => {}
            Err(e) => panic!("expected a close frame, got {e}"),
        }
    }
}

/// The error code of an API error.
pub fn api_error(e: halo_client::ClientError) -> (u16, String) {
    match e {
        halo_client::ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other}"),
    }
}

/// A WebSocket client that sets events aside while it waits for replies.
pub struct Peer {
    pub ws: Ws,
    pub hello: Value,
    events: std::collections::VecDeque<Value>,
    next_id: u64,
}

impl Peer {
    /// Connects `token` as endpoint `name` and reads the hello.
    pub fn connect(server: &TestServer, token: &str, name: &str) -> Self {
        let (ws, hello) = server.ws(token, name);
        Self { ws, hello, events: Default::default(), next_id: 1 }
    }

    fn read(&mut self) -> Value {
        read_json(&mut self.ws)
    }

    /// Sends a request (an `id` is added) and returns its reply or error.
    pub fn call(&mut self, mut frame: Value) -> Value {
        let id = format!("r{}", self.next_id);
        self.next_id += 1;
        frame["id"] = json!(id);
        self.ws.send(tungstenite::Message::Text(frame.to_string().into())).expect("send");
        loop {
            let v = self.read();
            if (v["type"] == "reply" || v["type"] == "error") && v["id"] == json!(id) {
                return v;
            }
            self.events.push_back(v);
        }
    }

    /// `call`, expecting a reply; returns its result.
    pub fn ok(&mut self, frame: Value) -> Value {
        let v = self.call(frame.clone());
        assert_eq!(v["type"], "reply", "{frame} -> {v}");
        v["result"].clone()
    }

    /// `call`, expecting an error; returns its code.
    pub fn err(&mut self, frame: Value) -> String {
        let v = self.call(frame.clone());
        assert_eq!(v["type"], "error", "{frame} -> {v}");
        v["code"].as_str().unwrap_or_default().to_owned()
    }

    /// The next event of type `kind` (earlier events of other types stay queued).
    pub fn event(&mut self, kind: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["type"] == kind) {
            return self.events.remove(i).expect("present");
        }
        loop {
            let v = self.read();
            if v["type"] == kind {
                return v;
            }
            self.events.push_back(v);
        }
    }

    /// Asserts that no event of type `kind` arrives within `wait`.
    pub fn no_event(&mut self, kind: &str, wait: Duration) {
        self.none_matching(wait, |v| v["type"] == kind);
    }

    /// Asserts that no queued or arriving (within `wait`) event matches `pred`.
    pub fn none_matching(&mut self, wait: Duration, pred: impl Fn(&Value) -> bool) {
        if let Some(e) = self.events.iter().find(|e| pred(e)) {
            panic!("unexpected event {e}");
        }
        if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
            s.set_read_timeout(Some(wait)).expect("timeout");
        }
        while let Ok(msg) = self.ws.read() {
            if let tungstenite::Message::Text(t) = msg {
                let v: Value = serde_json::from_str(&t).expect("json");
                assert!(!pred(&v), "unexpected event {v}");
                self.events.push_back(v);
            }
        }
        if let MaybeTlsStream::Plain(s) = self.ws.get_mut() {
            s.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        }
    }
}

/// Waits for a `presence` event about `user` matching `pred`.
pub fn wait_presence(peer: &mut Peer, user: &str, pred: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..60 {
        let e = peer.event("presence");
        if e["presence"]["username"] == user && pred(&e["presence"]) {
            return e["presence"].clone();
        }
    }
    panic!("no matching presence of {user}");
}

/// A command's output, which must show success; returns stdout and stderr.
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A command's output, which must show failure; returns stderr.
pub fn fails(out: std::process::Output) -> String {
    assert!(!out.status.success(), "should fail: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The state `id` in the server's catalog (`GET /api/v1/presence/states`), if listed.
pub fn listed_state(server: &TestServer, id: &str) -> Option<Value> {
    let states = server.client(None).call_json("GET", "/api/v1/presence/states", None).expect("states");
    states["states"].as_array().expect("list").iter().find(|s| s["id"] == id).cloned()
}

/// A file of the repository (built plugins, examples).
pub fn component(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel);
    assert!(p.exists(), "{} is missing: run `cargo xtask plugins`", p.display());
    p
}

/// A first-party or test plugin built from `plugins/`.
pub fn rust_plugin(name: &str) -> PathBuf {
    component(&format!("plugins/target/wasm32-wasip2/release/{name}.wasm"))
}

/// Polls `f` every 50 ms until it yields a value, for at most `secs` seconds.
pub fn wait_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

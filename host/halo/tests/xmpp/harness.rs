//! What the XMPP federation tests share: a real Prosody on loopback (hosting the component,
//! or speaking server-to-server), an XMPP user driven through slixmpp (`client.py`), a fake
//! XEP-0114 server for hostile input, and Halo with the `xmpp` adapter linked to it.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::{self, Peer, TestServer, rust_plugin, wait_presence, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

/// The Halo component's domain on the XMPP side: `alice` is `alice@halo.localhost` there.
pub const COMPONENT: &str = "halo.localhost";
/// The component secret shared by Prosody and the adapter.
pub const SECRET: &str = "component-secret-for-tests";
/// bob@localhost's password.
pub const BOB_PASSWORD: &str = "bob-xmpp-password";

// ----- prerequisites -----

pub fn prosody_installed() -> bool {
    Command::new("sh").args(["-c", "command -v prosody"]).output().is_ok_and(|o| o.status.success())
}

pub fn slixmpp_installed() -> bool {
    Command::new("python3").args(["-c", "import slixmpp"]).output().is_ok_and(|o| o.status.success())
}

/// Whether Prosody and slixmpp are there. Missing ones skip the test (with a note), or fail it
/// under CI, which installs them.
pub fn prerequisites(test: &str) -> bool {
    let mut missing = Vec::new();
    if !prosody_installed() {
        missing.push("prosody (apt-get install prosody)");
    }
    if !slixmpp_installed() {
        missing.push("slixmpp (python3 -m pip install slixmpp==1.17.0)");
    }
    if missing.is_empty() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI must have {} (.ci/run installs it)", missing.join(" and "));
    // Straight to stderr, past the test harness's capture, so the skip shows.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {} not installed", missing.join(" and "));
    false
}

/// Plugin calls may take up to 2 s here instead of 50 ms: the deadline is wall-clock time, and
/// on a loaded 2-core machine a call the scheduler sets aside can pass 50 ms. A trapped
/// adapter is restarted, which drops its connection mid-handshake (the hostile-server test
/// then saw "the adapter closed before …"). Nothing here tests the deadline (plugins.rs does).
pub const LIMITS: &str = "[plugins.limits]\ndeadline = \"2s\"\n";

// ----- Prosody -----

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    free_port_on([127, 0, 0, 1])
}

/// A port on `ip` that was free a moment ago.
pub fn free_port_on(ip: [u8; 4]) -> u16 {
    TcpListener::bind(std::net::SocketAddr::from((ip, 0))).expect("bind").local_addr().expect("addr").port()
}

/// A Lua string literal.
pub fn lua(s: &str) -> String {
    format!("{s:?}")
}

/// What a [`Prosody`] serves besides c2s.
enum Setup {
    /// The component `halo.localhost`, no s2s.
    Component,
    /// s2s for `prosody.test`, presenting this (cert, key).
    S2s { cert: (PathBuf, PathBuf) },
}

/// A Prosody on loopback, killed on drop. Either [`Prosody::start`]: virtual host `localhost`
/// (c2s, plain TCP, user `bob`), the component `halo.localhost` on its own port, no s2s; or
/// [`Prosody::start_s2s`]: `prosody.test` with c2s on 127.0.0.1 (plain, user `bob`) and s2s on
/// 127.0.0.3.
pub struct Prosody {
    pub dir: tempfile::TempDir,
    pub c2s: u16,
    /// The component port (0 for an s2s Prosody).
    pub component: u16,
    /// The s2s port on 127.0.0.3 (0 for a component Prosody).
    pub s2s: u16,
    pub child: Option<Child>,
    setup: Setup,
}

impl Prosody {
    /// A Prosody with the component `halo.localhost`.
    pub fn start() -> Self {
        Self::launch(Setup::Component, "")
    }

    /// A Prosody serving `prosody.test`: s2s on 127.0.0.3 with STARTTLS required and dialback,
    /// presenting `cert`, resolving names through the hosts file `hosts` (e.g. to find Halo).
    pub fn start_s2s(cert: &(PathBuf, PathBuf), hosts: &str) -> Self {
        Self::launch(Setup::S2s { cert: cert.clone() }, hosts)
    }

    fn launch(setup: Setup, hosts: &str) -> Self {
        let (prefix, host) = match setup {
            Setup::Component => ("halo-test-prosody-", "localhost"),
            Setup::S2s { .. } => ("halo-test-prosody-s2s-", "prosody%2etest"),
        };
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().expect("tempdir");
        // Internal storage, as Prosody writes it: data/<host>/accounts/<user>.dat.
        let accounts = dir.path().join(format!("data/{host}/accounts"));
        std::fs::create_dir_all(&accounts).expect("accounts dir");
        std::fs::write(
            accounts.join("bob.dat"),
            format!("return {{\n\t[\"password\"] = {};\n}};\n", lua(BOB_PASSWORD)),
        )
        .expect("account");
        if let Setup::S2s { .. } = setup {
            std::fs::write(dir.path().join("hosts"), hosts).expect("hosts");
        }
        let mut p = Prosody { dir, c2s: 0, component: 0, s2s: 0, child: None, setup };
        for attempt in 0..3 {
            p.c2s = free_port();
            match p.setup {
                Setup::Component => p.component = free_port(),
                Setup::S2s { .. } => p.s2s = free_port_on([127, 0, 0, 3]),
            }
            std::fs::write(p.config_path(), p.config()).expect("config");
            match p.spawn() {
                Ok(()) => return p,
                Err(e) if attempt < 2 => eprintln!("prosody did not start ({e}); trying other ports"),
                Err(e) => panic!("prosody did not start: {e}"),
            }
        }
        unreachable!()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    /// The `prosody.cfg.lua` for this Prosody's ports.
    pub fn config(&self) -> String {
        match &self.setup {
            Setup::Component => self.component_config(),
            Setup::S2s { cert } => self.s2s_config(cert),
        }
    }

    fn component_config(&self) -> String {
        let d = self.dir.path();
        let path = |name: &str| lua(&d.join(name).display().to_string());
        format!(
            r#"-- Generated by host/halo/tests/xmpp/harness.rs (component). Not for production.
run_as_root = true
pidfile = {pid}
data_path = {data}
plugin_paths = {{}}
certificates = {certs}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = {log} }} }}

interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
s2s_interfaces = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{ {component} }}
component_interfaces = {{ "127.0.0.1" }}

authentication = "internal_plain"
storage = "internal"
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
s2s_require_encryption = false
allow_registration = false
modules_enabled = {{ "roster", "saslauth", "ping" }}
modules_disabled = {{ "s2s", "s2s_auth_certs", "tls", "register", "http", "bosh", "websocket" }}

VirtualHost "localhost"

Component {domain}
    component_secret = {secret}
"#,
            pid = path("prosody.pid"),
            data = path("data"),
            certs = lua(&d.display().to_string()),
            log = path("prosody.log"),
            c2s = self.c2s,
            component = self.component,
            domain = lua(COMPONENT),
            secret = lua(SECRET),
        )
    }

    fn s2s_config(&self, cert: &(PathBuf, PathBuf)) -> String {
        let d = self.dir.path();
        let path = |name: &str| lua(&d.join(name).display().to_string());
        format!(
            r#"-- Generated by host/halo/tests/xmpp/harness.rs (s2s). Not for production.
run_as_root = true
pidfile = {pid}
data_path = {data}
plugin_paths = {{}}
log = {{ {{ levels = {{ min = "debug" }}, to = "file", filename = {log} }} }}
unbound = {{ hoststxt = {hosts} }}

interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {c2s} }}
c2s_direct_tls_ports = {{}}
s2s_interfaces = {{ "127.0.0.3" }}
s2s_ports = {{ {s2s} }}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}

authentication = "internal_plain"
storage = "internal"
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
s2s_require_encryption = true
s2s_secure_auth = false
s2s_timeout = 15
allow_registration = false
modules_enabled = {{ "roster", "saslauth", "tls", "dialback", "ping", "disco", "presence" }}
modules_disabled = {{ "register", "http", "bosh", "websocket", "s2s_bidi" }}

VirtualHost "prosody.test"
    ssl = {{ certificate = {cert}, key = {key} }}
"#,
            pid = path("prosody.pid"),
            data = path("data"),
            log = path("prosody.log"),
            hosts = path("hosts"),
            c2s = self.c2s,
            s2s = self.s2s,
            cert = lua(&cert.0.display().to_string()),
            key = lua(&cert.1.display().to_string()),
        )
    }

    /// Starts `prosody -F` and waits until both ports accept connections.
    pub fn spawn(&mut self) -> Result<(), String> {
        let console = std::fs::File::create(self.dir.path().join("console.log")).expect("console log");
        let mut child = Command::new("prosody")
            .arg("-F")
            .arg("--config")
            .arg(self.config_path())
            .env("PROSODY_CONFIG", self.config_path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("clone"))
            .stderr(console)
            .spawn()
            .map_err(|e| format!("prosody: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited ({status}):\n{}", self.diagnostics()));
            }
            let up =
                |ip: [u8; 4], port: u16| TcpStream::connect_timeout(&(ip, port).into(), Duration::from_millis(200));
            let other = match self.setup {
                Setup::Component => up([127, 0, 0, 1], self.component),
                Setup::S2s { .. } => up([127, 0, 0, 3], self.s2s),
            };
            if up([127, 0, 0, 1], self.c2s).is_ok() && other.is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not listening after 20 s:\n{}", self.diagnostics()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same ports and data (a port in TIME_WAIT may need a few tries).
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("prosody restart: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => panic!("prosody did not restart: {e}"),
            }
        }
    }

    pub fn diagnostics(&self) -> String {
        ["console.log", "prosody.log"]
            .iter()
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                format!("--- {n}\n{}", lines[lines.len().saturating_sub(60)..].join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.diagnostics());
        }
        self.kill();
    }
}

// ----- the XMPP user (slixmpp) -----

/// `tests/xmpp/client.py`, driven over JSON lines.
pub struct XmppUser {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub rx: mpsc::Receiver<Value>,
    pub events: VecDeque<Value>,
}

impl XmppUser {
    pub fn spawn() -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/xmpp/client.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 client.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(_) => eprintln!("client.py: {line}"),
                }
            }
        });
        let stdin = child.stdin.take();
        let mut user = XmppUser { child, stdin, rx, events: VecDeque::new() };
        user.wait("ready", 30, |e| e["event"] == "ready");
        user
    }

    pub fn cmd(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").and_then(|()| stdin.flush()).expect("write to client.py");
    }

    /// Logs in as bob@localhost and waits for the session.
    pub fn login(&mut self, prosody: &Prosody) {
        self.login_as("bob@localhost/test", prosody);
    }

    /// Logs in as `jid` (bob's password) to `prosody`'s c2s port and waits for the session.
    pub fn login_as(&mut self, jid: &str, prosody: &Prosody) {
        self.cmd(json!({"cmd": "connect", "jid": jid, "password": BOB_PASSWORD,
            "host": "127.0.0.1", "port": prosody.c2s}));
        self.wait("session_start", 30, |e| e["event"] == "session_start");
    }

    /// The first event (seen earlier or arriving within `secs`) matching `pred`, taken out;
    /// the others stay.
    pub fn wait(&mut self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.events.iter().position(&pred) {
            return self.events.remove(i).expect("present");
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(e) if pred(&e) => return e,
                Ok(e) => self.events.push_back(e),
                Err(_) => panic!("the XMPP user saw no {what} within {secs} s; saw {:?}", self.events),
            }
        }
    }

    /// Takes the events that arrived so far matching `pred` out (without waiting).
    pub fn take_matching(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        while let Ok(e) = self.rx.try_recv() {
            self.events.push_back(e);
        }
        let (taken, kept) = std::mem::take(&mut self.events).into_iter().partition(|e| pred(e));
        self.events = kept;
        taken.into_iter().collect()
    }

    /// Takes everything that arrived and forgets it.
    pub fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.events.clear();
    }

    /// Presence from `from` (bare) whose `show` and `status` are these, within 20 s.
    pub fn wait_presence(&mut self, from: &str, show: Option<&str>, status: Option<&str>) -> Value {
        self.wait_presence_within(from, show, status, 20)
    }

    /// [`XmppUser::wait_presence`] within `secs`.
    pub fn wait_presence_within(&mut self, from: &str, show: Option<&str>, status: Option<&str>, secs: u64) -> Value {
        let what = format!("presence of {from} with show {show:?} and status {status:?}");
        self.wait(&what, secs, |e| {
            e["event"] == "presence"
                && e["from"].as_str().is_some_and(|f| f.split('/').next() == Some(from))
                && is_availability(e)
                && e["show"].as_str() == show
                && e["status"].as_str() == status
        })
    }
}

/// Whether a presence event says its sender is available (slixmpp reports an available
/// presence's type as `available` or its show): not unavailable, not a subscription
/// request or answer, not an error or probe. A subscription stanza carries no show or status,
/// so without this a wait for a plain available presence would match a queued `subscribe`.
fn is_availability(e: &Value) -> bool {
    !matches!(
        e["type"].as_str(),
        Some("unavailable" | "subscribe" | "subscribed" | "unsubscribe" | "unsubscribed" | "error" | "probe")
    )
}

impl Drop for XmppUser {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the client exits
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ----- a fake XMPP server -----

/// A fake XMPP server's component port: accepts the adapter, answers its handshake, then sends
/// whatever the test wants.
pub struct Fake {
    listener: TcpListener,
}

impl Fake {
    pub fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        Fake { listener }
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().expect("addr").port()
    }

    /// The adapter's next connection.
    pub fn accept(&self, secs: u64) -> TcpStream {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).expect("blocking");
                    s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
                    return s;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "the adapter did not (re)connect within {secs} s");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    }

    /// Accepts the next connection and lets it in (XEP-0114: any handshake is fine).
    pub fn session(&self, secs: u64) -> TcpStream {
        let mut s = self.accept(secs);
        let header = read_until(&mut s, "halo.localhost'>", 10);
        assert!(header.contains("jabber:component:accept"), "{header}");
        send(&mut s, &server_header());
        let hs = read_until(&mut s, "</handshake>", 10);
        assert!(hs.contains("<handshake>"), "{hs}");
        send(&mut s, "<handshake/>");
        s
    }
}

/// The fake server's stream header, for the component `halo.localhost`.
pub fn server_header() -> String {
    "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
     xmlns:stream='http://etherx.jabber.org/streams' from='halo.localhost' id='fake-stream-1'>"
        .to_owned()
}

/// Writes `text` to the adapter.
pub fn send(s: &mut TcpStream, text: &str) {
    s.write_all(text.as_bytes()).expect("write to the adapter");
}

/// Reads until `needle` arrived; returns all read.
pub fn read_until(s: &mut TcpStream, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        assert!(Instant::now() < deadline, "no {needle:?} from the adapter; got {:?}", String::from_utf8_lossy(&got));
        match s.read(&mut buf) {
            Ok(0) => panic!("the adapter closed before {needle:?}; got {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

// ----- Halo -----

/// Installs the xmpp adapter for a component port on 127.0.0.1, configured and enabled.
pub fn install_xmpp(admin: &Client, port: u16) {
    install_xmpp_with(admin, port, json!({}));
}

/// [`install_xmpp`] with more (or other) config keys.
pub fn install_xmpp_with(admin: &Client, port: u16, extra: Value) {
    let bytes = std::fs::read(rust_plugin("xmpp")).expect("xmpp.wasm");
    let mut config = json!({"server_host": "127.0.0.1", "server_port": port.to_string(),
        "component_domain": COMPONENT, "secret": SECRET});
    for (k, v) in extra.as_object().into_iter().flatten() {
        config[k] = v.clone();
    }
    install_adapter(admin, bytes, &format!("net:127.0.0.1:{port}"), &config);
}

/// Installs the adapter component `bytes` with `grants` (comma-separated) and `config`, which
/// comes with the install (JSON in the query) so the required keys are there from the start.
pub fn install_adapter(admin: &Client, bytes: Vec<u8>, grants: &str, config: &Value) {
    let query: String = config
        .to_string()
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let path = format!("/api/v1/admin/plugins?grant={grants}&config={query}");
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install the adapter");
}

pub fn put_domain(admin: &Client, domain: &str, rule: Value) {
    admin.call_json("PUT", &format!("/api/v1/admin/federation/domains/{domain}"), Some(&rule)).expect("rule");
}

pub fn overview(admin: &Client) -> Value {
    admin.call_json("GET", "/api/v1/admin/federation", None).expect("federation overview")
}

/// The adapter's link status.
pub fn link(admin: &Client) -> Value {
    overview(admin)["links"]["adapter:xmpp"].clone()
}

pub fn wait_link(admin: &Client, state: &str, secs: u64) -> Value {
    wait_until(&format!("the xmpp link {state}"), secs, || Some(link(admin)).filter(|l| l["state"] == state))
}

/// The sum of a metric's samples whose labels include `label` (e.g. `domain="x"`).
pub fn metric(server: &TestServer, name: &str, label: &str) -> f64 {
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (code, text) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    assert_eq!(code, 200);
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

pub fn healthy(server: &TestServer) {
    server.client(None).call("GET", "/healthz", None).expect("halo is healthy");
}

pub fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |p: &Value| p["state"] == state
}

/// Prosody, Halo with the adapter linked, `alice` on the stream and `bob@localhost` (slixmpp)
/// logged in: nothing shared yet. (Dropped in field order: clients, Halo, then Prosody.)
pub struct World {
    pub alice: Peer,
    pub bob: XmppUser,
    pub alice_rest: Client,
    pub admin: Client,
    pub server: TestServer,
    pub prosody: Prosody,
}

pub fn world() -> World {
    world_with(json!({}), "")
}

/// [`world`] with more adapter config and more `halo.toml`.
pub fn world_with(adapter: Value, toml: &str) -> World {
    let prosody = Prosody::start();
    let server = TestServer::with_config(&format!("{LIMITS}{toml}"));
    let admin = server.admin();
    install_xmpp_with(&admin, prosody.component, adapter);
    put_domain(&admin, "localhost", json!({"adapter": "xmpp"}));
    wait_link(&admin, "up", 30);
    let alice_rest = server.user("alice");
    let token = server.login("alice", "alice-password");
    let alice = Peer::connect(&server, &token, "laptop");
    let mut bob = XmppUser::spawn();
    bob.login(&prosody);
    World { alice, bob, alice_rest, admin, server, prosody }
}

/// Alice adds bob (Colleagues, so he sees her note); bob accepts and asks back, Halo accepts:
/// both see each other online.
pub fn befriend(w: &mut World) {
    let added = w
        .alice_rest
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob@localhost", "level": "colleagues"})))
        .expect("add bob@localhost");
    assert!(
        added["contacts"].as_array().expect("contacts").iter().any(|c| c["presence"]["username"] == "bob@localhost"),
        "{added}"
    );
    let request = w.bob.wait("a subscription request", 20, |e| e["event"] == "subscribe");
    assert_eq!(request["from"], "alice@halo.localhost");
    // The client accepted, and asked back; Halo grants it and sends alice's presence.
    w.bob.wait_presence("alice@halo.localhost", None, None);
    wait_presence(&mut w.alice, "bob@localhost", state_is("available"));
}

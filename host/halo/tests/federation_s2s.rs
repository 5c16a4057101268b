//! Federation with XMPP servers directly, through the `xmpp-s2s` adapter plugin (RFC 6120
//! server-to-server, XEP-0220 dialback over STARTTLS), against a real Prosody with s2s on.
//!
//! Two domains on loopback: Halo is `halo.test` on 127.0.0.2:5269 (Prosody finds it through a
//! hosts file given to its resolver, libunbound's `hoststxt`: no SRV record, so the A record
//! and port 5269, as RFC 6120 §3.2 says), Prosody is `prosody.test` on 127.0.0.3 on a free
//! port (Halo finds it through `[federation] srv_override`). Certificates come from a CA made in
//! the test (leaf certificates with `basicConstraints=critical,CA:FALSE`); Halo trusts that CA
//! (`adapter_tls_ca`) and presents its own leaf as the TLS server (`adapter_tls_cert`).
//!
//! The XMPP user is slixmpp (`tests/xmpp/client.py`). Without Prosody or slixmpp the tests are
//! skipped with a note, except under `CI`, which installs both and so fails instead.

mod common;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Peer, TestServer, rust_plugin, wait_presence, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const BOB_PASSWORD: &str = "bob-xmpp-password";
const DIALBACK_SECRET: &str = "dialback-secret-for-the-s2s-tests";
/// Plugin calls may take up to 2 s on this loaded machine (see federation_xmpp.rs).
const LIMITS: &str = "[plugins.limits]\ndeadline = \"2s\"\n";

fn prerequisites(test: &str) -> bool {
    // `prosody --version` may wait on a terminal: look for the program instead.
    let prosody = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("prosody").is_file()));
    let slixmpp = Command::new("python3").args(["-c", "import slixmpp"]).output().is_ok_and(|o| o.status.success());
    if prosody && slixmpp {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test}: CI must have prosody and slixmpp");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: prosody or slixmpp not installed");
    false
}

fn free_port(ip: [u8; 4]) -> u16 {
    TcpListener::bind(std::net::SocketAddr::from((ip, 0))).expect("bind").local_addr().expect("addr").port()
}

fn lua(s: &str) -> String {
    format!("{s:?}")
}

// ----- certificates -----

/// A test CA and leaf certificates it signs, as PEM files in `dir`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, "Halo s2s test CA");
        let ca = p.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
        Pki { ca, ca_key, dir: dir.to_owned() }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A leaf for `name` signed by the CA (or self-signed), as (cert, key) paths.
    fn leaf(&self, name: &str, file: &str, by_ca: bool) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut p = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        p.is_ca = rcgen::IsCa::ExplicitNoCa;
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = if by_ca { p.signed_by(&key, &self.ca, &self.ca_key) } else { p.self_signed(&key) }.expect("leaf");
        let (c, k) = (self.dir.join(format!("{file}.crt")), self.dir.join(format!("{file}.key")));
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }
}

// ----- Prosody -----

/// A Prosody serving `prosody.test`: c2s on 127.0.0.1 (plain, user `bob`), s2s on 127.0.0.3
/// with STARTTLS required and dialback, resolving `halo_domain` to `halo_ip` through a hosts
/// file. Killed on drop.
struct Prosody {
    dir: tempfile::TempDir,
    c2s: u16,
    s2s: u16,
    child: Option<Child>,
}

impl Prosody {
    fn start(cert: &(PathBuf, PathBuf), hosts: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("halo-test-prosody-s2s-").tempdir().expect("tempdir");
        let accounts = dir.path().join("data/prosody%2etest/accounts");
        std::fs::create_dir_all(&accounts).expect("accounts dir");
        std::fs::write(
            accounts.join("bob.dat"),
            format!("return {{\n\t[\"password\"] = {};\n}};\n", lua(BOB_PASSWORD)),
        )
        .expect("account");
        std::fs::write(dir.path().join("hosts"), hosts).expect("hosts");
        let mut p = Prosody { dir, c2s: 0, s2s: 0, child: None };
        for attempt in 0..3 {
            p.c2s = free_port([127, 0, 0, 1]);
            p.s2s = free_port([127, 0, 0, 3]);
            std::fs::write(p.config_path(), p.config(cert)).expect("config");
            match p.spawn() {
                Ok(()) => return p,
                Err(e) if attempt < 2 => eprintln!("prosody did not start ({e}); trying other ports"),
                Err(e) => panic!("prosody did not start: {e}"),
            }
        }
        unreachable!()
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("prosody.cfg.lua")
    }

    fn config(&self, cert: &(PathBuf, PathBuf)) -> String {
        let d = self.dir.path();
        let path = |name: &str| lua(&d.join(name).display().to_string());
        format!(
            r#"-- Generated by host/halo/tests/federation_s2s.rs. Not for production.
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

    fn spawn(&mut self) -> Result<(), String> {
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
            if up([127, 0, 0, 1], self.c2s).is_ok() && up([127, 0, 0, 3], self.s2s).is_ok() {
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

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self) {
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

    fn diagnostics(&self) -> String {
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

struct XmppUser {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: mpsc::Receiver<Value>,
    events: VecDeque<Value>,
}

impl XmppUser {
    fn spawn() -> Self {
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

    fn cmd(&mut self, cmd: Value) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{cmd}").and_then(|()| stdin.flush()).expect("write to client.py");
    }

    fn login(&mut self, prosody: &Prosody) {
        self.cmd(json!({"cmd": "connect", "jid": "bob@prosody.test/test", "password": BOB_PASSWORD,
            "host": "127.0.0.1", "port": prosody.c2s}));
        self.wait("session_start", 30, |e| e["event"] == "session_start");
    }

    fn wait(&mut self, what: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
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

    fn wait_presence(&mut self, from: &str, show: Option<&str>, status: Option<&str>) -> Value {
        let what = format!("presence of {from} with show {show:?} and status {status:?}");
        self.wait(&what, 40, |e| {
            e["event"] == "presence"
                && e["from"].as_str().is_some_and(|f| f.split('/').next() == Some(from))
                && e["type"] != "unavailable"
                && e["show"].as_str() == show
                && e["status"].as_str() == status
        })
    }
}

impl Drop for XmppUser {
    fn drop(&mut self) {
        drop(self.stdin.take());
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

// ----- Halo -----

/// Halo serving `domain` over s2s on `ip:5269`, trusting the test CA, reaching Prosody's s2s
/// port through `srv_override`, with the adapter installed and `prosody.test` routed to it.
fn halo(pki: &Pki, domain: &str, ip: &str, prosody_s2s: u16) -> TestServer {
    let (cert, key) = pki.leaf(domain, domain, true);
    let toml = format!(
        "{LIMITS}\n[federation]\nadapter_tls_cert = {:?}\nadapter_tls_key = {:?}\nadapter_tls_ca = {:?}\n\
         srv_override = {{ \"prosody.test\" = \"127.0.0.3:{prosody_s2s}\" }}\n",
        cert.display().to_string(),
        key.display().to_string(),
        pki.ca_path().display().to_string(),
    );
    let server = TestServer::with_config(&toml);
    let admin = server.admin();
    let bytes = std::fs::read(rust_plugin("xmpp_s2s")).expect("xmpp_s2s.wasm (cargo xtask plugins)");
    let config = json!({"domain": domain, "dialback_secret": DIALBACK_SECRET, "listen_address": ip,
        "listen_port": "5269"});
    let query: String = config
        .to_string()
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let grants = format!("net:127.0.0.3:{prosody_s2s},listen:{ip}:5269,dns");
    let path = format!("/api/v1/admin/plugins?grant={grants}&config={query}");
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install xmpp-s2s");
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/prosody.test", Some(&json!({"adapter": "xmpp-s2s"})))
        .expect("rule");
    server
}

fn link(admin: &Client) -> Value {
    admin.call_json("GET", "/api/v1/admin/federation", None).expect("overview")["links"]["adapter:xmpp-s2s"].clone()
}

fn state_is(state: &'static str) -> impl Fn(&Value) -> bool {
    move |p: &Value| p["state"] == state
}

/// Waits until the server listens on `ip:5269` (the adapter asked the host to).
fn wait_listening(ip: [u8; 4]) {
    wait_until("the adapter listening", 30, || {
        TcpStream::connect_timeout(&(ip, 5269).into(), Duration::from_millis(200)).ok()
    });
}

// ----- the tests -----

#[test]
fn xmpp_s2s_users_add_each_other_see_presence_and_chat_both_ways_across_a_prosody_restart() {
    if !prerequisites("xmpp_s2s_users_add_each_other_see_presence_and_chat_both_ways_across_a_prosody_restart") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(certs.path());
    let prosody_cert = pki.leaf("prosody.test", "prosody", true);
    let mut prosody = Prosody::start(&prosody_cert, "127.0.0.2 halo.test\n");
    let server = halo(&pki, "halo.test", "127.0.0.2", prosody.s2s);
    wait_listening([127, 0, 0, 2]);
    let alice_rest = server.user("alice");
    let mut alice = Peer::connect(&server, &server.login("alice", "alice-password"), "laptop");
    let mut bob = XmppUser::spawn();
    bob.login(&prosody);

    // Alice adds bob: Halo dials prosody.test (STARTTLS, dialback), Prosody dials back.
    alice_rest
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob@prosody.test", "level": "colleagues"})))
        .expect("add bob@prosody.test");
    let request = bob.wait("a subscription request", 60, |e| e["event"] == "subscribe");
    assert_eq!(request["from"], "alice@halo.test");
    // bob's client accepted and asked back; Halo grants it: each sees the other.
    bob.wait_presence("alice@halo.test", None, None);
    wait_presence(&mut alice, "bob@prosody.test", state_is("available"));

    // Presence both ways.
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    bob.wait_presence("alice@halo.test", Some("dnd"), None);
    bob.cmd(json!({"cmd": "presence", "show": "away", "status": "lunch"}));
    wait_presence(&mut alice, "bob@prosody.test", |p| p["state"] == "away" && p["note"] == "lunch");

    // Chat both ways.
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@prosody.test"]}))["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "Hello Bob, över s2s <3"}));
    let m = bob.wait("alice's message", 30, |e| e["event"] == "message" && e["type"] == "chat");
    assert_eq!(m["from"].as_str().and_then(|f| f.split('/').next()), Some("alice@halo.test"), "{m}");
    assert_eq!(m["body"], "Hello Bob, över s2s <3");
    bob.cmd(json!({"cmd": "message", "to": "alice@halo.test", "body": "Hi Alice, 'tis <b>me</b>"}));
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("bob@prosody.test"), Some("Hi Alice, 'tis <b>me</b>")));
    assert_eq!(m["conversation"], conv);

    // Prosody dies and comes back: the streams are made again, both ways.
    prosody.kill();
    wait_presence(&mut alice, "bob@prosody.test", |p| p["state"] != "away");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "sent while you were down"}));
    prosody.restart();
    let mut bob = XmppUser::spawn();
    bob.login(&prosody);
    let m = bob.wait("the queued message", 90, |e| e["event"] == "message" && e["body"] == "sent while you were down");
    assert_eq!(m["from"].as_str().and_then(|f| f.split('/').next()), Some("alice@halo.test"), "{m}");
    bob.cmd(json!({"cmd": "message", "to": "alice@halo.test", "body": "back again"}));
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("bob@prosody.test"), Some("back again")));
    let l = link(&server.admin());
    assert_eq!(l["state"], "up", "{l}");
}

#[test]
fn xmpp_s2s_wrong_certificate_and_failed_dialback_are_refused_with_the_reason_in_status() {
    if !prerequisites("xmpp_s2s_wrong_certificate_and_failed_dialback_are_refused_with_the_reason_in_status") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(certs.path());

    // Prosody presents a self-signed certificate: Halo's TLS client refuses it.
    let self_signed = pki.leaf("prosody.test", "prosody-self-signed", false);
    let prosody = Prosody::start(&self_signed, "127.0.0.4 halo2.test\n");
    let server = halo(&pki, "halo2.test", "127.0.0.4", prosody.s2s);
    wait_listening([127, 0, 0, 4]);
    let alice_rest = server.user("alice");
    alice_rest
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob@prosody.test"})))
        .expect("add bob@prosody.test");
    let admin = server.admin();
    let l = wait_until("the certificate refused", 60, || {
        Some(link(&admin)).filter(|l| l["last_error"].as_str().is_some_and(|e| e.contains("certificate")))
    });
    assert!(l["failures"].as_u64().is_some_and(|n| n >= 1), "{l}");
    let mut cli = common::halo();
    cli.args(["federation", "status", "--data-dir"])
        .arg(server.data_dir())
        .env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN");
    let out = common::run(cli);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("certificate"), "the reason in `halo federation status`: {text}");
    drop(prosody);
    drop(server);

    // Prosody trusts nothing it can check for halo3.test (no hosts entry: it cannot dial back),
    // so it refuses Halo's dialback key.
    let good = pki.leaf("prosody.test", "prosody", true);
    let prosody = Prosody::start(&good, "127.0.0.9 unrelated.test\n");
    let server = halo(&pki, "halo3.test", "127.0.0.5", prosody.s2s);
    wait_listening([127, 0, 0, 5]);
    server
        .user("alice")
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob@prosody.test"})))
        .expect("add bob@prosody.test");
    let admin = server.admin();
    // Prosody gives up on checking the key after its s2s_timeout (15 s here) and ends the stream.
    let l = wait_until("the dialback refused", 120, || {
        Some(link(&admin)).filter(|l| l["last_error"].as_str().is_some_and(|e| e.contains("dialback")))
    });
    assert!(l["last_error"].as_str().is_some_and(|e| e.contains("prosody.test")), "{l}");
}

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

#[path = "xmpp/harness.rs"]
mod harness;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Peer, TestServer, rust_plugin, wait_presence, wait_until};
use halo_client::Client;
use harness::{LIMITS, Prosody, XmppUser, install_adapter, overview, prerequisites, state_is};
use serde_json::{Value, json};

const DIALBACK_SECRET: &str = "dialback-secret-for-the-s2s-tests";

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
    install_adapter(&admin, bytes, &format!("net:127.0.0.3:{prosody_s2s},listen:{ip}:5269,dns"), &config);
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/prosody.test", Some(&json!({"adapter": "xmpp-s2s"})))
        .expect("rule");
    server
}

fn link(admin: &Client) -> Value {
    overview(admin)["links"]["adapter:xmpp-s2s"].clone()
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
    let mut prosody = Prosody::start_s2s(&prosody_cert, "127.0.0.2 halo.test\n");
    let server = halo(&pki, "halo.test", "127.0.0.2", prosody.s2s);
    wait_listening([127, 0, 0, 2]);
    let alice_rest = server.user("alice");
    let mut alice = Peer::connect(&server, &server.login("alice", "alice-password"), "laptop");
    let mut bob = XmppUser::spawn();
    bob.login_as("bob@prosody.test/test", &prosody);

    // Alice adds bob: Halo dials prosody.test (STARTTLS, dialback), Prosody dials back.
    alice_rest
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob@prosody.test", "level": "colleagues"})))
        .expect("add bob@prosody.test");
    let request = bob.wait("a subscription request", 60, |e| e["event"] == "subscribe");
    assert_eq!(request["from"], "alice@halo.test");
    // bob's client accepted and asked back; Halo grants it: each sees the other.
    bob.wait_presence_within("alice@halo.test", None, None, 40);
    wait_presence(&mut alice, "bob@prosody.test", state_is("available"));

    // Presence both ways.
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    bob.wait_presence_within("alice@halo.test", Some("dnd"), None, 40);
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
    bob.login_as("bob@prosody.test/test", &prosody);
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
    let prosody = Prosody::start_s2s(&self_signed, "127.0.0.4 halo2.test\n");
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
    let prosody = Prosody::start_s2s(&good, "127.0.0.9 unrelated.test\n");
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

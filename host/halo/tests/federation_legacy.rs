//! A federation adapter built against an older WIT (`halo:plugin@0.1.2`) keeps working on a
//! host that binds 0.1.4, whose `federation` variants have more cases: the host binds such an
//! adapter through the frozen 0.1.3 world (`bindings::fed_legacy`).
//!
//! The adapter is `fixtures/xmpp-adapter-0.1.2.wasm`, the `xmpp` component adapter as built
//! from the 0.1.2 SDK (see `fixtures/README.md`). A fake XMPP server in the test lets it in
//! (XEP-0114), then a message crosses each way: `start` and `handle` both run through the
//! legacy bindings, inputs and actions alike.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{Peer, TestServer, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const LIMITS: &str = "[plugins.limits]\ndeadline = \"2s\"\n";

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xmpp-adapter-0.1.2.wasm")
}

fn read_until(s: &mut TcpStream, needle: &str, secs: u64) -> String {
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

fn accept(listener: &TcpListener, secs: u64) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                s.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the adapter did not connect within {secs} s");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn link(admin: &Client) -> Value {
    admin.call_json("GET", "/api/v1/admin/federation", None).expect("overview")["links"]["adapter:xmpp"].clone()
}

#[test]
fn a_federation_adapter_built_against_0_1_2_still_links_and_carries_messages() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let server = TestServer::with_config(LIMITS);
    let admin = server.admin();
    server.user("alice");
    let mut alice = Peer::connect(&server, &server.login("alice", "alice-password"), "laptop");

    let bytes = std::fs::read(fixture()).expect("fixture");
    let config = json!({"server_host": "127.0.0.1", "server_port": port.to_string(),
        "component_domain": "halo.localhost", "secret": "s"});
    let query: String = config
        .to_string()
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect();
    let path = format!("/api/v1/admin/plugins?grant=net:127.0.0.1:{port}&config={query}");
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install the 0.1.2 adapter");
    let info = common::plugin_info(&server, "xmpp");
    assert_eq!(info["api"], "halo:plugin@0.1.2", "{info}");
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/localhost", Some(&json!({"adapter": "xmpp"})))
        .expect("rule");

    // `start` (legacy bindings) opened the link; `handle` takes the stream and handshake.
    let mut s = accept(&listener, 30);
    read_until(&mut s, "halo.localhost'>", 10);
    s.write_all(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
          xmlns:stream='http://etherx.jabber.org/streams' from='halo.localhost' id='legacy-1'>",
    )
    .expect("write");
    read_until(&mut s, "</handshake>", 10);
    s.write_all(b"<handshake/>").expect("write");
    wait_until("the legacy adapter's link up", 20, || Some(link(&admin)).filter(|l| l["state"] == "up"));

    // Inbound: a deliver-message action, converted from the 0.1.3 variant.
    s.write_all(
        b"<message type='chat' from='carol@localhost/r' to='alice@halo.localhost' id='m1'>\
          <body>from an old adapter</body></message>",
    )
    .expect("write");
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("carol@localhost"), Some("from an old adapter")), "{m}");

    // Outbound: a message input, converted to the 0.1.3 variant.
    let conv = m["conversation"].as_u64().expect("conversation id");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "to XMPP"}));
    let out = read_until(&mut s, "to XMPP", 20);
    assert!(out.contains("to='carol@localhost'"), "{out}");
}

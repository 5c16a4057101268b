//! A federation adapter built against an older WIT (`halo:plugin@0.1.2`) keeps working on a
//! host that binds 0.1.4, whose `federation` variants have more cases: the host binds such an
//! adapter through the frozen 0.1.3 world (`bindings::fed_legacy`).
//!
//! The adapter is `fixtures/xmpp-adapter-0.1.2.wasm`, the `xmpp` component adapter as built
//! from the 0.1.2 SDK (see `fixtures/README.md`). A fake XMPP server in the test lets it in
//! (XEP-0114), then a message crosses each way: `start` and `handle` both run through the
//! legacy bindings, inputs and actions alike.

mod common;

#[path = "xmpp/harness.rs"]
mod harness;

use std::path::PathBuf;

use common::{Peer, TestServer, wait_until};
use harness::{Fake, LIMITS, install_adapter, link, read_until, send};
use serde_json::json;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/xmpp-adapter-0.1.2.wasm")
}

#[test]
fn a_federation_adapter_built_against_0_1_2_still_links_and_carries_messages() {
    let fake = Fake::new();
    let port = fake.port();
    let server = TestServer::with_config(LIMITS);
    let admin = server.admin();
    server.user("alice");
    let mut alice = Peer::connect(&server, &server.login("alice", "alice-password"), "laptop");

    let bytes = std::fs::read(fixture()).expect("fixture");
    let config = json!({"server_host": "127.0.0.1", "server_port": port.to_string(),
        "component_domain": "halo.localhost", "secret": "s"});
    install_adapter(&admin, bytes, &format!("net:127.0.0.1:{port}"), &config);
    let info = common::plugin_info(&server, "xmpp");
    assert_eq!(info["api"], "halo:plugin@0.1.2", "{info}");
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/localhost", Some(&json!({"adapter": "xmpp"})))
        .expect("rule");

    // `start` (legacy bindings) opened the link; `handle` takes the stream and handshake.
    let mut s = fake.session(30);
    wait_until("the legacy adapter's link up", 20, || Some(link(&admin)).filter(|l| l["state"] == "up"));

    // Inbound: a deliver-message action, converted from the 0.1.3 variant.
    send(
        &mut s,
        "<message type='chat' from='carol@localhost/r' to='alice@halo.localhost' id='m1'>\
         <body>from an old adapter</body></message>",
    );
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("carol@localhost"), Some("from an old adapter")), "{m}");

    // Outbound: a message input, converted to the 0.1.3 variant.
    let conv = m["conversation"].as_u64().expect("conversation id");
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "to XMPP"}));
    let out = read_until(&mut s, "to XMPP", 20);
    assert!(out.contains("to='carol@localhost'"), "{out}");
}

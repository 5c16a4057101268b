//! Federation with XMPP through the `xmpp` adapter plugin (XEP-0114 external component).
//!
//! Two tests run a real Prosody (Debian's package, started on free loopback ports with its own
//! config and data in a temp dir) and an XMPP user driven by slixmpp (`tests/xmpp/client.py`,
//! JSON lines over stdin/stdout): a Halo user and an XMPP user add each other, see each other's
//! presence change and chat both ways; then Prosody dies and comes back while Halo queues.
//! Without Prosody or slixmpp they are skipped with a note, except under `CI`, which installs
//! both (`.ci/run`, `cargo xtask test`) and so fails instead.
//!
//! A third test needs neither: a fake XMPP server in the test speaks just enough XEP-0114 to let
//! the adapter in, then sends hostile input (billion laughs, entities, a huge stanza and tag, malformed
//! XML, bad addresses, blocked, unknown and spoofed domains) and checks it is all refused, counted
//! and survived.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Peer, TestServer, wait_presence, wait_until};
use serde_json::{Value, json};

#[path = "xmpp/harness.rs"]
mod harness;

use harness::*;

// ----- the tests -----

#[test]
fn xmpp_user_and_halo_user_add_each_other_see_presence_and_chat() {
    if !prerequisites("xmpp_user_and_halo_user_add_each_other_see_presence_and_chat") {
        return;
    }
    let mut w = world();
    befriend(&mut w);

    // Bob is in alice's contacts with his presence.
    let contacts = w.alice_rest.call_json("GET", "/api/v1/contacts", None).expect("contacts");
    let bob =
        contacts["contacts"].as_array().expect("list").iter().find(|c| c["presence"]["username"] == "bob@localhost");
    let bob = bob.unwrap_or_else(|| panic!("bob listed: {contacts}"));
    assert_eq!(
        (bob["presence"]["state"].as_str(), bob["level"].as_str()),
        (Some("available"), Some("colleagues")),
        "{bob}"
    );

    // Alice's changes, as XMPP shows them.
    w.alice.ok(json!({"type": "presence.set", "state": "busy"}));
    w.bob.wait_presence("alice@halo.localhost", Some("dnd"), None);
    w.alice.ok(json!({"type": "presence.set", "availability": 6500, "activity": "in-a-meeting"}));
    w.bob.wait_presence("alice@halo.localhost", Some("dnd"), Some("In a meeting"));
    w.alice.ok(json!({"type": "presence.set", "state": "off-work"}));
    w.bob.wait_presence("alice@halo.localhost", Some("xa"), Some("Off work"));
    w.alice_rest.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "Back at 3"}))).expect("note");
    w.alice.ok(json!({"type": "presence.set", "state": "away"}));
    w.bob.wait_presence("alice@halo.localhost", Some("away"), Some("Back at 3"));
    w.alice.ok(json!({"type": "presence.reset"}));
    w.bob.wait_presence("alice@halo.localhost", None, Some("Back at 3"));

    // Bob's changes, as Halo shows them.
    w.bob.cmd(json!({"cmd": "presence", "show": "away", "status": "lunch"}));
    let p = wait_presence(&mut w.alice, "bob@localhost", |p| p["state"] == "away" && p["note"] == "lunch");
    assert_eq!(p["label"], "Away", "{p}");
    w.bob.cmd(json!({"cmd": "presence", "show": "dnd", "status": "focus time"}));
    wait_presence(&mut w.alice, "bob@localhost", |p| p["state"] == "busy" && p["note"] == "focus time");
    w.bob.cmd(json!({"cmd": "presence", "show": "xa", "status": null}));
    let p = wait_presence(&mut w.alice, "bob@localhost", |p| p["state"] == "away" && p["activity"] == "off-work");
    assert!(p.get("note").is_none_or(Value::is_null), "{p}");
    w.bob.cmd(json!({"cmd": "presence", "show": null, "status": null}));
    wait_presence(&mut w.alice, "bob@localhost", state_is("available"));

    // Alice writes to bob.
    let conv = w.alice.ok(json!({"type": "im.start", "participants": ["bob@localhost"]}))["conversation"]["id"]
        .as_u64()
        .expect("conversation id");
    w.alice.ok(json!({"type": "im.send", "conversation": conv, "text": "Hello Bob <3 & welcome"}));
    let m = w.bob.wait("alice's message", 20, |e| e["event"] == "message" && e["type"] == "chat");
    assert_eq!(m["from"].as_str().and_then(|f| f.split('/').next()), Some("alice@halo.localhost"), "{m}");
    assert_eq!(m["body"], "Hello Bob <3 & welcome");

    // Bob answers.
    w.bob.cmd(json!({"cmd": "message", "to": "alice@halo.localhost", "body": "Hi Alice, 'tis <b>me</b>"}));
    let m = w.alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("bob@localhost"), Some("Hi Alice, 'tis <b>me</b>")));
    assert_eq!(m["conversation"], conv, "bob's answer lands in the same 1:1");
    let history =
        w.alice_rest.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("history");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["Hello Bob <3 & welcome", "Hi Alice, 'tis <b>me</b>"], "{history}");

    // Counted both ways, nothing refused.
    let l = link(&w.admin);
    assert!(l["sent"].as_u64() >= Some(5) && l["received"].as_u64() >= Some(5), "{l}");
    assert_eq!(l["rejected"], 0, "{l}");
    assert!(metric(&w.server, "halo_federation_received", "domain=\"localhost\"") >= 5.0);
    assert!(metric(&w.server, "halo_federation_sent", "domain=\"localhost\"") >= 5.0);
}

#[test]
fn xmpp_server_down_then_up_queued_message_arrives_and_presence_resyncs() {
    if !prerequisites("xmpp_server_down_then_up_queued_message_arrives_and_presence_resyncs") {
        return;
    }
    let mut w = world();
    befriend(&mut w);
    let conv = w.alice.ok(json!({"type": "im.start", "participants": ["bob@localhost"]}))["conversation"]["id"]
        .as_u64()
        .expect("conversation id");

    // Prosody dies: the link goes down, Halo keeps what alice sends.
    w.prosody.kill();
    w.bob.wait("the disconnection", 20, |e| e["event"] == "disconnected");
    let down = wait_link(&w.admin, "down", 20);
    assert!(down["failures"].as_u64() >= Some(1), "{down}");
    w.alice.ok(json!({"type": "im.send", "conversation": conv, "text": "sent while you were down"}));
    w.alice.ok(json!({"type": "presence.set", "state": "busy"}));
    let queued = wait_until("the message queued", 10, || {
        let o = overview(&w.admin);
        o["queues"]["localhost"].as_u64().filter(|n| *n >= 1).map(|_| o)
    });
    assert!(queued["domains"].as_array().expect("domains").iter().any(|d| d["domain"] == "localhost"), "{queued}");
    healthy(&w.server);
    // Reconnecting fails meanwhile: the breaker backs off (0.5 s, 1 s, 2 s, ...).
    let failing = wait_until("failed reconnects", 20, || {
        Some(link(&w.admin)).filter(|l| l["failures"].as_u64() >= Some(3) && l["state"] == "down")
    });
    assert!(failing["breaker"] == "backoff" || failing["breaker"] == "open", "{failing}");
    assert!(failing["last_error"].as_str().is_some_and(|e| e.contains("connect")), "{failing}");

    // Prosody comes back on the same ports: the adapter reconnects after its wait and Halo
    // probes bob, who is offline now.
    w.bob.clear();
    w.prosody.restart();
    let started = Instant::now();
    let up = wait_link(&w.admin, "up", 70);
    eprintln!("link up again after {:?}: {up}", started.elapsed());
    wait_presence(&mut w.alice, "bob@localhost", state_is("offline"));
    wait_until("the queue drained", 20, || {
        let o = overview(&w.admin);
        (o["queues"]["localhost"].as_u64().unwrap_or(0) == 0).then_some(o)
    });

    // Bob logs in again: the queued message (kept by Prosody's offline storage) and alice's
    // current presence reach him; his presence reaches alice again.
    w.bob.login(&w.prosody);
    let m = w.bob.wait("the queued message", 30, |e| e["event"] == "message" && e["type"] == "chat");
    assert_eq!(m["body"], "sent while you were down", "{m}");
    w.bob.wait_presence("alice@halo.localhost", Some("dnd"), None);
    wait_presence(&mut w.alice, "bob@localhost", state_is("available"));

    // And traffic flows both ways as before.
    w.bob.cmd(json!({"cmd": "message", "to": "alice@halo.localhost", "body": "back again"}));
    let m = w.alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("bob@localhost"), Some("back again")));
    w.alice.ok(json!({"type": "im.send", "conversation": conv, "text": "welcome back"}));
    let m = w.bob.wait("alice's message", 20, |e| e["event"] == "message" && e["body"] == "welcome back");
    assert_eq!(m["from"].as_str().and_then(|f| f.split('/').next()), Some("alice@halo.localhost"));
    assert!(metric(&w.server, "halo_federation_link_failures", "") >= 1.0);
}

// ----- a hostile XMPP server -----

/// Reads until the adapter closes the connection (EOF or reset); returns what it sent first.
fn read_to_close(s: &mut TcpStream, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "the adapter did not close the stream; got {:?}",
            String::from_utf8_lossy(&got)
        );
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn billion_laughs() -> String {
    let mut dtd = String::from("<!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..=9 {
        let prev = if i == 1 { "lol".to_owned() } else { format!("lol{}", i - 1) };
        dtd.push_str(&format!("<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10)));
    }
    dtd.push_str("]>");
    dtd
}

fn chat(from: &str, to: &str, body: &str) -> String {
    format!("<message type='chat' from='{from}' to='{to}' id='m-{}'><body>{body}</body></message>", body.len())
}

#[test]
fn hostile_xmpp_server_input_is_refused_counted_and_survived() {
    let fake = Fake::new();
    let server = TestServer::with_config(LIMITS);
    let admin = server.admin();
    let alice_rest = server.user("alice");
    let mut alice = Peer::connect(&server, &server.login("alice", "alice-password"), "laptop");
    install_xmpp(&admin, fake.port());
    put_domain(&admin, "localhost", json!({"adapter": "xmpp"}));
    put_domain(&admin, "evil.example", json!({"access": "block"}));
    // Allowed, but carried by another transport: the xmpp adapter may not speak for it.
    put_domain(&admin, "other.example", json!({"adapter": "other"}));

    let mut s = fake.session(30);
    wait_link(&admin, "up", 10);

    // Stanzas refused one by one; the stream stays up.
    let alice_jid = "alice@halo.localhost";
    let refused = [
        // Invalid JIDs.
        chat("bad jid@localhost/r", alice_jid, "invalid sender"),
        chat("carol@localhost/r", "Alice Smith@halo.localhost", "invalid recipient"),
        format!("<message type='chat' to='{alice_jid}'><body>no sender</body></message>"),
        chat("carol@bad_domain!/r", alice_jid, "invalid domain"),
        // The component's own domain, as a sender.
        chat("mallory@halo.localhost/r", alice_jid, "spoofing the component"),
        // A blocked domain, a domain with no rule, a domain routed elsewhere.
        chat("x@evil.example/r", alice_jid, "from a blocked domain"),
        chat("x@unknown.example/r", alice_jid, "from an unknown domain"),
        chat("x@other.example/r", alice_jid, "spoofing another route"),
        // Nobody here by that name.
        chat("carol@localhost/r", "nobody@halo.localhost", "to nobody"),
        // Presence from someone alice never added, an unsupported message type.
        "<presence from='dave@localhost/r' to='alice@halo.localhost'><show>dnd</show></presence>".to_owned(),
        format!("<message type='headline' from='carol@localhost/r' to='{alice_jid}'><body>news</body></message>"),
    ];
    let before = link(&admin)["rejected"].as_u64().expect("rejected");
    for stanza in &refused {
        send(&mut s, stanza);
    }
    send(&mut s, &chat("carol@localhost/r", alice_jid, "a fine message"));
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("carol@localhost"), Some("a fine message")), "{m}");
    alice.none_matching(Duration::from_millis(300), |e| {
        e["type"] == "im.message" || (e["type"] == "presence" && e["presence"]["username"] != "alice")
    });
    let l = link(&admin);
    assert_eq!(l["state"], "up", "{l}");
    assert!(l["rejected"].as_u64().expect("rejected") >= before + refused.len() as u64, "{l}");
    for domain in ["evil.example", "unknown.example", "other.example", "localhost"] {
        let n = metric(&server, "halo_federation_rejected", &format!("domain=\"{domain}\""));
        assert!(n >= 1.0, "rejections from {domain} counted: {n}");
    }
    healthy(&server);

    // A 2 MiB stanza (over max_stanza_bytes, 1 MiB) is refused on its own: a policy-violation
    // to its sender, and the stream goes on.
    let mut big = chat("carol@localhost/r", alice_jid, "");
    big.insert_str(big.find("</body>").expect("body"), &"A".repeat(2 << 20));
    send(&mut s, &big);
    // (After the stanza errors for the refused stanzas above: jid-malformed, service-unavailable.)
    let said = read_until(&mut s, "stanza over 1048576 bytes</text></error></message>", 20);
    assert!(said.contains("<policy-violation ") && said.contains("to='carol@localhost/r'"), "{said}");
    assert!(said.contains("<jid-malformed ") && said.contains("<service-unavailable "), "{said}");
    send(&mut s, &chat("carol@localhost/r", alice_jid, "after the big one"));
    assert_eq!(alice.event("im.message")["message"]["text"], "after the big one");
    assert_eq!(link(&admin)["state"], "up");

    // Input that ends the stream: the adapter says why, closes (the host writes out the stream
    // error before shutting the socket), and connects again after its backoff.
    let mut huge_tag = format!("<message from='carol@localhost/r' to='{alice_jid}' x='");
    huge_tag.push_str(&"A".repeat(2 << 20));
    let fatal: [(&str, String, &str); 4] = [
        ("billion laughs", format!("{}<message/>", billion_laughs()), "restricted-xml"),
        ("an undeclared entity", chat("carol@localhost/r", alice_jid, "&lol9;"), "restricted-xml"),
        ("a 2 MiB tag", huge_tag, "policy-violation"),
        (
            "malformed XML",
            "<message from='carol@localhost' to='alice@halo.localhost'><body>x</bod></message>".into(),
            "not-well-formed",
        ),
    ];
    let mut errors_seen = Vec::new();
    for (what, payload, condition) in fatal {
        let rejected = link(&admin)["rejected"].as_u64().expect("rejected");
        let mut writer = s.try_clone().expect("clone");
        // The adapter may close while this is still being written.
        let w = std::thread::spawn(move || {
            let _ = writer.write_all(payload.as_bytes());
        });
        let said = read_to_close(&mut s, 20);
        let _ = w.join();
        assert!(said.contains(condition), "{what}: the adapter closed the stream after sending {said:?}");
        errors_seen.push(what);
        let l = wait_until(&format!("{what} counted"), 10, || {
            Some(link(&admin)).filter(|l| l["rejected"].as_u64() > Some(rejected) && l["state"] == "down")
        });
        assert_eq!(l["state"], "down", "{what}: {l}");
        healthy(&server);
        s = fake.session(30);
        wait_link(&admin, "up", 10);
    }

    // Billion laughs before the stream header, on a fresh connection.
    let rejected = link(&admin)["rejected"].as_u64().expect("rejected");
    drop(s);
    let mut s = fake.accept(30);
    read_until(&mut s, "halo.localhost'>", 10);
    let header = server_header().replacen("<stream:stream", &format!("{}<stream:stream", billion_laughs()), 1);
    send(&mut s, &header);
    let said = read_to_close(&mut s, 20);
    assert!(said.contains("restricted-xml"), "DOCTYPE before the header: the adapter sent {said:?}");
    errors_seen.push("a DOCTYPE before the header");
    wait_until("the DOCTYPE counted", 10, || link(&admin)["rejected"].as_u64().filter(|n| *n > rejected));
    assert_eq!(errors_seen.len(), 5, "{errors_seen:?}");

    // Still alive, still federating, and alice saw none of it.
    let mut s = fake.session(40);
    wait_link(&admin, "up", 10);
    send(&mut s, &chat("carol@localhost/r", alice_jid, "still here"));
    let m = alice.event("im.message")["message"].clone();
    assert_eq!((m["from"].as_str(), m["text"].as_str()), (Some("carol@localhost"), Some("still here")), "{m}");
    alice.none_matching(Duration::from_millis(300), |e| e["type"] == "im.message");
    let inbox = alice_rest.call_json("GET", "/api/v1/conversations", None).expect("inbox");
    let convs = inbox["conversations"].as_array().expect("conversations");
    assert_eq!(convs.len(), 1, "only carol's conversation: {inbox}");
    let id = convs[0]["id"].as_u64().expect("id");
    let history = alice_rest.call_json("GET", &format!("/api/v1/conversations/{id}/messages"), None).expect("history");
    let texts: Vec<&str> =
        history["messages"].as_array().expect("messages").iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts, ["a fine message", "after the big one", "still here"]);
    healthy(&server);
    assert!(metric(&server, "halo_federation_rejected", "") >= (refused.len() + 5) as f64);
}

use halo_sdk::testing::{AdapterHarness, TestHost};
use halo_sdk::{AcceptedLink, Action, FIRST_ACCEPTED_LINK, Input, SrvAnswer, SrvTarget, TlsRole};

use super::*;

const SECRET: &str = "a-dialback-secret-for-tests";

fn harness() -> AdapterHarness<XmppS2s> {
    let host = TestHost::new()
        .with_config("domain", "halo.test")
        .with_config("dialback_secret", SECRET)
        .with_config("listen_address", "127.0.0.2")
        .with_config("keepalive_seconds", "0");
    let mut h = AdapterHarness::new(host);
    let start = h.start();
    assert!(start.contains(&Action::Listen { address: "127.0.0.2".into(), port: 5269 }), "{start:?}");
    assert!(start.contains(&Action::Routing(true)), "{start:?}");
    h
}

fn settings() -> Settings {
    Settings {
        domain: "halo.test".into(),
        secret: SECRET.into(),
        listen_address: "127.0.0.2".into(),
        listen_port: 5269,
        require_tls: true,
        max_stanza: 1 << 20,
        keepalive_ms: 0,
    }
}

fn server_header(id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='prosody.test' to='halo.test' id='{id}' version='1.0'>"
    )
}

/// Brings the outbound stream to prosody.test up to the point where our key was sent; returns
/// the link.
fn outbound_to_dialback(h: &mut AdapterHarness<XmppS2s>) -> LinkId {
    let a = h.message("alice", "bob@prosody.test", "hello");
    // Not up yet: the item stays queued (a send on a link that is never open), and a lookup starts.
    assert!(a.iter().any(|x| matches!(x, Action::Send(NOT_UP, _))), "{a:?}");
    let token = a
        .iter()
        .find_map(|x| match x {
            Action::Resolve { token, name } if name == "_xmpp-server._tcp.prosody.test" => Some(*token),
            _ => None,
        })
        .expect("a lookup");
    let target = SrvTarget { host: "127.0.0.3".into(), port: 5270, priority: 0, weight: 0 };
    let a = h.input(Input::Resolved(SrvAnswer {
        token,
        name: "_xmpp-server._tcp.prosody.test".into(),
        targets: vec![target],
        error: None,
    }));
    let link = token;
    assert!(a.contains(&Action::Open(LinkSpec { id: link, host: "127.0.0.3".into(), port: 5270, tls_name: None })));
    h.connected(link);
    let header = h.sent_text(link);
    assert!(header.contains("to='prosody.test'") && header.contains("from='halo.test'"), "{header}");
    h.data(link, format!("{}<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>", server_header("s1")).as_bytes());
    assert!(h.sent_text(link).contains("<starttls"), "asks for TLS");
    let a = h.data(link, b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(a.contains(&Action::StartTls(link, TlsRole::Client("prosody.test".into()))), "{a:?}");
    h.input(Input::TlsReady(link));
    assert!(h.sent_text(link).contains("<stream:stream"), "a new stream after TLS");
    h.data(
        link,
        format!(
            "{}<stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>",
            server_header("s2")
        )
        .as_bytes(),
    );
    let key = settings().key("prosody.test", "halo.test", "s2");
    let sent = h.sent_text(link);
    assert!(sent.contains(&format!(">{key}</db:result>")), "our key for stream s2: {sent}");
    link
}

#[test]
fn outbound_stream_does_starttls_then_dialback_then_carries_items() {
    let mut h = harness();
    let link = outbound_to_dialback(&mut h);
    let a = h.data(link, b"<db:result from='prosody.test' to='halo.test' type='valid'/>");
    assert!(a.contains(&Action::DrainQueued), "{a:?}");
    h.message("alice", "bob@prosody.test", "hello");
    let sent = h.sent_text(link);
    assert!(
        sent.contains("from='alice@halo.test' to='bob@prosody.test'") && sent.contains("<body>hello</body>"),
        "{sent}"
    );
}

#[test]
fn a_refused_dialback_fails_the_link_with_the_reason() {
    let mut h = harness();
    let link = outbound_to_dialback(&mut h);
    let a = h.data(link, b"<db:result from='prosody.test' to='halo.test' type='invalid'/>");
    let why = a.iter().find_map(|x| match x {
        Action::Fail(l, why) if *l == link => Some(why.clone()),
        _ => None,
    });
    assert!(why.as_deref().is_some_and(|w| w.contains("refused our dialback key")), "{a:?}");
    // Items still wait.
    let a = h.message("alice", "bob@prosody.test", "later");
    assert!(a.iter().any(|x| matches!(x, Action::Send(NOT_UP, _))), "{a:?}");
}

#[test]
fn a_server_without_tls_is_refused_when_tls_is_required() {
    let mut h = harness();
    let a = h.message("alice", "bob@prosody.test", "hello");
    let Some(token) = a.iter().find_map(|x| if let Action::Resolve { token, .. } = x { Some(*token) } else { None })
    else {
        panic!("{a:?}")
    };
    h.input(Input::Resolved(SrvAnswer { token, name: String::new(), targets: Vec::new(), error: None }));
    h.connected(token);
    let a = h.data(token, format!("{}<stream:features/>", server_header("s1")).as_bytes());
    assert!(a.iter().any(|x| matches!(x, Action::Fail(_, why) if why.contains("does not offer TLS"))), "{a:?}");
}

#[test]
fn inbound_stream_requires_tls_checks_dialback_through_our_stream_and_delivers() {
    let mut h = harness();
    let link = outbound_to_dialback(&mut h);
    h.data(link, b"<db:result from='prosody.test' to='halo.test' type='valid'/>");
    h.sent_text(link);

    let inbound = FIRST_ACCEPTED_LINK;
    h.input(Input::Accepted(AcceptedLink { id: inbound, port: 5269, peer: "127.0.0.3:40000".into() }));
    let hello = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
                 xmlns:db='jabber:server:dialback' from='prosody.test' to='halo.test' version='1.0'>";
    h.data(inbound, hello.as_bytes());
    let reply = h.sent_text(inbound);
    assert!(reply.contains("<starttls") && reply.contains("<required/>"), "{reply}");
    // Before TLS, nothing else is accepted.
    let a = h.data(inbound, b"<db:result from='prosody.test' to='halo.test'>abc</db:result>");
    assert!(a.iter().any(|x| matches!(x, Action::Fail(l, _) if *l == inbound)), "{a:?}");

    let inbound = FIRST_ACCEPTED_LINK + 1;
    h.input(Input::Accepted(AcceptedLink { id: inbound, port: 5269, peer: "127.0.0.3:40001".into() }));
    h.data(inbound, hello.as_bytes());
    h.sent_text(inbound);
    let a = h.data(inbound, b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert!(a.contains(&Action::StartTls(inbound, TlsRole::Server)), "{a:?}");
    assert!(h.sent_text(inbound).contains("<proceed"));
    h.input(Input::TlsReady(inbound));
    h.data(inbound, hello.as_bytes());
    let reply = h.sent_text(inbound);
    let id = reply.split("id='").nth(1).and_then(|r| r.split('\'').next()).expect("stream id").to_owned();
    assert!(reply.contains("urn:xmpp:features:dialback"), "{reply}");

    // A message before verification is refused.
    let chat =
        "<message type='chat' from='bob@prosody.test/phone' to='alice@halo.test' id='m1'><body>hi</body></message>";
    h.data(inbound, chat.as_bytes());
    assert!(h.delivered_messages().is_empty());

    // Their key goes to their server over our verified stream; its answer decides.
    h.data(inbound, b"<db:result from='prosody.test' to='halo.test'>their-key</db:result>");
    let verify = h.sent_text(link);
    assert!(verify.contains(&format!("id='{id}'")) && verify.contains(">their-key</db:verify>"), "{verify}");
    h.data(link, format!("<db:verify from='prosody.test' to='halo.test' id='{id}' type='valid'/>").as_bytes());
    assert!(h.sent_text(inbound).contains("type='valid'"));
    h.data(inbound, chat.as_bytes());
    let m = h.delivered_messages();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].from.as_str(), m[0].to.as_str(), m[0].text.as_str()), ("bob@prosody.test", "alice", "hi"));

    // As Prosody sends it.
    h.data(
        inbound,
        b"<message to='alice@halo.test' type='chat' id='011a8e' xml:lang='en' from='bob@prosody.test/test'>\
          <body>Hi Alice, &apos;tis &lt;b&gt;me&lt;/b&gt;</body></message>",
    );
    let m = h.delivered_messages();
    assert_eq!(m.len(), 1, "{m:?} {:?}", h.host().logs());
    assert_eq!(m[0].text, "Hi Alice, 'tis <b>me</b>");

    // Their server checks our key on any stream.
    let ours = settings().key("prosody.test", "halo.test", "s9");
    h.data(inbound, format!("<db:verify from='prosody.test' to='halo.test' id='s9'>{ours}</db:verify>").as_bytes());
    assert!(h.sent_text(inbound).contains("id='s9' type='valid'"));
    h.data(inbound, b"<db:verify from='prosody.test' to='halo.test' id='s9'>forged</db:verify>");
    assert!(h.sent_text(inbound).contains("id='s9' type='invalid'"));

    // Their server stops: its users go offline here.
    h.data(inbound, b"<presence from='bob@prosody.test/test' to='alice@halo.test'><show>away</show></presence>");
    assert_eq!(h.delivered_presence().len(), 1);
    h.closed(inbound, "closed by the remote side");
    let p = h.delivered_presence();
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].from.as_str(), p[0].to.as_str(), p[0].info.state.as_str()),
        ("bob@prosody.test", "alice", "offline")
    );

    // A stream for another domain is refused.
    let other = FIRST_ACCEPTED_LINK + 2;
    h.input(Input::Accepted(AcceptedLink { id: other, port: 5269, peer: "127.0.0.3:40002".into() }));
    let a = h.data(other, hello.replace("to='halo.test'", "to='elsewhere.test'").as_bytes());
    assert!(a.iter().any(|x| matches!(x, Action::Fail(l, _) if *l == other)), "{a:?}");
}

#[test]
fn keys_follow_xep_0185() {
    let s = settings();
    let k = s.key("prosody.test", "halo.test", "abc");
    assert_eq!(k.len(), 64);
    assert_ne!(k, s.key("prosody.test", "halo.test", "abd"));
    assert_ne!(k, s.key("halo.test", "prosody.test", "abc"));
}

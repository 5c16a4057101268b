use halo_sdk::testing::{AdapterHarness, TestHost};
use halo_sdk::{Action, Input, Level, Message, Presence, PresenceInfo, Rejection, Subscribe, Subscription};

use super::*;

const DOMAIN: &str = "halo.localhost";
const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams' \
                      xmlns='jabber:component:accept' from='halo.localhost' id='a'>";

fn host() -> TestHost {
    TestHost::new().with_config("component_domain", DOMAIN).with_config("secret", "bc")
}

fn started(host: TestHost) -> AdapterHarness<Xmpp> {
    let mut h = AdapterHarness::new(host);
    h.start();
    h
}

/// Connected, authenticated, with the sent bytes taken.
fn ready() -> AdapterHarness<Xmpp> {
    let mut h = started(host());
    h.connected(LINK);
    h.data(LINK, HEADER.as_bytes());
    h.data(LINK, b"<handshake/>");
    assert!(h.routing());
    h.sent(LINK);
    h
}

fn recv(h: &mut AdapterHarness<Xmpp>, xml: &str) -> Vec<Action> {
    h.data(LINK, xml.as_bytes())
}

fn info(state: &str, activity: Option<&str>, label: &str, note: Option<&str>) -> PresenceInfo {
    PresenceInfo {
        state: state.into(),
        activity: activity.map(str::to_owned),
        label: label.into(),
        note: note.map(str::to_owned),
    }
}

fn msg(from: &str, to: &str, text: &str, id: Option<&str>) -> Message {
    Message { from: from.into(), to: to.into(), text: text.into(), id: id.map(str::to_owned) }
}

/// Asserts the stream was ended with `condition`: error sent, link closed, rejection, a
/// re-open timer, routing off.
fn assert_stream_error(h: &mut AdapterHarness<Xmpp>, condition: &str) {
    let sent = h.sent_text(LINK);
    assert_eq!(
        sent,
        format!(
            "<stream:error><{condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>"
        )
    );
    assert_eq!(h.closed_links(), vec![LINK]);
    assert!(!h.routing());
    let rejections = h.rejections();
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert_eq!(rejections[0].domain, None);
    assert_eq!(h.timer_ms(REOPEN), Some(REOPEN_MIN_MS));
}

// ----- start, handshake, routing -----

#[test]
fn start_opens_the_component_port_without_routing() {
    let mut h = AdapterHarness::<Xmpp>::new(host());
    let actions = h.start();
    let spec = LinkSpec { id: 1, host: "127.0.0.1".into(), port: 5347, tls_name: None };
    assert_eq!(actions, vec![Action::Open(spec), Action::Routing(false)]);

    let mut h = started(host().with_config("server_host", "xmpp.example.org").with_config("tls", "true"));
    assert_eq!(h.links()[0].tls_name.as_deref(), Some("xmpp.example.org"));
    assert!(h.sent(LINK).is_empty());
}

#[test]
fn a_missing_secret_or_domain_opens_nothing_and_says_why() {
    for host in [
        TestHost::new().with_config("component_domain", DOMAIN),
        TestHost::new().with_config("secret", "x"),
        TestHost::new().with_config("secret", "x").with_config("component_domain", "bad domain"),
    ] {
        let mut h = AdapterHarness::<Xmpp>::new(host);
        assert_eq!(h.start(), vec![Action::Routing(false)]);
        assert!(h.links().is_empty());
        assert!(h.host().logs().iter().any(|(l, m)| *l == Level::Error && m.contains("not starting")));
        assert!(h.connected(LINK).is_empty());
    }
}

#[test]
fn the_handshake_is_the_sha1_of_stream_id_and_secret() {
    let mut h = started(host());
    h.connected(LINK);
    assert_eq!(
        h.sent_text(LINK),
        "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' \
         xmlns:stream='http://etherx.jabber.org/streams' to='halo.localhost'>"
    );
    h.data(LINK, HEADER.as_bytes());
    // SHA-1("a" + "bc") = SHA-1("abc"), the FIPS 180 test vector.
    assert_eq!(h.sent_text(LINK), "<handshake>a9993e364706816aba3e25717850c26c9cd0d89d</handshake>");
    assert!(!h.routing());
    h.data(LINK, b"<handshake/>");
    assert!(h.routing());
    assert_eq!(h.timer_ms(KEEPALIVE), Some(60_000));
}

#[test]
fn a_refused_handshake_says_the_secret_is_wrong() {
    let mut h = started(host());
    h.connected(LINK);
    h.data(LINK, HEADER.as_bytes());
    h.sent(LINK);
    recv(
        &mut h,
        "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
    );
    assert!(!h.routing());
    assert_eq!(h.sent_text(LINK), "</stream:stream>");
    let logs = h.host().logs();
    assert!(logs.iter().any(|(l, m)| *l == Level::Error && m.contains("secret is wrong")), "{logs:?}");
    // The host reconnects (the adapter did not close the link).
    assert!(h.is_open(LINK));
    h.closed(LINK, "connection reset");
    assert!(!h.routing());
}

#[test]
fn keepalives_are_whitespace_while_connected() {
    let mut h = ready();
    h.timer(KEEPALIVE);
    assert_eq!(h.sent(LINK), b" ");
    assert_eq!(h.timer_ms(KEEPALIVE), Some(60_000));
    h.closed(LINK, "reset");
    h.timer(KEEPALIVE);
    assert!(h.sent(LINK).is_empty());
    assert_eq!(h.timer_ms(KEEPALIVE), None);

    let mut h = started(host().with_config("keepalive_seconds", "0"));
    h.connected(LINK);
    h.data(LINK, format!("{HEADER}<handshake/>").as_bytes());
    assert!(h.routing());
    assert!(h.timers().is_empty());
}

#[test]
fn a_closed_link_stops_routing_and_a_reconnect_starts_afresh() {
    let mut h = ready();
    // Half a stanza, then the connection drops: none of it may leak into the next stream.
    recv(&mut h, "<message from='bob@example.org' to='alice@halo.localhost'><body>hal");
    h.closed(LINK, "connection reset by peer");
    assert!(!h.routing());
    assert!(h.host().logs().iter().any(|(_, m)| m.contains("connection reset by peer")));
    // Outbound traffic waits in the host's queue while not routing.
    h.message("alice", "bob@example.org", "later");
    assert_eq!(h.queued(), 1);
    h.connected(LINK);
    assert!(h.sent_text(LINK).starts_with("<?xml version='1.0'?><stream:stream"));
    recv(&mut h, HEADER);
    recv(&mut h, "<handshake/>");
    assert!(h.routing());
    assert_eq!(h.queued(), 0);
    let sent = h.sent_text(LINK);
    assert!(sent.ends_with("<body>later</body></message>"), "{sent}");
    recv(&mut h, "<message from='bob@example.org' to='alice@halo.localhost'><body>hi</body></message>");
    assert_eq!(h.delivered_messages()[0].text, "hi");
}

#[test]
fn the_server_closing_the_stream_stops_routing() {
    let mut h = ready();
    recv(&mut h, "</stream:stream>");
    assert!(!h.routing());
    assert_eq!(h.sent_text(LINK), "</stream:stream>");
    // Anything after the end is ignored.
    recv(&mut h, "<message from='bob@example.org' to='alice@halo.localhost'><body>x</body></message>");
    assert!(h.delivered_messages().is_empty());
}

// ----- outbound -----

#[test]
fn messages_go_out_as_chat_with_escaped_bodies() {
    let mut h = ready();
    h.input(Input::Message(msg("alice", "Bob@Example.org", "a < b & c > d 'q' \"dq\"", Some("m1"))));
    assert_eq!(
        h.sent_text(LINK),
        "<message type='chat' from='alice@halo.localhost' to='bob@example.org' id='m1'>\
         <body>a &lt; b &amp; c &gt; d 'q' \"dq\"</body></message>"
    );
    // No id: one is made up; characters XML cannot carry are replaced, not sent.
    h.message("alice", "bob@example.org", "nul\u{0}bell\u{7}");
    let sent = h.sent_text(LINK);
    assert!(sent.contains("id='halo-1'"), "{sent}");
    assert!(sent.contains("<body>nul\u{FFFD}bell\u{FFFD}</body>"), "{sent}");
    // An id with quotes stays inside its attribute.
    h.input(Input::Message(msg("alice", "bob@example.org", "x", Some("a'b"))));
    assert!(h.sent_text(LINK).contains("id='a&apos;b'"));
}

#[test]
fn bad_outbound_addresses_are_dropped_with_a_log() {
    let mut h = ready();
    h.message("Alice Smith", "bob@example.org", "x");
    h.message("alice", "example.org", "x");
    h.message("alice", "bob@example.org/phone", "x");
    h.message("alice", "carol@halo.localhost", "x");
    h.message("alice", "bob@exa'mple.org", "x");
    assert!(h.sent(LINK).is_empty());
    assert_eq!(h.host().logs().iter().filter(|(l, _)| *l == Level::Warn).count(), 5);
}

#[test]
fn halo_presence_maps_to_show_and_status() {
    let cases: &[(PresenceInfo, &str)] = &[
        (info("available", None, "Available", None), "<presence from='alice@halo.localhost' to='bob@example.org'/>"),
        (
            info("available", None, "Available", Some("at home")),
            "<presence from='alice@halo.localhost' to='bob@example.org'><status>at home</status></presence>",
        ),
        (
            info("away", None, "Away", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>away</show></presence>",
        ),
        (
            info("be_right_back", None, "Be right back", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>away</show><status>Be right back</status></presence>",
        ),
        (
            info("busy", None, "Busy", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>dnd</show></presence>",
        ),
        (
            info("busy", Some("in-a-meeting"), "In a meeting", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>dnd</show><status>In a meeting</status></presence>",
        ),
        (
            info("busy", Some("in-a-call"), "In a call", Some("back at 3 <ish> & so")),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>dnd</show><status>back at 3 &lt;ish&gt; &amp; so</status></presence>",
        ),
        (
            info("do_not_disturb", None, "Do not disturb", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>dnd</show></presence>",
        ),
        (
            info("away", Some("off-work"), "Off work", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>xa</show><status>Off work</status></presence>",
        ),
        (
            info("available", Some("out-of-office"), "Out of office", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>xa</show><status>Out of office</status></presence>",
        ),
        (
            info("busy", None, "Focusing", None),
            "<presence from='alice@halo.localhost' to='bob@example.org'><show>dnd</show><status>Focusing</status></presence>",
        ),
        (
            info("offline", None, "Offline", None),
            "<presence from='alice@halo.localhost' to='bob@example.org' type='unavailable'/>",
        ),
    ];
    let mut h = ready();
    for (info, xml) in cases {
        h.presence("alice", "bob@example.org", info.clone());
        assert_eq!(h.sent_text(LINK), *xml, "{info:?}");
    }
}

#[test]
fn subscriptions_go_out_as_presence_types() {
    let mut h = ready();
    for (kind, t) in [
        (Subscription::Request, "subscribe"),
        (Subscription::Accept, "subscribed"),
        (Subscription::Refuse, "unsubscribed"),
        (Subscription::Cancel, "unsubscribe"),
        (Subscription::Probe, "probe"),
    ] {
        h.subscribe("alice", "bob@example.org", kind);
        assert_eq!(
            h.sent_text(LINK),
            format!("<presence type='{t}' from='alice@halo.localhost' to='bob@example.org'/>")
        );
    }
}

// ----- inbound -----

#[test]
fn messages_come_in_from_the_bare_lowercased_jid_to_the_localpart() {
    let mut h = ready();
    recv(
        &mut h,
        "<message type='chat' from='Bob@Example.ORG/phone' to='alice@halo.localhost/web' id='x1'>\
         <body>a &lt; b &amp; c &#x263A; <![CDATA[<raw> & ]]></body><active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    assert_eq!(h.delivered_messages(), vec![msg("bob@example.org", "alice", "a < b & c ☺ <raw> & ", Some("x1"))]);
    // Normal (no type) is delivered; no body (a chat state) is not; errors are logged.
    recv(&mut h, "<message from='bob@example.org' to='alice@halo.localhost'><body>n</body></message>");
    recv(
        &mut h,
        "<message type='chat' from='bob@example.org' to='alice@halo.localhost'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>",
    );
    recv(
        &mut h,
        "<message type='error' from='bob@example.org' to='alice@halo.localhost'><body>x</body>\
         <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
    assert_eq!(h.delivered_messages(), vec![msg("bob@example.org", "alice", "n", None)]);
    assert!(h.host().logs().iter().any(|(_, m)| m.contains("item-not-found")));
    assert!(h.rejections().is_empty());
    recv(
        &mut h,
        "<message type='groupchat' from='room@muc.example.org/bob' to='alice@halo.localhost'><body>g</body></message>",
    );
    assert_eq!(h.rejections()[0].domain.as_deref(), Some("muc.example.org"));
}

#[test]
fn a_body_round_trips_through_escaping() {
    let text = "if a < b && c > d { \"x\" } 'y' &amp;";
    let mut h = ready();
    h.message("alice", "bob@example.org", text);
    let out = h.sent_text(LINK);
    let echoed = out.replace(
        "from='alice@halo.localhost' to='bob@example.org'",
        "from='bob@example.org' to='alice@halo.localhost'",
    );
    recv(&mut h, &echoed);
    assert_eq!(h.delivered_messages()[0].text, text);
}

#[test]
fn xmpp_presence_maps_back_to_halo() {
    let p = |attrs: &str, inner: &str| {
        format!("<presence from='bob@example.org/pc' to='alice@halo.localhost'{attrs}>{inner}</presence>")
    };
    let cases = [
        (p("", ""), info("available", None, "Available", None)),
        (p("", "<show>chat</show>"), info("available", None, "Available", None)),
        (p("", "<show>away</show><status>lunch</status>"), info("away", None, "Away", Some("lunch"))),
        (p("", "<show>xa</show>"), info("away", Some("off-work"), "Off work", None)),
        (p("", "<show>dnd</show><status> In a meeting </status>"), info("busy", None, "Busy", Some("In a meeting"))),
        (p(" type='unavailable'", ""), info("offline", None, "Offline", None)),
        (
            p("", "<priority>5</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/>"),
            info("available", None, "Available", None),
        ),
    ];
    let mut h = ready();
    for (xml, info) in cases {
        recv(&mut h, &xml);
        let got = h.delivered_presence();
        assert_eq!(got, vec![Presence { from: "bob@example.org".into(), to: "alice".into(), info }], "{xml}");
    }
    recv(&mut h, "<presence from='bob@example.org' to='alice@halo.localhost'/>");
    assert_eq!(h.delivered_presence()[0].info.state, "available");
    recv(&mut h, "<presence type='error' from='bob@example.org' to='alice@halo.localhost'/>");
    assert!(h.delivered_presence().is_empty());
    assert!(h.rejections().is_empty());
    recv(&mut h, "<presence type='bogus' from='bob@example.org' to='alice@halo.localhost'/>");
    assert_eq!(h.rejections().len(), 1);
}

#[test]
fn a_user_is_as_available_as_their_most_available_client() {
    let mut h = ready();
    let p = |res: &str, attrs: &str, inner: &str| {
        format!("<presence from='bob@example.org/{res}' to='alice@halo.localhost'{attrs}>{inner}</presence>")
    };
    let state = |h: &mut AdapterHarness<Xmpp>| {
        let got = h.delivered_presence();
        assert_eq!(got.len(), 1, "{got:?}");
        (got[0].info.state.clone(), got[0].info.note.clone())
    };
    recv(&mut h, &p("phone", "", "<show>away</show>"));
    assert_eq!(state(&mut h), ("away".into(), None));
    recv(&mut h, &p("desk", "", "<status>at my desk</status>"));
    assert_eq!(state(&mut h), ("available".into(), Some("at my desk".into())));
    // The phone changes: the desk still wins.
    recv(&mut h, &p("phone", "", "<show>dnd</show>"));
    assert_eq!(state(&mut h).0, "available");
    // The desk goes: the phone's state shows; then the phone goes too.
    recv(&mut h, &p("desk", " type='unavailable'", ""));
    assert_eq!(state(&mut h).0, "busy");
    recv(&mut h, &p("phone", " type='unavailable'", "<status>gone home</status>"));
    assert_eq!(state(&mut h), ("offline".into(), Some("gone home".into())));
    let mut h2 = ready();
    recv(&mut h2, &p("phone", "", "<show>xa</show>"));
    assert_eq!(state(&mut h2).0, "away");
    // Resources per user are bounded; past the bound presence passes per stanza.
    for i in 0..MAX_RESOURCES + 4 {
        recv(&mut h2, &p(&format!("r{i}"), "", "<show>away</show>"));
        h2.delivered_presence();
    }
    recv(&mut h2, &p("extra", " type='unavailable'", ""));
    assert_eq!(state(&mut h2).0, "away", "the tracked clients still count");
}

#[test]
fn subscription_stanzas_come_in_as_kinds() {
    let mut h = ready();
    for (t, kind) in [
        ("subscribe", Subscription::Request),
        ("subscribed", Subscription::Accept),
        ("unsubscribe", Subscription::Cancel),
        ("unsubscribed", Subscription::Refuse),
        ("probe", Subscription::Probe),
    ] {
        recv(&mut h, &format!("<presence type='{t}' from='bob@example.org' to='alice@halo.localhost'/>"));
        assert_eq!(
            h.delivered_subscriptions(),
            vec![Subscribe { from: "bob@example.org".into(), to: "alice".into(), kind }]
        );
    }
}

#[test]
fn iq_requests_are_answered_service_unavailable_and_pings_pong() {
    let mut h = ready();
    recv(
        &mut h,
        "<iq type='get' from='bob@example.org/pc' to='alice@halo.localhost' id='q1'>\
         <query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(
        h.sent_text(LINK),
        "<iq type='error' from='alice@halo.localhost' to='bob@example.org/pc' id='q1'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    );
    recv(&mut h, "<iq type='get' from='example.org' to='halo.localhost' id='p1'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_eq!(h.sent_text(LINK), "<iq type='result' from='halo.localhost' to='example.org' id='p1'/>");
    recv(&mut h, "<iq type='result' from='example.org' to='halo.localhost' id='r1'/>");
    assert!(h.sent(LINK).is_empty());
    recv(&mut h, "<iq type='set' from='bad jid@example.org' to='halo.localhost' id='r2'><x/></iq>");
    assert!(h.sent(LINK).is_empty());
    assert_eq!(h.rejections().len(), 1);
}

#[test]
fn disco_info_names_the_component_and_its_users() {
    let mut h = ready();
    recv(
        &mut h,
        "<iq type='get' from='bob@example.org/pc' to='halo.localhost' id='d1'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let sent = h.sent_text(LINK);
    assert!(sent.starts_with("<iq type='result' from='halo.localhost' to='bob@example.org/pc' id='d1'>"), "{sent}");
    assert!(sent.contains("<identity category='server' type='im' name='Halo'/>"), "{sent}");
    assert!(sent.contains("<feature var='http://jabber.org/protocol/disco#info'/>"), "{sent}");
    recv(
        &mut h,
        "<iq type='get' from='bob@example.org/pc' to='alice@halo.localhost' id='d2'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let sent = h.sent_text(LINK);
    assert!(sent.contains("<identity category='account' type='registered'/>"), "{sent}");
}

#[test]
fn groupchat_and_bad_addresses_are_answered_with_stanza_errors() {
    let mut h = ready();
    recv(
        &mut h,
        "<message type='groupchat' from='bob@example.org/pc' to='alice@halo.localhost' id='g1'><body>hi</body></message>",
    );
    assert!(h.delivered_messages().is_empty());
    assert_eq!(h.rejections().len(), 1);
    assert_eq!(
        h.sent_text(LINK),
        "<message type='error' from='alice@halo.localhost' to='bob@example.org/pc' id='g1'><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>not a group chat</text></error></message>"
    );
    recv(&mut h, "<message from='bob@example.org/pc' to='Al ice@halo.localhost' id='b1'><body>hi</body></message>");
    assert!(h.sent_text(LINK).contains("<jid-malformed "));
    // An error is never answered.
    recv(&mut h, "<message type='error' from='bob@example.org/pc' to='alice@halo.localhost' id='e1'><error/></message>");
    assert!(h.sent(LINK).is_empty());
}

// ----- framing -----

#[test]
fn stanzas_split_across_inputs_and_several_in_one() {
    let one = "<message from='bob@example.org' to='alice@halo.localhost' id='1'><body>one &amp; ü</body></message>";
    let two = "<message from='bob@example.org' to='alice@halo.localhost' id='2'><body>two</body></message>";
    let three = "<presence from='bob@example.org' to='alice@halo.localhost'><show>dnd</show></presence>";
    let mut h = started(host());
    h.connected(LINK);
    // The whole session, byte by byte (splitting the UTF-8 of ü too).
    let all = format!("{HEADER}\n<handshake/> {one}\n\t{two}{three}");
    for b in all.as_bytes() {
        h.data(LINK, &[*b]);
    }
    assert!(h.routing());
    let texts: Vec<String> = h.delivered_messages().into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["one & ü", "two"]);
    assert_eq!(h.delivered_presence()[0].info.state, "busy");
    // All at once.
    recv(&mut h, &format!("{one}{two}{three}{one}"));
    assert_eq!(h.delivered_messages().len(), 3);
    assert_eq!(h.delivered_presence().len(), 1);
    // In odd pieces.
    let joined = format!("{two}{one}");
    let (a, b) = joined.split_at(37);
    recv(&mut h, a);
    assert!(h.delivered_messages().is_empty());
    recv(&mut h, b);
    assert_eq!(h.delivered_messages().len(), 2);
}

mod hostile;
mod muc;
// ----- errors back (0.1.4) -----

#[test]
fn a_message_halo_refused_is_answered_to_the_senders_full_jid() {
    use halo_sdk::federation::Item;
    use halo_sdk::{Refusal, RefusalCode};
    let mut h = ready();
    recv(&mut h, "<message type='chat' from='Bob@Example.org/pc' to='alice@halo.localhost' id='m1'><body>hi</body></message>");
    let m = h.delivered_messages().remove(0);
    let refuse = |code, reason: &str| {
        Input::Refused(Refusal { item: Item::Message(m.clone()), code, reason: reason.into() })
    };
    h.input(refuse(RefusalCode::RateLimited, "example.org sends more than its limit of 50 messages per second"));
    assert_eq!(
        h.sent_text(LINK),
        "<message type='error' from='alice@halo.localhost' to='Bob@Example.org/pc' id='m1'><error type='wait'>\
         <resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>example.org sends more than its limit of 50 messages per \
         second</text></error></message>"
    );
    // Blocked says no more than an absent account would.
    recv(&mut h, "<message type='chat' from='bob@example.org/pc' to='alice@halo.localhost' id='m2'><body>hi</body></message>");
    let m = h.delivered_messages().remove(0);
    h.input(Input::Refused(Refusal { item: Item::Message(m), code: RefusalCode::Blocked, reason: "blocked".into() }));
    let sent = h.sent_text(LINK);
    assert!(sent.contains("id='m2'") && sent.contains("<service-unavailable ") && !sent.contains("<text"), "{sent}");
}

#[test]
fn an_error_answering_a_halo_message_bounces_it_and_a_refused_handshake_is_a_link_failure() {
    let mut h = ready();
    recv(
        &mut h,
        "<message type='error' from='bob@example.org' to='alice@halo.localhost' id='42'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
    let b = h.bounces();
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0].code, halo_sdk::RefusalCode::Unavailable);
    assert_eq!(b[0].item, halo_sdk::federation::Item::Message(msg("alice", "bob@example.org", "", Some("42"))));
    assert!(h.sent(LINK).is_empty(), "an error is never answered");

    let mut h = started(host());
    h.connected(LINK);
    recv(&mut h, HEADER);
    recv(&mut h, "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>");
    let failures = h.link_failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].1.contains("not-authorized") && failures[0].1.contains("secret"), "{failures:?}");
}

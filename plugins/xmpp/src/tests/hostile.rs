//! Hostile input, through the native harness: DOCTYPEs and entities, oversize stanzas,
//! malformed XML, bad addresses, garbage; and the reopening after a stream error.

use super::*;

const LAUGHS: &str = "<!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
                      <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>";

#[test]
fn a_billion_laughs_doctype_ends_the_stream_with_restricted_xml() {
    // Inside the stream.
    let mut h = ready();
    recv(
        &mut h,
        &format!("{LAUGHS}<message from='bob@example.org' to='alice@halo.localhost'><body>&lol3;</body></message>"),
    );
    assert_stream_error(&mut h, "restricted-xml");
    assert!(h.delivered_messages().is_empty());
    // Before the header.
    let mut h = started(host());
    h.connected(LINK);
    h.sent(LINK);
    recv(&mut h, &format!("<?xml version='1.0'?>{LAUGHS}{HEADER}"));
    assert_stream_error(&mut h, "restricted-xml");
    // Inside a stanza, and split so `<!` arrives alone.
    let mut h = ready();
    recv(&mut h, "<message from='bob@example.org' to='alice@halo.localhost'><");
    recv(&mut h, "!DOCTYPE x>");
    assert_stream_error(&mut h, "restricted-xml");
}

#[test]
fn entities_comments_and_processing_instructions_are_restricted() {
    for xml in [
        "<message from='bob@example.org' to='alice@halo.localhost'><body>&xxe;</body></message>",
        "<message from='bob@example.org' to='alice@halo.localhost' id='&xxe;'><body>x</body></message>",
        "<message from='bob@example.org' to='alice@halo.localhost'><!-- hi --><body>x</body></message>",
        "<?evil instructions?>",
        "<message><?php echo 1 ?></message>",
        "<?xml version='1.0'?>",
    ] {
        let mut h = ready();
        recv(&mut h, xml);
        assert_stream_error(&mut h, "restricted-xml");
    }
}

#[test]
fn a_ten_megabyte_stanza_is_refused_on_its_own_with_bounded_memory() {
    let mut h = ready();
    recv(&mut h, "<message from='bob@example.org/pc' to='alice@halo.localhost' id='big'><body>");
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..160 {
        h.data(LINK, &chunk);
        // Nothing is delivered or answered while the stanza grows, and the framer holds at most
        // the limit plus one input.
        assert!(h.sent(LINK).is_empty());
        assert!(STATE.with(|s| s.borrow().as_ref().map_or(0, |s| s.framer.held())) <= DEFAULT_MAX_STANZA + 64 * 1024);
    }
    recv(&mut h, "</body></message>");
    assert_eq!(
        h.sent_text(LINK),
        "<message type='error' from='alice@halo.localhost' to='bob@example.org/pc' id='big'><error type='modify'>\
         <policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>stanza over 1048576 bytes</text></error></message>"
    );
    assert!(h.delivered_messages().is_empty());
    assert!(h.rejections()[0].reason.contains("max_stanza_bytes"));
    // The stream goes on.
    assert!(h.closed_links().is_empty());
    assert!(h.routing());
    recv(&mut h, "<message from='bob@example.org/pc' to='alice@halo.localhost' id='2'><body>after</body></message>");
    assert_eq!(h.delivered_messages()[0].text, "after");
    // Complete but too big, in one input, is refused on its own too.
    let mut h = started(host().with_config("max_stanza_bytes", "4096"));
    h.connected(LINK);
    recv(&mut h, &format!("{HEADER}<handshake/>"));
    h.sent(LINK);
    let big = format!(
        "<message from='bob@example.org' to='alice@halo.localhost'><body>{}</body></message>",
        "y".repeat(5000)
    );
    recv(&mut h, &big);
    assert!(h.sent_text(LINK).contains("<policy-violation "));
    assert!(h.closed_links().is_empty());
    assert_eq!(h.rejections().len(), 1);
    // A single tag over the limit, or nesting past MAX_DEPTH, still ends the stream.
    recv(&mut h, &format!("<message from='bob@example.org' to='alice@halo.localhost' x='{}", "z".repeat(5000)));
    assert_stream_error(&mut h, "policy-violation");
    let mut h = ready();
    recv(&mut h, &"<a>".repeat(300));
    assert_stream_error(&mut h, "policy-violation");
}

#[test]
fn after_a_stream_error_the_link_is_reopened_with_backoff() {
    let mut h = ready();
    recv(&mut h, "<message><body></message>");
    assert_stream_error(&mut h, "not-well-formed");
    assert!(!h.is_open(LINK));
    h.closed(LINK, "closed by adapter");
    h.timer(REOPEN);
    assert!(h.is_open(LINK));
    h.connected(LINK);
    recv(&mut h, HEADER);
    h.sent(LINK);
    recv(&mut h, "<a><b></a></b>");
    assert_stream_error_at(&mut h, "not-well-formed", REOPEN_MIN_MS * 2);
    h.timer(REOPEN);
    h.connected(LINK);
    recv(&mut h, &format!("{HEADER}<handshake/>"));
    assert!(h.routing());
    // A good handshake resets the backoff.
    h.sent(LINK);
    recv(&mut h, "<x y='1' y='2'/>");
    assert_stream_error(&mut h, "not-well-formed");
}

fn assert_stream_error_at(h: &mut AdapterHarness<Xmpp>, condition: &str, ms: u32) {
    assert!(h.sent_text(LINK).contains(condition));
    assert_eq!(h.timer_ms(REOPEN), Some(ms));
    h.rejections();
    h.closed_links();
}

#[test]
fn malformed_xml_is_not_well_formed() {
    for xml in [
        "<message><body></message>",
        "<message from='a@b.c' from='d@e.f'/>",
        "< message/>",
        "<message from='unterminated<'/>",
        "<message>\u{1}</message>",
        "<message>&#0;</message>",
        "<message>&#x1;</message>",
    ] {
        let mut h = ready();
        recv(&mut h, xml);
        assert_stream_error(&mut h, "not-well-formed");
    }
    let mut h = ready();
    h.data(LINK, b"<message><body>\xff\xfe</body></message>");
    assert_stream_error(&mut h, "not-well-formed");
    // Before the header: text, or a header that is not a stream.
    for xml in ["hello", "<stream:stream/>", "<html>", "</stream:stream>"] {
        let mut h = started(host());
        h.connected(LINK);
        h.sent(LINK);
        recv(&mut h, xml);
        assert_stream_error(&mut h, "not-well-formed");
    }
    // A header without an id.
    let mut h = started(host());
    h.connected(LINK);
    h.sent(LINK);
    recv(&mut h, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    assert_stream_error(&mut h, "not-well-formed");
}

#[test]
fn invalid_addresses_reject_one_stanza_and_the_stream_goes_on() {
    let long = "l".repeat(65);
    let cases = [
        ("example.org", "alice@halo.localhost", Some("example.org")),
        ("", "alice@halo.localhost", None),
        ("bob smith@example.org", "alice@halo.localhost", Some("example.org")),
        ("bob@exa_mple.org", "alice@halo.localhost", None),
        ("bob@example..org", "alice@halo.localhost", None),
        ("bob@example.org/", "alice@halo.localhost", Some("example.org")),
        (&format!("{long}@example.org"), "alice@halo.localhost", Some("example.org")),
        ("mallory@halo.localhost", "alice@halo.localhost", Some("halo.localhost")),
        ("bob@example.org", "alice@other.example", Some("example.org")),
        ("bob@example.org", "halo.localhost", Some("example.org")),
        ("bob@example.org", "al!ce@halo.localhost", Some("example.org")),
        ("bob@example.org", "_alice@halo.localhost", Some("example.org")),
        ("bob@example.org", "", Some("example.org")),
    ];
    let mut h = ready();
    for (from, to, domain) in cases {
        let xml = format!("<message from='{from}' to='{to}'><body>x</body></message>");
        recv(&mut h, &xml);
        let r: Vec<Rejection> = h.rejections();
        assert_eq!(r.len(), 1, "{xml}");
        assert_eq!(r[0].domain.as_deref(), domain, "{xml}: {}", r[0].reason);
        recv(&mut h, &format!("<presence from='{from}' to='{to}'/>"));
        assert_eq!(h.rejections().len(), 1, "presence {from} {to}");
    }
    assert!(h.delivered_messages().is_empty());
    assert!(h.delivered_presence().is_empty());
    assert!(h.routing());
    recv(&mut h, "<message from='bob@example.org' to='Alice@HALO.localhost'><body>ok</body></message>");
    assert_eq!(h.delivered_messages()[0].to, "alice");
}

#[test]
fn garbage_never_panics() {
    // A small deterministic generator (xorshift) mixing XML-ish pieces and random bytes.
    let pieces: &[&[u8]] = &[
        b"<",
        b">",
        b"/>",
        b"</",
        b"<message",
        b"<presence",
        b"<iq",
        b" from='bob@example.org'",
        b" to='alice@halo.localhost'",
        b" type='",
        b"'",
        b"\"",
        b"<body>",
        b"</body>",
        b"</message>",
        b"&",
        b"&amp;",
        b"&#",
        b";",
        b"<![CDATA[",
        b"]]>",
        b"<!",
        b"<?",
        b"?>",
        b"=",
        b" ",
        b"\xc3",
        b"\xff",
        b"</stream:stream>",
        b"<handshake/>",
        b"<stream:error>",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..300 {
        let mut h = ready();
        for _ in 0..40 {
            let mut input = Vec::new();
            for _ in 0..(next() % 8) {
                if next() % 5 == 0 {
                    input.push(next() as u8);
                } else {
                    input.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                }
            }
            h.data(LINK, &input);
            if !h.is_open(LINK) {
                h.closed(LINK, "x");
                h.timer(REOPEN);
                h.connected(LINK);
                h.data(LINK, HEADER.as_bytes());
                h.data(LINK, b"<handshake/>");
            }
        }
    }
}

//! The adapter's rooms (XEP-0045), through the native harness.

use super::*;

fn lobby() -> halo_sdk::RoomInfo {
    halo_sdk::RoomInfo {
        group: "#r5".into(),
        name: "Lobby <1>".into(),
        subject: "hi".into(),
        members_only: false,
        members: 2,
    }
}

#[test]
fn rooms_are_discovered_joined_posted_to_and_left() {
    let mut h = ready();
    h.input(Input::Rooms(vec![lobby()]));
    recv(
        &mut h,
        "<iq type='get' id='d1' from='bob@x.org/pc' to='halo.localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#items'/></iq>",
    );
    let items = h.sent_text(LINK);
    assert!(items.contains("<item jid='#r5@halo.localhost' name='Lobby &lt;1&gt;'/>"), "{items}");
    recv(
        &mut h,
        "<iq type='get' id='d2' from='bob@x.org/pc' to='#r5@halo.localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let info = h.sent_text(LINK);
    assert!(info.contains("category='conference'") && info.contains("muc_open"), "{info}");
    recv(
        &mut h,
        "<iq type='get' id='d3' from='bob@x.org/pc' to='#r9@halo.localhost'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    assert!(h.sent_text(LINK).contains("item-not-found"));

    // Joining asks Halo; nothing is sent until it answers.
    let actions = recv(
        &mut h,
        "<presence from='bob@x.org/pc' to='#r5@halo.localhost/bobby'>\
         <x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='1'/></x></presence>",
    );
    assert_eq!(
        actions,
        vec![Action::DeliverGroupJoin(halo_sdk::GroupJoin { from: "bob@x.org".into(), group: "#r5".into() })]
    );
    assert!(h.sent(LINK).is_empty());
    let line = |t: &str| halo_sdk::GroupLine { author: "alice".into(), text: t.into(), at: 0 };
    h.input(Input::GroupState(halo_sdk::GroupState {
        group: "#r5".into(),
        to: "bob@x.org".into(),
        name: "Lobby".into(),
        subject: "hi & welcome".into(),
        members: vec!["alice".into(), "bob@x.org".into()],
        history: vec![line("old"), line("newer")],
    }));
    let joined = h.sent_text(LINK);
    let occupant = joined.find("from='#r5@halo.localhost/alice' to='bob@x.org/pc'><x").expect("alice listed");
    let own = joined.find("<status code='110'/>").expect("own presence");
    let history = joined.find("<body>newer</body><delay").expect("history");
    let subject = joined.find("<subject>hi &amp; welcome</subject>").expect("subject");
    assert!(occupant < own && own < history && history < subject, "{joined}");
    assert!(!joined.contains("<body>old</body>"), "maxstanzas=1: {joined}");

    // Posts both ways, reflected to the sender.
    let actions = recv(
        &mut h,
        "<message type='groupchat' id='m1' from='bob@x.org/pc' to='#r5@halo.localhost'><body>yo</body></message>",
    );
    assert_eq!(
        actions[..1],
        [Action::DeliverGroupPost(halo_sdk::GroupPost {
            from: "bob@x.org".into(),
            group: "#r5".into(),
            text: "yo".into(),
            id: Some("m1".into()),
        })]
    );
    assert!(h.sent_text(LINK).contains("from='#r5@halo.localhost/bobby' to='bob@x.org/pc' id='m1'><body>yo</body>"));
    h.input(Input::GroupMessage(halo_sdk::GroupMessage {
        group: "#r5".into(),
        to: "bob@x.org".into(),
        author: "alice".into(),
        text: "hey <bob>".into(),
        id: "42".into(),
    }));
    assert_eq!(
        h.sent_text(LINK),
        "<message type='groupchat' from='#r5@halo.localhost/alice' to='bob@x.org/pc' id='42'>\
         <body>hey &lt;bob&gt;</body></message>"
    );

    // Leaving; a post from outside the room is refused.
    recv(&mut h, "<presence type='unavailable' from='bob@x.org/pc' to='#r5@halo.localhost/bobby'/>");
    assert!(h.sent_text(LINK).contains("type='unavailable'"));
    let actions = recv(
        &mut h,
        "<message type='groupchat' from='bob@x.org/pc' to='#r5@halo.localhost'><body>late</body></message>",
    );
    assert!(!actions.iter().any(|a| matches!(a, Action::DeliverGroupPost(_))), "{actions:?}");
    assert!(h.sent_text(LINK).contains("<not-acceptable"));
    // A post for a member with no client in the room goes nowhere.
    h.input(Input::GroupMessage(halo_sdk::GroupMessage {
        group: "#r5".into(),
        to: "bob@x.org".into(),
        author: "alice".into(),
        text: "anyone?".into(),
        id: "43".into(),
    }));
    assert!(h.sent(LINK).is_empty());
}

#[test]
fn refused_joins_are_presence_errors_and_invitations_are_conference_invites() {
    let mut h = ready();
    recv(
        &mut h,
        "<presence from='bob@x.org/pc' to='#r7@halo.localhost/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>",
    );
    h.input(Input::GroupRefused(halo_sdk::GroupRefused {
        group: "#r7".into(),
        to: "bob@x.org".into(),
        condition: "registration-required".into(),
        text: "members only".into(),
    }));
    let refused = h.sent_text(LINK);
    assert!(
        refused.starts_with("<presence type='error' from='#r7@halo.localhost/bob' to='bob@x.org/pc'><error type='auth'><registration-required"),
        "{refused}"
    );
    // A join without a nick is malformed; a room name that is no group is unknown.
    recv(&mut h, "<presence from='bob@x.org/pc' to='#r7@halo.localhost'/>");
    assert!(h.sent_text(LINK).contains("jid-malformed"));
    recv(&mut h, "<presence from='bob@x.org/pc' to='#nope@halo.localhost/bob'/>");
    assert!(h.sent_text(LINK).contains("item-not-found"));

    // XEP-0249 from a Halo user; XEP-0045 mediated when a remote user invited.
    h.input(Input::GroupInvite(halo_sdk::GroupInvite {
        group: "#r7".into(),
        to: "bob@x.org".into(),
        by: "alice".into(),
        name: "Board".into(),
    }));
    assert_eq!(
        h.sent_text(LINK),
        "<message from='alice@halo.localhost' to='bob@x.org'><x xmlns='jabber:x:conference' \
         jid='#r7@halo.localhost' reason='alice invites you to Board'/></message>"
    );
    h.input(Input::GroupInvite(halo_sdk::GroupInvite {
        group: "#r7".into(),
        to: "bob@x.org".into(),
        by: "carol@y.org".into(),
        name: "Board".into(),
    }));
    let mediated = h.sent_text(LINK);
    assert!(mediated.contains("<invite from='carol@y.org'>"), "{mediated}");
    // And a mediated invitation from an XMPP user is handed to Halo.
    let actions = recv(
        &mut h,
        "<message from='bob@x.org/pc' to='#r7@halo.localhost'><x xmlns='http://jabber.org/protocol/muc#user'>\
         <invite to='dave@halo.localhost'><reason>come</reason></invite></x></message>",
    );
    assert_eq!(
        actions,
        vec![Action::DeliverGroupAdd(halo_sdk::GroupAdd {
            from: "bob@x.org".into(),
            group: "#r7".into(),
            user: "dave".into(),
        })]
    );
}

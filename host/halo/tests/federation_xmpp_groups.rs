//! Groups with XMPP users through the `xmpp` adapter, against a real Prosody and a slixmpp
//! client (see `tests/xmpp/harness.rs`): an XMPP user finds a Halo room by service discovery
//! and joins it as a XEP-0045 room (occupants, history, subject, posts both ways, leaving);
//! a Halo room invitation reaches them as a XEP-0249 conference invitation; a closed room
//! refuses them until a manager adds them; an XMPP user added to a group conversation takes
//! part in it; a mediated invitation from them is refused unless they manage the room.

mod common;
#[path = "xmpp/harness.rs"]
mod harness;

use common::{Peer, TestServer, wait_until};
use halo_client::Client;
use harness::{COMPONENT, LIMITS, Prosody, XmppUser, install_xmpp, prerequisites};
use serde_json::{Value, json};

/// Prosody, Halo with the adapter linked, `alice` (stream and REST), `bob@localhost` logged
/// in over XMPP. (Dropped in field order: clients, Halo, then Prosody.)
struct World {
    alice: Peer,
    bob: XmppUser,
    alice_rest: Client,
    server: TestServer,
    _prosody: Prosody,
}

fn world() -> World {
    let prosody = Prosody::start();
    let server = TestServer::with_config(LIMITS);
    let admin = server.admin();
    install_xmpp(&admin, prosody.component);
    admin
        .call_json("PUT", "/api/v1/admin/federation/domains/localhost", Some(&json!({"adapter": "xmpp"})))
        .expect("rule");
    wait_until("the xmpp link up", 30, || {
        let o = admin.call_json("GET", "/api/v1/admin/federation", None).ok()?;
        (o["links"]["adapter:xmpp"]["state"] == "up").then_some(())
    });
    let alice_rest = server.user("alice");
    let token = server.login("alice", "alice-password");
    let alice = Peer::connect(&server, &token, "laptop");
    let mut bob = XmppUser::spawn();
    bob.login(&prosody);
    World { alice, bob, alice_rest, server, _prosody: prosody }
}

fn room(w: &World, name: &str, topic: &str, privacy: &str) -> (u64, String) {
    let r = w
        .alice_rest
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": name, "topic": topic, "privacy": privacy})))
        .expect("room");
    let id = r["id"].as_u64().expect("id");
    (id, format!("#r{id}@{COMPONENT}"))
}

fn is_message(e: &Value, from: &str) -> bool {
    e["event"] == "message" && e["from"] == from
}

/// The next `room.message` text of `from` in `room`.
fn room_text(peer: &mut Peer, room: u64, from: &str) -> String {
    for _ in 0..50 {
        let e = peer.event("room.message");
        if e["message"]["room"] == room && e["message"]["from"] == from && e["message"]["kind"] == "text" {
            return e["message"]["text"].as_str().unwrap_or_default().to_owned();
        }
    }
    panic!("no post of {from} in room {room}");
}

#[test]
fn an_xmpp_user_finds_and_joins_a_halo_room_with_history_subject_and_posts_both_ways() {
    if !prerequisites("an_xmpp_user_finds_and_joins_a_halo_room_with_history_subject_and_posts_both_ways") {
        return;
    }
    let mut w = world();
    let (id, jid) = room(&w, "Lobby", "Welcome, all", "open");
    w.alice.ok(json!({"type": "room.post", "room": id, "text": "first post <&>"}));
    room(&w, "Hidden", "", "secret");

    // Service discovery: the open room is listed, the secret one not; the room says it is a
    // public, open, persistent MUC room.
    w.bob.cmd(json!({"cmd": "disco_items", "jid": COMPONENT}));
    let items = w.bob.wait("disco#items", 30, |e| e["event"] == "disco_items" || e["event"] == "disco_error");
    assert_eq!(items["items"], json!([[jid, "Lobby"]]), "{items}");
    w.bob.cmd(json!({"cmd": "disco_info", "jid": jid}));
    let info = w.bob.wait("disco#info", 30, |e| e["event"] == "disco_info" || e["event"] == "disco_error");
    assert_eq!(info["identities"], json!([["conference", "text", "Lobby"]]), "{info}");
    for f in ["http://jabber.org/protocol/muc", "muc_open", "muc_persistent", "muc_public"] {
        assert!(info["features"].as_array().is_some_and(|a| a.contains(&json!(f))), "{f}: {info}");
    }

    // Joining: alice is there, then bob's own presence (110), the history (delayed), the subject.
    w.bob.cmd(json!({"cmd": "join", "room": jid, "nick": "bobby", "history": 10}));
    let me = format!("{jid}/bobby");
    let alice_there = w
        .bob
        .wait("alice's occupant presence", 30, |e| e["event"] == "presence" && e["from"] == format!("{jid}/alice"));
    assert_eq!(alice_there["type"], "available", "{alice_there}");
    let own = w.bob.wait("bob's own presence", 30, |e| e["event"] == "presence" && e["from"] == me);
    assert!(own["codes"].as_array().is_some_and(|c| c.contains(&json!("110"))), "{own}");
    let old = w.bob.wait("the history", 30, |e| is_message(e, &format!("{jid}/alice")) && e["body"].is_string());
    assert_eq!((old["body"].as_str(), old["delayed"].as_bool()), (Some("first post <&>"), Some(true)), "{old}");
    let subject = w.bob.wait("the subject", 30, |e| is_message(e, &jid) && e["subject"].is_string());
    assert_eq!(subject["subject"], "Welcome, all");
    // He is a member now (open rooms take whoever joins).
    let r = w.alice_rest.call_json("GET", &format!("/api/v1/rooms/{id}"), None).expect("room");
    assert!(r["members"].as_array().is_some_and(|m| m.iter().any(|m| m["username"] == "bob@localhost")), "{r}");

    // Posts both ways; bob's own is reflected to him.
    w.bob.cmd(json!({"cmd": "groupchat", "room": jid, "body": "hello from XMPP, ünïcode"}));
    assert_eq!(room_text(&mut w.alice, id, "bob@localhost"), "hello from XMPP, ünïcode");
    let echo = w.bob.wait("the reflection", 30, |e| is_message(e, &me) && e["body"].is_string());
    assert_eq!(echo["type"], "groupchat");
    w.alice.ok(json!({"type": "room.post", "room": id, "text": "hi bob, welcome"}));
    let live =
        w.bob.wait("alice's post", 30, |e| is_message(e, &format!("{jid}/alice")) && e["body"] == "hi bob, welcome");
    assert_eq!((live["type"].as_str(), live["delayed"].as_bool()), (Some("groupchat"), Some(false)), "{live}");

    // Leaving: bob's client gets its own unavailable presence; posts no longer reach it.
    w.bob.cmd(json!({"cmd": "leave", "room": jid, "nick": "bobby"}));
    let gone = w.bob.wait("bob's own unavailable", 30, |e| {
        e["event"] == "presence" && e["from"] == me && e["type"] == "unavailable"
    });
    assert!(gone["codes"].as_array().is_some_and(|c| c.contains(&json!("110"))), "{gone}");
    // A post after he left is refused by the room.
    w.bob.cmd(json!({"cmd": "groupchat", "room": jid, "body": "still here?"}));
    let refused = w.bob.wait("a refusal", 30, |e| is_message(e, &jid) && e["type"] == "error");
    assert_eq!(refused["error"], "not-acceptable", "{refused}");
    drop(w.server);
}

#[test]
fn halo_invitations_reach_xmpp_users_as_conference_invites_and_closed_rooms_refuse_strangers() {
    if !prerequisites("halo_invitations_reach_xmpp_users_as_conference_invites_and_closed_rooms_refuse_strangers") {
        return;
    }
    let mut w = world();
    let (id, jid) = room(&w, "Board", "Quarter close", "closed");

    // Not a member: the closed room refuses him (members-only).
    w.bob.cmd(json!({"cmd": "join", "room": jid, "nick": "bob"}));
    let refused = w.bob.wait("the refusal", 30, |e| e["event"] == "presence" && e["type"] == "error");
    assert_eq!(refused["error"], "registration-required", "{refused}");
    let posts = w.alice_rest.call_json("GET", &format!("/api/v1/rooms/{id}/messages"), None).expect("posts");
    assert_eq!(posts["messages"].as_array().map(Vec::len), Some(0), "{posts}");

    // alice adds him (this answered 404 "no user named ..." before): a XEP-0249 invitation.
    w.alice_rest
        .call_json("PUT", &format!("/api/v1/rooms/{id}/members/bob@localhost"), Some(&json!({})))
        .expect("add bob@localhost");
    let invite = w.bob.wait("a conference invitation", 30, |e| e["event"] == "message" && !e["conference"].is_null());
    assert_eq!(invite["from"], format!("alice@{COMPONENT}"));
    assert_eq!(invite["conference"]["jid"], jid);
    assert!(invite["body"].is_null(), "an invitation, not a text: {invite}");
    w.bob.cmd(json!({"cmd": "join", "room": jid, "nick": "bob"}));
    let own = w.bob.wait("bob's own presence", 30, |e| e["event"] == "presence" && e["from"] == format!("{jid}/bob"));
    assert!(own["codes"].as_array().is_some_and(|c| c.contains(&json!("110"))), "{own}");
    w.bob.cmd(json!({"cmd": "groupchat", "room": jid, "body": "thanks for adding me"}));
    assert_eq!(room_text(&mut w.alice, id, "bob@localhost"), "thanks for adding me");

    // A mediated invitation from a plain member of a closed room is refused.
    w.server.user("dave");
    w.bob.cmd(json!({"cmd": "invite", "room": jid, "to": format!("dave@{COMPONENT}"), "reason": "come"}));
    let no = w.bob.wait("a refused invitation", 30, |e| is_message(e, &jid) && e["type"] == "error");
    assert_eq!(no["error"], "forbidden", "{no}");

    // A group conversation: alice and carol, then bob@localhost as a third person.
    let carol_rest = w.server.user("carol");
    let tc = w.server.login("carol", "carol-password");
    let mut carol = Peer::connect(&w.server, &tc, "carol-laptop");
    let conv = w.alice.ok(json!({"type": "im.start", "participants": ["carol"]}))["conversation"]["id"].clone();
    let added = w.alice.ok(json!({"type": "im.add", "conversation": conv, "user": "bob@localhost"}));
    assert_eq!(added["conversation"]["kind"], "group");
    let group = format!("#c{conv}@{COMPONENT}");
    let invite =
        w.bob.wait("an invitation to the group", 30, |e| e["event"] == "message" && e["conference"]["jid"] == group);
    assert_eq!(invite["from"], format!("alice@{COMPONENT}"));
    w.alice.ok(json!({"type": "im.send", "conversation": conv, "text": "before bob joined"}));
    w.bob.cmd(json!({"cmd": "join", "room": group, "nick": "bob"}));
    let old = w.bob.wait("the group's history", 30, |e| {
        is_message(e, &format!("{group}/alice")) && e["body"] == "before bob joined"
    });
    assert_eq!(old["delayed"], true);
    w.bob.cmd(json!({"cmd": "groupchat", "room": group, "body": "hi both"}));
    for peer in [&mut w.alice, &mut carol] {
        let m = (0..50)
            .map(|_| peer.event("im.message"))
            .find(|e| e["message"]["from"] == "bob@localhost")
            .expect("bob's message");
        assert_eq!(
            (m["message"]["conversation"].clone(), m["message"]["text"].clone()),
            (conv.clone(), json!("hi both"))
        );
    }
    carol.ok(json!({"type": "im.send", "conversation": conv, "text": "hi bob, carol here"}));
    w.bob
        .wait("carol's message", 30, |e| is_message(e, &format!("{group}/carol")) && e["body"] == "hi bob, carol here");
    drop(carol_rest);
}

//! Presence through a real `halo serve`: aggregation across devices, idle timers, manual and
//! custom states, calendar and phone, access levels, blocking and DND, other apps, restart.

mod common;

use std::time::Duration;

use common::{Peer, TestServer, api_error, wait_presence};
use halo_client::Client;
use serde_json::{Value, json};

const CONFIG: &str = r##"
[presence]
away_after = "1s"
offline_grace = "200ms"
coalesce = "10ms"
max_subscriptions = 2
max_picture_bytes = 1000

[[presence.custom_states]]
id = "focusing"
availability = 6500
colour = "#8e44ad"
labels = { en = "Focusing", fr = "Concentration" }
"##;

struct Person {
    token: String,
    rest: Client,
}

fn people(server: &TestServer, names: &[&str]) -> Vec<Person> {
    names
        .iter()
        .map(|n| {
            server.user(n);
            let token = server.login(n, &format!("{n}-password"));
            Person { rest: server.client(Some(&token)), token }
        })
        .collect()
}

fn add_contact(p: &Person, who: &str, level: &str) {
    p.rest.call_json("POST", "/api/v1/contacts", Some(&json!({"username": who, "level": level}))).expect("add contact");
}

fn state_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["state"] == s
}

#[test]
fn devices_aggregate_and_idle_turns_away() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    add_contact(&p[1], "alice", "colleagues");
    let mut bob = Peer::connect(&server, &p[1].token, "desk");
    let snapshot = bob.event("presence.snapshot");
    assert_eq!(snapshot["contacts"][0]["state"], "offline");
    assert_eq!(snapshot["me"]["state"], "available");

    let mut laptop = Peer::connect(&server, &p[0].token, "laptop");
    wait_presence(&mut bob, "alice", state_is("available"));
    let mut phone = Peer::connect(&server, &p[0].token, "phone");
    laptop.ok(json!({"type": "presence.machine", "state": "inactive"}));
    bob.none_matching(Duration::from_millis(150), |e| {
        e["presence"]["username"] == "alice" && e["presence"]["state"] != "available"
    });
    let own = phone.ok(json!({"type": "presence.machine", "state": "inactive"}))["presence"].clone();
    assert_eq!(own["availability"], 5000);
    let idle = wait_presence(&mut bob, "alice", state_is("available_idle"));
    assert_eq!(idle["availability"], 5000);
    let away = wait_presence(&mut bob, "alice", state_is("away"));
    assert_eq!(away["availability"], 15500, "Inactive turns Away after away_after");
    phone.ok(json!({"type": "presence.machine", "state": "active"}));
    wait_presence(&mut bob, "alice", state_is("available"));
    drop(laptop);
    drop(phone);
    wait_presence(&mut bob, "alice", state_is("offline"));
}

#[test]
fn manual_custom_calendar_and_phone_states() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    add_contact(&p[1], "alice", "colleagues");
    let mut bob = Peer::connect(&server, &p[1].token, "desk");
    let mut alice = Peer::connect(&server, &p[0].token, "laptop");
    wait_presence(&mut bob, "alice", state_is("available"));

    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    wait_presence(&mut bob, "alice", state_is("busy"));
    let custom = alice.ok(json!({"type": "presence.set", "state": "focusing"}))["presence"].clone();
    assert_eq!(
        (custom["custom_state"].as_str(), custom["label"].as_str(), custom["colour"].as_str()),
        (Some("focusing"), Some("Focusing"), Some("#8e44ad"))
    );
    let seen = wait_presence(&mut bob, "alice", |p| p["custom_state"] == "focusing");
    assert_eq!(seen["state"], "busy");
    let until = seen["since"].as_u64().expect("since") + 60_000;
    alice.ok(json!({"type": "presence.set", "state": "be-right-back", "until": until}));
    wait_presence(&mut bob, "alice", state_is("be_right_back"));
    alice.ok(json!({"type": "presence.reset"}));
    wait_presence(&mut bob, "alice", state_is("available"));
    assert_eq!(
        common::listed_state(&server, "focusing").map(|s| s["labels"]["fr"].clone()),
        Some(json!("Concentration"))
    );

    // An integration feeds the calendar and the phone.
    let admin = server.admin();
    let app = admin
        .call_json(
            "POST",
            "/api/v1/admin/app-tokens",
            Some(&json!({"name": "exchange", "scopes": ["calendar:write", "phone:write"]})),
        )
        .expect("app token");
    let exchange = server.client(app["token"].as_str());
    exchange
        .call_json(
            "PUT",
            "/api/v1/users/alice/calendar",
            Some(&json!({"activity": "in-a-meeting", "subject": "Budget review"})),
        )
        .expect("calendar");
    let meeting = wait_presence(&mut bob, "alice", |p| p["activity"] == "in-a-meeting");
    assert_eq!(meeting["state"], "busy");
    assert!(meeting.get("meeting").is_none(), "colleagues do not see meeting details");
    exchange.call_json("PUT", "/api/v1/users/alice/phone", Some(&json!({"activity": "in-a-call"}))).expect("phone");
    wait_presence(&mut bob, "alice", |p| p["activity"] == "in-a-call");
    exchange.call_json("PUT", "/api/v1/users/alice/phone", Some(&json!({"activity": null}))).expect("phone off");
    exchange.call_json("PUT", "/api/v1/users/alice/calendar", Some(&json!({"activity": null}))).expect("calendar off");
    wait_presence(&mut bob, "alice", |p| p["state"] == "available" && p.get("activity").is_none());

    // Nobody else sets alice's calendar.
    let body = json!({"activity": "out-of-office"});
    assert_eq!(api_error(p[1].rest.call("PUT", "/api/v1/users/alice/calendar", Some(&body)).expect_err("bob")).0, 403);
    let reader = admin
        .call_json("POST", "/api/v1/admin/app-tokens", Some(&json!({"name": "intranet", "scopes": ["presence:read"]})))
        .expect("app");
    let intranet = server.client(reader["token"].as_str());
    assert_eq!(api_error(intranet.call("PUT", "/api/v1/users/alice/calendar", Some(&body)).expect_err("scope")).0, 403);
    p[0].rest.call_json("PUT", "/api/v1/users/alice/calendar", Some(&body)).expect("alice herself");
}

fn fields(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    keys.sort();
    keys
}

#[test]
fn each_access_level_sees_exactly_its_fields() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "wg", "ff", "ext", "blk", "col"]);
    server
        .admin()
        .call_json(
            "PATCH",
            "/api/v1/users/alice",
            Some(
                &json!({"title": "CFO", "email": "alice@example.org", "department": "Finance", "phone": "+1 555 0100"}),
            ),
        )
        .expect("card");
    p[0].rest.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "Quarter close", "ooo_note": "Back Monday", "location": "HQ 4F", "mobile_phone": "+1 555 0101", "home_phone": "+1 555 0102"}))).expect("doc");
    p[0].rest
        .call_json(
            "PUT",
            "/api/v1/users/alice/calendar",
            Some(&json!({"activity": "in-a-meeting", "subject": "Board", "until": 9_999_999_999_999u64})),
        )
        .expect("calendar");
    for (who, level) in [("wg", "workgroup"), ("ff", "friends_and_family"), ("ext", "external"), ("blk", "blocked")] {
        add_contact(&p[0], who, level);
    }
    let _alice = Peer::connect(&server, &p[0].token, "laptop");
    let base = ["availability", "colour", "display_name", "email", "label", "since", "state", "username"];
    let card = ["department", "title"];
    let colleagues = ["activity", "last_active", "location", "note", "ooo_note", "work_phone"];
    let expect = |extra: &[&[&str]]| {
        let mut v: Vec<String> =
            base.iter().chain(extra.iter().flat_map(|e| e.iter())).map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    let view = |i: usize| p[i].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("view");
    assert_eq!(fields(&view(1)), expect(&[&card, &colleagues, &["mobile_phone", "meeting"]]), "workgroup");
    assert_eq!(view(1)["meeting"]["subject"], "Board");
    assert_eq!(fields(&view(2)), expect(&[&card, &colleagues, &["mobile_phone", "home_phone"]]), "friends and family");
    assert_eq!(fields(&view(5)), expect(&[&card, &colleagues]), "colleagues (the default)");
    let ext = view(3);
    assert_eq!(fields(&ext), expect(&[&card]), "external");
    assert_eq!(
        (ext["availability"].as_u64(), ext["state"].as_str()),
        (Some(6500), Some("busy")),
        "external sees the band"
    );
    let blk = view(4);
    assert_eq!(
        fields(&blk),
        ["availability", "colour", "display_name", "email", "label", "since", "state", "username"]
    );
    assert_eq!(blk["state"], "offline", "blocked always sees Offline");
    let own = p[0].rest.call_json("GET", "/api/v1/me/presence", None).expect("own");
    assert_eq!(own["presence"]["home_phone"], "+1 555 0102");
    assert_eq!(own["presence"]["meeting"]["subject"], "Board");
}

#[test]
fn blocked_cannot_im_and_dnd_lets_only_workgroup_through() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "wg", "ff", "blk"]);
    add_contact(&p[0], "wg", "workgroup");
    add_contact(&p[0], "ff", "friends_and_family");
    p[0].rest.call("PUT", "/api/v1/me/blocked/blk", None).expect("block");
    assert_eq!(p[0].rest.call_json("GET", "/api/v1/me/blocked", None).expect("list")["blocked"], json!(["blk"]));
    let mut alice = Peer::connect(&server, &p[0].token, "laptop");
    let mut wg = Peer::connect(&server, &p[1].token, "w");
    let mut ff = Peer::connect(&server, &p[2].token, "f");
    let mut blk = Peer::connect(&server, &p[3].token, "b");
    assert_eq!(blk.err(json!({"type": "im.start", "participants": ["alice"]})), "blocked");
    let blk_view = p[3].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("view");
    assert_eq!(blk_view["state"], "offline");

    let with_ff = ff.ok(json!({"type": "im.start", "participants": ["alice"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    assert_eq!(ff.err(json!({"type": "im.send", "conversation": with_ff, "text": "got a minute?"})), "do_not_disturb");
    assert_eq!(ff.err(json!({"type": "im.start", "participants": ["alice", "wg"]})), "do_not_disturb");
    let with_wg = wg.ok(json!({"type": "im.start", "participants": ["alice"]}))["conversation"]["id"].clone();
    wg.ok(json!({"type": "im.send", "conversation": with_wg, "text": "urgent: prod is down"}));
    assert_eq!(alice.event("im.message")["message"]["text"], "urgent: prod is down");
    alice.ok(json!({"type": "presence.reset"}));
    ff.ok(json!({"type": "im.send", "conversation": with_ff, "text": "got a minute now?"}));
    p[0].rest.call("DELETE", "/api/v1/me/blocked/blk", None).expect("unblock");
    blk.ok(json!({"type": "im.start", "participants": ["alice"]}));
}

#[test]
fn other_apps_read_presence_in_batches_and_as_a_badge() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    let _alice = Peer::connect(&server, &p[0].token, "laptop");
    p[0].rest.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "in Lisbon"}))).expect("note");
    let admin = server.admin();
    let app = admin
        .call_json("POST", "/api/v1/admin/app-tokens", Some(&json!({"name": "intranet", "scopes": ["presence:read"]})))
        .expect("app");
    let intranet = server.client(app["token"].as_str());
    let batch = intranet.call_json("GET", "/api/v1/presence?users=alice,bob,nobody", None).expect("batch");
    let list = batch["presence"].as_array().expect("list");
    assert_eq!(list.len(), 2, "unknown users are left out");
    assert_eq!((list[0]["state"].as_str(), list[0]["note"].as_str()), (Some("available"), Some("in Lisbon")));
    assert_eq!(list[1]["state"], "offline");
    assert_eq!(
        api_error(server.client(None).call("GET", "/api/v1/presence?users=alice", None).expect_err("anonymous")).0,
        401
    );
    assert_eq!(api_error(intranet.call("GET", "/api/v1/presence?users=", None).expect_err("empty")).0, 400);
    assert!(
        admin.call_json("GET", "/api/v1/admin/app-tokens", None).expect("list")["tokens"][0].get("token").is_none(),
        "secrets are shown once"
    );

    let (status, svg) = server.raw("GET", "/api/v1/users/alice/presence.svg", None, "text/plain", Vec::new());
    assert_eq!(status, 200);
    assert!(svg.starts_with("<svg") && svg.contains("Available") && svg.contains("#3fb34f"), "{svg}");
    assert!(!svg.contains("Lisbon"), "anonymous viewers see what External sees");
    p[0].rest.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"privacy_mode": true}))).expect("privacy");
    let (_, svg) = server.raw("GET", "/api/v1/users/alice/presence.svg", None, "text/plain", Vec::new());
    assert!(svg.contains("Presence unknown"), "{svg}");
    assert!(
        p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("bob").get("availability").is_none(),
        "privacy mode hides it from non-contacts"
    );
    add_contact(&p[0], "bob", "colleagues");
    assert_eq!(p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("bob")["state"], "available");
    let (_, svg) = server.raw(
        "GET",
        &format!("/api/v1/users/alice/presence.svg?token={}", p[1].token),
        None,
        "text/plain",
        Vec::new(),
    );
    assert!(svg.contains("Available"), "a token in the URL shows the viewer's level");
    admin.call("DELETE", "/api/v1/admin/app-tokens/intranet", None).expect("revoke");
    assert_eq!(api_error(intranet.call("GET", "/api/v1/presence?users=alice", None).expect_err("revoked")).0, 401);
}

#[test]
fn pictures_upload_with_limits_and_serve_with_caching() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 100]].concat();
    let (status, body) = server.raw("PUT", "/api/v1/me/picture", Some(&p[0].token), "image/png", png.clone());
    assert_eq!(status, 200, "{body}");
    let view: Value = serde_json::from_str(&body).expect("json");
    let url = view["picture"].as_str().expect("picture url").to_owned();
    let (status, _) =
        server.raw("PUT", "/api/v1/me/picture", Some(&p[0].token), "image/png", b"<svg onload=alert(1)>".to_vec());
    assert_eq!(status, 400, "not an image");
    let (status, _) = server.raw(
        "PUT",
        "/api/v1/me/picture",
        Some(&p[0].token),
        "image/png",
        [png.as_slice(), &[0u8; 1000]].concat(),
    );
    assert_eq!(status, 413, "too big");

    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let resp = agent
        .get(format!("{}{url}", server.url))
        .header("authorization", format!("Bearer {}", p[1].token))
        .call()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("image/png"));
    let etag = resp.headers().get("etag").and_then(|v| v.to_str().ok()).expect("etag").to_owned();
    assert!(resp.headers().get("cache-control").is_some());
    let again = agent.get(format!("{}{url}", server.url)).header("if-none-match", &etag).call().expect("get");
    assert_eq!(again.status().as_u16(), 304);
    p[0].rest.call("PUT", "/api/v1/me/blocked/bob", None).expect("block");
    let hidden = agent
        .get(format!("{}{url}", server.url))
        .header("authorization", format!("Bearer {}", p[1].token))
        .call()
        .expect("get");
    assert_eq!(hidden.status().as_u16(), 404, "blocked users do not see the picture");
}

#[test]
fn ad_hoc_subscriptions_follow_non_contacts_up_to_a_cap() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob", "carol", "dave"]);
    let mut bob = Peer::connect(&server, &p[1].token, "mail-client");
    let got = bob.ok(json!({"type": "presence.subscribe", "users": ["alice", "carol"], "ttl_secs": 600}));
    assert_eq!(got["presence"].as_array().map(Vec::len), Some(2));
    assert_eq!(bob.err(json!({"type": "presence.subscribe", "users": ["dave"]})), "bad_request", "past the cap");
    assert_eq!(bob.err(json!({"type": "presence.subscribe", "users": ["nobody"]})), "not_found");
    let _alice = Peer::connect(&server, &p[0].token, "laptop");
    wait_presence(&mut bob, "alice", state_is("available"));
    bob.ok(json!({"type": "presence.unsubscribe", "users": ["carol"]}));
    let _carol = Peer::connect(&server, &p[2].token, "laptop");
    bob.none_matching(Duration::from_millis(300), |e| e["presence"]["username"] == "carol");
}

#[test]
fn bad_presence_input_is_refused() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice"]);
    let mut alice = Peer::connect(&server, &p[0].token, "laptop");
    assert_eq!(alice.err(json!({"type": "presence.set", "state": "sleeping"})), "bad_request");
    assert_eq!(alice.err(json!({"type": "presence.set", "availability": 18501})), "bad_request");
    assert_eq!(alice.err(json!({"type": "presence.set", "availability": 6500, "activity": "juggling"})), "bad_request");
    assert_eq!(alice.err(json!({"type": "presence.set", "state": "busy", "availability": 6500})), "bad_request");
    assert_eq!(
        alice.err(json!({"type": "presence.set", "state": "busy", "until": 1})),
        "bad_request",
        "until in the past"
    );
    assert_eq!(alice.err(json!({"type": "presence.machine", "state": "asleep"})), "bad_request");
    let long = json!({"note": "n".repeat(501)});
    assert_eq!(api_error(p[0].rest.call("PATCH", "/api/v1/me/presence", Some(&long)).expect_err("note")).0, 400);
    assert_eq!(
        api_error(p[0].rest.call("PATCH", "/api/v1/me/presence", Some(&json!({"idle_minutes": 2}))).expect_err("idle"))
            .0,
        400
    );
    assert_eq!(
        api_error(
            p[0].rest.call("POST", "/api/v1/contacts", Some(&json!({"username": "ghost"}))).expect_err("unknown")
        )
        .0,
        404
    );
    assert_eq!(
        api_error(p[0].rest.call("POST", "/api/v1/contacts", Some(&json!({"username": "alice"}))).expect_err("self")).0,
        400
    );
    assert_eq!(
        api_error(
            p[0].rest
                .call("PUT", "/api/v1/users/admin/phone", Some(&json!({"activity": "in-a-call"})))
                .expect_err("someone else")
        )
        .0,
        403
    );
    assert_eq!(alice.ok(json!({"type": "presence.set", "availability": 4000}))["presence"]["state"], "available");
}

#[test]
fn contact_groups_are_managed() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob", "carol"]);
    let c = &p[0].rest;
    let list = c.call_json("POST", "/api/v1/contacts/groups", Some(&json!({"name": "Team"}))).expect("group");
    let team = list["groups"][1]["id"].as_u64().expect("id");
    c.call_json("POST", "/api/v1/contacts", Some(&json!({"username": "bob", "group": team, "level": "workgroup"})))
        .expect("add");
    c.call_json("POST", "/api/v1/contacts", Some(&json!({"username": "carol"}))).expect("add");
    let list = c
        .call_json(
            "PATCH",
            &format!("/api/v1/contacts/groups/{team}"),
            Some(&json!({"name": "Core team", "position": 0})),
        )
        .expect("edit");
    assert_eq!(list["groups"][0]["name"], "Core team");
    let list = c
        .call_json("PATCH", "/api/v1/contacts/carol", Some(&json!({"group": team, "level": "friends_and_family"})))
        .expect("move");
    assert!(list["contacts"].as_array().expect("list").iter().all(|x| x["group"] == team));
    c.call("DELETE", &format!("/api/v1/contacts/groups/{team}"), None).expect("delete group");
    let list = c.call_json("GET", "/api/v1/contacts", None).expect("list");
    assert!(
        list["contacts"].as_array().expect("list").iter().all(|x| x["group"] == 0),
        "contacts fall back to the default group"
    );
    assert_eq!(api_error(c.call("DELETE", "/api/v1/contacts/groups/0", None).expect_err("default")).0, 400);
    c.call("DELETE", "/api/v1/contacts/bob", None).expect("remove");
    assert_eq!(api_error(c.call("DELETE", "/api/v1/contacts/bob", None).expect_err("gone")).0, 404);
    let found = c.call_json("GET", "/api/v1/directory?q=car", None).expect("directory");
    assert_eq!(found["people"][0]["username"], "carol");
}

#[test]
fn restart_restores_manual_state_and_contacts_everyone_else_offline() {
    let mut server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    add_contact(&p[1], "alice", "colleagues");
    add_contact(&p[0], "bob", "workgroup");
    let mut alice = Peer::connect(&server, &p[0].token, "laptop");
    alice.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    drop(alice);
    server.crash_and_restart();
    let bob_token = server.login("bob", "bob-password");
    let mut bob = Peer::connect(&server, &bob_token, "desk");
    let snapshot = bob.event("presence.snapshot");
    assert_eq!(snapshot["contacts"][0]["username"], "alice");
    assert_eq!(snapshot["contacts"][0]["state"], "offline", "nobody is connected after a restart");
    let alice_token = server.login("alice", "alice-password");
    let _alice = Peer::connect(&server, &alice_token, "laptop");
    wait_presence(&mut bob, "alice", state_is("do_not_disturb"));
    let contacts = server.client(Some(&alice_token)).call_json("GET", "/api/v1/contacts", None).expect("contacts");
    assert_eq!(contacts["contacts"][0]["level"], "workgroup");
}

#[test]
fn contact_card_changes_reach_watchers_views_the_directory_and_the_badge() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    add_contact(&p[1], "alice", "colleagues");
    let mut bob = Peer::connect(&server, &p[1].token, "desk");
    let mut alice = Peer::connect(&server, &p[0].token, "laptop");
    wait_presence(&mut bob, "alice", state_is("available"));
    // Loaded into presence before the change: the cached card is what went stale.
    let before = p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("presence");
    assert_eq!((before["display_name"].as_str(), before["title"].as_str()), (Some("alice"), None));

    p[0].rest
        .call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": "Alice Liddell", "title": "Engineer"})))
        .expect("patch me");
    let seen = wait_presence(&mut bob, "alice", |v| v["title"] == "Engineer");
    assert_eq!((seen["display_name"].as_str(), seen["state"].as_str()), (Some("Alice Liddell"), Some("available")));
    let own = wait_presence(&mut alice, "alice", |v| v["title"] == "Engineer");
    assert_eq!(own["display_name"], "Alice Liddell", "the owner's devices hear it too");
    let view = p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("presence");
    assert_eq!((view["display_name"].as_str(), view["title"].as_str()), (Some("Alice Liddell"), Some("Engineer")));
    let found = p[1].rest.call_json("GET", "/api/v1/directory?q=liddell", None).expect("directory");
    assert_eq!(found["people"][0]["title"], "Engineer", "{found}");
    let (status, svg) = server.raw(
        "GET",
        &format!("/api/v1/users/alice/presence.svg?token={}", p[1].token),
        None,
        "text/plain",
        Vec::new(),
    );
    assert_eq!(status, 200);
    assert!(svg.contains("Alice Liddell"), "{svg}");

    // An admin's change, and clearing a field, travel the same way.
    server
        .admin()
        .call_json("PATCH", "/api/v1/users/alice", Some(&json!({"department": "R&D", "title": ""})))
        .expect("admin patch");
    let seen = wait_presence(&mut bob, "alice", |v| v["department"] == "R&D");
    assert!(seen["title"].is_null(), "{seen}");
    let view = p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("presence");
    assert_eq!((view["department"].as_str(), view["title"].as_str()), (Some("R&D"), None));
    // A refused change publishes nothing and leaves the card alone.
    let refused =
        p[0].rest.call("PATCH", "/api/v1/me", Some(&json!({"display_name": "x".repeat(500)}))).expect_err("too long");
    assert_eq!(api_error(refused).0, 400);
    let view = p[1].rest.call_json("GET", "/api/v1/users/alice/presence", None).expect("presence");
    assert_eq!(view["display_name"], "Alice Liddell");
}

#[test]
fn a_contact_list_change_reaches_all_the_owners_devices() {
    let server = TestServer::with_config(CONFIG);
    let p = people(&server, &["alice", "bob"]);
    let mut desk = Peer::connect(&server, &p[0].token, "desk");
    let mut phone = Peer::connect(&server, &p[0].token, "phone");
    let mut bob = Peer::connect(&server, &p[1].token, "desk");
    add_contact(&p[0], "bob", "colleagues");
    for device in [&mut desk, &mut phone] {
        assert_eq!(device.event("contacts.changed")["type"], "contacts.changed");
    }
    p[0].rest.call("PUT", "/api/v1/me/blocked/bob", Some(&json!({}))).expect("block");
    p[0].rest.call("DELETE", "/api/v1/contacts/bob", None).expect("remove");
    for device in [&mut desk, &mut phone] {
        device.event("contacts.changed");
        device.event("contacts.changed");
    }
    // Only the owner's devices: bob's list did not change.
    bob.no_event("contacts.changed", Duration::from_millis(300));
    // A refused edit changes nothing and tells no one.
    p[0].rest.call("POST", "/api/v1/contacts", Some(&json!({"username": "ghost"}))).expect_err("unknown user");
    desk.no_event("contacts.changed", Duration::from_millis(300));
}

//! Regressions of the bugs found trying the client as a new user would (issue 21, "Bugs"): the
//! first click on a contact after typing in the search, a directory result whose presence
//! differed from the same contact's, a contact added on another device, an unread badge on the
//! room being read, the New-user form's username pattern, toasts covering the console's
//! buttons, and invalid JSON in a plugin's config saved silently.

use serde_json::{Value, json};

use crate::browser::{Browser, Driver};
use crate::common::{ADMIN_PASSWORD, Peer, TestServer};
use crate::{repo, sign_in};

/// Whether the element matching `css` is free to click: its centre hits it, and no toast
/// overlaps it.
fn uncovered(b: &Browser, css: &str) -> Value {
    b.script(
        "const el = document.querySelector(arguments[0]); const r = el.getBoundingClientRect();
         const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
         const toasts = [...document.querySelectorAll('.toast')].map((t) => t.getBoundingClientRect());
         const overlap = toasts.some((t) => t.left < r.right && t.right > r.left && t.top < r.bottom && t.bottom > r.top);
         return { hit: el.contains(hit), overlap, toasts: toasts.length };",
        json!([css]),
    )
}

#[test]
fn contacts_directory_and_rooms_stay_right() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let alice_api = server.user("alice");
    let bob = server.user("bob");
    let grace = server.user("grace");
    let _carol = server.user("carol");
    bob.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": "Bob Builder"}))).expect("name");
    grace.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": "Grace Hopper"}))).expect("name");
    for who in ["bob", "grace"] {
        alice_api.call_json("POST", "/api/v1/contacts", Some(&json!({"username": who}))).expect("contact");
    }
    let mut grace_peer = Peer::connect(&server, &server.login("grace", "grace-password"), "desk");

    let driver = Driver::start();
    let alice = driver.browser(1280, 800);
    sign_in(&alice, &format!("{}/", server.url), "alice", "alice-password");
    alice.wait_text("[data-contact=grace] .contact-state", "Available");

    // The first click on a contact after typing in the search opens the chat.
    alice.fill("#people-search", "bo");
    alice.wait("[data-directory=bob]");
    alice.click("[data-contact=bob] .contact-main");
    alice.wait_text("#chat-title", "Bob Builder");

    // A directory result shows the contact's presence, also when it changes while shown, and
    // the contact keeps it.
    alice.fill("#people-search", "grace");
    alice.wait("[data-directory=grace]");
    grace_peer.ok(json!({"type": "presence.set", "state": "do-not-disturb"}));
    alice.wait_text("[data-contact=grace] .contact-state", "Do not disturb");
    let states = alice.script(
        "return [document.querySelector('[data-directory=grace] .avatar').dataset.state,
                 document.querySelector('[data-contact=grace] .avatar').dataset.state]",
        json!([]),
    );
    assert_eq!(states, json!(["do_not_disturb", "do_not_disturb"]));
    alice.wait_text("[data-contact=grace] .contact-state", "Do not disturb");
    alice.fill("#people-search", "");

    // A contact added on another device (here over the API) shows without a reload.
    alice_api.call_json("POST", "/api/v1/contacts", Some(&json!({"username": "carol"}))).expect("contact");
    alice.wait("[data-contact=carol]");
    alice_api.call("DELETE", "/api/v1/contacts/carol", None).expect("remove");
    alice.wait_gone("[data-contact=carol]");

    // Reading a room: its row under "My rooms" shows no unread badge, from joining it (with
    // a post already there) and opening it with a post unread to posts coming in while it is
    // open.
    let room =
        bob.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "design", "privacy": "open"}))).expect("room");
    let room = room["id"].as_u64().expect("id");
    let mut bob_peer = Peer::connect(&server, &server.login("bob", "bob-password"), "desk");
    bob_peer.ok(json!({"type": "room.post", "room": room, "text": "welcome post"}));
    alice.click("#tab-rooms");
    alice.wait("[data-room=design]");
    alice.goto(&format!("{}/#/r/{room}", server.url));
    alice.wait_text("#room-messages .msg", "welcome post");
    alice.click("#join-room");
    alice.wait("#room-composer");
    alice.wait_gone("[data-room=design] .badge");
    alice.script("location.hash = '#/'", json!([]));
    alice.wait_gone("#room-composer");
    bob_peer.ok(json!({"type": "room.post", "room": room, "text": "while away"}));
    alice.wait_text("[data-room=design] .badge", "1");
    alice.click("[data-room=design]");
    alice.wait_text("#room-messages .msg", "while away");
    for text in ["first post", "second post"] {
        bob_peer.ok(json!({"type": "room.post", "room": room, "text": text}));
        alice.wait_text("#room-messages .msg", text);
    }
    // Her own post too; then the list is read again from the server (as showing the tab does).
    alice.fill("#room-composer", "my own post");
    alice.type_in("#room-composer", "\u{E007}", false);
    alice.wait_text("#room-messages .msg.mine", "my own post");
    crate::common::wait_until("alice's read marker", 20, || {
        let r = alice_api.call_json("GET", &format!("/api/v1/rooms/{room}"), None).ok()?;
        (r["unread"] == 0).then_some(())
    });
    alice.script("document.querySelector('[data-room=design]').dataset.old = 'yes'", json!([]));
    alice.click("#tab-chats");
    alice.click("#tab-rooms");
    alice.wait("[data-room=design]:not([data-old])");
    alice.wait_gone("[data-room=design] .badge");
}

#[test]
fn console_forms_validate_and_toasts_leave_the_buttons_free() {
    let server = TestServer::start();
    let plugin = repo("plugins/target/wasm32-wasip2/release/custom_states.wasm");
    assert!(plugin.exists(), "{} is missing: run `cargo xtask plugins`", plugin.display());
    let driver = Driver::start();
    let admin = driver.browser(1280, 800);
    sign_in(&admin, &format!("{}/", server.url), "admin", ADMIN_PASSWORD);
    admin.click("#open-admin");
    admin.wait("#users-table [data-user=admin]");

    // The username pattern is a valid expression (in the `v` mode browsers use) and applies.
    admin.click("#create-user");
    admin.wait("#new-username");
    let pattern = admin.script(
        "const i = document.getElementById('new-username'); let ok = true;
         try { new RegExp(i.pattern, 'v'); } catch { ok = false; }
         i.value = 'bad name!'; const bad = i.validity.patternMismatch;
         i.value = 'good.name-1'; const good = !i.validity.patternMismatch;
         return [ok, bad, good];",
        json!([]),
    );
    assert_eq!(pattern, json!([true, true, true]));
    admin.fill("#new-username", "dora");
    admin.fill("#new-password", "dora-password");
    admin.click_text("dialog button[type=submit]", "Create user");
    admin.wait("#users-table [data-user=dora]");
    // A second one right away: two toasts at once, and the button stays free to click.
    admin.click("#create-user");
    admin.fill("#new-username", "erin");
    admin.fill("#new-password", "erin-password");
    admin.click_text("dialog button[type=submit]", "Create user");
    admin.wait("#users-table [data-user=erin]");
    admin.wait(".toast");
    let free = uncovered(&admin, "#create-user");
    assert_eq!((free["hit"].clone(), free["overlap"].clone()), (json!(true), json!(false)), "{free}");

    admin.click("[data-section=plugins]");
    admin.wait("#install-plugin");
    admin.upload("#plugin-file", &plugin);
    admin.click_text("dialog button[type=submit]", "Install");
    admin.wait_text("[data-plugin=custom-states] .tag", "Enabled");
    // The same file again: an error toast (shown 8 s), and Install plugin stays free.
    admin.upload("#plugin-file", &plugin);
    admin.wait_text(".toast.error", "installed already");
    let free = uncovered(&admin, "#install-plugin");
    assert_eq!((free["hit"].clone(), free["overlap"].clone()), (json!(true), json!(false)), "{free}");

    // Invalid JSON is refused in the dialog, which stays open; fixed, it is saved.
    admin.click("[data-plugin=custom-states] [data-action=config]");
    admin.fill("dialog textarea[name=states]", r#"[{"id": "focusing""#);
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("dialog .form-error", "states is not valid JSON");
    admin.fill(
        "dialog textarea[name=states]",
        r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##,
    );
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_gone("dialog");
    admin.wait_text("[data-plugin=custom-states] .state-chip", "Focusing");
}

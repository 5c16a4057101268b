//! The web client end to end, in real headless Chromium against a real `halo serve`: the
//! admin signs in, creates users and installs, configures and later disables the
//! `custom-states` plugin from the console; alice and bob, each in their own browser, add each
//! other, watch each other's presence change (a custom state included), chat both ways with
//! typing and read receipts, add carol, and search the history; carol signs in later and finds
//! the messages she missed. Screenshots of the contacts list and of the conversation are saved
//! under `docs/`. Compliance archiving from the console is in `web/archiving.rs`, federation in
//! `web/federation.rs`.

#[path = "web/a11y.rs"]
mod a11y;
#[path = "web/archiving.rs"]
mod archiving;
mod browser;
#[path = "web/bugs.rs"]
mod bugs;
mod common;
#[path = "web/features.rs"]
mod features;
#[path = "web/federation.rs"]
mod federation;
#[path = "web/perf.rs"]
mod perf;
#[path = "web/phone.rs"]
mod phone;
#[path = "web/text.rs"]
mod text;

use std::path::PathBuf;

use browser::{Browser, Driver};
use common::{ADMIN_PASSWORD, Peer, TestServer};
use serde_json::json;

const FOCUS: &str = r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##;

fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

/// Saves a screenshot for the docs, without passing notices.
fn screenshot(b: &Browser, rel: &str) {
    b.script("document.getElementById('toasts').replaceChildren(); document.activeElement?.blur();", json!([]));
    b.screenshot(&repo(rel));
}

/// Dave (in a call), Erin (away) and Grace (do not disturb) online with notes, in Bob's
/// contacts; their sockets stay open while the returned peers live.
fn colleagues(server: &TestServer) -> Vec<Peer> {
    let people = [
        ("dave", "Dave Chen", "Sprint planning all morning", None),
        ("erin", "Erin Walsh", "Back after lunch", Some("away")),
        ("grace", "Grace Hopper", "Writing the quarterly report", Some("do-not-disturb")),
    ];
    let bob = server.client(Some(&server.login("bob", "bob-password")));
    let mut peers = Vec::new();
    for (name, display, note, state) in people {
        let c = server.user(name);
        c.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": display}))).expect("name");
        c.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": note, "location": "Oslo"}))).expect("note");
        let mut peer = Peer::connect(server, &server.login(name, &format!("{name}-password")), "desk");
        match state {
            Some(s) => {
                peer.ok(json!({"type": "presence.set", "state": s}));
            }
            None => {
                c.call("PUT", &format!("/api/v1/users/{name}/phone"), Some(&json!({"activity": "in-a-call"})))
                    .expect("phone");
            }
        }
        bob.call_json("POST", "/api/v1/contacts", Some(&json!({"username": name}))).expect("contact");
        peers.push(peer);
    }
    peers
}

/// Draws a picture on a canvas and hands it to the "change picture" input, as choosing a
/// file would.
fn upload_picture(b: &Browser, from: &str, to: &str) {
    b.script(
        "const [from, to] = arguments; const c = document.createElement('canvas'); c.width = c.height = 96;
         const g = c.getContext('2d'); const grad = g.createLinearGradient(0, 0, 96, 96);
         grad.addColorStop(0, from); grad.addColorStop(1, to); g.fillStyle = grad; g.fillRect(0, 0, 96, 96);
         g.fillStyle = 'rgba(255,255,255,.85)'; g.beginPath(); g.arc(48, 38, 17, 0, 7); g.fill();
         g.beginPath(); g.arc(48, 100, 36, 0, 7); g.fill();
         const bytes = Uint8Array.from(atob(c.toDataURL('image/png').split(',')[1]), (ch) => ch.charCodeAt(0));
         const dt = new DataTransfer(); dt.items.add(new File([bytes], 'me.png', { type: 'image/png' }));
         const input = document.getElementById('picture-file'); input.files = dt.files;
         input.dispatchEvent(new Event('change'));",
        json!([from, to]),
    );
}

fn sign_in(b: &Browser, url: &str, user: &str, password: &str) {
    b.goto(url);
    b.fill("#login-username", user);
    b.fill("#login-password", password);
    b.click("#login-submit");
    b.wait("#my-state");
}

fn create_user(admin: &Browser, username: &str, name: &str) {
    admin.click("#create-user");
    admin.fill("#new-username", username);
    admin.fill("#new-display-name", name);
    admin.fill("#new-password", &format!("{username}-password"));
    admin.click_text("dialog button[type=submit]", "Create user");
    admin.wait(&format!("#users-table [data-user={username}]"));
}

fn add_contact(b: &Browser, who: &str, name: &str) {
    b.click("#tab-contacts");
    b.fill("#people-search", who);
    b.click(&format!("[data-add={who}]"));
    b.click_text("dialog button[type=submit]", "Add contact");
    b.fill("#people-search", "");
    b.wait_text(&format!("[data-contact={who}] .contact-name"), name);
}

fn set_state(b: &Browser, state: &str) {
    b.click("#my-state");
    b.click(&format!(".state-menu [data-state={state}]"));
}

fn send(b: &Browser, text: &str) {
    b.fill("#composer", text);
    b.type_in("#composer", "\u{E007}", false);
    b.wait_text("#messages .msg.mine", text);
}

#[test]
fn two_people_chat_with_presence_in_real_browsers() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\noffline_grace = \"1s\"\n");
    let url = format!("{}/", server.url);
    let plugin = repo("plugins/target/wasm32-wasip2/release/custom_states.wasm");
    assert!(plugin.exists(), "{} is missing: run `cargo xtask plugins`", plugin.display());
    let driver = Driver::start();

    // The bootstrap admin creates the users and installs the custom-states plugin.
    let admin = driver.browser(1280, 800);
    sign_in(&admin, &url, "admin", ADMIN_PASSWORD);
    admin.click("#open-admin");
    admin.wait("#users-table [data-user=admin]");
    create_user(&admin, "alice", "Alice Example");
    create_user(&admin, "bob", "Bob Builder");
    create_user(&admin, "carol", "Carol Jones");
    admin.click("#create-user");
    admin.fill("#new-username", "alice");
    admin.fill("#new-password", "another-password");
    admin.click_text("dialog button[type=submit]", "Create user");
    admin.wait_text("dialog .form-error", "user alice exists already");
    admin.click("dialog .dialog-head button");

    admin.click("[data-section=plugins]");
    admin.wait("#install-plugin");
    admin.upload("#plugin-file", &plugin);
    admin.wait_text("dialog #plugin-capabilities", "no capabilities");
    admin.click_text("dialog button[type=submit]", "Install");
    admin.wait_text("[data-plugin=custom-states] .tag", "Enabled");
    admin.click("[data-plugin=custom-states] [data-action=config]");
    admin.fill("dialog textarea[name=states]", FOCUS);
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("[data-plugin=custom-states] .state-chip", "Focusing");

    // Colleagues online elsewhere (over the API), in Bob's contacts, for a lifelike list.
    let _others = colleagues(&server);

    // Alice and Bob sign in, each in their own browser, and add each other.
    let alice = driver.browser(1280, 800);
    let bob = driver.browser(1200, 900);
    sign_in(&alice, &url, "alice", "alice-password");
    sign_in(&bob, &url, "bob", "bob-password");
    add_contact(&alice, "bob", "Bob Builder");
    add_contact(&bob, "alice", "Alice Example");
    add_contact(&bob, "carol", "Carol Jones");
    alice.wait_text("[data-contact=bob] .contact-state", "Available");
    bob.wait_text("[data-contact=alice] .contact-state", "Available");
    bob.wait_text("[data-contact=carol] .contact-state", "Offline");

    // Presence: a built-in state, a note and location, then the plugin's custom state.
    upload_picture(&alice, "#f6a04d", "#c2417a");
    bob.wait("[data-contact=alice] .avatar img");
    upload_picture(&bob, "#5fb2f0", "#2f6fdb");
    alice.wait("[data-contact=bob] .avatar img");
    set_state(&alice, "busy");
    bob.wait_text("[data-contact=alice] .contact-state", "Busy");
    alice.fill("#my-note", "Design review at 3pm");
    alice.type_in("#my-note", "\u{E007}", false);
    alice.fill("#my-location", "Building 4, Oslo");
    alice.type_in("#my-location", "\u{E007}", false);
    bob.wait_text("[data-contact=alice] .contact-note", "Design review at 3pm");
    bob.wait_text("[data-contact=alice] .contact-location", "Oslo");
    set_state(&alice, "focusing");
    bob.wait_text("[data-contact=alice] .contact-state", "Focusing");
    set_state(&bob, "be-right-back");
    alice.wait_text("[data-contact=bob] .contact-state", "Be right back");
    set_state(&bob, "available");
    alice.wait_text("[data-contact=bob] .contact-state", "Available");

    // Bob makes a group for the design team and moves Alice and Carol into it.
    bob.click("#new-group");
    bob.fill("dialog input[name=name]", "Design team");
    bob.click_text("dialog button[type=submit]", "Create");
    bob.wait_text(".group-name", "Design team");
    for who in ["alice", "carol"] {
        bob.click(&format!("[data-menu-for={who}]"));
        bob.click(".menu [data-action=move]");
        bob.wait("dialog select[name=group]");
        bob.script(
            "const s = document.querySelector('dialog select[name=group]'); \
             s.value = [...s.options].find((o) => o.text === 'Design team').value;",
            json!([]),
        );
        bob.click_text("dialog button[type=submit]", "Move");
        bob.wait(&format!("[data-group='1'] [data-contact={who}]"));
    }
    // The contacts list in a phone-sized window: one column.
    bob.resize(440, 900);
    bob.wait_gone("#main");
    screenshot(&bob, "docs/screenshot-contacts.png");
    bob.resize(1200, 900);
    bob.wait("#main");

    // Bob starts a chat; Alice sees it unread, opens it, answers while Bob sees her typing.
    bob.click("[data-contact=alice] .contact-main");
    bob.wait_text("#chat-title", "Alice Example");
    send(&bob, "Hi Alice, do you have the design review slides?");
    alice.wait_text("#unread-total", "1");
    alice.click("#tab-chats");
    alice.click_text("#conversation-list .conv", "Bob Builder");
    alice.wait_text("#messages .msg", "design review slides");
    bob.wait_text("#messages .msg.mine .receipt", "Seen");
    alice.type_in("#composer", "Yes, sharing them", false);
    bob.wait_text("#typing", "Alice Example is typing");
    alice.type_in("#composer", " now.\u{E007}", false);
    alice.wait_text("#messages .msg.mine", "Yes, sharing them now.");
    bob.wait_text("#messages .msg", "Yes, sharing them now.");
    bob.wait_no_text("#typing", "typing");

    // Alice adds Carol: the 1:1 becomes a group for everyone.
    alice.click("#add-participant");
    alice.fill("#add-participant-search", "carol");
    alice.click("[data-pick=carol]");
    alice.wait_text("#messages .system", "Carol Jones joined");
    bob.wait_text("#messages .system", "Carol Jones joined");
    bob.wait_text("#chat-title", "Carol Jones");
    send(&alice, "Welcome Carol! The slides are in the team folder.");
    bob.wait_text("#messages .msg", "Welcome Carol!");
    send(&bob, "Thanks both, see you at 3.");
    alice.wait_text("#messages .msg", "see you at 3");
    screenshot(&bob, "docs/screenshot-conversation.png");

    // History search finds the first message.
    bob.click("#tab-chats");
    bob.fill("#history-search", "slides review");
    bob.wait_text("#history-results .hit", "design review slides");

    // Rooms: Alice creates one, Bob finds it, joins and posts; Alice reads it live.
    alice.click("#tab-rooms");
    alice.click("#new-room");
    alice.fill("dialog input[name=name]", "design-crit");
    alice.fill("dialog input[name=topic]", "Friday design critique");
    alice.click_text("dialog button[type=submit]", "Create");
    alice.wait_text("#room-topic", "Friday design critique");
    bob.click("#tab-rooms");
    bob.click_text("#room-list .room-row", "design-crit");
    bob.click("#join-room");
    bob.fill("#room-composer", "I'll bring the new icons.\u{E007}");
    bob.wait_text("#room-messages .msg.mine", "new icons");
    alice.wait_text("#room-messages .msg", "I'll bring the new icons.");
    alice.click("#edit-topic");
    alice.fill("dialog input[name=topic]", "Friday design critique, 2pm");
    alice.click_text("dialog button[type=submit]", "Save");
    bob.wait_text("#room-topic", "2pm");

    // The session is kept across a reload.
    bob.refresh();
    bob.wait_text("#my-state", "Available");
    bob.wait_text("#room-topic", "2pm");
    bob.click("#tab-contacts");
    bob.wait_text("[data-contact=alice] .contact-state", "Focusing");

    // The admin disables the plugin: the custom state disappears for everyone at once.
    admin.click("[data-plugin=custom-states] [data-action=disable]");
    admin.wait_text("[data-plugin=custom-states] .tag", "Disabled");
    bob.wait_no_text("[data-contact=alice] .contact-state", "Focusing");
    bob.wait_text("[data-contact=alice] .contact-state", "Busy");
    bob.click("#my-state");
    bob.wait(".state-menu [data-state=busy]");
    bob.wait_gone(".state-menu [data-state=focusing]");
    bob.script("document.querySelector('.state-menu')?.remove()", json!([]));

    // Carol, offline all along, signs in and finds the conversation she missed, unread.
    alice.click("#sign-out");
    alice.wait("#login-username");
    sign_in(&alice, &url, "carol", "carol-password");
    alice.click("#tab-chats");
    alice.wait_text("#conversation-list .conv .badge", "2");
    alice.click_text("#conversation-list .conv", "Alice Example");
    alice.wait_text("#messages .msg", "Welcome Carol!");
    alice.wait_text("#messages .msg", "see you at 3");

    // Every message was acknowledged, the live ones too: no delivery queue is left behind.
    let token = server.login("admin", ADMIN_PASSWORD);
    common::wait_until("the clients to acknowledge every message", 20, || {
        let (_, metrics) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
        metrics.contains("halo_im_offline_queue 0").then_some(())
    });
}

#[test]
fn the_client_is_served_with_types_cache_validators_and_a_strict_csp() {
    let server = TestServer::start();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let get = |path: &str, etag: Option<&str>| {
        let mut req = agent.get(format!("{}{path}", server.url));
        if let Some(tag) = etag {
            req = req.header("if-none-match", tag);
        }
        req.call().expect("http")
    };
    let header = |r: &ureq::http::Response<ureq::Body>, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };

    let mut index = get("/", None);
    assert_eq!(index.status(), 200);
    assert_eq!(header(&index, "content-type"), "text/html; charset=utf-8");
    let csp = header(&index, "content-security-policy");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header(&index, "cache-control"), "no-cache");
    let etag = header(&index, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    assert!(index.body_mut().read_to_string().expect("body").contains("js/app.js"));
    assert_eq!(get("/", Some(&etag)).status(), 304, "unchanged files are revalidated, not resent");

    for (path, kind) in
        [("/js/app.js", "text/javascript"), ("/css/app.css", "text/css"), ("/favicon.svg", "image/svg+xml")]
    {
        let r = get(path, None);
        assert_eq!(r.status(), 200, "{path}");
        assert!(header(&r, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
    }
    assert_eq!(get("/no-such-file.js", None).status(), 404);
    let mut api = get("/api/v1/no-such-route", None);
    assert_eq!(api.status(), 404);
    let body: serde_json::Value = serde_json::from_str(&api.body_mut().read_to_string().expect("body")).expect("json");
    assert_eq!(body["error"], "not_found", "unknown API paths keep the API's error shape");
    let doc = server.client(None).call_json("GET", "/api/v1/openapi.json", None).expect("openapi");
    assert!(doc["paths"].get("/").is_none(), "the client's files are not API routes");
}

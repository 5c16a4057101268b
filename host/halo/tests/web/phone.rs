//! The client on a phone (issue 21, "Phone"): at 360 and 390 CSS pixels (a mobile viewport, as
//! Chromium's device emulation gives) nothing makes the page wider than the screen: a long
//! last-message preview, a 63-character display name, a note with a long URL, a room
//! manager's header, the admin users table. Screenshots at 390 px go to the test's temporary
//! directory (`HALO_PHONE_SHOTS` to keep them elsewhere).

use std::path::PathBuf;

use serde_json::json;

use crate::browser::{Browser, Driver};
use crate::common::{ADMIN_PASSWORD, TestServer};
use crate::sign_in;

/// 63 characters, no spaces to break at.
const LONG_NAME: &str = "Maximiliana-Alexandrina-Konstantinopoulou-Vanderbilt-Fitzgerald";
const LONG_NOTE: &str =
    "Agenda: https://intranet.example.com/teams/design/planning/2026/q1/agenda-and-minutes-of-the-kickoff";
const LONG_PREVIEW: &str = "Could you please send me the final slides for the quarterly review before noon";

/// Emulates a phone `width` CSS pixels wide.
fn phone(b: &Browser, width: u32) {
    b.cdp(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": width, "height": 780, "deviceScaleFactor": 2, "mobile": true}),
    );
}

/// Asserts that the page is as wide as the screen, and not zoomed out.
fn fits(b: &Browser, width: u32, what: &str) {
    let m = b.script("return [document.documentElement.scrollWidth, innerWidth, visualViewport.scale]", json!([]));
    let (scroll, inner, scale) =
        (m[0].as_f64().unwrap_or(0.0), m[1].as_f64().unwrap_or(0.0), m[2].as_f64().unwrap_or(0.0));
    assert!(
        scroll <= inner && inner <= f64::from(width) && scale >= 1.0,
        "{what} at {width} px: scrollWidth {scroll}, innerWidth {inner}, scale {scale}"
    );
}

fn shot(b: &Browser, name: &str) {
    let dir =
        std::env::var_os("HALO_PHONE_SHOTS").map_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")), PathBuf::from);
    b.script("document.getElementById('toasts').replaceChildren(); document.activeElement?.blur();", json!([]));
    b.screenshot(&dir.join(format!("phone-{name}.png")));
}

#[test]
fn the_client_fits_a_phone_from_360_to_390_px() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let _carol = server.user("carol");
    alice.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": LONG_NAME}))).expect("name");
    let bob_name = format!("Bob {LONG_NAME}");
    bob.call_json("PATCH", "/api/v1/me", Some(&json!({"display_name": &bob_name[..63]}))).expect("name");
    bob.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": LONG_NOTE, "location": "Building 4, Oslo"})))
        .expect("note");
    for who in ["bob", "carol"] {
        alice.call_json("POST", "/api/v1/contacts", Some(&json!({"username": who}))).expect("contact");
    }
    let conv = alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("conv");
    let conv = conv["id"].as_u64().expect("id");
    alice
        .call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "Morning! Ready?"})))
        .expect("send");
    bob.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": LONG_PREVIEW})))
        .expect("send");
    bob.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": LONG_NOTE})))
        .expect("send");
    let room = alice
        .call_json(
            "POST",
            "/api/v1/rooms",
            Some(&json!({"name": "Quarterly planning", "topic": LONG_NOTE, "privacy": "open"})),
        )
        .expect("room");
    let room = room["id"].as_u64().expect("id");
    bob.call_json("POST", &format!("/api/v1/rooms/{room}/join"), Some(&json!({}))).expect("join");

    let driver = Driver::start();
    let b = driver.browser(800, 900);
    let admin = driver.browser(800, 900);
    sign_in(&b, &format!("{}/", server.url), "alice", "alice-password");
    sign_in(&admin, &format!("{}/", server.url), "admin", ADMIN_PASSWORD);
    for width in [360, 390] {
        phone(&b, width);
        b.goto(&format!("{}/#/", server.url));
        b.click("#tab-contacts");
        b.wait_text("[data-contact=bob] .contact-note", "intranet");
        fits(&b, width, "contacts");
        if width == 390 {
            shot(&b, "contacts");
        }
        b.click("#tab-chats");
        b.wait_text("#conversation-list .conv-snippet", "Agenda");
        fits(&b, width, "chats");
        if width == 390 {
            shot(&b, "chats");
        }
        b.goto(&format!("{}/#/c/{conv}", server.url));
        b.wait_text("#messages .msg", "quarterly review");
        fits(&b, width, "conversation");
        if width == 390 {
            shot(&b, "conversation");
        }
        b.goto(&format!("{}/#/r/{room}", server.url));
        b.wait("#edit-topic");
        fits(&b, width, "room");
        let name =
            b.script("return document.querySelector('.room .main-head h2').getBoundingClientRect().width", json!([]));
        assert!(name.as_f64().unwrap_or(0.0) >= 120.0, "the room's name is squeezed to {name} px");
        if width == 390 {
            shot(&b, "room");
        }

        phone(&admin, width);
        admin.goto(&format!("{}/#/admin/users", server.url));
        admin.wait("#users-table [data-user=alice]");
        fits(&admin, width, "admin users");
        if width == 390 {
            shot(&admin, "admin-users");
        }
    }
}

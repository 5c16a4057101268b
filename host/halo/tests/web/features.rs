//! What users of Teams, Slack and Element expect, in the browser (issue 21): links and a small
//! safe markdown, replies with a quote, @mentions highlighted, reactions from the lazily loaded
//! emoji picker, editing and deleting one's own message, files attached and previewed, mute,
//! the Rooms tab's unread badge, the profile dialog and the admin's user search.

use serde_json::json;

use crate::browser::Driver;
use crate::common::TestServer;
use crate::sign_in;

#[test]
fn messages_have_rich_text_replies_reactions_edits_deletions_and_files() {
    let server = TestServer::start();
    let _alice = server.user("alice");
    let bob = server.user("bob");
    let conv = bob.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["alice"]}))).expect("conv");
    let conv = conv["id"].as_u64().expect("id");
    let url = format!("{}/api/v1/conversations/{conv}/messages", "");
    let first = bob
        .call_json(
            "POST",
            &url,
            Some(&json!({"text": "**bold** *soft* `x<y` <img src=x onerror=alert(1)> see https://example.org/a?b=1 @alice"})),
        )
        .expect("send");

    let driver = Driver::start();
    let alice = driver.browser(1000, 800);
    sign_in(&alice, &server.url, "alice", "alice-password");
    alice.goto(&format!("{}#/c/{conv}", server.url));
    alice.wait("#messages .msg strong");
    let shown = alice.script(
        "const t = document.querySelector('#messages .msg .msg-text'); return {
            strong: t.querySelector('strong')?.textContent, em: t.querySelector('em')?.textContent,
            code: t.querySelector('code')?.textContent, img: t.querySelectorAll('img').length,
            href: t.querySelector('a')?.getAttribute('href'), rel: t.querySelector('a')?.rel,
            me: t.querySelector('.mention.me')?.textContent, flagged: t.classList.contains('mentions-me') }",
        json!([]),
    );
    assert_eq!(
        shown,
        json!({"strong": "bold", "em": "soft", "code": "x<y", "img": 0, "href": "https://example.org/a?b=1",
            "rel": "noopener noreferrer nofollow", "me": "@alice", "flagged": true}),
        "markup in the text stays text"
    );
    assert!(
        !alice
            .script("return [...document.querySelectorAll('script')].some((s) => !s.src)", json!([]))
            .as_bool()
            .unwrap_or(true),
        "no inline script"
    );
    let loaded_emoji = "return performance.getEntriesByType('resource').some((r) => r.name.endsWith('/js/emoji.js'))";
    assert_eq!(alice.script(loaded_emoji, json!([])), json!(false), "the emoji picker is not part of the first load");

    // React from the picker; bob sees the count.
    alice.script("document.querySelector('#messages .msg .msg-actions').click()", json!([]));
    alice.click("[data-action=react]");
    alice.wait(".emoji-picker");
    alice.click(".emoji-picker .emoji[aria-label='🎉']");
    alice.wait_text("#messages .reaction", "🎉 1");
    let history = bob.call_json("GET", &url, None).expect("history");
    assert_eq!(history["messages"][0]["reactions"][0]["users"], json!(["alice"]));

    // Reply with a quote.
    alice.script("document.querySelector('#messages .msg .msg-actions').click()", json!([]));
    alice.click("[data-action=reply]");
    alice.wait_text(".reply-bar", "Replying to");
    alice.fill("#composer", "agreed");
    alice.type_in("#composer", "\u{E007}", false);
    alice.wait_text("#messages .msg.mine .quote", "bold");
    let history = bob.call_json("GET", &url, None).expect("history");
    assert_eq!(history["messages"][1]["reply_to"], first["id"]);

    // Edit, then delete, her own message; bob's copy follows.
    alice.script("document.querySelector('#messages .msg.mine .msg-actions').click()", json!([]));
    alice.click("[data-action=edit]");
    alice.wait("dialog textarea[name=text]");
    alice.fill("dialog textarea[name=text]", "agreed, with **changes**");
    alice.click("dialog button[type=submit]");
    alice.wait_text("#messages .msg.mine .edited", "(edited)");
    alice.wait_text("#messages .msg.mine strong", "changes");
    alice.script("document.querySelector('#messages .msg.mine .msg-actions').click()", json!([]));
    alice.click("[data-action=delete]");
    alice.click("dialog button[type=submit]");
    alice.wait_text("#messages .msg.mine .deleted", "deleted");
    let history = bob.call_json("GET", &url, None).expect("history");
    assert!(history["messages"][1]["deleted_at"].is_u64() && history["messages"][1].get("text").is_none());

    // A picture attached: uploaded, sent with no text, previewed from the server.
    let dir = tempfile::tempdir().expect("dir");
    let png = dir.path().join("dot.png");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89")
        .expect("png");
    alice.upload(".attach-input", &png);
    alice.wait_text(".file-chip", "dot.png");
    alice.wait_no_text(".file-chip", "Uploading");
    alice.click("#send");
    alice.wait("#messages .msg.mine .msg-image img");
    let history = bob.call_json("GET", &url, None).expect("history");
    assert_eq!(history["messages"][2]["attachments"][0]["mime"], "image/png");

    // Mute: stored, shown after a reload.
    alice.click("#mute-conversation");
    alice.wait_text("#mute-conversation", "Unmute");
    alice.refresh();
    alice.wait_text("#mute-conversation", "Unmute");
}

#[test]
fn rooms_tab_badge_profile_dialog_and_admin_user_search() {
    let server = TestServer::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let room =
        alice.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "ops", "privacy": "open"}))).expect("room");
    let room = room["id"].as_u64().expect("id");
    bob.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");

    let driver = Driver::start();
    let b = driver.browser(1000, 800);
    sign_in(&b, &server.url, "bob", "bob-password");
    b.wait("#tab-rooms");
    alice
        .call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "deploy today"})))
        .expect("post");
    b.wait_text("#rooms-unread", "1");

    // Own profile.
    b.click("#edit-profile");
    b.wait("dialog input[name=display_name]");
    b.fill("dialog input[name=display_name]", "Bob Builder");
    b.fill("dialog input[name=department]", "Works");
    b.click("dialog button[type=submit]");
    b.wait_gone("dialog");
    let me = bob.call_json("GET", "/api/v1/me", None).expect("me");
    assert_eq!((me["display_name"].as_str(), me["department"].as_str()), (Some("Bob Builder"), Some("Works")));

    // A state that resets itself after an hour: presence.set carries `until`.
    b.script(
        "window.sentFrames = []; const send = WebSocket.prototype.send;
         WebSocket.prototype.send = function (d) { window.sentFrames.push(String(d)); return send.call(this, d); };
         const s = document.getElementById('reset-after'); s.value = '60'; s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    b.click("#my-state");
    b.click("[data-state=busy]");
    wait_for(|| {
        let p = bob.call_json("GET", "/api/v1/me/presence", None).ok()?;
        (p["presence"]["state"] == "busy").then_some(())
    });
    let ahead = b.script(
        "const f = window.sentFrames.map((d) => JSON.parse(d)).find((f) => f.type === 'presence.set');
         return f && f.until ? Math.round((f.until - Date.now()) / 60000) : null",
        json!([]),
    );
    assert!(ahead.as_i64().is_some_and(|m| (55..=60).contains(&m)), "the state ends in an hour: {ahead}");

    // The admin searches users.
    let a = driver.browser(1000, 800);
    sign_in(&a, &server.url, "admin", crate::common::ADMIN_PASSWORD);
    a.goto(&format!("{}#/admin/users", server.url));
    a.wait("#user-search");
    a.fill("#user-search", "works");
    a.wait_gone("#users-table [data-user=alice]");
    a.wait("#users-table [data-user=bob]");
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    crate::common::wait_until("the condition", 20, &mut f)
}

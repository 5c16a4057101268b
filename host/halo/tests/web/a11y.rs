//! Accessibility (issue 21): WCAG AA contrast (4.5:1 for text) in the light and the dark theme,
//! computed in Chromium from the rendered colours; presence states that differ by shape, not
//! only by colour; live regions only where something should be announced (the open
//! conversation's messages, toasts); the sidebar's tabs as a WAI-ARIA tablist driven by the
//! arrow keys; the direction of user text (Arabic, Hebrew) found automatically.

use serde_json::json;

use crate::browser::{Browser, Driver};
use crate::common::{Peer, TestServer};
use crate::sign_in;

/// For every visible element matching each selector: its text colour against the background
/// it is drawn on (ancestors' backgrounds composited), as a WCAG contrast ratio. Returns the
/// failures below 4.5 as [selector, text, ratio, colour, background].
const CONTRAST: &str = r#"
const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
  const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number); return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1]; };
const over = (top, under) => { const a = top[3]; return [0, 1, 2].map((i) => top[i] * a + under[i] * (1 - a)).concat(1); };
const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
const background = (el) => { const layers = [];
  for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor); if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; } }
  let bg = [255, 255, 255, 1];
  if (!layers.length || layers[layers.length - 1][3] < 1) bg = matchMedia('(prefers-color-scheme: dark)').matches ? [0, 0, 0, 1] : bg;
  for (const l of layers.reverse()) bg = over(l, bg); return bg; };
const out = []; let checked = 0;
for (const sel of arguments[0]) {
  for (const el of document.querySelectorAll(sel)) {
    const r = el.getBoundingClientRect(); if (!r.width || !r.height || !el.textContent.trim()) continue;
    const bg = background(el); const fg = over(parse(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)]; const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    checked++;
    if (ratio < 4.5) out.push([sel, el.textContent.trim().slice(0, 30), Math.round(ratio * 100) / 100, String(fg), String(bg)]);
  }
}
return { checked, failures: out };"#;

const TEXT: &[&str] = &[
    "#messages time",
    "#messages .receipt",
    "#messages .msg-from",
    "#messages .msg-text",
    "#messages .day",
    "#send",
    "#sign-out",
    "#open-admin",
    ".tabs [role=tab]",
    ".contact-name",
    ".contact-state",
    ".contact-note",
    ".group-toggle",
    ".conv-title",
    ".conv-snippet",
    ".conv-meta time",
    ".badge",
    ".head-sub",
    ".me-name",
    ".state-label",
    "#search-conversation",
    ".msg.failed .failed-note",
];

fn theme(b: &Browser, dark: bool) {
    b.cdp(
        "Emulation.setEmulatedMedia",
        json!({"features": [{"name": "prefers-color-scheme", "value": if dark { "dark" } else { "light" }}]}),
    );
}

fn contrast(b: &Browser, selectors: &[&str], what: &str) -> u64 {
    let r = b.script(CONTRAST, json!([selectors]));
    assert_eq!(r["failures"], json!([]), "contrast under 4.5:1 in {what}");
    r["checked"].as_u64().unwrap_or(0)
}

/// What a dot looks like apart from its colour: its ring and its mark.
const SHAPE: &str = "const d = document.querySelector(arguments[0]); const s = getComputedStyle(d); const a = getComputedStyle(d, '::after');
    return [s.boxShadow.replace(/rgba?\\([^)]*\\)/g, ''), a.width, a.height, a.borderTopWidth, a.borderRightWidth, a.borderBottomWidth, a.borderLeftWidth, a.transform, a.backgroundColor].join('|');";

#[test]
fn contrast_states_live_regions_tabs_and_text_direction() {
    let server = TestServer::with_config("[presence]\ncoalesce = \"10ms\"\n");
    let alice_api = server.user("alice");
    let mut peers = Vec::new();
    for (who, state) in
        [("bob", Some("busy")), ("grace", Some("do-not-disturb")), ("erin", Some("away")), ("dave", None)]
    {
        server.user(who);
        alice_api.call_json("POST", "/api/v1/contacts", Some(&json!({"username": who}))).expect("contact");
        if let Some(state) = state {
            let mut p = Peer::connect(&server, &server.login(who, &format!("{who}-password")), "desk");
            p.ok(json!({"type": "presence.set", "state": state}));
            peers.push(p);
        }
    }
    let bob = server.client(Some(&server.login("bob", "bob-password")));
    bob.call_json("PATCH", "/api/v1/me/presence", Some(&json!({"note": "שלום, אני בפגישה"}))).expect("note");
    let conv =
        alice_api.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("conv");
    let conv = conv["id"].as_u64().expect("id");
    alice_api
        .call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "Lunch at noon?"})))
        .expect("send");
    bob.call_json(
        "POST",
        &format!("/api/v1/conversations/{conv}/messages"),
        Some(&json!({"text": "مرحبا، نعم بالتأكيد"})),
    )
    .expect("send");
    alice_api
        .call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "Great"})))
        .expect("send");

    let driver = Driver::start();
    let b = driver.browser(1280, 800);
    for dark in [false, true] {
        theme(&b, dark);
        let what = if dark { "the dark theme" } else { "the light theme" };
        b.goto(&format!("{}/", server.url));
        b.script("localStorage.clear()", json!([]));
        b.refresh();
        b.wait("#login-submit");
        contrast(&b, &["#login-submit", ".login-card .muted", ".field span"], &format!("sign-in, {what}"));
        sign_in(&b, &format!("{}/", server.url), "alice", "alice-password");
        b.goto(&format!("{}/#/c/{conv}", server.url));
        b.wait_text("#messages .msg.mine", "Great");
        b.click("#tab-contacts");
        b.wait_text("[data-contact=grace] .contact-state", "Do not disturb");
        let checked = contrast(&b, TEXT, what);
        assert!(checked > 20, "only {checked} texts checked");
        b.click("#tab-chats");
        b.wait("#conversation-list .conv");
        contrast(&b, TEXT, what);
    }
    theme(&b, false);

    // States differ by more than colour.
    b.click("#tab-contacts");
    b.wait_text("[data-contact=erin] .contact-state", "Away");
    b.wait_text("[data-contact=dave] .contact-state", "Offline");
    let shapes: Vec<String> = [
        "#my-state .dot",
        "[data-contact=bob] .dot",
        "[data-contact=grace] .dot",
        "[data-contact=erin] .dot",
        "[data-contact=dave] .dot",
    ]
    .iter()
    .map(|sel| b.script(SHAPE, json!([sel])).as_str().unwrap_or_default().to_owned())
    .collect();
    for i in 0..shapes.len() {
        for j in 0..i {
            assert_ne!(
                shapes[i], shapes[j],
                "available, busy, do not disturb, away and offline dots look alike but for colour"
            );
        }
    }

    // Live regions: the open conversation's messages and the toasts, nothing else.
    let live = b.script(
        "return [...document.querySelectorAll('[aria-live], [role=log], [role=status]')].filter((e) => !e.closest('#toasts') || e.id === 'toasts').map((e) => e.id || e.className)",
        json!([]),
    );
    assert_eq!(live, json!(["messages", "toasts"]), "live regions");

    // The tabs: a tablist, arrow keys, Home and End; one tab in the Tab order.
    b.script("document.getElementById('tab-contacts').focus()", json!([]));
    let tab = |b: &Browser| {
        b.script(
            "const t = document.activeElement; const p = document.getElementById(t.getAttribute('aria-controls'));
             return [t.id, t.getAttribute('aria-selected'), p?.getAttribute('role'), p?.hidden, p?.getAttribute('aria-labelledby') === t.id,
                     [...document.querySelectorAll('[role=tab]')].filter((x) => x.tabIndex === 0).length]",
            json!([]),
        )
    };
    for (key, to) in [
        ("\u{E014}", "tab-chats"),
        ("\u{E014}", "tab-rooms"),
        ("\u{E014}", "tab-contacts"),
        ("\u{E012}", "tab-rooms"),
        ("\u{E011}", "tab-contacts"),
        ("\u{E010}", "tab-rooms"),
    ] {
        let from = tab(&b)[0].as_str().unwrap_or_default().to_owned();
        b.type_in(&format!("#{from}"), key, false);
        assert_eq!(tab(&b), json!([to, "true", "tabpanel", false, true, 1]), "{key:?} from {from}");
    }
    assert_eq!(b.script("return document.querySelector('[role=tablist]').children.length", json!([])), json!(3));

    // Arabic and Hebrew run right to left where they are shown.
    b.goto(&format!("{}/#/c/{conv}", server.url));
    b.wait_text("#messages .msg", "مرحبا");
    let dirs = b.script(
        "const d = (sel, text) => getComputedStyle([...document.querySelectorAll(sel)].find((e) => e.textContent.includes(text))).direction;
         return [d('#messages .msg-text', 'مرحبا'), d('#messages .msg-text', 'Great'), d('.contact-note', 'שלום')]",
        json!([]),
    );
    assert_eq!(dirs, json!(["rtl", "ltr", "rtl"]));
}

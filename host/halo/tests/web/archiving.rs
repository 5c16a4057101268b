//! Compliance archiving from the console, in real headless Chromium: the admin turns on the
//! global policy (and a per-user one, seeing the API's message for an unknown user), two users
//! exchange messages, and a compliance officer (who sees only Compliance search) finds them and
//! exports them as JSON Lines; a plain admin never sees Compliance search.

use std::path::Path;

use halo_client::Client;
use serde_json::{Value, json};

use crate::browser::{Driver, WAIT};
use crate::common::{ADMIN_PASSWORD, TestServer};
use crate::sign_in;

fn send(c: &Client, conv: u64, text: &str) {
    c.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": text}))).expect("send");
}

/// Polls `f` until it yields a value, for at most [`WAIT`].
fn until<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    crate::common::wait_until(what, WAIT.as_secs(), f)
}

/// The first `.jsonl` file downloaded into `dir`, once complete.
fn downloaded(dir: &Path) -> String {
    until("the export download", || {
        let file = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "jsonl"))?;
        std::fs::read_to_string(file).ok().filter(|t| t.ends_with('\n'))
    })
}

#[test]
fn the_admin_archives_and_a_compliance_officer_searches_and_exports_in_real_browsers() {
    let server = TestServer::start();
    let url = format!("{}/", server.url);
    let alice = server.user("alice");
    let _bob = server.user("bob");
    let body = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
    server.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("create officer");
    let driver = Driver::start();

    // The admin turns on archiving of internal conversations; a plain admin has no
    // Compliance search.
    let admin = driver.browser(1280, 900);
    sign_in(&admin, &url, "admin", ADMIN_PASSWORD);
    admin.click("#open-admin");
    admin.click("[data-section=archiving]");
    admin.wait_text("#archive-global-summary", "Off");
    admin.wait_text("#archive-status", "0 records kept");
    admin.wait_gone("[data-section=compliance]");
    admin.click("#archive-global-internal");
    admin.click("#archive-global-save");
    admin.wait_text("#archive-global-summary", "Internal only");
    admin.refresh();
    admin.wait_text("#archive-global-summary", "Internal only");
    let policy = server.admin().call_json("GET", "/api/v1/admin/archive/policy", None).expect("policy");
    assert_eq!(policy["global"], json!({"internal": true, "external": false}));

    // A per-user policy through the picker; an unknown user gets the API's message.
    admin.click("#archive-add-user");
    admin.fill("#archive-user", "nobody");
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("dialog .form-error", "no user named \"nobody\"");
    admin.fill("#archive-user", "bob");
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("#archive-users [data-user=bob]", "Internal and external");

    // Alice and Bob talk (over the API).
    let conv =
        alice.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob"]}))).expect("start");
    let conv = conv["id"].as_u64().expect("id");
    send(&alice, conv, "The quarterly budget is approved.");
    send(&server.client(Some(&server.login("bob", "bob-password"))), conv, "Great, I'll file the budget today.");
    let officer_api = server.client(Some(&server.login("officer", "officer-password")));
    until("the archive index", || {
        let r: Value = officer_api.call_json("GET", "/api/v1/archive/records?q=budget", None).ok()?;
        (r["records"].as_array()?.len() == 2).then_some(())
    });

    // The officer sees only Compliance search, searches a word and finds both, newest first.
    let officer = driver.browser(1280, 900);
    sign_in(&officer, &url, "officer", "officer-password");
    officer.wait_text("#open-admin", "Compliance");
    officer.click("#open-admin");
    officer.wait_text("[data-section=compliance]", "Compliance search");
    officer.wait_gone("[data-section=users]");
    officer.wait_gone("[data-section=archiving]");
    officer.wait_text("#archive-status", "records kept");
    officer.fill("#compliance-q", "budget");
    officer.click("#compliance-search");
    officer.wait_text("#compliance-results [data-event=message]", "The quarterly budget is approved.");
    officer.wait_text("#compliance-summary", "2 records");
    let first = officer.text("#compliance-results tbody tr");
    assert!(first.contains("file the budget") && first.contains("bob"), "newest first: {first}");

    // Export: fetched with the bearer header and saved from a blob: URL, within the CSP.
    let downloads = tempfile::tempdir().expect("downloads");
    officer.cdp("Page.setDownloadBehavior", json!({"behavior": "allow", "downloadPath": downloads.path()}));
    officer.script(
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective));",
        json!([]),
    );
    officer.click("#compliance-export");
    officer.wait_text("#compliance-summary", "Exported 2 records");
    let lines: Vec<Value> =
        downloaded(downloads.path()).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["text"], "The quarterly budget is approved.", "oldest first");
    assert_eq!(lines[0]["conversation"], conv);
    assert_eq!(officer.script("return window.cspViolations", json!([])), json!([]));
}

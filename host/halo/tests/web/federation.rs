//! Federation in real headless Chromium: the admin routes a domain through an adapter, blocks
//! another (both reach the server's rules), sees the refusal for a Halo peer without a secret,
//! and removes a rule; a user adds a user of the federated domain by address (External by
//! default) and is refused one of the blocked domain.

use serde_json::json;

use crate::browser::{Browser, Driver};
use crate::common::{ADMIN_PASSWORD, TestServer};
use crate::sign_in;

#[test]
fn the_admin_federates_and_blocks_domains_in_a_real_browser() {
    let server = TestServer::start();
    let url = format!("{}/", server.url);
    let driver = Driver::start();
    let admin = driver.browser(1280, 900);
    sign_in(&admin, &url, "admin", ADMIN_PASSWORD);
    admin.click("#open-admin");
    admin.click("[data-section=federation]");
    admin.wait_text("#federation-domains", "No federated domains");

    // Route example.org through the xmpp adapter (the default choice).
    admin.click("#federation-add");
    admin.fill("#federation-domain-name", "example.org");
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("#federation-domains [data-domain='example.org']", "Adapter xmpp");
    // The adapter is not installed: the link says so.
    admin.wait_text("#federation-domains [data-domain='example.org']", "not installed, or not enabled");

    // Block a domain.
    admin.click("#federation-add");
    admin.fill("#federation-domain-name", "spam.example");
    choose_route(&admin, "block");
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("#federation-domains [data-domain='spam.example']", "Blocked");

    // A Halo peer needs its secret: the API's refusal shows in the dialog.
    admin.click("#federation-add");
    admin.fill("#federation-domain-name", "peer.example");
    choose_route(&admin, "halo");
    admin.fill("#federation-url", "https://peer.example:5271");
    admin.click_text("dialog button[type=submit]", "Save");
    admin.wait_text("dialog .form-error", "shared secret");
    admin.click_text("dialog button", "Cancel");

    let rules = server.admin().call_json("GET", "/api/v1/admin/federation", None).expect("overview");
    let domains: Vec<(String, String)> = rules["domains"]
        .as_array()
        .expect("domains")
        .iter()
        .map(|d| (d["domain"].as_str().unwrap_or("").to_owned(), d["access"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(domains, [("example.org".into(), "allow".into()), ("spam.example".into(), "block".into())]);

    // Remove one.
    admin.click("#federation-domains [data-domain='spam.example'] [data-action=remove]");
    admin.click_text("dialog button[type=submit]", "Remove");
    admin.wait_gone("#federation-domains [data-domain='spam.example']");
    let rules = server.admin().call_json("GET", "/api/v1/admin/federation", None).expect("overview");
    assert_eq!(rules["domains"].as_array().map(Vec::len), Some(1));

    // A user adds bob@example.org by address: another server's user, External by default.
    server.user("alice");
    let alice = driver.browser(1280, 900);
    sign_in(&alice, &url, "alice", "alice-password");
    alice.fill("#people-search", "Bob@Example.org");
    alice.wait_text("#directory-results", "ANOTHER SERVER");
    alice.click("[data-add='bob@example.org']");
    alice.wait("dialog select[name=level]");
    let level = alice.script("return document.querySelector('dialog select[name=level]').value", json!([]));
    assert_eq!(level, "external");
    alice.click_text("dialog button[type=submit]", "Add contact");
    alice.fill("#people-search", "");
    alice.wait_text("[data-contact='bob@example.org'] .contact-state", "Presence unknown");
    let contacts = server
        .client(Some(&server.login("alice", "alice-password")))
        .call_json("GET", "/api/v1/contacts", None)
        .expect("contacts");
    assert_eq!(contacts["contacts"][0]["level"], "external");
    // A domain nobody allowed: the server's refusal shows.
    alice.fill("#people-search", "eve@nowhere.example");
    alice.click("[data-add='eve@nowhere.example']");
    alice.click_text("dialog button[type=submit]", "Add contact");
    alice.wait_text("dialog .form-error", "not federated");
}

/// Picks the "How" of the domain dialog (a `<select>`: set it and fire `change` as a user would).
fn choose_route(b: &Browser<'_>, how: &str) {
    b.wait("#federation-how");
    b.script(
        "const s = document.querySelector('#federation-how'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        json!([how]),
    );
}

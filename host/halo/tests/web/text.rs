//! Text is never lost (issue 21, "Losing text"): a message over the server's limit in UTF-8
//! bytes stays in the box with the reason; a message sent while the server cannot be reached
//! stays on screen as failed with "Resend", and goes out by itself, once, when the stream is
//! back. The browser reaches the server through a small TCP relay the test can cut, as a
//! network outage or a server restart would.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::browser::Driver;
use crate::common::TestServer;
use crate::sign_in;

/// A TCP relay to the server that can be cut (every connection closed, new ones refused) and
/// restored.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(target: &str) -> Self {
        let target = target.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind relay");
        let port = listener.local_addr().expect("addr").port();
        let down = Arc::new(AtomicBool::new(false));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if d.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut list = o.lock().expect("relay list");
                for s in [&client, &server] {
                    if let Ok(c) = s.try_clone() {
                        list.push(c);
                    }
                }
                for (mut from, mut to) in
                    [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Self { port, down, open }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Closes every connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().expect("relay list").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[test]
fn text_over_the_limit_stays_in_the_box_and_a_failed_send_is_resent() {
    let server = TestServer::start();
    let _alice = server.user("alice");
    let bob = server.user("bob");
    let conv = bob.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["alice"]}))).expect("conv");
    let conv = conv["id"].as_u64().expect("id");
    let relay = Relay::start(&server.url);
    let driver = Driver::start();
    let alice = driver.browser(1000, 800);
    sign_in(&alice, &relay.url(), "alice", "alice-password");
    alice.goto(&format!("{}#/c/{conv}", relay.url()));
    alice.wait("#composer");

    // 9,000 characters of "é": under any character limit, 18,000 bytes for the server.
    alice.script(
        "const c = document.getElementById('composer'); c.value = 'é'.repeat(9000); c.dispatchEvent(new Event('input'));",
        json!([]),
    );
    alice.click("#send");
    alice.wait_text("#composer-error", "at most 16 KB");
    let kept = alice.script("return document.getElementById('composer').value.length", json!([]));
    assert_eq!(kept, json!(9000), "the text stays in the box");
    assert_eq!(alice.script("return document.querySelectorAll('#messages .msg.mine').length", json!([])), json!(0));
    alice.fill("#composer", "");

    // The server cannot be reached: the message stays, failed, with Resend.
    relay.cut();
    alice.wait_text("#connection", "Reconnecting");
    alice.fill("#composer", "written while the server was away");
    alice.type_in("#composer", "\u{E007}", false);
    alice.wait_text("#messages .msg.failed", "written while the server was away");
    alice.wait_text("#messages .msg.failed .resend", "Resend");
    // It stays while the user looks elsewhere.
    alice.script("location.hash = '#/'", json!([]));
    alice.wait_gone("#messages");
    alice.script(&format!("location.hash = '#/c/{conv}'"), json!([]));
    alice.wait_text("#messages .msg.failed", "written while the server was away");

    // Back: it goes out by itself, once.
    relay.restore();
    alice.wait_gone("#messages .msg.failed");
    alice.wait_text("#messages .msg.mine", "written while the server was away");
    let history = bob.call_json("GET", &format!("/api/v1/conversations/{conv}/messages"), None).expect("history");
    let sent = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["text"] == "written while the server was away")
        .count();
    assert_eq!(sent, 1, "{history}");
}

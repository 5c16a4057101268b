//! Halo-to-Halo federation in tests: a self-signed certificate both sides trust, a server's
//! `[federation]` section, the peer rule that points one server at another, and a pair of
//! servers (`a.test`, `b.test`) peered with each other over signed HTTPS.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::nats::free_port;
use super::{Peer, TestServer};

/// The secret every test peer rule shares.
pub const SECRET: &str = "a-shared-secret-of-32-characters";

/// A self-signed certificate for 127.0.0.1, its key, and the PEM a peer trusts.
pub struct Certs {
    pub _dir: tempfile::TempDir,
    pub cert: String,
    pub key: String,
    pub pem: Vec<u8>,
}

/// Writes a fresh self-signed certificate and key to a temporary directory.
pub fn certs() -> Certs {
    let k = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("fed-cert.pem"), dir.path().join("fed-key.pem"));
    std::fs::write(&cert, k.cert.pem()).expect("cert");
    std::fs::write(&key, k.key_pair.serialize_pem()).expect("key");
    Certs {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        pem: k.cert.pem().into_bytes(),
        _dir: dir,
    }
}

/// The `[federation]` section of a server for `domain` listening for peers on `port`.
pub fn config(domain: &str, port: u16, c: &Certs) -> String {
    format!(
        "[federation]\ndomain = \"{domain}\"\nlisten = \"127.0.0.1:{port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        c.cert, c.key
    )
}

/// Makes `server` federate with `peer_domain`, whose federation listener is on `port`.
pub fn peer_with(server: &TestServer, peer_domain: &str, port: u16, c: &Certs) {
    let body = json!({"url": format!("https://127.0.0.1:{port}"), "secret": SECRET, "ca": c.cert});
    server
        .admin()
        .call_json("PUT", &format!("/api/v1/admin/federation/domains/{peer_domain}"), Some(&body))
        .expect("peer rule");
}

/// `GET /api/v1/admin/federation`.
pub fn overview(server: &TestServer) -> Value {
    server.admin().call_json("GET", "/api/v1/admin/federation", None).expect("overview")
}

impl Certs {
    /// An HTTPS client trusting only this certificate, answering every status (no error on 4xx).
    pub fn agent(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                        ureq::tls::Certificate::from_pem(&self.pem).expect("pem"),
                    ])))
                    .build(),
            )
            .http_status_as_error(false)
            .build()
            .into()
    }
}

/// A server for `domain` with its federation listener on `port`.
pub fn org(domain: &str, port: u16, c: &Certs) -> TestServer {
    TestServer::with_config(&config(domain, port, c))
}

/// Two servers, `a.test` and `b.test`, federating with each other.
pub struct Pair {
    pub a: TestServer,
    pub b: TestServer,
    /// `a.test`'s federation listener.
    pub a_port: u16,
    /// `b.test`'s federation listener.
    pub b_port: u16,
    pub certs: Certs,
}

/// Starts a [`Pair`] and peers its servers with each other.
pub fn pair() -> Pair {
    let certs = certs();
    let (a_port, b_port) = (free_port(), free_port());
    let a = org("a.test", a_port, &certs);
    let b = org("b.test", b_port, &certs);
    peer_with(&a, "b.test", b_port, &certs);
    peer_with(&b, "a.test", a_port, &certs);
    Pair { a, b, a_port, b_port, certs }
}

/// Creates user `name` (password `{name}-password`) on `server` and logs them in.
pub fn token(server: &TestServer, name: &str) -> String {
    server.user(name);
    server.login(name, &format!("{name}-password"))
}

/// The `halo-signature` of a federation request: HMAC-SHA256 over origin, timestamp and body.
pub fn sign(secret: &str, origin: &str, ts: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(format!("{origin}\n{ts}\n").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Milliseconds since the Unix epoch, as the `halo-timestamp` header carries them.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Adds `who` as a contact of the user of `token` at `level`; the contact list as answered.
pub fn add_contact(server: &TestServer, token: &str, who: &str, level: &str) -> Value {
    server
        .client(Some(token))
        .call_json("POST", "/api/v1/contacts", Some(&json!({"username": who, "level": level})))
        .expect("add contact")
}

/// The next message from `from` that `peer` receives (other messages are skipped, 50 at most).
pub fn im_from(peer: &mut Peer, from: &str) -> Value {
    for _ in 0..50 {
        let e = peer.event("im.message");
        if e["message"]["from"] == from {
            return e["message"].clone();
        }
    }
    panic!("no message from {from}");
}

//! Halo-to-Halo federation in tests: a self-signed certificate both sides trust, a server's
//! `[federation]` section, the peer rule that points one server at another.

use serde_json::{Value, json};

use super::TestServer;

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

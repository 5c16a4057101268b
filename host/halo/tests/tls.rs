//! HTTPS/WSS with `--tls-cert/--tls-key`, for users outside the firewall.

mod common;

use std::sync::Arc;

use common::{ADMIN_PASSWORD, TestServer, halo};

#[test]
fn serves_https_and_the_local_cli_trusts_it() {
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, keyfile) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).expect("write cert");
    std::fs::write(&keyfile, key.key_pair.serialize_pem()).expect("write key");
    let args = vec!["--tls-cert".into(), cert.display().to_string(), "--tls-key".into(), keyfile.display().to_string()];
    let server = TestServer::build("", args, Some(key.cert.pem().into_bytes()), true);
    assert!(server.url.starts_with("https://"), "{}", server.url);

    let token = server.login("admin", ADMIN_PASSWORD);
    let me = server.client(Some(&token)).call_json("GET", "/api/v1/me", None).expect("me over https");
    assert_eq!(me["username"], "admin");

    // Without trusting the certificate the connection is refused.
    let untrusted = halo_client::Client::new(&server.url, None, None).expect("client");
    assert!(matches!(untrusted.call("GET", "/healthz", None), Err(halo_client::ClientError::Transport { .. })));

    // The local CLI trusts the server's own certificate through local.json.
    let out = halo().args(["user", "list", "--data-dir"]).arg(server.data_dir()).output().expect("ran");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));

    // WSS: the same stream over TLS.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(key.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = server.url.trim_start_matches("https://").to_owned();
    let tcp = std::net::TcpStream::connect(&addr).expect("tcp");
    let url = format!("wss://{addr}/api/v1/stream?token={token}&endpoint=remote");
    let connector = tungstenite::Connector::Rustls(Arc::new(config));
    let (mut ws, _) = tungstenite::client_tls_with_config(url, tcp, None, Some(connector)).expect("wss handshake");
    let hello = ws.read().expect("hello");
    assert!(hello.to_text().expect("text").contains("\"hello\""));
}

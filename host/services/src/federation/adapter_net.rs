//! What the host does on the network for federation adapters beyond opening links (0.1.4, for
//! server-to-server protocols): TLS upgrades of a live link in place (STARTTLS, as client or
//! as server), SRV lookups (with per-domain overrides from the config, for tests and private
//! networks), and the listeners behind `listen`.
//!
//! Settings (`[federation]`): `adapter_tls_cert` and `adapter_tls_key` (PEM) are what the host
//! presents when an adapter upgrades an accepted link as the server; `adapter_tls_ca` (PEM)
//! replaces Mozilla's roots for the certificates adapters' peers present; `srv_override`
//! answers SRV lookups for a domain with one `host:port` instead of asking DNS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use halo_plugin_host::federation::{SrvAnswer, SrvTarget, TlsRole};
use hickory_resolver::TokioResolver;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OnceCell, mpsc};

use super::FederationSettings;

/// A byte stream a link runs over: TCP, or TLS over it.
pub(super) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Longest an SRV lookup may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Binding attempts while the port is still in use (0.5 s apart).
const BIND_TRIES: u32 = 10;
/// Most SRV targets handed to an adapter.
const MAX_TARGETS: usize = 16;

/// The host's TLS and DNS for adapters, from the settings.
pub(super) struct AdapterNet {
    server_tls: Option<Arc<rustls::ServerConfig>>,
    client_tls: Arc<rustls::ClientConfig>,
    overrides: BTreeMap<String, (String, u16)>,
    resolver: OnceCell<Result<TokioResolver, String>>,
}

impl std::fmt::Debug for AdapterNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterNet")
            .field("server_tls", &self.server_tls.is_some())
            .field("overrides", &self.overrides)
            .finish_non_exhaustive()
    }
}

impl AdapterNet {
    /// Reads the certificates and overrides the settings name (an error names the bad one).
    pub(super) fn new(s: &FederationSettings) -> anyhow::Result<Self> {
        let server_tls = match (&s.adapter_tls_cert, &s.adapter_tls_key) {
            (Some(cert), Some(key)) => Some(server_config(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("[federation] adapter_tls_cert and adapter_tls_key go together"),
        };
        let ca = s.adapter_tls_ca.as_ref().map(|p| p.display().to_string());
        let client_tls = super::peer::tls_client(ca.as_deref())?;
        let mut overrides = BTreeMap::new();
        for (domain, target) in &s.srv_override {
            let (host, port) = target
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
                .filter(|(h, p)| !h.is_empty() && *p != 0)
                .ok_or_else(|| {
                    anyhow::anyhow!("[federation] srv_override {domain:?}: use \"host:port\", got {target:?}")
                })?;
            overrides.insert(domain.trim_end_matches('.').to_ascii_lowercase(), (host.to_owned(), port));
        }
        Ok(Self { server_tls, client_tls, overrides, resolver: OnceCell::new() })
    }

    /// The TLS client config links opened with a `tls-name` use.
    pub(super) fn client_tls(&self) -> Arc<rustls::ClientConfig> {
        self.client_tls.clone()
    }

    /// Runs the TLS handshake over `stream` in `role`.
    pub(super) async fn upgrade(&self, stream: Box<dyn Stream>, role: &TlsRole) -> Result<Box<dyn Stream>, String> {
        match role {
            TlsRole::Client(name) => {
                let server = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| format!("TLS name {name:?}: {e}"))?;
                let s = tokio_rustls::TlsConnector::from(self.client_tls.clone())
                    .connect(server, stream)
                    .await
                    .map_err(|e| format!("TLS with {name}: {e}"))?;
                Ok(Box::new(s))
            }
            TlsRole::Server => {
                let Some(config) = &self.server_tls else {
                    return Err("no TLS certificate for adapters: set [federation] adapter_tls_cert and \
                                adapter_tls_key"
                        .into());
                };
                let s = tokio_rustls::TlsAcceptor::from(config.clone())
                    .accept(stream)
                    .await
                    .map_err(|e| format!("TLS as server: {e}"))?;
                Ok(Box::new(s))
            }
        }
    }

    /// Looks up `name`'s SRV records (an override for its domain answers alone).
    pub(super) async fn resolve(&self, token: u32, name: String) -> SrvAnswer {
        let mut answer = SrvAnswer { token, name: name.clone(), targets: Vec::new(), error: None };
        if let Some((host, port)) = self.overrides.get(&srv_domain(&name)) {
            answer.targets.push(SrvTarget { host: host.clone(), port: *port, priority: 0, weight: 0 });
            return answer;
        }
        let resolver = self
            .resolver
            .get_or_init(|| async {
                TokioResolver::builder_tokio().map(|b| b.build()).map_err(|e| format!("no DNS resolver: {e}"))
            })
            .await;
        let resolver = match resolver {
            Ok(r) => r,
            Err(e) => {
                answer.error = Some(e.clone());
                return answer;
            }
        };
        match tokio::time::timeout(RESOLVE_TIMEOUT, resolver.srv_lookup(name.as_str())).await {
            Err(_) => answer.error = Some(format!("SRV lookup of {name} timed out")),
            Ok(Err(e)) if e.is_no_records_found() => {}
            Ok(Err(e)) => answer.error = Some(format!("SRV lookup of {name}: {e}")),
            Ok(Ok(found)) => {
                let mut targets: Vec<SrvTarget> = found
                    .iter()
                    .map(|r| SrvTarget {
                        host: r.target().to_utf8().trim_end_matches('.').to_owned(),
                        port: r.port(),
                        priority: r.priority(),
                        weight: r.weight(),
                    })
                    .collect();
                if targets.iter().any(|t| t.host.is_empty()) {
                    // RFC 2782: a target of "." says the service is not offered there.
                    answer.error = Some(format!("{name}: the domain offers no such service"));
                    return answer;
                }
                targets.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.weight)));
                targets.truncate(MAX_TARGETS);
                answer.targets = targets;
            }
        }
        answer
    }
}

/// The domain of an SRV name: `_xmpp-server._tcp.example.org.` is `example.org`.
fn srv_domain(name: &str) -> String {
    let mut rest = name.trim_end_matches('.');
    while let Some(r) = rest.strip_prefix('_').and_then(|r| r.split_once('.')).map(|(_, r)| r) {
        rest = r;
    }
    rest.to_ascii_lowercase()
}

fn server_config(cert: &std::path::Path, key: &std::path::Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<_, _>>())
        .map_err(|e| anyhow::anyhow!("[federation] adapter_tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("[federation] adapter_tls_cert {}: no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("[federation] adapter_tls_key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// What a listener reports.
pub(super) enum Incoming {
    /// A peer connected.
    Peer(u16, tokio::net::TcpStream, SocketAddr),
    /// The port could not be bound, or accepting failed for good.
    Failed(u16, String),
}

/// Accepts connections on `address:port` until aborted.
pub(super) async fn listen(address: String, port: u16, out: mpsc::Sender<Incoming>) {
    // An adapter restarted (reconfigured, or after a trap) asks for its port again while the
    // listener it had is still being dropped: retry "address in use" for a few seconds.
    let mut tries = 0;
    let listener = loop {
        match tokio::net::TcpListener::bind((address.as_str(), port)).await {
            Ok(l) => break l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < BIND_TRIES => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                let _ = out.send(Incoming::Failed(port, format!("listening on {address}:{port}: {e}"))).await;
                return;
            }
        }
    };
    tracing::info!(%address, port, "federation adapter listening");
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                if out.send(Incoming::Peer(port, stream, peer)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!(port, error = %e, "accepting a federation connection failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srv_names_map_to_their_domain() {
        assert_eq!(srv_domain("_xmpp-server._tcp.Example.org."), "example.org");
        assert_eq!(srv_domain("_xmpps-server._tcp.a.b.example"), "a.b.example");
        assert_eq!(srv_domain("example.org"), "example.org");
    }

    #[tokio::test]
    async fn an_override_answers_alone_and_bad_ones_are_refused() {
        let mut s = FederationSettings::default();
        s.srv_override.insert("Prosody.test".into(), "127.0.0.3:5270".into());
        let net = AdapterNet::new(&s).expect("settings");
        let a = net.resolve(7, "_xmpp-server._tcp.prosody.test".into()).await;
        assert_eq!(a.token, 7);
        assert_eq!(a.error, None);
        assert_eq!(a.targets, vec![SrvTarget { host: "127.0.0.3".into(), port: 5270, priority: 0, weight: 0 }]);
        for bad in ["127.0.0.3", "host:0", ":5269", "host:http"] {
            let mut s = FederationSettings::default();
            s.srv_override.insert("x.test".into(), bad.into());
            assert!(AdapterNet::new(&s).is_err(), "{bad}");
        }
        let s = FederationSettings { adapter_tls_cert: Some("/nonexistent.pem".into()), ..Default::default() };
        assert!(AdapterNet::new(&s).is_err(), "a cert needs its key");
    }
}

//! A small blocking client for Halo's REST API, used by the `halo` command-line tool (and handy
//! in tests and scripts). Responses are `serde_json::Value`s; errors keep the server's `error`
//! code and message.

use std::time::Duration;

use serde_json::Value;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's error code, e.g. `not_found`.
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server could not be reached or the exchange broke.
    #[error("cannot reach the Halo server at {url}: {source}")]
    Transport {
        /// The server's base URL.
        url: String,
        /// What went wrong.
        source: ureq::Error,
    },
    /// The server's answer was not the expected JSON.
    #[error("unexpected answer from the server: {0}")]
    Decode(String),
    /// A CA certificate file could not be used.
    #[error("CA certificate: {0}")]
    Tls(String),
}

/// A client bound to one server and (optionally) one bearer token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:7420`). `ca_pem` adds a trusted
    /// root (every certificate in the PEM) for servers
    /// with a private or self-signed certificate.
    pub fn new(base: &str, token: Option<String>, ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let mut config =
            ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120)));
        if let Some(pem) = ca_pem {
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(pem) {
                if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| ClientError::Tls(e.to_string()))? {
                    certs.push(c);
                }
            }
            if certs.is_empty() {
                return Err(ClientError::Tls("no certificate in the PEM file".into()));
            }
            let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&certs)).build();
            config = config.tls_config(tls);
        }
        Ok(Self { base: base.trim_end_matches('/').to_owned(), token, agent: config.build().into() })
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends `method path` with an optional JSON body; `Ok(None)` for an empty (204) answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Option<Value>, ClientError> {
        match body {
            Some(b) => {
                let bytes = serde_json::to_vec(b).map_err(|e| ClientError::Decode(e.to_string()))?;
                self.send(method, path, Some((bytes, "application/json")))
            }
            None => self.send(method, path, None),
        }
    }

    /// Sends raw bytes (e.g. a plugin component) with a content type.
    pub fn call_bytes(
        &self,
        method: &str,
        path: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<Option<Value>, ClientError> {
        self.send(method, path, Some((bytes, content_type)))
    }

    fn send(&self, method: &str, path: &str, body: Option<(Vec<u8>, &str)>) -> Result<Option<Value>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let transport = |source| ClientError::Transport { url: self.base.clone(), source };
        let resp = match body {
            Some((bytes, content_type)) => {
                let req = req
                    .header("content-type", content_type)
                    .body(bytes)
                    .map_err(|e| ClientError::Decode(e.to_string()))?;
                self.agent.run(req).map_err(transport)?
            }
            // A POST, PUT or PATCH without a body goes out with `content-length: 0`: with no body
            // at all ureq sends an empty chunked one, which a handler that answers without
            // reading it (most do: `POST …/leave`) leaves unread; the server then closes the
            // connection after its answer, and the next call on it could find it gone ("Peer
            // disconnected").
            None if matches!(method, "POST" | "PUT" | "PATCH") => {
                let req = req.body(Vec::new()).map_err(|e| ClientError::Decode(e.to_string()))?;
                self.agent.run(req).map_err(transport)?
            }
            None => {
                let req = req.body(()).map_err(|e| ClientError::Decode(e.to_string()))?;
                self.agent.run(req).map_err(transport)?
            }
        };
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().map_err(transport)?;
        let json: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            Some(serde_json::from_str(&text).map_err(|_| ClientError::Decode(format!("HTTP {status}: {text}")))?)
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let field = |k: &str| json.as_ref().and_then(|j| j[k].as_str()).unwrap_or_default().to_owned();
        Err(ClientError::Api { status, code: field("error"), message: field("message") })
    }

    /// GETs `path` and copies the body (e.g. a JSON Lines export) into `out`, streaming;
    /// returns the bytes copied.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method("GET").uri(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let transport = |source| ClientError::Transport { url: self.base.clone(), source };
        let req = req.body(()).map_err(|e| ClientError::Decode(e.to_string()))?;
        let resp = self.agent.run(req).map_err(transport)?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            let text = resp.into_body().read_to_string().map_err(transport)?;
            let json: Option<Value> = serde_json::from_str(&text).ok();
            let field = |k: &str| json.as_ref().and_then(|j| j[k].as_str()).unwrap_or_default().to_owned();
            return Err(ClientError::Api { status, code: field("error"), message: field("message") });
        }
        std::io::copy(&mut resp.into_body().into_reader(), out).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `call` for answers that must have a body.
    pub fn call_json(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        self.call(method, path, body)?.ok_or_else(|| ClientError::Decode("empty answer".into()))
    }

    /// Logs in, returning the login answer (`token`, `expires_at`, `user`).
    pub fn login(&self, username: &str, password: &str) -> Result<Value, ClientError> {
        self.call_json("POST", "/api/v1/login", Some(&serde_json::json!({"username": username, "password": password})))
    }

    /// The same server with another token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), ..self.clone() }
    }
}

/// Encodes a path segment (a username) for a URL.
pub fn segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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

/// How many times a call refused with `503 busy` is retried (after the server's hint) before
/// the refusal is returned.
pub const BUSY_RETRIES: u32 = 5;
/// The longest a client waits on one `busy` hint.
const MAX_BUSY_WAIT: Duration = Duration::from_secs(10);

/// A client bound to one server and (optionally) one bearer token.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    busy_retries: u32,
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
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent: config.build().into(),
            busy_retries: BUSY_RETRIES,
        })
    }

    /// The same client, retrying a call refused with `503 busy` up to `n` times (0: never),
    /// each after the server's `retry_after_ms` (or `Retry-After`) hint. A `busy` refusal means
    /// nothing was done, so the retry cannot apply a request twice.
    pub fn with_busy_retries(&self, n: u32) -> Self {
        Self { busy_retries: n, ..self.clone() }
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
        let mut tries = 0;
        loop {
            match self.send_once(method, path, body.clone()) {
                Ok(v) => return Ok(v),
                Err((_, Some(after))) if tries < self.busy_retries => {
                    tries += 1;
                    std::thread::sleep(after.min(MAX_BUSY_WAIT));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// One exchange; a `503 busy` refusal comes with the time to wait before a retry.
    fn send_once(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<Option<Value>, (ClientError, Option<Duration>)> {
        let url = format!("{}{path}", self.base);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let transport = |source| plain(ClientError::Transport { url: self.base.clone(), source });
        let resp = match body {
            Some((bytes, content_type)) => {
                let req = req
                    .header("content-type", content_type)
                    .body(bytes)
                    .map_err(|e| plain(ClientError::Decode(e.to_string())))?;
                self.agent.run(req).map_err(transport)?
            }
            // A POST, PUT or PATCH without a body goes out with `content-length: 0`: with no body
            // at all ureq sends an empty chunked one, which a handler that answers without
            // reading it (most do: `POST …/leave`) leaves unread; the server then closes the
            // connection after its answer, and the next call on it could find it gone ("Peer
            // disconnected").
            None if matches!(method, "POST" | "PUT" | "PATCH") => {
                let req = req.body(Vec::new()).map_err(|e| plain(ClientError::Decode(e.to_string())))?;
                self.agent.run(req).map_err(transport)?
            }
            None => {
                let req = req.body(()).map_err(|e| plain(ClientError::Decode(e.to_string())))?;
                self.agent.run(req).map_err(transport)?
            }
        };
        let status = resp.status().as_u16();
        let header = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let text = resp.into_body().read_to_string().map_err(transport)?;
        let json: Option<Value> = if text.trim().is_empty() {
            None
        } else {
            let bad = |_| plain(ClientError::Decode(format!("HTTP {status}: {text}")));
            Some(serde_json::from_str(&text).map_err(bad)?)
        };
        if (200..300).contains(&status) {
            return Ok(json);
        }
        let field = |k: &str| json.as_ref().and_then(|j| j[k].as_str()).unwrap_or_default().to_owned();
        let code = field("error");
        // Only `busy` is retried: it promises that nothing was done.
        let hint = (status == 503 && code == "busy").then(|| {
            let ms = json.as_ref().and_then(|j| j["retry_after_ms"].as_u64());
            ms.map(Duration::from_millis).or(header.map(Duration::from_secs)).unwrap_or(Duration::from_secs(1))
        });
        Err((ClientError::Api { status, code, message: field("message") }, hint))
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

/// A failure with no retry hint.
fn plain(e: ClientError) -> (ClientError, Option<Duration>) {
    (e, None)
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

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A one-thread HTTP server answering each request with the next of `answers` (status,
    /// extra header, body), one connection per request; returns its URL and the request lines
    /// it saw.
    fn server(answers: Vec<(u16, &'static str, &'static str)>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (status, header, body) in answers {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).expect("request line");
                let mut length = 0;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).expect("header");
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut content = vec![0; length];
                reader.read_exact(&mut content).expect("body");
                seen.push(format!("{} {}", line.trim(), String::from_utf8_lossy(&content)));
                let mut stream = reader.into_inner();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{header}\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).expect("answer");
            }
            seen
        });
        (url, handle)
    }

    const BUSY: &str = r#"{"error":"busy","message":"the server is busy","retry_after_ms":20}"#;

    #[test]
    fn a_busy_answer_is_retried_after_the_hint_with_the_same_request() {
        let (url, seen) = server(vec![
            (503, "retry-after: 1\r\n", BUSY),
            (503, "", r#"{"error":"busy","message":"x"}"#),
            (200, "", r#"{"id":7}"#),
        ]);
        let client = Client::new(&url, None, None).expect("client");
        let started = std::time::Instant::now();
        let v = client.call_json("POST", "/api/v1/x", Some(&serde_json::json!({"key": "k1"}))).expect("retried");
        assert_eq!(v["id"], 7);
        // The second answer has no hint in its body: the Retry-After default (1 s) applies.
        assert!(started.elapsed() >= Duration::from_millis(1000));
        let seen = seen.join().expect("server");
        assert_eq!(seen.len(), 3);
        assert!(seen.iter().all(|r| r == &seen[0]), "the same request each time: {seen:?}");
    }

    #[test]
    fn busy_retries_are_bounded_and_other_refusals_are_not_retried() {
        let (url, seen) = server(vec![(503, "", BUSY), (503, "", BUSY)]);
        let client = Client::new(&url, None, None).expect("client").with_busy_retries(1);
        match client.call("POST", "/api/v1/x", None) {
            Err(ClientError::Api { status: 503, code, .. }) => assert_eq!(code, "busy"),
            other => panic!("expected busy, got {other:?}"),
        }
        assert_eq!(seen.join().expect("server").len(), 2);
        let unavailable = r#"{"error":"storage_unavailable","message":"x","retry_after_ms":20}"#;
        let (url, seen) = server(vec![(503, "retry-after: 1\r\n", unavailable)]);
        let client = Client::new(&url, None, None).expect("client");
        assert!(matches!(client.call("GET", "/x", None), Err(ClientError::Api { status: 503, .. })));
        assert_eq!(seen.join().expect("server").len(), 1);
    }
}

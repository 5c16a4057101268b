//! `http-archive-sink`: an example archive sink that POSTs each batch of Halo's compliance
//! records, as JSON Lines, to an HTTP endpoint — through `wasi:http`, which the host allows
//! only towards the one host the admin grants (`--grant http:archive.example.com:443`).
//!
//! Config: `url` (`http://host:port/path` or `https://…`). A 2xx answer acknowledges the
//! batch; 5xx, 429 and transport errors are retried by the host with backoff; other 4xx
//! answers are permanent (the sink is disabled until an admin fixes it). Each request carries
//! `x-halo-first-id` and `x-halo-last-id` so the receiver can drop repeats.

use halo_sdk::{ArchiveRecord, ArchiveSink, Host, SinkError};

halo_sdk::manifest!(
    r#"{"name": "http-archive-sink", "version": "0.1.0", "kind": "archive-sink", "api": "halo:plugin@0.1.1",
  "description": "Posts archive batches as JSON Lines to an HTTP endpoint (grant http:host:port).",
  "capabilities": ["http"],
  "config": {"url": {"type": "string", "default": "", "description": "Where to POST: http(s)://host:port/path"}}}"#
);

/// The sink.
pub struct HttpArchiveSink;

/// A parsed `url`.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub https: bool,
    /// `host:port`.
    pub authority: String,
    /// `/path?query`.
    pub path: String,
}

/// Parses `http(s)://host[:port]/path`.
pub fn parse_url(url: &str) -> Result<Target, SinkError> {
    let bad = || SinkError::Permanent(format!("url {url:?}: use http(s)://host:port/path"));
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    Ok(Target { https, authority: authority.to_owned(), path: path.to_owned() })
}

/// The body of one batch: each record's JSON line.
pub fn body(batch: &[ArchiveRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(batch.iter().map(|r| r.json.len() + 1).sum());
    for r in batch {
        out.extend_from_slice(r.json.as_bytes());
        out.push(b'\n');
    }
    out
}

/// What an HTTP status means for the batch.
pub fn outcome(status: u16) -> Result<(), SinkError> {
    match status {
        200..=299 => Ok(()),
        429 | 500..=599 => Err(SinkError::Retry(format!("the endpoint answered {status}"))),
        other => Err(SinkError::Permanent(format!("the endpoint answered {other}"))),
    }
}

impl ArchiveSink for HttpArchiveSink {
    fn deliver(host: &dyn Host, batch: &[ArchiveRecord]) -> Result<(), SinkError> {
        let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(()) };
        let url = host.config("url").filter(|u| !u.is_empty());
        let url = url.ok_or_else(|| SinkError::Permanent("no url configured: halo plugin config http-archive-sink url=…".into()))?;
        let target = parse_url(&url)?;
        let status = post(&target, &body(batch), first.id, last.id)?;
        outcome(status)
    }
}

halo_sdk::archive_sink!(HttpArchiveSink);

#[cfg(target_arch = "wasm32")]
fn post(target: &Target, body: &[u8], first: u64, last: u64) -> Result<u16, SinkError> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    let retry = |what: &str, e: &dyn std::fmt::Debug| SinkError::Retry(format!("{what}: {e:?}"));
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), b"application/x-ndjson".to_vec()),
        ("x-halo-first-id".to_owned(), first.to_string().into_bytes()),
        ("x-halo-last-id".to_owned(), last.to_string().into_bytes()),
        ("content-length".to_owned(), body.len().to_string().into_bytes()),
    ])
    .map_err(|e| retry("headers", &e))?;
    let request = OutgoingRequest::new(headers);
    let scheme = if target.https { Scheme::Https } else { Scheme::Http };
    let set = request
        .set_method(&Method::Post)
        .and(request.set_scheme(Some(&scheme)))
        .and(request.set_authority(Some(&target.authority)))
        .and(request.set_path_with_query(Some(&target.path)));
    set.map_err(|()| SinkError::Permanent(format!("invalid url parts {target:?}")))?;
    let out = request.body().map_err(|()| retry("body", &"unavailable"))?;
    // Send first, then stream the body: the host reads it as it is written.
    let response = outgoing_handler::handle(request, None).map_err(|e| retry("sending", &e))?;
    // A refused or failed request closes the body stream: its reason is in the response.
    let written = (|| {
        let stream = out.write().map_err(|()| retry("body stream", &"unavailable"))?;
        for chunk in body.chunks(4096) {
            stream.blocking_write_and_flush(chunk).map_err(|e| retry("writing the body", &e))?;
        }
        drop(stream);
        OutgoingBody::finish(out, None).map_err(|e| retry("finishing the body", &e))
    })();
    response.subscribe().block();
    let answer = response
        .get()
        .ok_or_else(|| retry("response", &"not ready"))?
        .map_err(|()| retry("response", &"taken"))?
        .map_err(|e| retry("request", &e))?;
    written?;
    Ok(answer.status())
}

#[cfg(not(target_arch = "wasm32"))]
fn post(_: &Target, _: &[u8], _: u64, _: u64) -> Result<u16, SinkError> {
    Err(SinkError::Retry("HTTP is only available inside Halo (wasm32-wasip2)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_statuses_and_bodies() {
        assert_eq!(
            parse_url("http://127.0.0.1:8080/ingest?x=1").ok(),
            Some(Target { https: false, authority: "127.0.0.1:8080".into(), path: "/ingest?x=1".into() })
        );
        assert_eq!(parse_url("https://archive.example.com").map(|t| t.path).ok().as_deref(), Some("/"));
        assert!(matches!(parse_url("ftp://x/"), Err(SinkError::Permanent(_))));
        assert!(matches!(parse_url("http://user@host/"), Err(SinkError::Permanent(_))));
        assert_eq!(outcome(204), Ok(()));
        assert!(matches!(outcome(503), Err(SinkError::Retry(_))));
        assert!(matches!(outcome(429), Err(SinkError::Retry(_))));
        assert!(matches!(outcome(404), Err(SinkError::Permanent(_))));
    }
}

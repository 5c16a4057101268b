//! The web client and admin console: static files from `host/server/web/`, embedded in the
//! binary at build time (no CDN, no network at run time) and served at `/`.
//!
//! Every answer carries its content type, a strong `ETag` (SHA-256 of the file) with
//! `Cache-Control: no-cache` (the browser revalidates and gets `304 Not Modified` when nothing
//! changed), and a strict Content-Security-Policy: scripts and styles only from this origin,
//! no inline code, no framing. Paths under `/api/` that match no route get the API's JSON 404.
//!
//! Text files (scripts, styles, the page, SVG) are also kept gzip-compressed, made once when
//! the first file is asked for; a browser that accepts gzip gets that copy
//! (`Content-Encoding: gzip`, its own `ETag`), with `Vary: Accept-Encoding` on both.

use std::collections::HashMap;
use std::io::Write;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
use include_dir::{Dir, include_dir};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// The Content-Security-Policy of every web-client answer: same-origin scripts, styles,
/// images (plus `data:`/`blob:` previews), API calls and WebSocket; nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
    /// The gzip copy and its `ETag`, for text files it makes smaller.
    gzip: Option<(Vec<u8>, HeaderValue)>,
}

/// Whether a content type is worth compressing (text; pictures are compressed already).
fn compressible(content_type: &str) -> bool {
    content_type.starts_with("text/") || content_type.starts_with("image/svg") || content_type.contains("json")
}

/// `body` gzip-compressed at the best level, when that makes it smaller.
fn gzip(body: &[u8]) -> Option<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 3), Compression::best());
    enc.write_all(body).ok()?;
    let out = enc.finish().ok()?;
    (out.len() < body.len()).then_some(out)
}

/// Whether an `Accept-Encoding` header accepts gzip: named with a non-zero quality, or not
/// named and `*` accepted.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut star = false;
    for part in
        headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','))
    {
        let mut it = part.split(';');
        let name = it.next().unwrap_or_default().trim();
        let refused = it
            .any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        if name.eq_ignore_ascii_case("gzip") {
            return !refused;
        }
        star |= name == "*" && !refused;
    }
    star
}

fn assets() -> &'static HashMap<String, Asset> {
    static INDEX: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map = HashMap::new();
        let mut dirs = vec![&ASSETS];
        while let Some(dir) = dirs.pop() {
            dirs.extend(dir.dirs());
            for f in dir.files() {
                let path = f.path().to_string_lossy().replace('\\', "/");
                let hash = Sha256::digest(f.contents());
                let tag: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
                let Ok(etag) = HeaderValue::from_str(&format!("\"{tag}\"")) else { continue };
                let content_type = content_type(&path);
                let gzip = compressible(content_type)
                    .then(|| gzip(f.contents()))
                    .flatten()
                    .and_then(|gz| Some((gz, HeaderValue::from_str(&format!("\"{tag}-gz\"")).ok()?)));
                map.insert(path.clone(), Asset { body: f.contents(), content_type, etag, gzip });
            }
        }
        map
    })
}

/// The content type for a file name, by extension.
pub fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// The router's fallback: an embedded file (`index.html` for `/`), the API's JSON 404 under
/// `/api/`, or a plain 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") {
        return ApiError::not_found(format!("no route {method} {path}")).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET, HEAD")]).into_response();
    }
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let Some(asset) = assets().get(name) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n")
            .into_response();
    };
    let (bytes, etag, gzipped) = match &asset.gzip {
        Some((gz, tag)) if accepts_gzip(&headers) => (Body::from(gz.as_slice()), tag, true),
        _ => (Body::from(asset.body), &asset.etag, false),
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/").as_bytes() == etag.as_bytes()));
    let status = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let body = if fresh || method == Method::HEAD { Body::empty() } else { bytes };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::ETAG, etag.clone());
    if asset.gzip.is_some() {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if gzipped && !fresh {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_is_embedded_with_types() {
        let index = assets().get("index.html").expect("index.html is embedded");
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(assets().keys().any(|k| k.ends_with(".js")), "scripts are embedded");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("style.css"), "text/css; charset=utf-8");
    }

    #[test]
    fn text_files_have_a_smaller_gzip_copy() {
        let app = assets().get("js/app.js").expect("app.js");
        let (gz, tag) = app.gzip.as_ref().expect("scripts are compressed");
        assert!(gz.len() < app.body.len());
        assert_ne!(tag, &app.etag, "each encoding has its own validator");
        assert!(assets().get("favicon.svg").is_some());
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br, zstd"));
        assert!(accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br;q=1, gzip;q=0, *"));
        assert!(!accepts_gzip(&h));
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("br, *;q=0.5"));
        assert!(accepts_gzip(&h));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn no_inline_code_in_the_page() {
        let index = std::str::from_utf8(assets().get("index.html").expect("index").body).expect("utf-8");
        assert!(!index.contains("<script>") && !index.contains(" style=") && !index.contains(" onclick="));
    }
}

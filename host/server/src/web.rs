//! The web client and admin console: static files from `host/server/web/`, embedded in the
//! binary at build time (no CDN, no network at run time) and served at `/`.
//!
//! Every answer carries its content type, a strong `ETag` (SHA-256 of the file) with
//! `Cache-Control: no-cache` (the browser revalidates and gets `304 Not Modified` when nothing
//! changed), and a strict Content-Security-Policy: scripts and styles only from this origin,
//! no inline code, no framing. Paths under `/api/` that match no route get the API's JSON 404.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
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
                map.insert(path.clone(), Asset { body: f.contents(), content_type: content_type(&path), etag });
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
    let fresh = headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == asset.etag.as_bytes());
    let status = if fresh { StatusCode::NOT_MODIFIED } else { StatusCode::OK };
    let body = if fresh || method == Method::HEAD { Body::empty() } else { Body::from(asset.body) };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::ETAG, asset.etag.clone());
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
    fn no_inline_code_in_the_page() {
        let index = std::str::from_utf8(assets().get("index.html").expect("index").body).expect("utf-8");
        assert!(!index.contains("<script>") && !index.contains(" style=") && !index.contains(" onclick="));
    }
}

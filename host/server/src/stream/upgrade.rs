//! The WebSocket handshake (RFC 6455 section 4.2) over hyper's upgrade, handing the session the
//! bare socket: on a plain connection the TCP stream itself ([`Io::Tcp`]), without hyper's or
//! the connection timeouts' wrappers.

use std::future::Future;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::session::Conn;
use super::ws::Io;
use crate::conn::Watched;
use crate::error::ApiError;

/// A WebSocket upgrade request, checked.
pub struct WsUpgrade {
    key: HeaderValue,
    protocols: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let not_ws = |what: &str| ApiError::bad_request(format!("not a WebSocket request: {what}"));
        if parts.method != Method::GET {
            return Err(not_ws("the method must be GET"));
        }
        if !has_token(&parts.headers, header::CONNECTION, "upgrade") {
            return Err(not_ws("Connection: upgrade is missing"));
        }
        if !has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(not_ws("Upgrade: websocket is missing"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
            return Err(not_ws("Sec-WebSocket-Version must be 13"));
        }
        let key =
            parts.headers.get(header::SEC_WEBSOCKET_KEY).cloned().ok_or_else(|| not_ws("no Sec-WebSocket-Key"))?;
        let on_upgrade =
            parts.extensions.remove::<OnUpgrade>().ok_or_else(|| not_ws("this connection cannot be upgraded"))?;
        let protocols = parts.headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
        Ok(Self { key, protocols, on_upgrade })
    }
}

impl WsUpgrade {
    /// Whether the client offers subprotocol `protocol`.
    pub fn offers(&self, protocol: &str) -> bool {
        self.protocols
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == protocol))
    }

    /// Answers 101 (selecting `protocol`) and runs `session` on the socket once hyper hands it
    /// over, in one task.
    pub fn accept<F, Fut>(self, protocol: Option<&'static str>, session: F) -> Response
    where
        F: FnOnce(Conn) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => session(into_conn(upgraded)).await,
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(p) = protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(p));
        }
        response
    }
}

/// The socket under hyper's upgrade: the bare TCP stream when the connection is plain.
fn into_conn(upgraded: Upgraded) -> Conn {
    match upgraded.downcast::<TokioIo<Watched<TcpStream>>>() {
        Ok(parts) => {
            let (tcp, slot) = parts.io.into_inner().into_parts();
            Conn { io: Io::Tcp(tcp), pre: parts.read_buf, slot: Some(slot) }
        }
        Err(upgraded) => Conn { io: Io::Upgraded(TokioIo::new(upgraded)), pre: Bytes::new(), slot: None },
    }
}

//! `http`: outgoing HTTP(S) requests through `wasi:http`, only to the one authority the admin
//! granted (`http:archive.example.com:443`). Without the grant, and to any other host, a
//! request fails with `HTTP-request-denied` before a connection is opened.

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpCtx, WasiHttpHooks};

/// The grant: `host:port` (the port may be left out for the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpGrant {
    /// Lowercased `host[:port]`.
    pub authority: String,
}

impl HttpGrant {
    /// Reads the value of an `http:<host[:port]>` grant.
    pub fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        let raw = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the http grant names a host: http:host:port"))?;
        let valid = raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !valid {
            anyhow::bail!("the http grant needs host[:port], got {raw:?}");
        }
        Ok(Self { authority: raw.to_ascii_lowercase() })
    }
}

/// Per-instance state: the wasi:http context and the policy hooks.
pub struct HttpState {
    /// wasi:http's own context.
    pub ctx: WasiHttpCtx,
    /// Decides each request.
    pub hooks: Hooks,
}

impl HttpState {
    /// State for an instance with `grant` (or none).
    pub fn new(grant: Option<HttpGrant>) -> Self {
        Self { ctx: WasiHttpCtx::new(), hooks: Hooks { grant } }
    }
}

/// The request policy.
pub struct Hooks {
    grant: Option<HttpGrant>,
}

impl Hooks {
    fn allows(&self, uri: &http::Uri) -> bool {
        let (Some(grant), Some(authority)) = (&self.grant, uri.authority()) else { return false };
        let asked = authority.as_str().to_ascii_lowercase();
        if asked == grant.authority {
            return true;
        }
        // `host` granted: the scheme's default port only.
        let default_port = if uri.scheme() == Some(&http::uri::Scheme::HTTPS) { 443 } else { 80 };
        !grant.authority.contains(':')
            && authority.host().eq_ignore_ascii_case(&grant.authority)
            && authority.port_u16().is_none_or(|p| p == default_port)
    }
}

type Answer = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl WasiHttpHooks for Hooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Answer> + Send> {
        _ = fut;
        if !self.allows(request.uri()) {
            tracing::warn!(uri = %request.uri(), "plugin HTTP request denied: not the granted host");
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hooks(grant: &str) -> Hooks {
        Hooks { grant: Some(HttpGrant::parse(Some(grant)).expect("grant")) }
    }

    #[test]
    fn only_the_granted_authority_is_reachable() {
        let uri = |s: &str| s.parse::<http::Uri>().expect("uri");
        assert!(hooks("127.0.0.1:8080").allows(&uri("http://127.0.0.1:8080/x")));
        assert!(!hooks("127.0.0.1:8080").allows(&uri("http://127.0.0.1:8081/x")));
        assert!(!hooks("127.0.0.1:8080").allows(&uri("http://localhost:8080/x")));
        assert!(hooks("Archive.Example.com").allows(&uri("https://archive.example.com/x")));
        assert!(!hooks("archive.example.com").allows(&uri("https://archive.example.com:8443/x")));
        assert!(!Hooks { grant: None }.allows(&uri("http://127.0.0.1:8080/")));
        assert!(HttpGrant::parse(None).is_err());
        assert!(HttpGrant::parse(Some("http://x/")).is_err(), "a host, not a URL");
    }
}

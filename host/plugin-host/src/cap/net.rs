//! `net`: the TCP (optionally TLS) connections a federation adapter may ask the host to open,
//! one grant per `host:port` (`net:xmpp.example.com:5347`). The host opens the sockets; the
//! adapter never sees one. Without a grant naming the address, `open` is refused.

/// One granted address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetGrant {
    /// Lowercased host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl NetGrant {
    /// Reads the value of a `net:<host>:<port>` grant.
    pub fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        let raw = value
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the net grant names an address: net:host:port"))?;
        let (host, port) =
            raw.rsplit_once(':').ok_or_else(|| anyhow::anyhow!("the net grant needs host:port, got {raw:?}"))?;
        let port: u16 = port.parse().map_err(|_| anyhow::anyhow!("the net grant's port is not a port: {raw:?}"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let valid = host == "*"
            || (!host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':')));
        if !valid || port == 0 {
            anyhow::bail!("the net grant needs host:port, got {raw:?}");
        }
        Ok(Self { host: host.to_ascii_lowercase(), port })
    }

    /// Whether this grant covers `host:port`. A `*` host (`net:*:5269`, for a
    /// server-to-server adapter reaching whatever SRV names) covers every host on that port.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        self.port == port && (self.host == "*" || self.host.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_name_one_address() {
        let g = NetGrant::parse(Some("XMPP.example.com:5347")).expect("test");
        assert!(g.allows("xmpp.example.com", 5347));
        assert!(!g.allows("xmpp.example.com", 5222));
        assert!(!g.allows("other.example.com", 5347));
        assert!(NetGrant::parse(Some("[::1]:5347")).expect("test").allows("::1", 5347));
        let any = NetGrant::parse(Some("*:5269")).expect("test");
        assert!(any.allows("xmpp.example.org", 5269) && any.allows("127.0.0.3", 5269));
        assert!(!any.allows("xmpp.example.org", 5270));
        for bad in [
            None,
            Some(""),
            Some("host"),
            Some("host:0"),
            Some("host:http"),
            Some("a b:1"),
            Some("h/x:1"),
            Some("*x:1"),
        ] {
            assert!(NetGrant::parse(bad).is_err(), "{bad:?}");
        }
    }
}

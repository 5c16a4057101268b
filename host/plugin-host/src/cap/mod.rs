//! Host capabilities, one unit each: its config (what the admin granted and set), its
//! per-instance state (a field of the store's data, or a piece of the WASI context), and its
//! linker hook. `log` and `config` every plugin has; `kv` answers `access-denied` unless
//! granted; `dir` exists only when granted; `http` refuses every request but those to the
//! granted host; `net` lets a federation adapter have the host connect to granted addresses, `listen` accept
//! connections on granted ones, `dns` look up SRV records.
//!
//! A grant is a capability name, or `name:value` for capabilities the admin parameterises
//! (`dir:/var/lib/halo/archive`, `http:archive.example.com:443`, `net:127.0.0.1:5347`). [`Grants::parse`] keeps only what the manifest asks for.

pub mod calendar;
pub mod config;
pub mod dir;
pub mod http;
pub mod kv;
pub mod log;
pub mod net;

/// The capabilities granted to one plugin, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// The grants as given (those the manifest asks for), for display and persistence.
    pub raw: Vec<String>,
    /// `kv` is granted.
    pub kv: bool,
    /// `dir:<path>` is granted.
    pub dir: Option<dir::DirGrant>,
    /// `http:<host[:port]>` is granted.
    pub http: Option<http::HttpGrant>,
    /// `net:<host:port>` grants (a federation adapter's connections).
    pub net: Vec<net::NetGrant>,
    /// `listen:<address:port>` grants (where a federation adapter may accept connections).
    pub listen: Vec<net::NetGrant>,
    /// `dns` is granted (SRV lookups).
    pub dns: bool,
}

impl Grants {
    /// Whether a connection to `host:port` is granted.
    pub fn allows_net(&self, host: &str, port: u16) -> bool {
        self.net.iter().any(|g| g.allows(host, port))
    }

    /// Whether accepting connections on `address:port` is granted.
    pub fn allows_listen(&self, address: &str, port: u16) -> bool {
        self.listen.iter().any(|g| g.host != "*" && g.allows(address, port))
    }
}

impl Grants {
    /// Parses `grants`, dropping the ones `requested` (the manifest's list) does not name.
    pub fn parse(grants: &[String], requested: &[String]) -> anyhow::Result<Self> {
        let mut out = Grants::default();
        for g in grants {
            let (name, value) = match g.split_once(':') {
                Some((n, v)) => (n.trim(), Some(v)),
                None => (g.trim(), None),
            };
            if !requested.iter().any(|r| r == name) {
                continue;
            }
            match name {
                "kv" => out.kv = true,
                "dir" => out.dir = Some(dir::DirGrant::parse(value)?),
                "http" => out.http = Some(http::HttpGrant::parse(value)?),
                "net" => out.net.push(net::NetGrant::parse(value)?),
                "listen" => out.listen.push(net::NetGrant::parse(value)?),
                "dns" => out.dns = true,
                _ => continue,
            }
            out.raw.push(g.trim().to_owned());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_and_dns_are_denied_unless_granted_and_asked_for() {
        let asked = vec!["net".to_owned(), "listen".to_owned(), "dns".to_owned()];
        let none = Grants::parse(&[], &asked).expect("parse");
        assert!(!none.dns && !none.allows_listen("0.0.0.0", 5269));
        let g =
            Grants::parse(&["listen:127.0.0.2:5269".into(), "dns".into(), "net:*:5269".into()], &asked).expect("parse");
        assert!(g.dns && g.allows_listen("127.0.0.2", 5269));
        assert!(!g.allows_listen("0.0.0.0", 5269) && !g.allows_listen("127.0.0.2", 5270));
        assert!(g.allows_net("xmpp.example.org", 5269));
        // A wildcard never grants listening anywhere.
        let g = Grants::parse(&["listen:*:5269".into()], &asked).expect("parse");
        assert!(!g.allows_listen("0.0.0.0", 5269));
        // Not asked for by the manifest: dropped.
        let g = Grants::parse(&["dns".into(), "listen:127.0.0.2:5269".into()], &["net".to_owned()]).expect("parse");
        assert!(!g.dns && g.listen.is_empty());
    }
}

//! Changing a plugin's grants: what may be granted to which kind of plugin, once or (`net`)
//! once per address.

use crate::error::ServiceError;

/// The capability a grant is for (`dir` of `dir:/path`).
fn capability(grant: &str) -> &str {
    grant.split_once(':').map_or(grant, |(name, _)| name).trim()
}

/// The grants after adding `grant` and taking away `revoke` (a bare capability takes every
/// grant of it away; `name:value` that one). A capability may be granted once, but `net`,
/// which takes one address per grant.
pub(super) fn change_grants(
    current: &[String],
    grant: &[String],
    revoke: &[String],
    requested: &[String],
    kind: &str,
) -> Result<Vec<String>, ServiceError> {
    let mut out: Vec<String> = current.to_vec();
    for r in revoke {
        let r = r.trim();
        let before = out.len();
        out.retain(|g| if r.contains(':') { g != r } else { capability(g) != r });
        if out.len() == before {
            return Err(ServiceError::Invalid(format!("{r:?} is not granted")));
        }
    }
    let allowed = halo_plugin_host::allowed_capabilities(kind);
    for g in grant {
        let g = g.trim();
        let c = capability(g);
        if !allowed.contains(&c) {
            return Err(ServiceError::Invalid(format!(
                "a {kind} plugin cannot be granted {c:?}; it may have: {}",
                allowed.join(", ")
            )));
        }
        if !requested.iter().any(|r| r == c) {
            return Err(ServiceError::Invalid(format!(
                "the plugin does not ask for {c:?}; it asks for: {}",
                requested.join(", ")
            )));
        }
        if c != "net" {
            out.retain(|o| capability(o) != c);
        }
        if !out.iter().any(|o| o == g) {
            out.push(g.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::change_grants;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn grants_change_by_capability() {
        let asks = v(&["kv", "dir", "http"]);
        let g = change_grants(&v(&["dir:/a"]), &v(&["dir:/b", "kv"]), &[], &asks, "archive-sink").expect("ok");
        assert_eq!(g, v(&["dir:/b", "kv"]), "one dir grant, replaced");
        let g = change_grants(&g, &[], &v(&["dir"]), &asks, "archive-sink").expect("ok");
        assert_eq!(g, v(&["kv"]));
        let e = change_grants(&g, &[], &v(&["http"]), &asks, "archive-sink").expect_err("not granted");
        assert!(e.to_string().contains("\"http\" is not granted"), "{e}");
        let e = change_grants(&g, &v(&["net:h:1"]), &[], &asks, "archive-sink").expect_err("kind");
        assert!(e.to_string().contains("cannot be granted \"net\""), "{e}");
        let net = v(&["net"]);
        let g =
            change_grants(&[], &v(&["net:a:1", "net:b:2", "net:a:1"]), &[], &net, "federation-adapter").expect("ok");
        assert_eq!(g, v(&["net:a:1", "net:b:2"]), "net is repeatable, each address once");
        let g = change_grants(&g, &[], &v(&["net:a:1"]), &net, "federation-adapter").expect("ok");
        assert_eq!(g, v(&["net:b:2"]));
        let e = change_grants(&g, &v(&["kv"]), &[], &net, "federation-adapter").expect_err("not asked");
        assert!(e.to_string().contains("does not ask for \"kv\""), "{e}");
    }
}

//! JIDs (`local@domain/resource`, RFC 7622) as far as the adapter needs them: strict syntax,
//! lowercased, and the mapping to Halo addresses.

/// A parsed JID, localpart and domain lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jid {
    /// The localpart, if any.
    pub local: Option<String>,
    /// The domain.
    pub domain: String,
    /// The resource, if any (kept as sent).
    pub resource: Option<String>,
}

impl Jid {
    /// `local@domain` or `domain`.
    pub fn bare(&self) -> String {
        match &self.local {
            Some(local) => format!("{local}@{}", self.domain),
            None => self.domain.clone(),
        }
    }
}

/// Why an address was refused.
pub type Invalid = String;

/// Parses and checks a JID: localpart 1-64 bytes without `"&'/:<>@` or whitespace, domain
/// 1-253 characters of a-z, 0-9, `.`, `-` in non-empty labels, resource 1-1023 bytes.
pub fn parse(raw: &str) -> Result<Jid, Invalid> {
    if raw.is_empty() {
        return Err("empty address".into());
    }
    if raw.len() > 64 + 1 + 253 + 1 + 1023 {
        return Err("address too long".into());
    }
    let (bare, resource) = match raw.split_once('/') {
        Some((bare, resource)) => (bare, Some(resource)),
        None => (raw, None),
    };
    let (local, domain) = match bare.split_once('@') {
        Some((local, domain)) => (Some(local), domain),
        None => (None, bare),
    };
    let local = local.map(localpart).transpose()?;
    let domain = domainpart(domain)?;
    let resource = match resource {
        Some(r) if r.is_empty() || r.len() > 1023 || r.chars().any(char::is_control) => {
            return Err(format!("invalid resource in {:?}", shorten(raw)));
        }
        Some(r) => Some(r.to_owned()),
        None => None,
    };
    Ok(Jid { local, domain, resource })
}

fn localpart(local: &str) -> Result<String, Invalid> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "\"&'/:<>@".contains(c);
    if local.is_empty() || local.len() > 64 || local.chars().any(bad) {
        return Err(format!("invalid localpart {:?}", shorten(local)));
    }
    Ok(local.to_lowercase())
}

/// Checks a domain and lowercases it.
pub fn domainpart(domain: &str) -> Result<String, Invalid> {
    let domain = domain.to_ascii_lowercase();
    let chars_ok = domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let labels_ok = domain.split('.').all(|l| !l.is_empty() && l.len() <= 63);
    if domain.is_empty() || domain.len() > 253 || !chars_ok || !labels_ok {
        return Err(format!("invalid domain {:?}", shorten(&domain)));
    }
    Ok(domain)
}

/// Whether `name` is a Halo username: `[a-z0-9][a-z0-9._-]{0,63}`.
pub fn is_halo_username(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
}

/// A remote user's JID (bare or full, with a localpart, not on `own_domain`) as a Halo address
/// `name@domain`.
pub fn remote_user(raw: &str, own_domain: &str) -> Result<String, Invalid> {
    let jid = parse(raw)?;
    if jid.local.is_none() {
        return Err(format!("{:?} is not a user", shorten(raw)));
    }
    if jid.domain == own_domain {
        return Err(format!("{:?} claims the component's own domain", shorten(raw)));
    }
    Ok(jid.bare())
}

/// A JID on `own_domain` (bare or full) as the local Halo username it stands for.
pub fn local_user(raw: &str, own_domain: &str) -> Result<String, Invalid> {
    let jid = parse(raw)?;
    if jid.domain != own_domain {
        return Err(format!("{:?} is not on {own_domain}", shorten(raw)));
    }
    match jid.local {
        Some(local) if is_halo_username(&local) => Ok(local),
        Some(local) => Err(format!("{:?} is not a Halo username", shorten(&local))),
        None => Err(format!("{:?} is not a user", shorten(raw))),
    }
}

/// The domain of `raw`, if it has a valid one (for rejections).
pub fn domain_of(raw: &str) -> Option<String> {
    let bare = raw.split('/').next().unwrap_or(raw);
    let domain = bare.rsplit('@').next().unwrap_or(bare);
    domainpart(domain).ok()
}

/// At most 80 characters of `s`, for messages.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_owned() } else { s.chars().take(80).chain("…".chars()).collect() }
}

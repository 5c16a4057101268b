//! Process limits and loopback source addresses.

/// Raises the soft open-files limit to the hard limit; returns the limit now in force (0 when
/// it cannot be read). Children (the server, workers) inherit it.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// Whether `url` points at loopback (127.0.0.0/8 or localhost): load goes nowhere else.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.trim_start_matches("http://").trim_start_matches("https://");
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    host == "localhost" || host.parse::<std::net::Ipv4Addr>().map(|ip| ip.is_loopback()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        assert!(is_loopback_url("http://127.0.0.1:7420"));
        assert!(is_loopback_url("http://127.3.0.9:1/x"));
        assert!(is_loopback_url("http://localhost:7420"));
        assert!(!is_loopback_url("http://10.0.0.1:7420"));
        assert!(!is_loopback_url("http://example.com"));
    }
}

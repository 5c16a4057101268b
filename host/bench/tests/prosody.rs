//! A real Prosody (Debian's package) driven by the bench's XMPP client: login, messages both
//! ways, presence, roster. Nothing here asserts on timing.
//!
//! Skipped with a message when `prosody` is not installed and `CI` is unset; in CI
//! (`.ci/run` installs it) a missing Prosody fails the test.
//!
//! Measuring Prosody is `halo-bench run idle,im --with-prosody` (BENCHMARKS.md).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use halo_bench::prosody::Prosody;
use halo_bench::xmpp::{self, XmppClient};

const WAIT: Duration = Duration::from_secs(10);

/// Whether to run: `false` (with a message) only when Prosody is missing outside CI.
fn prosody_available() -> bool {
    if Prosody::is_installed() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("prosody is not installed, and CI is set: .ci/run must install it (apt-get install -y prosody)");
    }
    eprintln!("SKIPPED: prosody is not installed (apt-get install -y prosody); CI is unset, so this test does not run");
    false
}

async fn start(users: usize, roster: impl Fn(usize) -> Vec<usize> + Send + 'static) -> Prosody {
    tokio::task::spawn_blocking(move || Prosody::start(users, roster)).await.expect("join").expect("start prosody")
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

#[tokio::test]
async fn prosody_exchanges_messages_and_presence_with_the_bench_client() {
    if !prosody_available() {
        return;
    }
    // Three users, all contacts of each other.
    let server = start(3, |i| (0..3).filter(|&j| j != i).collect()).await;
    let addr = server.c2s_addr();
    assert!(addr.ip().is_loopback());
    let pass = Prosody::password(0);

    let mut a = XmppClient::connect(addr, loopback(1), &server.jid(0), &pass).await.expect("u0 logs in");
    assert!(a.jid().starts_with("u0@localhost/"), "{}", a.jid());
    let mut b = XmppClient::connect(addr, loopback(2), &server.jid(1), &pass).await.expect("u1 logs in from 127.0.0.2");

    // u1's initial presence reaches u0 (a contact with subscription both). u0 also gets its
    // own presence reflected, and `unavailable` answers to its probes of offline contacts.
    let p = loop {
        let p = a.next_presence(WAIT).await.expect("read").expect("u1's presence reaches u0");
        if p.from.starts_with("u1@localhost/") && p.kind.is_none() {
            break p;
        }
    };
    assert!(p.from.starts_with("u1@localhost/"), "{p:?}");
    assert_eq!(p.kind, None);

    // A message each way; bodies are escaped and unescaped.
    a.send_message(&server.jid(1), "hello <b> & 'you'").await.expect("send");
    let m = b.next_message(WAIT).await.expect("read").expect("u1 gets the message");
    assert!(m.from.starts_with("u0@localhost/"), "{m:?}");
    assert_eq!(m.body, "hello <b> & 'you'");
    assert_eq!(m.kind.as_deref(), Some("chat"));

    b.send_message(a.jid(), "hi back").await.expect("send");
    let m = a.next_message(WAIT).await.expect("read").expect("u0 gets the answer");
    assert!(m.from.starts_with("u1@localhost/"), "{m:?}");
    assert_eq!(m.body, "hi back");

    // A presence change with show and status.
    b.set_presence(Some("away"), Some("lunch")).await.expect("presence");
    let p = loop {
        let p = a.next_presence(WAIT).await.expect("read").expect("u1's away presence reaches u0");
        if p.from.starts_with("u1@") && p.show.is_some() {
            break p;
        }
    };
    assert!(p.from.starts_with("u1@localhost/"), "{p:?}");
    assert_eq!(p.show.as_deref(), Some("away"));
    assert_eq!(p.status.as_deref(), Some("lunch"));

    // The roster written into the data directory is what the server serves.
    let opts = xmpp::ConnectOptions { roster_get: true, ..Default::default() };
    let mut c = XmppClient::connect_with(addr, loopback(3), &server.jid(2), &pass, &opts).await.expect("u2 logs in");
    let mut roster = c.roster_get().await.expect("roster");
    roster.sort();
    assert_eq!(roster, vec!["u0@localhost".to_string(), "u1@localhost".to_string()]);

    // A wrong password is refused.
    let err = XmppClient::connect(addr, loopback(1), &server.jid(2), "wrong").await.expect_err("refused");
    assert!(err.to_string().contains("SASL"), "{err:#}");

    assert!(server.rss_bytes().expect("rss") > 1 << 20);
    let pid = server.pid();
    a.close().await.expect("close");
    drop(server);
    // Dropping kills and reaps the process.
    assert!(!std::path::Path::new(&format!("/proc/{pid}/status")).exists());
}

#[test]
fn prosody_start_fails_cleanly_without_prosody_or_starts() {
    // Either way the call returns; with Prosody installed it is a working server.
    if Prosody::is_installed() {
        let p = Prosody::start(1, |_| vec![]).expect("start");
        assert!(p.dir().join("data/localhost/accounts/u0.dat").exists());
        assert_eq!(p.domain(), "localhost");
        let addr: SocketAddr = p.c2s_addr();
        assert!(std::net::TcpStream::connect(addr).is_ok());
    } else {
        assert!(Prosody::start(1, |_| vec![]).is_err());
    }
}

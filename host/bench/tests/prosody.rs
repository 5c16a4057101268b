//! A real Prosody (Debian's package) driven by the bench's XMPP client: login, messages both
//! ways, presence, roster. Nothing here asserts on timing.
//!
//! Skipped with a message when `prosody` is not installed and `CI` is unset; in CI
//! (`.ci/run` installs it) a missing Prosody fails the test.
//!
//! Also holds the Prosody probe (`#[ignore]`): idle sessions' RSS and a flat-out 1:1 message
//! loop, printed, not judged:
//!
//! ```text
//! cargo test -p halo-bench --release --test prosody -- --ignored --nocapture prosody_probe
//! # knobs: PROBE_IDLE=1000,5000 PROBE_PAIRS=100 PROBE_SECS=10 PROBE_WINDOW=8 PROBE_SOURCES=16
//! ```

// The modules are compiled into this test directly, so it does not depend on how the library
// re-exports them.
#[allow(dead_code)]
#[path = "../src/prosody.rs"]
mod prosody;
#[allow(dead_code)]
#[path = "../src/xmpp.rs"]
mod xmpp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prosody::Prosody;
use xmpp::XmppClient;

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

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Idle sessions' RSS per session and a flat-out 1:1 message loop against Prosody. Prints its
/// figures; run by hand (see the top of this file).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test: run by hand with --ignored --nocapture"]
async fn prosody_probe() {
    if !prosody_available() {
        return;
    }
    let lim = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let idle: Vec<usize> = std::env::var("PROBE_IDLE")
        .unwrap_or_else(|_| "1000,5000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let sources: u8 = env_or("PROBE_SOURCES", 16u8).clamp(1, 250);
    let pairs: usize = env_or("PROBE_PAIRS", 100);
    let secs: f64 = env_or("PROBE_SECS", 10.0);
    let window: u64 = env_or("PROBE_WINDOW", 8);
    let batch: usize = env_or("PROBE_CONNECT_BATCH", 100usize).max(1);
    println!("open-files limit {lim}; sources 127.0.0.2..{}", 1 + sources);

    // Idle: users in teams of 11 (10 contacts each), sessions with initial presence.
    let max = idle.iter().copied().max().unwrap_or(0);
    if max > 0 {
        let server = start(max, |i| {
            let t = i / 11 * 11;
            (t..t + 11).filter(|&j| j != i).collect()
        })
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let base = server.rss_bytes().expect("rss");
        println!("prosody idle: base RSS {:.1} MiB", base as f64 / 1048576.0);
        let addr = server.c2s_addr();
        let mut clients: Vec<XmppClient> = Vec::with_capacity(max);
        for &target in &idle {
            let t0 = Instant::now();
            let cpu0 = server.cpu_seconds().expect("cpu");
            let from = clients.len();
            while clients.len() < target {
                let batch: Vec<_> = (clients.len()..target.min(clients.len() + batch))
                    .map(|i| {
                        let jid = server.jid(i);
                        let src = loopback(2 + (i % sources as usize) as u8);
                        tokio::spawn(async move { XmppClient::connect(addr, src, &jid, &Prosody::password(i)).await })
                    })
                    .collect();
                for h in batch {
                    clients.push(h.await.expect("join").expect("connect"));
                }
            }
            let took = t0.elapsed();
            let cpu = server.cpu_seconds().expect("cpu") - cpu0;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let rss = server.rss_bytes().expect("rss");
            let per = (rss.saturating_sub(base)) as f64 / target as f64;
            println!(
                "prosody idle: {target} sessions, RSS {:.1} MiB, {:.1} KiB/session over base, {:.0} sessions/GiB, connect {:.0}/s (prosody CPU {:.0}%)",
                rss as f64 / 1048576.0,
                per / 1024.0,
                (1u64 << 30) as f64 / per,
                (target - from) as f64 / took.as_secs_f64().max(1e-9),
                100.0 * cpu / took.as_secs_f64().max(1e-9)
            );
        }
        drop(clients);
        drop(server);
    }

    if pairs == 0 {
        return;
    }
    // Flat-out 1:1: pair p is users 2p and 2p+1, each sending to the other with at most
    // `window` messages unreceived; latency is send to receive, in this process.
    let server = start(2 * pairs, |i| vec![i ^ 1]).await;
    let addr = server.c2s_addr();
    let epoch = Instant::now();
    let mut clients = Vec::new();
    for i in 0..2 * pairs {
        let src = loopback(2 + (i % sources as usize) as u8);
        clients.push(XmppClient::connect(addr, src, &server.jid(i), &Prosody::password(i)).await.expect("connect"));
    }
    // Drain presence traffic before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received: Vec<Arc<(AtomicU64, tokio::sync::Notify)>> =
        (0..2 * pairs).map(|_| Arc::new((AtomicU64::new(0), tokio::sync::Notify::new()))).collect();
    let cpu0 = server.cpu_seconds().expect("cpu");
    let me0 = prosody::cpu_seconds_of(std::process::id()).expect("cpu");
    let start_at = Instant::now();
    let end_at = start_at + Duration::from_secs_f64(secs);
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    for (i, c) in clients.into_iter().enumerate() {
        let (mut rd, mut wr) = c.into_split();
        let to = server.jid(i ^ 1);
        // Messages from i are counted at i^1's reader, in received[i].
        let mine = received[i].clone();
        writers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            while Instant::now() < end_at {
                if sent - mine.0.load(Ordering::Acquire) >= window {
                    let _ = tokio::time::timeout(Duration::from_millis(100), mine.1.notified()).await;
                    continue;
                }
                let body = epoch.elapsed().as_micros().to_string();
                wr.send_message(&to, &body).await.expect("send");
                sent += 1;
            }
            (sent, wr)
        }));
        let theirs = received[i ^ 1].clone();
        readers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut in_window = 0u64;
            loop {
                let wait = (end_at + Duration::from_secs(2)).saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    break;
                }
                match rd.next_message(wait).await.expect("read") {
                    None => break,
                    Some(m) => {
                        let now = epoch.elapsed().as_micros() as u64;
                        if let Ok(sent) = m.body.parse::<u64>() {
                            lat.push(now.saturating_sub(sent));
                        }
                        if Instant::now() <= end_at {
                            in_window += 1;
                        }
                        theirs.0.fetch_add(1, Ordering::Release);
                        theirs.1.notify_one();
                    }
                }
            }
            (in_window, lat)
        }));
    }
    let mut sent = 0;
    let mut keep = Vec::new();
    for w in writers {
        let (s, wr) = w.await.expect("join");
        sent += s;
        keep.push(wr);
    }
    let cpu = server.cpu_seconds().expect("cpu") - cpu0;
    let me = prosody::cpu_seconds_of(std::process::id()).expect("cpu") - me0;
    let mut total = 0u64;
    let mut lat = Vec::new();
    for r in readers {
        let (n, l) = r.await.expect("join");
        total += n;
        lat.extend(l);
    }
    lat.sort_unstable();
    let q = |p: f64| if lat.is_empty() { 0.0 } else { lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0 };
    println!(
        "prosody im flat-out: {pairs} pairs, window {window}, {secs} s: sent {sent}, received {} ({:.0} msg/s in the window), latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms; prosody CPU {:.0}%, this client {:.0}%",
        lat.len(),
        total as f64 / secs,
        q(0.5),
        q(0.99),
        q(1.0),
        100.0 * cpu / secs,
        100.0 * me / secs
    );
    drop(keep);
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

//! Side by side with Prosody (`--with-prosody`): the same idle and IM scenarios over XMPP
//! (client-to-server, plain on loopback) against Debian's Prosody started by the bench, and the
//! Halo ÷ Prosody ratios.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::prosody::Prosody;
use crate::report::{Report, progress};
use crate::scenarios::Ctx;
use crate::stats::{Latency, now_us};
use crate::xmpp::{XmppClient, XmppReader, XmppWriter};

/// Runs idle (N sessions, RSS per session) and IM (1:1 at the fixed rate and flat out) against
/// Prosody and adds the Halo vs Prosody rows.
pub fn run(ctx: &mut Ctx) -> anyhow::Result<()> {
    let n = ctx.args.prosody_sessions.max(2);
    let team = ctx.args.team.max(1);
    let pairs = ctx.args.im_pairs.clamp(1, n / 2);
    let secs = ctx.args.duration.clamp(0.2, 600.0);
    let rate = ctx.args.im_rate;
    let sources = ctx.args.sources.max(1);
    progress(&format!("prosody: starting with {n} users"));
    let prosody = Prosody::start(n, move |i| {
        let first = i / team * team;
        (first..(first + team).min(n)).filter(|&j| j != i).collect()
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let report = &mut ctx.report;
    let base = prosody.rss_bytes()?;
    let start = Instant::now();
    let clients = rt.block_on(connect(&prosody, n, sources))?;
    let connect_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let rss = prosody.rss_bytes()?;
    let per = rss.saturating_sub(base) as f64 / 1024.0 / n as f64;
    report.add("prosody", &format!("connect rate ({n} sessions)"), n as f64 / connect_secs, "sessions/s", None);
    report.add("prosody", &format!("server RSS at N={n}"), rss as f64 / 1024.0 / 1024.0, "MiB", None);
    report.add("prosody", &format!("server RSS per session at N={n}"), per, "KiB", None);
    compare(report, "sessions per GiB", halo_per_session(report, n).map(|h| 1.0 / h), Some(1.0 / per), ">= 5x");

    let halves: Halves = clients.into_iter().map(|c| Some(c.into_split())).collect();
    let cpu0 = prosody.cpu_seconds().ok();
    let (fixed, halves) = rt.block_on(im(&prosody, halves, pairs, rate, secs))?;
    let (flat, halves) = rt.block_on(im(&prosody, halves, pairs, 0.0, secs))?;
    let cpu = prosody.cpu_seconds().ok().zip(cpu0).map(|(a, b)| a - b);
    let label = format!("1:1 at {rate:.0} msg/s");
    report.add("prosody", &format!("{label}: deliveries"), fixed.0, "msg/s", None);
    report.add("prosody", &format!("{label}: send-to-deliver p99"), fixed.2, "ms", None);
    report.add("prosody", "1:1 flat out: deliveries", flat.0, "msg/s", None);
    report.add("prosody", "1:1 flat out: send-to-deliver p50", flat.1, "ms", None);
    report.add("prosody", "1:1 flat out: send-to-deliver p99", flat.2, "ms", None);
    if let Some(c) = cpu {
        report.add("prosody", "IM runs: server CPU", c / (2.0 * secs) * 100.0, "% of a core", None);
    }
    let halo_flat = find(report, "im", "1:1 flat out: messages stored (acked)");
    compare(report, "messages per second (1:1 flat out)", halo_flat, Some(flat.0), ">= 5x");
    let halo_p99 = find(report, "im", &format!("{label}: send-to-deliver p99"));
    // Lower is better for latency: the ratio is Prosody ÷ Halo.
    if let (Some(h), true) = (halo_p99, fixed.2 > 0.0) {
        report.add("ratio", &format!("p99 at {rate:.0} msg/s, Prosody / Halo"), fixed.2 / h.max(0.001), "x", None);
    }
    drop(halves);
    prosody.stop();
    Ok(())
}

fn find(report: &Report, scenario: &str, metric: &str) -> Option<f64> {
    report.rows.iter().rev().find(|r| r.scenario == scenario && r.metric == metric).map(|r| r.value)
}

/// Halo's RSS per session at the largest measured N not above `n` (or the smallest one).
fn halo_per_session(report: &Report, n: usize) -> Option<f64> {
    let mut best: Option<(usize, f64)> = None;
    for r in report.rows.iter().filter(|r| r.scenario == "idle") {
        if let Some(at) = r.metric.strip_prefix("server RSS per session at N=").and_then(|s| s.parse::<usize>().ok())
            && r.value > 0.0
        {
            let better = match best {
                None => true,
                Some((b, _)) => (at <= n && (b > n || at > b)) || (b > n && at < b),
            };
            if better {
                best = Some((at, r.value));
            }
        }
    }
    best.map(|b| b.1)
}

fn compare(report: &mut Report, what: &str, halo: Option<f64>, prosody: Option<f64>, target: &str) {
    if let (Some(h), Some(p)) = (halo, prosody)
        && p > 0.0
    {
        report.add("ratio", &format!("{what}, Halo / Prosody"), h / p, "x", Some(target));
    }
}

async fn connect(prosody: &Prosody, n: usize, sources: u8) -> anyhow::Result<Vec<XmppClient>> {
    let addr = prosody.c2s_addr();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (jid, pw, sem) = (prosody.jid(i), Prosody::password(i), sem.clone());
        let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % sources as usize) as u8));
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await.ok();
            XmppClient::connect(addr, local, &jid, &pw).await
        }));
    }
    let mut out = Vec::with_capacity(n);
    for (i, t) in tasks.into_iter().enumerate() {
        out.push(t.await.context("connect task")?.with_context(|| format!("xmpp connect u{i}"))?);
        if i % 500 == 0 {
            progress(&format!("prosody: connected {i}/{n}"));
        }
    }
    Ok(out)
}

type Halves = Vec<Option<(XmppReader, XmppWriter)>>;

/// Pairs (2k → 2k+1) send at `rate` in total (0: as fast as the socket takes them) for `secs`;
/// returns (deliveries/s before the deadline, p50 ms, p99 ms) and the sessions back.
async fn im(
    prosody: &Prosody,
    mut halves: Halves,
    pairs: usize,
    rate: f64,
    secs: f64,
) -> anyhow::Result<((f64, f64, f64), Halves)> {
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs_f64(secs);
    let per_sender = if rate > 0.0 { rate / pairs as f64 } else { 0.0 };
    let count = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Latency::new()));
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for k in 0..pairs {
        let (Some(a), Some(b)) = (halves[2 * k].take(), halves[2 * k + 1].take()) else { continue };
        let to = prosody.jid(2 * k + 1);
        let offset = (k as f64 * 0.618_034).fract();
        senders.push(tokio::spawn(async move {
            let (ra, mut wa) = a;
            let mut sent = 0u64;
            while Instant::now() < deadline {
                if per_sender > 0.0 {
                    let at = begin + Duration::from_secs_f64((offset + sent as f64) / per_sender);
                    if at >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                }
                if wa.send_message(&to, &format!("b{}", now_us())).await.is_err() {
                    break;
                }
                sent += 1;
                if per_sender <= 0.0 && sent.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            (2 * k, ra, wa)
        }));
        let (count, lat) = (count.clone(), lat.clone());
        receivers.push(tokio::spawn(async move {
            let (mut rb, wb) = b;
            let grace = deadline + Duration::from_secs(3);
            while Instant::now() < grace {
                match rb.next_message(Duration::from_millis(200)).await {
                    Ok(Some(m)) => {
                        if let Some(stamp) = m.body.strip_prefix('b').and_then(|t| t.parse::<u64>().ok()) {
                            if Instant::now() <= deadline {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            lat.lock().unwrap_or_else(|p| p.into_inner()).record(now_us().saturating_sub(stamp));
                        }
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
            (2 * k + 1, rb, wb)
        }));
    }
    for t in senders.into_iter().chain(receivers) {
        let (i, r, w) = t.await.context("im task")?;
        halves[i] = Some((r, w));
    }
    let h = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(((count.load(Ordering::Relaxed) as f64 / secs, h.ms(0.5), h.ms(0.99)), halves))
}

//! Side by side with Prosody (`--with-prosody`): the same idle and IM scenarios over XMPP
//! (client-to-server, plain on loopback) against Debian's Prosody started by the bench, and the
//! Halo ÷ Prosody ratios.
//!
//! The IM workloads are the fixed rate (open loop), each `--im-closed` closed loop (a sender
//! keeps at most W messages sent and not yet received by its peer: XMPP has no per-message
//! acknowledgement, and Prosody routes a stanza to the recipient in the step that reads it) and
//! flat out (an open loop: senders write as fast as TCP takes them). Every run reports
//! Prosody's CPU and this process's (the load generator's) over the measured interval; the
//! report ends with a Halo vs Prosody table ([`crate::report::Report::side_table`]) and every
//! Halo throughput against Prosody's best workload.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::Semaphore;

use crate::prosody::{Prosody, cpu_seconds_of};
use crate::report::{Report, SideRow, progress};
use crate::scenarios::Ctx;
use crate::stats::{Latency, now_us};
use crate::xmpp::{XmppClient, XmppReader, XmppWriter};

/// How one Prosody IM run offers its load.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Open loop: this many messages per second over all senders.
    Rate(f64),
    /// Open loop as fast as the socket takes them (XMPP has no per-message acknowledgement, so
    /// nothing holds a sender back but TCP).
    Open,
    /// Closed loop: each sender keeps at most this many messages sent and not yet received by
    /// its peer.
    Window(usize),
}

/// What one Prosody IM run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Outcome {
    /// Messages received before the deadline, per second.
    rate: f64,
    p50: f64,
    p99: f64,
    /// Prosody's CPU over the measured interval, % of a core.
    cpu: Option<f64>,
    /// This process's CPU (the XMPP clients) over the same interval, % of a core.
    gen_cpu: Option<f64>,
}

/// Runs idle (N sessions, RSS per session) and IM (1:1 at the fixed rate, each closed-loop
/// workload, flat out) against Prosody and adds the Halo vs Prosody rows and table.
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
    let cpu0 = prosody.cpu_seconds().ok();
    let start = Instant::now();
    let clients = rt.block_on(connect(&prosody, n, sources))?;
    let connect_secs = start.elapsed().as_secs_f64();
    let connect_cpu = prosody.cpu_seconds().ok().zip(cpu0).map(|(a, b)| (a - b) / connect_secs.max(0.001) * 100.0);
    std::thread::sleep(Duration::from_secs(3));
    let rss = prosody.rss_bytes()?;
    let per = rss.saturating_sub(base) as f64 / 1024.0 / n as f64;
    let connect_rate = n as f64 / connect_secs;
    report.add("prosody", &format!("connect rate ({n} sessions)"), connect_rate, "sessions/s", None);
    if let Some(c) = connect_cpu {
        report.add("prosody", &format!("connect ({n} sessions): server CPU"), c, "% of a core", None);
    }
    report.add("prosody", &format!("server RSS at N={n}"), rss as f64 / 1024.0 / 1024.0, "MiB", None);
    report.add("prosody", &format!("server RSS per session at N={n}"), per, "KiB", None);
    let halo_per = halo_per_session(report, n);
    compare(report, "sessions per GiB", halo_per.map(|h| 1.0 / h), Some(1.0 / per), ">= 5x");
    let halo_connect =
        report.rows.iter().find(|r| r.scenario == "idle" && r.metric.starts_with("connect rate (")).map(|r| r.value);
    side(report, "idle", "connect rate", halo_connect, Some(connect_rate), "sessions/s", Better::Higher);
    let gib = |kib: f64| 1024.0 * 1024.0 / kib;
    side(report, "idle", "sessions per GiB", halo_per.map(gib), Some(gib(per)), "sessions", Better::Higher);

    let mut workloads = vec![(format!("1:1 at {rate:.0} msg/s"), Mode::Rate(rate), pairs)];
    for w in &ctx.args.im_closed {
        let p = w.pairs.clamp(1, n / 2);
        workloads.push((w.label(p), Mode::Window(w.window), p));
    }
    workloads.push(("1:1 flat out".to_string(), Mode::Open, pairs));
    let mut halves: Halves = clients.into_iter().map(|c| Some(c.into_split())).collect();
    let mut done: Vec<(String, Outcome)> = Vec::new();
    for (run_id, (label, mode, p)) in workloads.into_iter().enumerate() {
        settle(&prosody);
        let (o, back) = rt.block_on(im(&prosody, halves, p, mode, secs, run_id))?;
        halves = back;
        report.add("prosody", &format!("{label}: deliveries"), o.rate, "msg/s", None);
        report.add("prosody", &format!("{label}: send-to-deliver p50"), o.p50, "ms", None);
        report.add("prosody", &format!("{label}: send-to-deliver p99"), o.p99, "ms", None);
        if let Some(c) = o.cpu {
            report.add("prosody", &format!("{label}: server CPU"), c, "% of a core", None);
        }
        if let Some(c) = o.gen_cpu {
            report.add("prosody", &format!("{label}: load generator CPU"), c, "% of a core", None);
        }
        done.push((label, o));
    }
    let flat = done.iter().find(|(l, _)| l == "1:1 flat out").map(|(_, o)| o.rate);
    let halo_flat = find(report, "im", "1:1 flat out: messages stored (acked)");
    compare(report, "messages per second (1:1 flat out)", halo_flat, flat, ">= 5x");
    let label = format!("1:1 at {rate:.0} msg/s");
    let fixed_p99 = done.first().map(|(_, o)| o.p99).unwrap_or(0.0);
    let halo_p99 = find(report, "im", &format!("{label}: send-to-deliver p99"));
    // Lower is better for latency: the ratio is Prosody ÷ Halo.
    if let (Some(h), true) = (halo_p99, fixed_p99 > 0.0) {
        report.add("ratio", &format!("p99 at {rate:.0} msg/s, Prosody / Halo"), fixed_p99 / h.max(0.001), "x", None);
    }
    side_by_side(report, &done);
    drop(halves);
    prosody.stop();
    Ok(())
}

/// The IM lines of the Halo vs Prosody table, and every Halo 1:1 figure against Prosody's best
/// workload (the one that delivered the most messages per second).
fn side_by_side(report: &mut Report, done: &[(String, Outcome)]) {
    for (label, o) in done {
        let h = |what: &str| find(report, "im", &format!("{label}: {what}"));
        let (h_rate, h_p50, h_p99) = (h("messages stored (acked)"), h("send-to-deliver p50"), h("send-to-deliver p99"));
        let (h_cpu, h_gen) = (h("server CPU"), h("load generator CPU"));
        let per_cpu =
            |rate: Option<f64>, cpu: Option<f64>| rate.zip(cpu).and_then(|(r, c)| (c > 0.0).then(|| r / (c / 100.0)));
        let what = "messages/s (Halo: stored and acked; Prosody: delivered)";
        side(report, label, what, h_rate, Some(o.rate), "msg/s", Better::Higher);
        side(report, label, "send-to-deliver p50", h_p50, Some(o.p50), "ms", Better::Lower);
        side(report, label, "send-to-deliver p99", h_p99, Some(o.p99), "ms", Better::Lower);
        side(report, label, "server CPU", h_cpu, o.cpu, "% of a core", Better::Neither);
        let (hp, pp) = (per_cpu(h_rate, h_cpu), per_cpu(Some(o.rate), o.cpu));
        side(report, label, "messages per server CPU-second", hp, pp, "msg/CPU-s", Better::Higher);
        side(report, label, "load generator CPU", h_gen, o.gen_cpu, "% of a core", Better::Neither);
    }
    let Some((best_label, best)) =
        done.iter().max_by(|a, b| a.1.rate.total_cmp(&b.1.rate)).map(|(l, o)| (l.clone(), *o))
    else {
        return;
    };
    report.add("prosody", &format!("best workload: {best_label}"), best.rate, "msg/s", None);
    // Halo's closed-loop workloads (flat out is one too) against Prosody's best, whichever it
    // was; the fixed rate is not a throughput figure.
    for (label, _) in done.iter().filter(|(l, _)| l == "1:1 flat out" || l.starts_with("1:1 closed loop")) {
        let halo = find(report, "im", &format!("{label}: messages stored (acked)"));
        let what = format!("messages/s vs Prosody's best ({best_label})");
        side(report, label, &what, halo, Some(best.rate), "msg/s", Better::Higher);
        if let Some(h) = halo
            && best.rate > 0.0
        {
            let what = format!("messages per second (Halo {label} vs Prosody's best), Halo / Prosody");
            report.add("ratio", &what, h / best.rate, "x", Some(">= 5x"));
        }
    }
}

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

fn side(
    report: &mut Report,
    workload: &str,
    figure: &str,
    halo: Option<f64>,
    prosody: Option<f64>,
    unit: &str,
    b: Better,
) {
    let halo_better = match (halo, prosody, b) {
        (Some(h), Some(p), Better::Higher) if p > 0.0 => Some(h / p),
        (Some(h), Some(p), Better::Lower) if h > 0.0 => Some(p / h),
        _ => None,
    };
    report.side(SideRow {
        workload: workload.into(),
        figure: figure.into(),
        halo,
        prosody,
        unit: unit.into(),
        halo_better,
    });
}

/// Waits (up to 30 s) until Prosody is idle (under 5 % of a core over half a second), so one
/// run's backlog does not count in the next.
fn settle(prosody: &Prosody) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = prosody.cpu_seconds().ok();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        let now = prosody.cpu_seconds().ok();
        match now.zip(last) {
            Some((a, b)) if a - b < 0.025 => return,
            None => return,
            _ => {}
        }
        progress("prosody: waiting for the previous run's backlog");
        last = now;
    }
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

/// Pairs (2k → 2k+1), `pairs` of them, send by `mode` for `secs`; returns the outcome and the
/// sessions back. Bodies carry `run_id` so late messages of an earlier run are not counted.
async fn im(
    prosody: &Prosody,
    mut halves: Halves,
    pairs: usize,
    mode: Mode,
    secs: f64,
    run_id: usize,
) -> anyhow::Result<(Outcome, Halves)> {
    let begin = Instant::now();
    let deadline = begin + Duration::from_secs_f64(secs);
    let per_sender = match mode {
        Mode::Rate(r) if r > 0.0 => r / pairs as f64,
        _ => 0.0,
    };
    let tag = format!("r{run_id}-");
    let count = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Latency::new()));
    let (pid, me) = (prosody.pid(), std::process::id());
    let cpu0 = (cpu_seconds_of(pid).ok(), cpu_seconds_of(me).ok());
    // Both processes' CPU at the deadline: the measured interval, not the receivers' grace time.
    let cpu_at_deadline = tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        (cpu_seconds_of(pid).ok(), cpu_seconds_of(me).ok(), begin.elapsed().as_secs_f64())
    });
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for k in 0..pairs {
        let (Some(a), Some(b)) = (halves[2 * k].take(), halves[2 * k + 1].take()) else { continue };
        let to = prosody.jid(2 * k + 1);
        let offset = (k as f64 * 0.618_034).fract();
        // Closed loop: a permit per message in flight; the receiver gives it back.
        let window = match mode {
            Mode::Window(w) => Some(Arc::new(Semaphore::new(w.max(1)))),
            _ => None,
        };
        let sent_total = Arc::new(AtomicU64::new(0));
        let sender_done = Arc::new(AtomicBool::new(false));
        let (win, sent_n, fin, tag_s) = (window.clone(), sent_total.clone(), sender_done.clone(), tag.clone());
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
                if let Some(w) = &win {
                    match tokio::time::timeout_at(deadline.into(), w.acquire()).await {
                        Ok(Ok(permit)) => permit.forget(),
                        _ => break,
                    }
                }
                if wa.send_message(&to, &format!("{tag_s}{}", now_us())).await.is_err() {
                    break;
                }
                sent += 1;
                sent_n.store(sent, Ordering::Release);
                if per_sender <= 0.0 && win.is_none() && sent.is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
            }
            fin.store(true, Ordering::Release);
            (2 * k, ra, wa)
        }));
        let (count, lat, tag) = (count.clone(), lat.clone(), tag.clone());
        receivers.push(tokio::spawn(async move {
            let (mut rb, wb) = b;
            // Latency is recorded up to 3 s past the deadline; after that the receiver only
            // drains what is still queued for it (up to a minute), so that an open-loop run's
            // backlog does not sit in Prosody ahead of the next run's messages.
            let grace = deadline + Duration::from_secs(3);
            let drain = deadline + Duration::from_secs(60);
            let mut got = 0u64;
            while Instant::now() < drain {
                // Everything sent has arrived: nothing left to wait for.
                if sender_done.load(Ordering::Acquire) && got >= sent_total.load(Ordering::Acquire) {
                    break;
                }
                match rb.next_message(Duration::from_millis(200)).await {
                    Ok(Some(m)) => {
                        // Messages of an earlier run (its backlog) carry another tag: ignored.
                        if let Some(stamp) = m.body.strip_prefix(tag.as_str()).and_then(|t| t.parse::<u64>().ok()) {
                            got += 1;
                            if let Some(w) = &window {
                                w.add_permits(1);
                            }
                            let now = Instant::now();
                            if now <= deadline {
                                count.fetch_add(1, Ordering::Relaxed);
                            }
                            if now <= grace {
                                lat.lock().unwrap_or_else(|p| p.into_inner()).record(now_us().saturating_sub(stamp));
                            }
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
    let (cpu1, gen1, measured) = cpu_at_deadline.await.context("cpu sampler")?;
    let pct = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| (a - b) / measured.max(0.001) * 100.0);
    let h = lat.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let o = Outcome {
        rate: count.load(Ordering::Relaxed) as f64 / secs,
        p50: h.ms(0.5),
        p99: h.ms(0.99),
        cpu: pct(cpu1, cpu0.0),
        gen_cpu: pct(gen1, cpu0.1),
    };
    Ok((o, halves))
}

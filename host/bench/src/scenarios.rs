//! The scenarios and the run that ties them together.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use halo_client::ClientError;
use serde_json::json;

use crate::pool::{Pool, Totals, sum};
use crate::report::{Report, note, progress};
use crate::server::{Server, histogram_sum_count};
use crate::setup::Users;
use crate::worker::{Command, SendSpec, SessionSpec};
use crate::{RunArgs, Scenario};

/// Everything a scenario needs.
pub struct Ctx {
    /// Options.
    pub args: RunArgs,
    /// The server under test.
    pub server: Server,
    /// Worker processes.
    pub pool: Pool,
    /// Bench users.
    pub users: Users,
    /// Sessions `0..connected` are open (session `i` is user `i`'s).
    pub connected: usize,
    /// Results.
    pub report: Report,
    /// A pool's nodes (`pool` scenario): session `i` of user `u` on device `d` connects to
    /// `node_urls[(u + d) % len]`; empty: every session connects to `server`.
    pub node_urls: Vec<String>,
    /// Processes whose CPU each IM and presence run reports, by group (`pool` scenario: the
    /// halo nodes, the NATS servers); empty: the server's CPU alone.
    pub cpu_groups: Vec<(String, Vec<u32>)>,
}

const CUSTOM_STATES: &str =
    r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##;

/// Runs the chosen scenarios and returns the report.
pub fn run(mut args: RunArgs) -> anyhow::Result<Report> {
    let nofile = crate::net::raise_nofile();
    if args.scenarios.is_empty() {
        args.scenarios = vec![Scenario::Idle, Scenario::Presence, Scenario::Im, Scenario::Plugin, Scenario::Archive];
    }
    let exe = worker_exe(&args)?;
    let server = match &args.server {
        Some(url) => Server::attach(url, args.token.as_deref().unwrap_or_default(), args.server_pid)?,
        None => {
            let halo = args.halo.clone().unwrap_or_else(|| exe.with_file_name("halo"));
            Server::start(&halo, args.data_dir.as_deref())?
        }
    };
    let mut report = Report { machine: crate::report::machine(), ..Report::default() };
    if let Ok(h) = server.admin.call_json("GET", "/healthz", None) {
        report.machine.insert("halo_version".into(), h["version"].clone());
    }
    report.machine.insert("bench_open_files".into(), nofile.into());
    note(&format!("halo-bench: server {} (pid {:?}), {} workers", server.url, server.pid, args.workers));
    let pool = Pool::spawn(&exe, args.workers)?;
    let users = Users::load(&server, args.team.max(1));
    let mut ctx =
        Ctx { args, server, pool, users, connected: 0, report, node_urls: Vec::new(), cpu_groups: Vec::new() };
    let base_rss = ctx.server.rss_kib();
    if let Some(r) = base_rss {
        ctx.report.add("setup", "server RSS before sessions", r as f64 / 1024.0, "MiB", None);
    }
    for s in ctx.args.scenarios.clone() {
        let started = Instant::now();
        let r = match s {
            Scenario::Idle => idle(&mut ctx),
            Scenario::Presence => presence(&mut ctx).map(|_| ()),
            Scenario::Im => im(&mut ctx).map(|_| ()),
            Scenario::Plugin => plugin(&mut ctx),
            Scenario::Archive => archive(&mut ctx),
            Scenario::SlowPlugin => crate::slow::slow_plugin(&mut ctx),
            Scenario::Restart => crate::restart::restart(&mut ctx),
            Scenario::Pool => crate::cluster::pool(&mut ctx),
        };
        r.with_context(|| format!("scenario {s:?}"))?;
        note(&format!("{s:?} done in {:.1} s", started.elapsed().as_secs_f64()));
    }
    if ctx.args.with_prosody {
        let started = Instant::now();
        crate::side::run(&mut ctx).context("prosody side by side")?;
        note(&format!("Prosody side by side done in {:.1} s", started.elapsed().as_secs_f64()));
    }
    Ok(ctx.report)
}

/// The executable the worker processes run (`--worker-exe`, else this one).
pub(crate) fn worker_exe(args: &RunArgs) -> anyhow::Result<PathBuf> {
    match &args.worker_exe {
        Some(p) => Ok(p.clone()),
        None => Ok(std::env::current_exe()?),
    }
}

impl Ctx {
    fn secs(&self) -> f64 {
        self.args.duration.clamp(0.2, 600.0)
    }

    fn setup_timeout(&self) -> Duration {
        Duration::from_secs(self.args.setup_timeout)
    }

    /// Users `0..n` with tokens and contacts.
    pub(crate) fn ensure_users(&mut self, n: usize) -> anyhow::Result<()> {
        let (threads, timeout) = (self.args.setup_threads, self.setup_timeout());
        let c = self.users.ensure(&self.server, n, threads, timeout)?;
        if c.users_created > 0 {
            self.report.add(
                "setup",
                &format!("users created + logged in ({})", c.users_created),
                c.users_created as f64 / c.users_secs,
                "users/s",
                None,
            );
        }
        let c = self.users.ensure_contacts(&self.server, n, threads, timeout)?;
        if c.contacts_added > 0 {
            self.report.add(
                "setup",
                &format!("contacts added ({})", c.contacts_added),
                c.contacts_added as f64 / c.contacts_secs,
                "contacts/s",
                None,
            );
        }
        Ok(())
    }

    /// Distinct users behind `n` sessions.
    fn users_for(&self, n: usize) -> usize {
        n.min(self.args.max_users.unwrap_or(usize::MAX)).max(1)
    }

    /// The server session `i` of `users` distinct users connects to: user `i % users`'s device
    /// `i / users` goes to the pool node after the user's own, so a second device is on another
    /// node; without pool nodes, the server.
    pub(crate) fn session_url(&self, i: usize, users: usize) -> &str {
        match self.node_urls.len() {
            0 => &self.server.url,
            n => &self.node_urls[(i % users.max(1) + i / users.max(1)) % n],
        }
    }

    /// Opens sessions up to `n`; returns (opened now, seconds). Session `i` is user
    /// `i % users` on endpoint `d<i / users>`, on [`Ctx::session_url`].
    pub(crate) fn ensure_sessions(&mut self, n: usize) -> anyhow::Result<(usize, f64)> {
        let nu = self.users_for(n);
        self.ensure_users(nu)?;
        if n <= self.connected {
            return Ok((0, 0.0));
        }
        let workers = self.pool.len();
        let mut per: Vec<Vec<SessionSpec>> = vec![Vec::new(); workers];
        for i in self.connected..n {
            let u = &self.users.users[i % nu];
            per[self.pool.owner(i)].push(SessionSpec {
                idx: i,
                user: u.name.clone(),
                token: u.token.clone(),
                endpoint: format!("d{}", i / nu),
                url: (!self.node_urls.is_empty()).then(|| self.session_url(i, nu).to_owned()),
            });
        }
        let url = self.server.url.clone();
        let sources = self.args.sources.max(1);
        let cmds = per
            .into_iter()
            .map(|sessions| Command::Connect {
                url: url.clone(),
                sessions,
                sources,
                concurrency: 64,
                timeout_ms: 600_000,
            })
            .collect();
        let total = n - self.connected;
        let start = Instant::now();
        let replies = self.pool.run(cmds, Duration::from_secs(660), &|t, r| {
            let done = sum(r, |r| r.count);
            format!(
                "connect: {done}/{total} sessions, {:.0}/s, {} failed",
                done as f64 / t.max(0.001),
                sum(r, |r| r.failed)
            )
        })?;
        let secs = start.elapsed().as_secs_f64();
        let ok = sum(&replies, |r| r.count) as usize;
        let failed = sum(&replies, |r| r.failed);
        if failed > 0 {
            let why = replies.iter().find_map(|r| r.first_failure.clone()).unwrap_or_default();
            anyhow::bail!("{failed} of {total} sessions failed to connect (first: {why}); {ok} connected");
        }
        self.connected = n;
        Ok((ok, secs))
    }

    pub(crate) fn plugin_path(&self, file: &str) -> anyhow::Result<PathBuf> {
        let dir = match &self.args.plugins_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release"),
        };
        let p = dir.join(file);
        anyhow::ensure!(p.exists(), "{} is missing: run `cargo xtask plugins` (or pass --plugins-dir)", p.display());
        Ok(p)
    }

    /// Installs (or upgrades in place) a plugin, enabled.
    pub(crate) fn install_plugin(&self, file: &str, name: &str, grant: &str) -> anyhow::Result<()> {
        let bytes = std::fs::read(self.plugin_path(file)?)?;
        let path = format!("/api/v1/admin/plugins?grant={grant}&enabled=true");
        match self.server.admin.call_bytes("POST", &path, bytes, "application/wasm") {
            Ok(_) => Ok(()),
            Err(ClientError::Api { status: 409, .. }) => {
                self.server.admin.call("POST", &format!("/api/v1/admin/plugins/{name}/enable"), None)?;
                Ok(())
            }
            Err(e) => Err(e).context(format!("installing {name}")),
        }
    }

    pub(crate) fn metric_hist(&self, name: &str, label: &str) -> (f64, f64) {
        self.server.metrics().ok().and_then(|m| histogram_sum_count(&m, name, label)).unwrap_or((0.0, 0.0))
    }
}

/// Idle sessions at each step of `--idle`: server RSS per session, connect rate.
pub fn idle(ctx: &mut Ctx) -> anyhow::Result<()> {
    let mut steps = ctx.args.idle.clone();
    steps.sort_unstable();
    let max = steps.last().copied().unwrap_or(0);
    ctx.ensure_users(ctx.users_for(max))?;
    if ctx.connected == 0 && ctx.server.pid.is_some() {
        // A clean heap for the baseline: what sessions add is measured against it.
        note("idle: restarting the server on the same data for a clean baseline");
        ctx.server.restart()?;
        std::thread::sleep(Duration::from_secs(2));
    }
    let base = if ctx.connected == 0 { ctx.server.rss_kib() } else { None };
    if let Some(b) = base {
        ctx.report.add("idle", "server RSS, users set up, no sessions", b as f64 / 1024.0, "MiB", None);
    }
    for n in steps {
        let cpu0 = ctx.server.cpu_secs();
        let (opened, secs) = ctx.ensure_sessions(n)?;
        let cpu = ctx.server.cpu_secs().zip(cpu0).map(|(a, b)| a - b);
        if opened > 0 {
            ctx.report.add(
                "idle",
                &format!("connect rate ({opened} sessions)"),
                opened as f64 / secs,
                "sessions/s",
                None,
            );
            if let Some(c) = cpu {
                let what = format!("connect ({opened} sessions): server CPU");
                ctx.report.add("idle", &what, c / secs.max(0.001) * 100.0, "% of a core", None);
            }
        }
        std::thread::sleep(Duration::from_secs(3));
        let t = ctx.pool.totals()?;
        ctx.report.add("idle", &format!("sessions open at N={n}"), t.alive as f64, "sessions", None);
        ctx.report.add("idle", &format!("distinct users at N={n}"), ctx.users_for(n) as f64, "users", None);
        if let Some(rss) = ctx.server.rss_kib() {
            ctx.report.add("idle", &format!("server RSS at N={n}"), rss as f64 / 1024.0, "MiB", None);
            if let Some(b) = base {
                let per = (rss.saturating_sub(b)) as f64 / n.max(1) as f64;
                ctx.report.add("idle", &format!("server RSS per session at N={n}"), per, "KiB", Some("<= 8 KiB"));
                let per_gib = if per > 0.0 { 1024.0 * 1024.0 / per } else { 0.0 };
                ctx.report.add("idle", &format!("sessions per GiB at N={n}"), per_gib, "sessions", None);
            }
            ctx.report.add(
                "idle",
                &format!("server RSS / sessions at N={n} (incl. base)"),
                rss as f64 / n.max(1) as f64,
                "KiB",
                None,
            );
        }
    }
    Ok(())
}

/// What one presence storm measured.
#[derive(Debug, Clone, Copy)]
pub struct Storm {
    /// Notifications received per second.
    pub rate: f64,
    /// p50, ms.
    pub p50: f64,
    /// p99, ms.
    pub p99: f64,
}

fn storm(ctx: &mut Ctx, label: &str) -> anyhow::Result<Storm> {
    let (users, interval_ms) = (ctx.args.storm_users, ctx.args.storm_interval_ms);
    let sc = if label == "presence" { "presence" } else { "plugin" };
    storm_with(ctx, sc, label, users, interval_ms)
}

/// A presence storm in scenario `sc`: `users` users (sessions) change state every
/// `interval_ms`; reports the rate and change-to-watcher latency under `label`.
pub(crate) fn storm_with(
    ctx: &mut Ctx,
    sc: &str,
    label: &str,
    users: usize,
    interval_ms: u64,
) -> anyhow::Result<Storm> {
    let users = users.max(2);
    ctx.ensure_sessions(users)?;
    ctx.pool.drain(Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_millis(500));
    ctx.pool.reset()?;
    let secs = ctx.secs();
    let workers = ctx.pool.len();
    let mut per: Vec<Vec<usize>> = vec![Vec::new(); workers];
    for i in 0..users {
        per[ctx.pool.owner(i)].push(i);
    }
    let duration_ms = (secs * 1000.0) as u64;
    let cmds = per.into_iter().map(|changers| Command::Presence { changers, interval_ms, duration_ms }).collect();
    let cpu0 = CpuMark::take(ctx);
    let start = Instant::now();
    let label_owned = label.to_owned();
    let replies = ctx.pool.run(cmds, Duration::from_secs_f64(secs + 60.0), &|t, r| {
        let n: u64 = r.iter().filter_map(|r| r.stats.as_ref()).map(|s| s.presence_events).sum();
        format!("{label_owned}: {t:.0} s, {n} notifications, {:.0}/s", n as f64 / t.max(0.001))
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = CpuMark::take(ctx).since(&cpu0);
    std::thread::sleep(Duration::from_millis(500));
    let t: Totals = ctx.pool.totals()?;
    let changes = sum(&replies, |r| r.count);
    let s =
        Storm { rate: t.presence_events as f64 / elapsed, p50: t.presence_lat.ms(0.5), p99: t.presence_lat.ms(0.99) };
    ctx.report.add(sc, &format!("{label}: state changes sent"), changes as f64 / elapsed, "changes/s", None);
    ctx.report.add(
        sc,
        &format!("{label}: notifications delivered"),
        s.rate,
        "notif/s",
        (sc != "slow-plugin").then_some(">= 500k/s"),
    );
    ctx.report.add(sc, &format!("{label}: change-to-watcher p50"), s.p50, "ms", None);
    ctx.report.add(sc, &format!("{label}: change-to-watcher p99"), s.p99, "ms", Some("<= 50 ms"));
    cpu.report(ctx, sc, label, elapsed);
    report_errors(ctx, sc, &t);
    Ok(s)
}

/// CPU seconds used so far by the processes a run measures: the server (or each of
/// [`Ctx::cpu_groups`]), the load generator's workers, and the whole machine (`/proc/stat`).
struct CpuMark {
    server: Option<f64>,
    groups: Vec<f64>,
    generator: f64,
    machine: Option<f64>,
}

impl CpuMark {
    fn take(ctx: &Ctx) -> Self {
        Self {
            server: ctx.server.cpu_secs(),
            groups: ctx.cpu_groups.iter().map(|(_, pids)| cpu_of(pids)).collect(),
            generator: ctx.pool.cpu_secs(),
            machine: machine_cpu(),
        }
    }

    /// What was used between `before` and this mark.
    fn since(mut self, before: &CpuMark) -> Self {
        self.server = self.server.zip(before.server).map(|(a, b)| a - b);
        self.groups.iter_mut().zip(&before.groups).for_each(|(a, b)| *a -= b);
        self.generator -= before.generator;
        self.machine = self.machine.zip(before.machine).map(|(a, b)| a - b);
        self
    }

    /// Reports a run's CPU as % of one core over `elapsed` seconds. With CPU groups: each
    /// group's and the load generator's share of their sum, and the whole machine's busy time
    /// (other processes included) as % of one core.
    fn report(&self, ctx: &mut Ctx, sc: &str, label: &str, elapsed: f64) {
        let pct = |secs: f64| secs / elapsed.max(0.001) * 100.0;
        if ctx.cpu_groups.is_empty() {
            if let Some(c) = self.server {
                ctx.report.add(sc, &format!("{label}: server CPU"), pct(c), "% of a core", None);
            }
            ctx.report.add(sc, &format!("{label}: load generator CPU"), pct(self.generator), "% of a core", None);
            return;
        }
        let names: Vec<String> = ctx.cpu_groups.iter().map(|(n, _)| n.clone()).collect();
        let total = self.groups.iter().sum::<f64>() + self.generator;
        for (name, &secs) in names.iter().zip(&self.groups) {
            ctx.report.add(sc, &format!("{label}: CPU {name}"), pct(secs), "% of a core", None);
        }
        ctx.report.add(sc, &format!("{label}: CPU load generator"), pct(self.generator), "% of a core", None);
        for (name, &secs) in names.iter().zip(&self.groups) {
            let share = if total > 0.0 { secs / total * 100.0 } else { 0.0 };
            ctx.report.add(sc, &format!("{label}: CPU share {name}"), share, "% of measured", None);
        }
        if let Some(busy) = self.machine {
            ctx.report.add(sc, &format!("{label}: machine CPU busy (all processes)"), pct(busy), "% of a core", None);
        }
    }
}

/// CPU seconds (user + system) the processes `pids` have used so far, together (exited: 0).
pub(crate) fn cpu_of(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&p| crate::prosody::cpu_seconds_of(p).ok()).sum()
}

/// The machine's busy CPU seconds so far, all cores (`cpu` line of `/proc/stat`).
fn machine_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let f: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let idle = f.get(3)? + f.get(4).unwrap_or(&0.0);
    Some((f.iter().take(8).sum::<f64>() - idle) / 100.0)
}

pub(crate) fn report_errors(ctx: &mut Ctx, sc: &str, t: &Totals) {
    for (code, n) in &t.errors {
        ctx.report.add(sc, &format!("errors: {code}"), *n as f64, "requests", None);
    }
    if t.closed > 0 {
        ctx.report.add(sc, "sessions closed by the server (so far)", t.closed as f64, "sessions", None);
    }
}

/// The presence storm: `--storm-users` users toggle busy/available every `--storm-interval-ms`.
pub fn presence(ctx: &mut Ctx) -> anyhow::Result<Storm> {
    storm(ctx, "presence")
}

/// What one IM run measured.
#[derive(Debug, Clone, Copy)]
pub struct ImRun {
    /// Messages stored (acknowledged) per second.
    pub sent: f64,
    /// Messages delivered to recipients per second.
    pub delivered: f64,
    /// p50 send-to-deliver, ms.
    pub p50: f64,
    /// p99, ms.
    pub p99: f64,
}

/// Starts `--im-pairs` 1:1s (or `--im-groups` groups) with their sessions open; one sender each.
pub(crate) fn conversations(ctx: &mut Ctx, groups: bool) -> anyhow::Result<Vec<SendSpec>> {
    let (pairs, ngroups, size) = (ctx.args.im_pairs.max(1), ctx.args.im_groups.max(1), ctx.args.group_size.max(3));
    let need = if groups { ngroups * size } else { pairs * 2 };
    ctx.ensure_sessions(need)?;
    let mut specs = Vec::new();
    let start = Instant::now();
    let n = if groups { ngroups } else { pairs };
    for k in 0..n {
        let (sender, others): (usize, Vec<usize>) =
            if groups { (k * size, (k * size + 1..k * size + size).collect()) } else { (2 * k, vec![2 * k + 1]) };
        let names: Vec<&str> = others.iter().map(|&o| ctx.users.users[o].name.as_str()).collect();
        let c = ctx.server.client(&ctx.users.users[sender].token);
        let v = c.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": names})))?;
        let id = v["id"].as_u64().or_else(|| v["conversation"]["id"].as_u64()).context("conversation id")?;
        specs.push(SendSpec { idx: sender, conversation: id });
        if k % 100 == 0 {
            progress(&format!("im: conversations {k}/{n}, {:.1} s", start.elapsed().as_secs_f64()));
        }
    }
    Ok(specs)
}

/// How an IM run offers its load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// Open loop: this many messages per second over all senders (each still stops at 1,000
    /// unacknowledged sends).
    Rate(f64),
    /// Closed loop: each sender keeps at most this many sends unacknowledged (`--im-window` for
    /// "flat out", the window of a `--im-closed` workload).
    Window(i64),
}

pub(crate) fn im_run(ctx: &mut Ctx, sc: &str, label: &str, specs: &[SendSpec], load: Load) -> anyhow::Result<ImRun> {
    let left = ctx.pool.drain(Duration::from_secs(120))?;
    if left > 0 {
        ctx.report.add(
            sc,
            &format!("{label}: requests of the previous run still unanswered"),
            left as f64,
            "requests",
            None,
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    ctx.pool.reset()?;
    let secs = ctx.secs();
    let workers = ctx.pool.len();
    let mut per: Vec<Vec<SendSpec>> = vec![Vec::new(); workers];
    for s in specs {
        per[ctx.pool.owner(s.idx)].push(s.clone());
    }
    let (rate_total, rate, window) = match load {
        Load::Rate(r) => (r.max(0.0), r.max(0.0) / specs.len().max(1) as f64, 1000),
        Load::Window(w) => (0.0, 0.0, w.max(1)),
    };
    let duration_ms = (secs * 1000.0) as u64;
    let cmds = per.into_iter().map(|senders| Command::Im { senders, rate, window, duration_ms }).collect();
    let cpu0 = CpuMark::take(ctx);
    let start = Instant::now();
    let l = label.to_owned();
    let replies = ctx.pool.run(cmds, Duration::from_secs_f64(secs + 60.0), &|t, r| {
        let st = r.iter().filter_map(|r| r.stats.as_ref());
        let (acked, got): (u64, u64) = st.fold((0, 0), |a, s| (a.0 + s.replies, a.1 + s.im_events));
        format!("{l}: {t:.0} s, {acked} sent ({:.0}/s), {got} delivered", acked as f64 / t.max(0.001))
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = CpuMark::take(ctx).since(&cpu0);
    std::thread::sleep(Duration::from_millis(500));
    let t = ctx.pool.totals()?;
    let offered = sum(&replies, |r| r.count);
    let r = ImRun {
        sent: t.replies as f64 / elapsed,
        delivered: t.im_events as f64 / elapsed,
        p50: t.im_lat.ms(0.5),
        p99: t.im_lat.ms(0.99),
    };
    let flat = rate_total <= 0.0;
    ctx.report.add(sc, &format!("{label}: messages offered"), offered as f64 / elapsed, "msg/s", None);
    ctx.report.add(sc, &format!("{label}: messages stored (acked)"), r.sent, "msg/s", flat.then_some(">= 100k/s"));
    ctx.report.add(sc, &format!("{label}: deliveries"), r.delivered, "deliv/s", None);
    ctx.report.add(sc, &format!("{label}: send-to-deliver p50"), r.p50, "ms", None);
    let target = (!flat && (rate_total - 10_000.0).abs() < 1.0).then_some("<= 5 ms");
    ctx.report.add(sc, &format!("{label}: send-to-deliver p99"), r.p99, "ms", target);
    cpu.report(ctx, sc, label, elapsed);
    report_errors(ctx, sc, &t);
    Ok(r)
}

/// "Flat out": every sender keeps `--im-window` sends unacknowledged.
pub(crate) fn flat_out(ctx: &Ctx) -> Load {
    Load::Window(ctx.args.im_window)
}

/// IM: 1:1 at the fixed rate, 1:1 flat out, each `--im-closed` workload, multiparty flat out.
pub fn im(ctx: &mut Ctx) -> anyhow::Result<ImRun> {
    let pairs = conversations(ctx, false)?;
    let rate = ctx.args.im_rate;
    im_run(ctx, "im", &format!("1:1 at {rate:.0} msg/s"), &pairs, Load::Rate(rate))?;
    let flat = im_run(ctx, "im", "1:1 flat out", &pairs, flat_out(ctx))?;
    for w in ctx.args.im_closed.clone() {
        let some = &pairs[..w.pairs.min(pairs.len())];
        im_run(ctx, "im", &w.label(some.len()), some, Load::Window(w.window as i64))?;
    }
    let groups = conversations(ctx, true)?;
    let size = ctx.args.group_size.max(3);
    im_run(ctx, "im", &format!("group of {size} flat out"), &groups, flat_out(ctx))?;
    Ok(flat)
}

/// The presence storm without and with the custom-states plugin; the per-call hook cost.
pub fn plugin(ctx: &mut Ctx) -> anyhow::Result<()> {
    let _ = ctx.plugin_path("custom_states.wasm")?;
    let without = storm(ctx, "built-in only")?;
    ctx.install_plugin("custom_states.wasm", "custom-states", "")?;
    ctx.server.admin.call_json(
        "PUT",
        "/api/v1/admin/plugins/custom-states/config",
        Some(&json!({"states": CUSTOM_STATES})),
    )?;
    let (s0, c0) = ctx.metric_hist("halo_plugin_call_seconds", "custom-states");
    let (w0, n0) = ctx.metric_hist("halo_plugin_wait_seconds", "custom-states");
    let with = storm(ctx, "custom-states on")?;
    let (s1, c1) = ctx.metric_hist("halo_plugin_call_seconds", "custom-states");
    let (w1, n1) = ctx.metric_hist("halo_plugin_wait_seconds", "custom-states");
    ctx.server.admin.call("POST", "/api/v1/admin/plugins/custom-states/disable", None)?;
    let ratio = if without.rate > 0.0 { with.rate / without.rate } else { 0.0 };
    ctx.report.add("plugin", "notifications/s, plugin vs built-in", ratio * 100.0, "%", Some(">= 80%"));
    if c1 > c0 {
        ctx.report.add("plugin", "hook calls during the storm", c1 - c0, "calls", None);
        let hook = (s1 - s0) / (c1 - c0) * 1e6;
        ctx.report.add("plugin", "mean hook call (halo_plugin_call_seconds)", hook, "µs", Some("<= 5 µs"));
        // What callers waited (queue, handoff to the plugin's thread, guest), spread over the
        // calls: one crossing per call until presence batches its derives.
        if n1 > n0 {
            ctx.report.add("plugin", "crossings to the plugin's executor", n1 - n0, "", None);
            ctx.report.add(
                "plugin",
                "caller wait per hook (halo_plugin_wait_seconds ÷ calls)",
                (w1 - w0) / (c1 - c0) * 1e6,
                "µs",
                None,
            );
        }
    }
    Ok(())
}

fn archive_status(ctx: &Ctx) -> anyhow::Result<(u64, u64)> {
    let st = ctx.server.admin.call_json("GET", "/api/v1/archive/status", None)?;
    let sink = st["sinks"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "jsonl-archive")).cloned();
    Ok(sink.map(|s| (s["depth"].as_u64().unwrap_or(0), s["delivered"].as_u64().unwrap_or(0))).unwrap_or((0, 0)))
}

/// IM flat out with archiving off, then on into jsonl-archive; the sink's drain rate.
pub fn archive(ctx: &mut Ctx) -> anyhow::Result<()> {
    let _ = ctx.plugin_path("jsonl_archive.wasm")?;
    let pairs = conversations(ctx, false)?;
    let policy = |on: bool| json!({"global": {"internal": on, "external": on}});
    ctx.server.admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&policy(false)))?;
    let off = im_run(ctx, "archive", "archiving off, 1:1 flat out", &pairs, flat_out(ctx))?;
    let out = match &ctx.server.data_dir {
        Some(d) => d.join("jsonl-archive"),
        None => std::env::temp_dir().join(format!("halo-bench-archive-{}", std::process::id())),
    };
    std::fs::create_dir_all(&out)?;
    ctx.install_plugin("jsonl_archive.wasm", "jsonl-archive", &format!("dir:{}", out.display()))?;
    ctx.server.admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&policy(true)))?;
    let (_, d0) = archive_status(ctx)?;
    let start = Instant::now();
    let on = im_run(ctx, "archive", "archiving all, 1:1 flat out", &pairs, flat_out(ctx))?;
    let run_secs = start.elapsed().as_secs_f64();
    let (depth, d1) = archive_status(ctx)?;
    ctx.report.add(
        "archive",
        "messages/s, archiving vs off",
        if off.sent > 0.0 { on.sent / off.sent * 100.0 } else { 0.0 },
        "%",
        None,
    );
    ctx.report.add("archive", "sink records stored during the run", (d1 - d0) as f64 / run_secs, "records/s", None);
    ctx.report.add("archive", "sink backlog at the end of the run", depth as f64, "records", None);
    // Drain: bounded to two minutes.
    let drain_start = Instant::now();
    let mut last = (depth, d1);
    while last.0 > 0 && drain_start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(250));
        last = archive_status(ctx)?;
        progress(&format!("archive: draining, backlog {}", last.0));
    }
    if depth > 0 {
        let secs = drain_start.elapsed().as_secs_f64();
        ctx.report.add(
            "archive",
            "spool drain rate (backlog to empty)",
            (last.1 - d1) as f64 / secs,
            "records/s",
            None,
        );
        ctx.report.add("archive", "backlog left after draining", last.0 as f64, "records", None);
    }
    ctx.server.admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&policy(false)))?;
    ctx.server.admin.call("POST", "/api/v1/admin/plugins/jsonl-archive/disable", None)?;
    Ok(())
}

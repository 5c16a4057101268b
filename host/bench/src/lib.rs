//! `halo-bench`: a load generator and benchmark for Halo.
//!
//! It starts a Halo server (or uses one on loopback), creates users and contacts over the REST
//! API, opens many real WebSocket sessions from several worker processes (each bound to
//! 127.0.0.x source addresses, with its open-files limit raised to the hard limit), and runs the
//! scenarios of issue #10: `idle`, `presence`, `im`, `plugin` and `archive` (and `slow-plugin`,
//! `restart`, and `pool`: a standalone server against pools of 1–3 nodes on a JetStream
//! cluster, issue #20). Each prints a progress line while it runs and a summary table at the
//! end (`--json` for machine-readable results). Figures are printed, never judged: nothing here
//! fails on timing.
//!
//! See `BENCHMARKS.md` at the repository root for how to run it and results.

pub mod cluster;
pub mod nats;
pub mod net;
pub mod pool;
pub mod prosody;
pub mod report;
pub mod restart;
pub mod scenarios;
pub mod server;
pub mod setup;
pub mod side;
pub mod slow;
pub mod stats;
pub mod worker;
pub mod xmpp;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Command line of `halo-bench`.
#[derive(Debug, Parser)]
#[command(name = "halo-bench", version, about = "Load generator and benchmarks for Halo")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// `halo-bench` subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run scenarios against a server the bench starts (or --server).
    Run(Box<RunArgs>),
    /// A worker process (started by `run`; reads commands on stdin).
    #[command(hide = true)]
    Worker,
}

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N connected sessions with contacts: server RSS per session, connect rate.
    Idle,
    /// M users change state: notifications per second, change-to-watcher latency.
    Presence,
    /// 1:1 and multiparty messages at a fixed rate and flat out: rate, latency.
    Im,
    /// The presence storm with the custom-states plugin vs built-in only; hook cost.
    Plugin,
    /// IM throughput with archiving into jsonl-archive vs off; sink drain rate.
    Archive,
    /// A presence plugin that spends `--slow-ms` per call with `--slow-users` users changing
    /// state: `/healthz` and change-to-watcher latency, and what the plugin's budget did.
    SlowPlugin,
    /// Fill the data directory with `--messages` messages, then measure restart-to-serving and
    /// RSS after start.
    Restart,
    /// A standalone server, then pools of `--pool-nodes` nodes on a three-server JetStream
    /// cluster (`nats-server` on the PATH): 1:1 IM flat out, the presence storm, and the CPU of
    /// the NATS servers, the halo nodes and the load generator.
    Pool,
}

/// Options of `halo-bench run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenarios, in order (default: idle, presence, im, plugin, archive).
    #[arg(value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,
    /// The `halo` binary to start (default: `halo` next to this binary, i.e. target/release/halo).
    #[arg(long)]
    pub halo: Option<PathBuf>,
    /// Use a running server on loopback instead (needs --token, an admin token).
    #[arg(long, requires = "token")]
    pub server: Option<String>,
    /// Admin token for --server.
    #[arg(long)]
    pub token: Option<String>,
    /// Process id of --server, to read its RSS.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Keep the server's data here and reuse it (users, tokens, contacts) on the next run.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Worker processes holding sessions (keep each under ~15k sockets).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Loopback source addresses to spread connections over (127.0.0.2 and up).
    #[arg(long, default_value_t = 16)]
    pub sources: u8,
    /// Idle: session counts to measure at, ascending.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub idle: Vec<usize>,
    /// Most distinct users: sessions beyond this many are further devices (endpoints) of the
    /// same users (argon2 makes each account cost two ~50 ms hashes to set up).
    #[arg(long)]
    pub max_users: Option<usize>,
    /// Team size: every user has their teammates as contacts (team − 1 contacts each).
    #[arg(long, default_value_t = 11)]
    pub team: usize,
    /// Presence: users (sessions) that change state.
    #[arg(long, default_value_t = 2000)]
    pub storm_users: usize,
    /// Presence: pause between one user's changes, ms (0: as fast as acknowledged).
    #[arg(long, default_value_t = 200)]
    pub storm_interval_ms: u64,
    /// Slow plugin: users (sessions) that change state.
    #[arg(long, default_value_t = 100)]
    pub slow_users: usize,
    /// Slow plugin: milliseconds the plugin keeps the CPU busy per call.
    #[arg(long, default_value_t = 30)]
    pub slow_ms: u64,
    /// Seconds each measured run lasts.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// IM: 1:1 conversations (one sender each).
    #[arg(long, default_value_t = 1000)]
    pub im_pairs: usize,
    /// IM: group conversations (one sender each).
    #[arg(long, default_value_t = 200)]
    pub im_groups: usize,
    /// IM: participants per group.
    #[arg(long, default_value_t = 5)]
    pub group_size: usize,
    /// IM: the fixed offered rate, messages per second over all 1:1 senders.
    #[arg(long, default_value_t = 10000.0)]
    pub im_rate: f64,
    /// IM flat out: unacknowledged sends per sender.
    #[arg(long, default_value_t = 8)]
    pub im_window: i64,
    /// IM closed-loop workloads, `PAIRS x WINDOW` each (e.g. `50x10,1000x1`): the first PAIRS
    /// 1:1 senders keep WINDOW messages in flight each (Halo: sent and not yet acknowledged;
    /// Prosody: sent and not yet received by the peer). Run on both sides with --with-prosody.
    #[arg(long, value_delimiter = ',', default_value = "50x10", value_parser = parse_closed_loop)]
    pub im_closed: Vec<ClosedLoop>,
    /// Where custom_states.wasm and jsonl_archive.wasm are (default:
    /// plugins/target/wasm32-wasip2/release in the repository).
    #[arg(long)]
    pub plugins_dir: Option<PathBuf>,
    /// Setup requests in flight.
    #[arg(long, default_value_t = 32)]
    pub setup_threads: usize,
    /// Setup time limit, seconds.
    #[arg(long, default_value_t = 1800)]
    pub setup_timeout: u64,
    /// Also run idle and IM (fixed rate, each --im-closed workload, flat out) against Debian's
    /// Prosody (XMPP c2s on loopback), with its CPU per run, and print Halo and Prosody side by
    /// side with the Halo ÷ Prosody ratios.
    #[arg(long)]
    pub with_prosody: bool,
    /// Sessions (users) for the Prosody side.
    #[arg(long, default_value_t = 5000)]
    pub prosody_sessions: usize,
    /// Restart: messages stored before the restarts are measured (with --data-dir, what an
    /// earlier run stored counts).
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Pool: users (the same number in every configuration; user i connects to node i % n).
    #[arg(long, default_value_t = 300)]
    pub pool_users: usize,
    /// Pool: users with a second device, on the next node (users 0..this).
    #[arg(long, default_value_t = 100)]
    pub pool_devices: usize,
    /// Pool: node counts to measure, after the standalone baseline.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub pool_nodes: Vec<usize>,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// The worker executable (default: this one); for tests.
    #[arg(long, hide = true)]
    pub worker_exe: Option<PathBuf>,
}

/// A closed-loop IM workload: `pairs` 1:1 senders, each with at most `window` messages in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClosedLoop {
    /// 1:1 pairs (one sender each).
    pub pairs: usize,
    /// Messages in flight per sender.
    pub window: usize,
}

impl ClosedLoop {
    /// The label used for this workload's rows on both sides, with the pairs actually used.
    pub fn label(&self, pairs: usize) -> String {
        format!("1:1 closed loop {pairs} pairs x window {}", self.window)
    }
}

/// Parses `PAIRSxWINDOW` (`50x10`) for `--im-closed`.
pub fn parse_closed_loop(s: &str) -> Result<ClosedLoop, String> {
    let (p, w) =
        s.trim().split_once(['x', 'X', '*']).ok_or_else(|| format!("{s:?}: expected PAIRSxWINDOW, e.g. 50x10"))?;
    let num = |t: &str| t.trim().parse::<usize>().ok().filter(|n| (1..=1_000_000).contains(n));
    match (num(p), num(w)) {
        (Some(pairs), Some(window)) => Ok(ClosedLoop { pairs, window }),
        _ => Err(format!("{s:?}: PAIRS and WINDOW must be whole numbers from 1 to 1000000")),
    }
}

/// Runs `halo-bench` with parsed arguments.
pub fn main_with(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        CliCommand::Worker => worker::run(),
        CliCommand::Run(args) => {
            let json = args.json;
            let report = scenarios::run(*args)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.table());
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_loop_workloads_parse() {
        assert_eq!(parse_closed_loop("50x10"), Ok(ClosedLoop { pairs: 50, window: 10 }));
        assert_eq!(parse_closed_loop(" 1000 X 1 "), Ok(ClosedLoop { pairs: 1000, window: 1 }));
        for bad in ["50", "x10", "0x10", "50x0", "ax1", "50x10x2", ""] {
            assert!(parse_closed_loop(bad).is_err(), "{bad:?}");
        }
        let cli = Cli::try_parse_from(["halo-bench", "run", "im", "--im-closed", "50x10,1000x1"]).expect("args");
        let CliCommand::Run(args) = cli.command else { panic!("run") };
        assert_eq!(args.im_closed.len(), 2);
        assert_eq!(args.im_closed[1].label(1000), "1:1 closed loop 1000 pairs x window 1");
    }
}

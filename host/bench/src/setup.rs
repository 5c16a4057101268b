//! Setting up users, tokens and contacts over the REST API, in parallel, bounded and reported.
//!
//! Users are `bench<i>`; their contacts are the other members of their team: users are grouped
//! in teams of `team` consecutive users, and everyone has every teammate as a contact (so a
//! presence change reaches `team - 1` watchers). What was done is kept in `bench-state.json`
//! next to a reused data dir, so a second run skips the argon2-bound part.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use halo_client::ClientError;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::report::progress;
use crate::server::Server;

/// One bench user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct User {
    /// Username.
    pub name: String,
    /// A bearer token from one login.
    pub token: String,
    /// How many of their teammates (in index order) are already contacts.
    pub contacts: usize,
}

/// Every user the bench made, in index order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Users {
    /// Users by index.
    pub users: Vec<User>,
    /// Team size the contacts were made for.
    pub team: usize,
    #[serde(skip)]
    path: Option<PathBuf>,
}

/// What a setup step cost.
#[derive(Debug, Clone, Default)]
pub struct SetupCost {
    /// Accounts created and logged in now.
    pub users_created: usize,
    /// Seconds for that.
    pub users_secs: f64,
    /// Contacts added now.
    pub contacts_added: usize,
    /// Seconds for that.
    pub contacts_secs: f64,
}

/// Username of user `i`.
pub fn username(i: usize) -> String {
    format!("bench{i:05}")
}

fn password(i: usize) -> String {
    format!("bench-password-{i}")
}

impl Users {
    /// The saved state for the server's data dir (empty for a new dir or an attached server).
    pub fn load(server: &Server, team: usize) -> Self {
        let path = server.data_dir.as_ref().map(|d| d.join("bench-state.json"));
        let mut users: Users = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if users.team != team {
            // Another team size: contacts are made afresh on top of what exists (409s are fine).
            users.users.iter_mut().for_each(|u| u.contacts = 0);
            users.team = team;
        }
        users.path = path;
        users
    }

    fn save(&self) {
        if let Some(p) = &self.path
            && let Ok(text) = serde_json::to_string(self)
        {
            let _ = std::fs::write(p, text);
        }
    }

    /// Makes sure users `0..n` exist with a token, with `threads` requests in flight; bounded by
    /// `timeout`.
    pub fn ensure(
        &mut self,
        server: &Server,
        n: usize,
        threads: usize,
        timeout: Duration,
    ) -> anyhow::Result<SetupCost> {
        let have = self.users.len();
        if n <= have {
            return Ok(SetupCost::default());
        }
        let start = Instant::now();
        let deadline = start + timeout;
        let made = Mutex::new(Vec::<(usize, String)>::new());
        let total = n - have;
        parallel(
            total,
            threads,
            start,
            deadline,
            |d, rate| format!("setup: users {d}/{total}, {rate:.0}/s (create + login: two argon2 hashes each)"),
            |k| {
                let token = make_user(server, have + k).map_err(|e| format!("{e:#}"))?;
                made.lock().unwrap_or_else(|p| p.into_inner()).push((have + k, token));
                Ok(())
            },
        )
        .map_err(|e| anyhow::anyhow!("creating users: {e}"))?;
        let mut made = made.into_inner().unwrap_or_else(|p| p.into_inner());
        made.sort();
        anyhow::ensure!(
            made.len() == n - have,
            "user setup timed out after {timeout:?} ({} of {})",
            made.len(),
            n - have
        );
        for (i, token) in made {
            debug_assert_eq!(i, self.users.len());
            self.users.push(User { name: username(i), token, contacts: 0 });
        }
        self.save();
        Ok(SetupCost { users_created: n - have, users_secs: start.elapsed().as_secs_f64(), ..Default::default() })
    }

    /// The teammates of user `i` among users `0..n`, in index order.
    pub fn teammates(&self, i: usize, n: usize) -> impl Iterator<Item = usize> + use<> {
        let team = self.team.max(1);
        let first = i / team * team;
        (first..(first + team).min(n)).filter(move |&j| j != i)
    }

    /// Makes every user in `0..n` a contact of each of their teammates.
    pub fn ensure_contacts(
        &mut self,
        server: &Server,
        n: usize,
        threads: usize,
        timeout: Duration,
    ) -> anyhow::Result<SetupCost> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut work: Vec<(usize, usize)> = Vec::new();
        for i in 0..n.min(self.users.len()) {
            let mates: Vec<usize> = self.teammates(i, n).collect();
            for &j in mates.iter().skip(self.users[i].contacts) {
                work.push((i, j));
            }
        }
        if work.is_empty() {
            return Ok(SetupCost::default());
        }
        let total = work.len();
        let this = &*self;
        let done = parallel(
            total,
            threads,
            start,
            deadline,
            |d, rate| format!("setup: contacts {d}/{total}, {rate:.0}/s"),
            |k| {
                let (i, j) = work[k];
                let c = server.client(&this.users[i].token);
                match c.call("POST", "/api/v1/contacts", Some(&json!({"username": this.users[j].name}))) {
                    Ok(_) | Err(ClientError::Api { status: 409, .. }) => Ok(()),
                    Err(e) => Err(format!("contact {i}->{j}: {e}")),
                }
            },
        )
        .map_err(|e| anyhow::anyhow!("adding contacts: {e}"))?;
        anyhow::ensure!(done == total, "contact setup timed out after {timeout:?}");
        for i in 0..n.min(self.users.len()) {
            self.users[i].contacts = self.teammates(i, n).count();
        }
        self.save();
        Ok(SetupCost { contacts_added: total, contacts_secs: start.elapsed().as_secs_f64(), ..Default::default() })
    }
}

fn make_user(server: &Server, i: usize) -> anyhow::Result<String> {
    let (name, pw) = (username(i), password(i));
    match server.admin.call("POST", "/api/v1/users", Some(&json!({"username": name, "password": pw}))) {
        Ok(_) | Err(ClientError::Api { status: 409, .. }) => {}
        Err(e) => return Err(e).context(format!("create {name}")),
    }
    let login = server.admin.login(&name, &pw).with_context(|| format!("login {name}"))?;
    Ok(login["token"].as_str().context("login answer without token")?.to_owned())
}

/// Runs `job(k)` for every `k` in `0..total` on `threads` threads until all are done, one
/// fails, or `deadline` passes, printing `label(done, per_second)` every half second. Returns
/// how many jobs succeeded, or the first failure.
fn parallel(
    total: usize,
    threads: usize,
    start: Instant,
    deadline: Instant,
    label: impl Fn(usize, f64) -> String,
    job: impl Fn(usize) -> Result<(), String> + Sync,
) -> Result<usize, String> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure = Mutex::new(None::<String>);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= total || Instant::now() > deadline {
                        break;
                    }
                    if let Err(e) = job(k) {
                        failure.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        break;
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        while done.load(Ordering::Relaxed) < total && Instant::now() < deadline {
            if failure.lock().unwrap_or_else(|p| p.into_inner()).is_some() {
                break;
            }
            let d = done.load(Ordering::Relaxed);
            progress(&label(d, d as f64 / start.elapsed().as_secs_f64().max(0.001)));
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(done.into_inner()),
    }
}

//! The controller's side of the worker processes: spawns `halo-bench worker` children, sends
//! each a command, and gathers their progress and final replies.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command as Process, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::report::progress;
use crate::stats::Latency;
use crate::worker::{Command, Reply, WorkerStats};

struct Worker {
    child: Child,
    stdin: ChildStdin,
}

/// Worker processes holding the sessions; session `i` lives in worker `i % len`.
pub struct Pool {
    workers: Vec<Worker>,
    rx: mpsc::Receiver<(usize, Option<Reply>)>,
}

/// Merged counters of every worker.
#[derive(Debug, Default)]
pub struct Totals {
    /// Presence events about others.
    pub presence_events: u64,
    /// Their latency.
    pub presence_lat: Latency,
    /// IM messages received.
    pub im_events: u64,
    /// Their latency.
    pub im_lat: Latency,
    /// Replies.
    pub replies: u64,
    /// Errors by code.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Sessions closed by the server.
    pub closed: u64,
    /// Sessions still open.
    pub alive: u64,
    /// Requests not yet answered.
    pub outstanding: i64,
}

impl Pool {
    /// Starts `n` workers running `exe worker`.
    pub fn spawn(exe: &Path, n: usize) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let mut workers = Vec::new();
        for w in 0..n.max(1) {
            let mut child = Process::new(exe)
                .arg("worker")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("starting worker {}", exe.display()))?;
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(r) = serde_json::from_str::<Reply>(&line)
                        && tx.send((w, Some(r))).is_err()
                    {
                        break;
                    }
                }
                let _ = tx.send((w, None));
            });
            workers.push(Worker { child, stdin });
        }
        Ok(Self { workers, rx })
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Whether there are no workers (never: at least one is started).
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// CPU seconds (user + system) the worker processes have used so far, together: the load
    /// generator's own share of the machine. Exited workers count as 0.
    pub fn cpu_secs(&self) -> f64 {
        self.workers.iter().filter_map(|w| crate::prosody::cpu_seconds_of(w.child.id()).ok()).sum()
    }

    /// Which worker holds session `idx`.
    pub fn owner(&self, idx: usize) -> usize {
        idx % self.workers.len()
    }

    /// Sends `cmds[w]` to worker `w` (all at once) and waits for every final reply, showing
    /// `show(elapsed, latest progress of each worker)` on the progress line; bounded by `timeout`.
    pub fn run(
        &mut self,
        cmds: Vec<Command>,
        timeout: Duration,
        show: &dyn Fn(f64, &[Reply]) -> String,
    ) -> anyhow::Result<Vec<Reply>> {
        let n = self.workers.len();
        for (w, cmd) in cmds.iter().enumerate().take(n) {
            let line = serde_json::to_string(cmd)?;
            writeln!(self.workers[w].stdin, "{line}").context("worker gone")?;
            self.workers[w].stdin.flush()?;
        }
        let mut latest = vec![Reply::default(); n];
        let mut finals: Vec<Option<Reply>> = vec![None; n];
        let start = Instant::now();
        let deadline = start + timeout;
        let mut last_shown = Instant::now();
        while finals.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("workers did not finish within {timeout:?}");
            }
            match self.rx.recv_timeout(left.min(Duration::from_millis(250))) {
                Ok((w, Some(r))) => {
                    if r.done {
                        if let Some(e) = &r.error {
                            bail!("worker {w}: {e}");
                        }
                        finals[w] = Some(r.clone());
                    }
                    latest[w] = r;
                }
                Ok((w, None)) => bail!("worker {w} exited"),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("workers exited"),
            }
            if last_shown.elapsed() >= Duration::from_millis(500) {
                last_shown = Instant::now();
                progress(&show(start.elapsed().as_secs_f64(), &latest));
            }
        }
        Ok(finals.into_iter().flatten().collect())
    }

    /// Sends the same command to every worker.
    pub fn broadcast(&mut self, cmd: Command, timeout: Duration) -> anyhow::Result<Vec<Reply>> {
        let cmds = vec![cmd; self.workers.len()];
        self.run(cmds, timeout, &|_, _| String::new())
    }

    /// Zeroes every worker's counters.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        self.broadcast(Command::Reset, Duration::from_secs(30)).map(|_| ())
    }

    /// Waits (up to `limit`) until every request sent has been answered, so that one run's
    /// backlog does not count in the next; returns what is still unanswered.
    pub fn drain(&mut self, limit: Duration) -> anyhow::Result<i64> {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.totals()?.outstanding;
            if left <= 0 || Instant::now() > deadline {
                return Ok(left);
            }
            progress(&format!("waiting for {left} unanswered requests"));
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every worker's counters, merged.
    pub fn totals(&mut self) -> anyhow::Result<Totals> {
        let mut t = Totals::default();
        for r in self.broadcast(Command::Stats, Duration::from_secs(30))? {
            t.alive += r.count;
            if let Some(s) = r.stats {
                merge(&mut t, &s);
            }
        }
        Ok(t)
    }
}

fn merge(t: &mut Totals, s: &WorkerStats) {
    t.presence_events += s.presence_events;
    t.presence_lat.merge(&Latency::from_wire(&s.presence_lat));
    t.im_events += s.im_events;
    t.im_lat.merge(&Latency::from_wire(&s.im_lat));
    t.replies += s.replies;
    for (k, v) in &s.errors {
        *t.errors.entry(k.clone()).or_default() += v;
    }
    t.closed += s.closed;
    t.outstanding += s.outstanding;
}

/// Sum of a field over progress replies.
pub fn sum(replies: &[Reply], f: impl Fn(&Reply) -> u64) -> u64 {
    replies.iter().map(f).sum()
}

impl Drop for Pool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            if let Ok(line) = serde_json::to_string(&Command::Close) {
                let _ = writeln!(w.stdin, "{line}");
                let _ = w.stdin.flush();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for w in &mut self.workers {
            while Instant::now() < deadline {
                if let Ok(Some(_)) = w.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = w.child.kill();
            let _ = w.child.wait();
        }
    }
}

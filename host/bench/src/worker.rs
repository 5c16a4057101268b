//! A worker process (`halo-bench worker`): holds WebSocket sessions and drives them on command.
//!
//! The controller writes one [`Command`] per line on the worker's stdin; the worker answers each
//! with zero or more progress [`Reply`] lines and one final line with `done: true` on stdout.
//! Every loop is bounded by the command's duration or count.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::stats::{Latency, WireHist, now_us};

/// One session to open: a user's token and an endpoint name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSpec {
    /// Global session index (stable across workers).
    pub idx: usize,
    /// Username.
    pub user: String,
    /// Bearer token.
    pub token: String,
    /// Endpoint name.
    pub endpoint: String,
    /// The server this session connects to, when not the command's `url` (a pool's nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One sender of the IM scenario: a session and the conversation it writes to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendSpec {
    /// Global session index.
    pub idx: usize,
    /// Conversation id.
    pub conversation: u64,
}

/// A command from the controller.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Open these sessions (each reads its `hello` before it counts).
    Connect {
        /// `http://127.0.0.1:port`.
        url: String,
        /// Sessions to open.
        sessions: Vec<SessionSpec>,
        /// Spread over 127.0.0.2 ..= 127.0.0.(1 + sources).
        sources: u8,
        /// Handshakes in flight at once.
        concurrency: usize,
        /// Give up after this long.
        timeout_ms: u64,
    },
    /// Presence storm: each changer toggles busy/available every `interval_ms` (0: as soon as
    /// the previous change is acknowledged) until `duration_ms` has passed.
    Presence {
        /// Global session indexes of the changers held by this worker.
        changers: Vec<usize>,
        /// Pause between a changer's changes.
        interval_ms: u64,
        /// How long.
        duration_ms: u64,
    },
    /// IM load: each sender sends `rate` messages per second (0: flat out with `window`
    /// unacknowledged sends) until `duration_ms` has passed.
    Im {
        /// Senders held by this worker.
        senders: Vec<SendSpec>,
        /// Messages per second per sender; 0 for flat out.
        rate: f64,
        /// Most unacknowledged sends per sender.
        window: i64,
        /// How long.
        duration_ms: u64,
    },
    /// Zero the counters and histograms.
    Reset,
    /// Report counters and histograms.
    Stats,
    /// Close every session and exit.
    Close,
}

/// Counters and latency histograms of one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkerStats {
    /// `presence` events about someone else received.
    pub presence_events: u64,
    /// Change (`since`, server ms) to receipt, µs.
    pub presence_lat: WireHist,
    /// `im.message` events received.
    pub im_events: u64,
    /// Send (stamped in the text) to receipt, µs.
    pub im_lat: WireHist,
    /// Replies to requests.
    pub replies: u64,
    /// Errors answered to requests, by code.
    pub errors: BTreeMap<String, u64>,
    /// Sessions the server closed.
    pub closed: u64,
    /// Requests sent and not yet answered (in `stats` replies).
    #[serde(default)]
    pub outstanding: i64,
}

/// A line from a worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    /// The final answer to the command (else a progress line).
    pub done: bool,
    /// What went wrong, if the command failed as a whole.
    pub error: Option<String>,
    /// Sessions connected (connect), or requests sent (presence, im).
    pub count: u64,
    /// Sessions that failed to connect.
    pub failed: u64,
    /// First connect failure, for the report.
    pub first_failure: Option<String>,
    /// Counters (progress lines and `stats`).
    pub stats: Option<WorkerStats>,
}

#[derive(Default)]
struct Shared {
    presence_events: AtomicU64,
    im_events: AtomicU64,
    replies: AtomicU64,
    closed: AtomicU64,
    hist: Mutex<Hists>,
}

#[derive(Default)]
struct Hists {
    presence: Latency,
    im: Latency,
    errors: BTreeMap<String, u64>,
}

struct Session {
    tx: mpsc::UnboundedSender<Message>,
    outstanding: Arc<AtomicI64>,
    acked: Arc<Notify>,
    alive: Arc<AtomicBool>,
    /// The server answered `busy`: send nothing before this time (µs, [`now_us`]).
    pause_until: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    /// A request's id: a number for the load's requests, [`ACK_ID`] for acknowledgements.
    #[serde(default, borrow)]
    id: Option<FrameId<'a>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    /// The retry hint of a `busy` error.
    #[serde(default)]
    retry_after_ms: Option<u64>,
    #[serde(borrow)]
    presence: Option<PresenceLite<'a>>,
    #[serde(borrow)]
    message: Option<MessageLite<'a>>,
}

#[derive(Deserialize)]
struct PresenceLite<'a> {
    #[serde(borrow)]
    username: Cow<'a, str>,
    since: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FrameId<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
struct MessageLite<'a> {
    #[serde(default)]
    id: u64,
    #[serde(borrow)]
    text: Option<Cow<'a, str>>,
}

/// The id of `im.ack` requests, whose replies are not the load's.
const ACK_ID: &str = "ack";
/// Messages received before they are acknowledged (the server keeps each in the recipient's
/// queue until then); a second's pause acknowledges the rest.
const ACK_EVERY: u64 = 64;

/// Runs the worker: commands on stdin, replies on stdout, until `close` or end of input.
pub fn run() -> anyhow::Result<()> {
    crate::net::raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async {
        let shared = Arc::new(Shared::default());
        let mut sessions: BTreeMap<usize, Session> = BTreeMap::new();
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(l) = line else { break };
                if line_tx.send(l).is_err() {
                    break;
                }
            }
        });
        while let Some(line) = line_rx.recv().await {
            let cmd: Command = match serde_json::from_str(&line) {
                Ok(c) => c,
                Err(e) => {
                    emit(&Reply { done: true, error: Some(format!("bad command: {e}")), ..Default::default() });
                    continue;
                }
            };
            let close = matches!(cmd, Command::Close);
            let reply = handle(cmd, &shared, &mut sessions).await;
            emit(&reply);
            if close {
                break;
            }
        }
        Ok(())
    })
}

fn emit(reply: &Reply) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(reply) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn snapshot(shared: &Shared, with_hist: bool) -> WorkerStats {
    let h = shared.hist.lock().unwrap_or_else(|p| p.into_inner());
    WorkerStats {
        presence_events: shared.presence_events.load(Ordering::Relaxed),
        presence_lat: if with_hist { h.presence.to_wire() } else { WireHist::default() },
        im_events: shared.im_events.load(Ordering::Relaxed),
        im_lat: if with_hist { h.im.to_wire() } else { WireHist::default() },
        replies: shared.replies.load(Ordering::Relaxed),
        errors: h.errors.clone(),
        closed: shared.closed.load(Ordering::Relaxed),
        outstanding: 0,
    }
}

async fn handle(cmd: Command, shared: &Arc<Shared>, sessions: &mut BTreeMap<usize, Session>) -> Reply {
    match cmd {
        Command::Connect { url, sessions: specs, sources, concurrency, timeout_ms } => {
            connect_all(&url, specs, sources, concurrency, Duration::from_millis(timeout_ms), shared, sessions).await
        }
        Command::Presence { changers, interval_ms, duration_ms } => {
            let deadline = Instant::now() + Duration::from_millis(duration_ms);
            let mut tasks = Vec::new();
            for idx in changers {
                let Some(s) = sessions.get(&idx) else { continue };
                let (tx, outstanding, acked) = (s.tx.clone(), s.outstanding.clone(), s.acked.clone());
                tasks.push(tokio::spawn(async move {
                    let mut sent = 0u64;
                    while Instant::now() < deadline {
                        if !wait_window(&outstanding, &acked, 1, deadline).await {
                            break;
                        }
                        let state = if sent.is_multiple_of(2) { "busy" } else { "available" };
                        let frame = format!(r#"{{"type":"presence.set","state":"{state}","id":{sent}}}"#);
                        outstanding.fetch_add(1, Ordering::Relaxed);
                        if tx.send(Message::Text(frame.into())).is_err() {
                            break;
                        }
                        sent += 1;
                        if interval_ms > 0 {
                            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
                        }
                    }
                    sent
                }));
            }
            let count = join_with_progress(tasks, shared, deadline).await;
            Reply { done: true, count, ..Default::default() }
        }
        Command::Im { senders, rate, window, duration_ms } => {
            let start = Instant::now();
            let deadline = start + Duration::from_millis(duration_ms);
            let mut tasks = Vec::new();
            for (n, spec) in senders.into_iter().enumerate() {
                let Some(s) = sessions.get(&spec.idx) else { continue };
                let (tx, outstanding, acked) = (s.tx.clone(), s.outstanding.clone(), s.acked.clone());
                let pause_until = s.pause_until.clone();
                // Spread the senders' first sends over one period so they do not send in lockstep.
                let offset = if rate > 0.0 { (n as f64 * 0.618_034).fract() / rate } else { 0.0 };
                tasks.push(tokio::spawn(async move {
                    let mut sent = 0u64;
                    loop {
                        if rate > 0.0 {
                            let at = start + Duration::from_secs_f64(offset + sent as f64 / rate);
                            if at >= deadline {
                                break;
                            }
                            tokio::time::sleep_until(at.into()).await;
                        }
                        if Instant::now() >= deadline || !wait_window(&outstanding, &acked, window, deadline).await {
                            break;
                        }
                        // A `busy` answer: wait as the server asked; the next message takes the
                        // refused one's place.
                        let pause = pause_until.load(Ordering::Relaxed).saturating_sub(now_us());
                        if pause > 0 {
                            let until = Instant::now() + Duration::from_micros(pause);
                            if until >= deadline {
                                break;
                            }
                            tokio::time::sleep_until(until.into()).await;
                        }
                        let frame = format!(
                            r#"{{"type":"im.send","id":{sent},"conversation":{},"text":"b{}"}}"#,
                            spec.conversation,
                            now_us()
                        );
                        outstanding.fetch_add(1, Ordering::Relaxed);
                        if tx.send(Message::Text(frame.into())).is_err() {
                            break;
                        }
                        sent += 1;
                    }
                    sent
                }));
            }
            let count = join_with_progress(tasks, shared, deadline).await;
            Reply { done: true, count, ..Default::default() }
        }
        Command::Reset => {
            shared.presence_events.store(0, Ordering::Relaxed);
            shared.im_events.store(0, Ordering::Relaxed);
            shared.replies.store(0, Ordering::Relaxed);
            *shared.hist.lock().unwrap_or_else(|p| p.into_inner()) = Hists::default();
            Reply { done: true, ..Default::default() }
        }
        Command::Stats => Reply {
            done: true,
            count: sessions.values().filter(|s| s.alive.load(Ordering::Relaxed)).count() as u64,
            stats: Some(WorkerStats {
                outstanding: sessions.values().map(|s| s.outstanding.load(Ordering::Relaxed).max(0)).sum(),
                ..snapshot(shared, true)
            }),
            ..Default::default()
        },
        Command::Close => {
            for s in sessions.values() {
                let _ = s.tx.send(Message::Close(None));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Reply { done: true, ..Default::default() }
        }
    }
}

/// Waits until fewer than `window` requests are unacknowledged; false at the deadline.
async fn wait_window(outstanding: &AtomicI64, acked: &Notify, window: i64, deadline: Instant) -> bool {
    loop {
        let notified = acked.notified();
        if outstanding.load(Ordering::Relaxed) < window.max(1) {
            return true;
        }
        if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
            return false;
        }
    }
}

/// Joins the load tasks, emitting a progress line every second; returns the requests sent.
async fn join_with_progress(tasks: Vec<tokio::task::JoinHandle<u64>>, shared: &Arc<Shared>, deadline: Instant) -> u64 {
    let all = futures_util::future::join_all(tasks);
    tokio::pin!(all);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    // Bounded: the tasks stop at the deadline; a few seconds more for the last replies.
    let hard = deadline + Duration::from_secs(10);
    loop {
        tokio::select! {
            results = &mut all => return results.into_iter().map(|r| r.unwrap_or(0)).sum(),
            _ = tick.tick() => {
                if Instant::now() > hard {
                    return 0;
                }
                emit(&Reply { stats: Some(snapshot(shared, false)), ..Default::default() });
            }
        }
    }
}

async fn connect_all(
    url: &str,
    specs: Vec<SessionSpec>,
    sources: u8,
    concurrency: usize,
    timeout: Duration,
    shared: &Arc<Shared>,
    sessions: &mut BTreeMap<usize, Session>,
) -> Reply {
    let deadline = Instant::now() + timeout;
    let addr = |url: &str| -> Result<SocketAddr, String> {
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("server address {url}: {e}"))
    };
    let default = match addr(url) {
        Ok(a) => a,
        Err(e) => return Reply { done: true, error: Some(e), ..Default::default() },
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = Vec::with_capacity(specs.len());
    for spec in specs {
        let sem = sem.clone();
        let shared = shared.clone();
        let src = Ipv4Addr::new(127, 0, 0, 2 + (spec.idx % sources.max(1) as usize) as u8);
        let server = match spec.url.as_deref().map(addr) {
            None => default,
            Some(Ok(a)) => a,
            Some(Err(e)) => return Reply { done: true, error: Some(e), ..Default::default() },
        };
        let ws_url = format!("ws://{server}/api/v1/stream?endpoint={}", spec.endpoint);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.ok();
            let opened = open(&ws_url, server, src, &spec.token, spec.user.clone(), shared);
            let r = tokio::time::timeout_at(deadline.into(), opened).await;
            (spec.idx, r.map_err(|_| anyhow::anyhow!("timed out")).and_then(|r| r))
        }));
    }
    let (mut ok, mut failed, mut first_failure) = (0u64, 0u64, None);
    let mut last = Instant::now();
    for t in tasks {
        match t.await {
            Ok((idx, Ok(s))) => {
                sessions.insert(idx, s);
                ok += 1;
            }
            Ok((_, Err(e))) => {
                failed += 1;
                first_failure.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                failed += 1;
                first_failure.get_or_insert_with(|| e.to_string());
            }
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            emit(&Reply { count: ok, failed, ..Default::default() });
        }
    }
    Reply { done: true, count: ok, failed, first_failure, ..Default::default() }
}

async fn open(
    ws_url: &str,
    server: SocketAddr,
    src: Ipv4Addr,
    token: &str,
    me: String,
    shared: Arc<Shared>,
) -> anyhow::Result<Session> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(src), 0)).with_context(|| format!("bind {src}"))?;
    let stream = socket.connect(server).await.context("tcp connect")?;
    stream.set_nodelay(true)?;
    let mut req = ws_url.into_client_request()?;
    req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.context("websocket handshake")?;
    // The hello comes first.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"hello\"") => break,
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(other)) => anyhow::bail!("unexpected first frame {other:?}"),
            Some(Err(e)) => return Err(e.into()),
            None => anyhow::bail!("closed before hello"),
        }
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let outstanding = Arc::new(AtomicI64::new(0));
    let acked = Arc::new(Notify::new());
    let alive = Arc::new(AtomicBool::new(true));
    let pause_until = Arc::new(AtomicU64::new(0));
    let session = Session {
        tx,
        outstanding: outstanding.clone(),
        acked: acked.clone(),
        alive: alive.clone(),
        pause_until: pause_until.clone(),
    };
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        // Newest message id received, and how many since the last acknowledgement.
        let (mut newest, mut unacked) = (0u64, 0u64);
        let mut ack_tick = tokio::time::interval(Duration::from_secs(1));
        ack_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if unacked >= ACK_EVERY {
                unacked = 0;
                let ack = format!(r#"{{"type":"im.ack","id":"{ACK_ID}","upto":{newest}}}"#);
                if sink.send(Message::Text(ack.into())).await.is_err() {
                    break;
                }
            }
            tokio::select! {
                out = rx.recv() => {
                    let Some(m) = out else { break };
                    let closing = matches!(m, Message::Close(_));
                    if sink.feed(m).await.is_err() { break; }
                    while let Ok(m) = rx.try_recv() {
                        if sink.feed(m).await.is_err() { break; }
                    }
                    if sink.flush().await.is_err() || closing { break; }
                }
                frame = stream.next() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Some(id) = on_frame(&t, &shared, &outstanding, &acked, &pause_until, &me) {
                            newest = newest.max(id);
                            unacked += 1;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        shared.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                _ = ack_tick.tick(), if unacked > 0 => unacked = ACK_EVERY,
            }
        }
        alive.store(false, Ordering::Relaxed);
    });
    Ok(session)
}

/// An `error` frame: its `message` is a string, not a Message.
#[derive(Deserialize)]
struct ErrorFrame<'a> {
    #[serde(rename = "type", borrow)]
    ty: Cow<'a, str>,
    #[serde(default, borrow)]
    id: Option<FrameId<'a>>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

/// Counts a frame; returns the id of an `im.message` (to acknowledge). A `busy` error sets
/// `pause_until` from its retry hint.
fn on_frame(
    text: &str,
    shared: &Shared,
    outstanding: &AtomicI64,
    acked: &Notify,
    pause_until: &AtomicU64,
    me: &str,
) -> Option<u64> {
    let f = match serde_json::from_str::<Frame>(text) {
        Ok(f) => f,
        Err(_) => match serde_json::from_str::<ErrorFrame>(text) {
            Ok(e) => Frame {
                ty: e.ty,
                id: e.id,
                code: e.code,
                retry_after_ms: e.retry_after_ms,
                presence: None,
                message: None,
            },
            Err(_) => return None,
        },
    };
    if matches!(&f.id, Some(FrameId::Text(id)) if id == ACK_ID) {
        return None;
    }
    match f.ty.as_ref() {
        "reply" => {
            shared.replies.fetch_add(1, Ordering::Relaxed);
            outstanding.fetch_sub(1, Ordering::Relaxed);
            acked.notify_one();
        }
        "error" => {
            if f.code.as_deref() == Some("busy") {
                let after = f.retry_after_ms.unwrap_or(1000).min(10_000);
                pause_until.fetch_max(now_us() + after * 1000, Ordering::Relaxed);
            }
            let mut h = shared.hist.lock().unwrap_or_else(|p| p.into_inner());
            *h.errors.entry(f.code.map(|c| c.into_owned()).unwrap_or_default()).or_default() += 1;
            drop(h);
            outstanding.fetch_sub(1, Ordering::Relaxed);
            acked.notify_one();
        }
        "presence" => {
            if let Some(p) = f.presence
                && p.username != me
            {
                shared.presence_events.fetch_add(1, Ordering::Relaxed);
                if let Some(since) = p.since {
                    let lat = now_us().saturating_sub(since * 1000);
                    shared.hist.lock().unwrap_or_else(|p| p.into_inner()).presence.record(lat);
                }
            }
        }
        "im.message" => {
            let m = f.message?;
            if let Some(t) = &m.text
                && let Some(stamp) = t.strip_prefix('b').and_then(|s| s.parse::<u64>().ok())
            {
                shared.im_events.fetch_add(1, Ordering::Relaxed);
                shared.hist.lock().unwrap_or_else(|p| p.into_inner()).im.record(now_us().saturating_sub(stamp));
            }
            return Some(m.id);
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_not_load_and_messages_are_acknowledged_by_id() {
        let (shared, outstanding, acked) = (Shared::default(), AtomicI64::new(3), Notify::new());
        let pause = AtomicU64::new(0);
        let seen = |text: &str| on_frame(text, &shared, &outstanding, &acked, &pause, "me");
        assert_eq!(seen(r#"{"type":"reply","id":"ack","result":{"acked":3}}"#), None);
        assert_eq!(seen(r#"{"type":"error","id":"ack","code":"internal","message":"x"}"#), None);
        assert_eq!(outstanding.load(Ordering::Relaxed), 3, "an ack's answer is not the load's");
        assert_eq!(seen(r#"{"type":"reply","id":7,"result":{}}"#), None);
        assert_eq!(outstanding.load(Ordering::Relaxed), 2);
        let msg = r#"{"type":"im.message","message":{"id":42,"conversation":1,"from":"a","kind":"text","text":"b1"}}"#;
        assert_eq!(seen(msg), Some(42));
        assert_eq!(shared.im_events.load(Ordering::Relaxed), 1);
        let before = now_us();
        let busy = r#"{"type":"error","id":8,"code":"busy","message":"x","retry_after_ms":250}"#;
        assert_eq!(seen(busy), None);
        assert_eq!(outstanding.load(Ordering::Relaxed), 1);
        assert!(pause.load(Ordering::Relaxed) >= before + 250_000, "a busy answer pauses the sender");
    }
}

//! The transport of one federation-adapter plugin: the host side of the sans-IO contract.
//!
//! One task per enabled adapter owns its links (TCP, optionally TLS, to addresses the admin
//! granted as `net:host:port`), its timers and its routing flag. Link tasks read and write
//! sockets and report back over a channel; the runner hands each event to the plugin, one at a
//! time, and carries out the actions it answers. While the adapter says it is routing, the
//! runner drains the queues of the domains routed to it, removing an item once the actions the
//! adapter answered for it ran. A link that fails or closes is reconnected after its circuit
//! breaker's wait. A trap discards the plugin's state, so the runner closes every link and
//! starts the adapter afresh; past its trap budget the plugin disables itself and the runner
//! stops.
//!
//! Since 0.1.4 an adapter may also listen on granted ports (accepted connections become links
//! the host numbers from 2^31 up, never reopened), switch a link to TLS in place (STARTTLS)
//! and look up SRV records: see [`super::adapter_net`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use halo_core::federation::{Breaker, RouteKey};
use halo_plugin_host::federation::{AdapterAction, AdapterInput, FIRST_ACCEPTED_LINK, LinkSpec, SrvAnswer, TlsRole};
use halo_plugin_host::{CallError, Plugin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::FederationService;
use super::adapter_net::{AdapterNet, Incoming, Stream};
use crate::clock::now_ms;

/// A running adapter.
pub(super) struct Running {
    /// The plugin instance it runs (a reload makes a new one).
    pub plugin: Arc<Plugin>,
    /// Its task.
    pub task: tokio::task::JoinHandle<()>,
}

/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read per `data` input.
const READ_CHUNK: usize = 64 * 1024;
/// Most timers an adapter may hold.
const MAX_TIMERS: usize = 64;
/// Most links an adapter may hold.
const MAX_LINKS: usize = 64;
/// Items handed to the adapter per queue read.
const BATCH: usize = 64;
/// How long a closed link may take to write what it was given and shut down.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long a batch's bytes may take to be written before the batch is retried.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What became of one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Its actions ran, every send on a connected link.
    Done,
    /// A send found no connected link.
    Unsent,
    /// The adapter failed it (trapped or answered invalid data).
    Failed,
}

/// What the runner asks a link task to do.
enum Write {
    /// Write these bytes.
    Bytes(Vec<u8>),
    /// Say when everything before this is written.
    Flushed(oneshot::Sender<()>),
    /// Switch to TLS once everything before this is written.
    StartTls(TlsRole),
}

enum Event {
    Connected(u32, u64, mpsc::Sender<Write>),
    Data(u32, u64, Vec<u8>),
    Closed(u32, u64, String),
    TlsReady(u32, u64),
    Resolved(SrvAnswer),
}

struct Link {
    spec: LinkSpec,
    generation: u64,
    writer: Option<mpsc::Sender<Write>>,
    task: Option<tokio::task::JoinHandle<()>>,
    breaker: Breaker,
    connect_at: Option<Instant>,
    /// Why the link failed, as the adapter said (shown instead of the socket's reason).
    reason: Option<String>,
    /// A peer opened it (to a port the adapter listens on): never reopened.
    accepted: bool,
}

struct State {
    fed: Arc<FederationService>,
    plugin: Arc<Plugin>,
    key: RouteKey,
    events: mpsc::Sender<Event>,
    links: HashMap<u32, Link>,
    timers: HashMap<u32, Instant>,
    routing: bool,
    generation: u64,
    /// Something may wait in the queues (woken, or routing just began): drain on the next turn.
    pending: bool,
    /// Links written to since the last confirmation (see [`State::confirm`]).
    sent_to: std::collections::HashSet<u32>,
    /// The breakers of links the adapter closed, kept for when it opens them again (its own
    /// reconnect after a stream error counts against the same breaker).
    retired: HashMap<u32, Breaker>,
    /// Items the adapter delivered that the host refused, to hand back as `refused` inputs
    /// once the actions that delivered them ran.
    refused: std::collections::VecDeque<AdapterInput>,
    net: Arc<AdapterNet>,
    /// Listening ports and their tasks.
    listeners: HashMap<u16, tokio::task::JoinHandle<()>>,
    incoming: mpsc::Sender<Incoming>,
    /// The number the next accepted link gets.
    next_accepted: u32,
}

/// Most refusals waiting to be handed back (a flood past this is only counted and logged).
const MAX_REFUSED: usize = 4096;

impl Drop for State {
    fn drop(&mut self) {
        for l in self.links.values_mut() {
            if let Some(t) = l.task.take() {
                t.abort();
            }
        }
        for (_, t) in self.listeners.drain() {
            t.abort();
        }
    }
}

/// Runs `plugin` until it is disabled or replaced.
pub(super) async fn run(fed: Arc<FederationService>, plugin: Arc<Plugin>) {
    let key = RouteKey::Adapter(plugin.manifest().name.clone());
    let wake = fed.waker(&key);
    let mut rooms = fed.rooms_changed.subscribe();
    let (events, mut rx) = mpsc::channel(256);
    let (incoming, mut incoming_rx) = mpsc::channel(64);
    let net = fed.adapter_net.clone();
    let mut st = State {
        fed,
        plugin,
        key,
        events,
        links: HashMap::new(),
        timers: HashMap::new(),
        routing: false,
        generation: 0,
        pending: true,
        sent_to: Default::default(),
        retired: HashMap::new(),
        refused: Default::default(),
        net,
        listeners: HashMap::new(),
        incoming,
        next_accepted: FIRST_ACCEPTED_LINK,
    };
    st.status(|l| l.state = "down".into());
    if !st.start().await {
        return;
    }
    loop {
        let next = st.timers.values().chain(st.links.values().filter_map(|l| l.connect_at.as_ref())).min().copied();
        tokio::select! {
            Some(ev) = rx.recv() => st.event(ev).await,
            Some(inc) = incoming_rx.recv() => st.incoming(inc).await,
            _ = sleep_until(next) => st.fire().await,
            _ = wake.notified() => st.pending = true,
            Ok(()) = rooms.changed() => {
                if st.routing {
                    st.rooms().await;
                }
            }
        }
        st.hand_back_refusals().await;
        if st.routing && st.pending {
            st.pending = false;
            st.drain().await;
        }
        if let Some(why) = st.plugin.status().disabled {
            // Disabled by its trap budget (or by an admin, before the reload stops us).
            st.status(|l| {
                l.state = "disabled".into();
                l.last_error = Some(why.clone());
            });
            return;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn status<T>(&self, f: impl FnOnce(&mut super::LinkStatus) -> T) -> T {
        self.fed.link(&self.key, f)
    }

    /// (Re)starts the adapter from scratch: no links, no timers, not routing.
    async fn start(&mut self) -> bool {
        for (_, mut l) in self.links.drain() {
            if let Some(t) = l.task.take() {
                t.abort();
            }
        }
        for (_, t) in self.listeners.drain() {
            t.abort();
        }
        self.timers.clear();
        self.set_routing(false).await;
        match self.plugin.adapter_start().await {
            Ok(actions) => {
                self.apply(actions).await;
                true
            }
            Err(e) => {
                tracing::warn!(adapter = %self.plugin.manifest().name, error = %e, "federation adapter did not start");
                self.status(|l| {
                    l.state = "disabled".into();
                    l.last_error = Some(e.to_string());
                });
                false
            }
        }
    }

    /// Hands the adapter one input and carries out its answer.
    async fn input(&mut self, input: AdapterInput) -> Outcome {
        match self.plugin.adapter_handle(&input).await {
            Ok(actions) => {
                if self.apply(actions).await {
                    Outcome::Done
                } else {
                    Outcome::Unsent
                }
            }
            Err(CallError::Trap(why)) => {
                tracing::warn!(adapter = %self.plugin.manifest().name, %why, "federation adapter trapped; restarting it");
                self.status(|l| l.last_error = Some(format!("trapped: {why}")));
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.start().await;
                Outcome::Failed
            }
            Err(e) => {
                tracing::warn!(adapter = %self.plugin.manifest().name, error = %e, "federation adapter call failed");
                Outcome::Failed
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Connected(id, generation, writer) => {
                let Some(l) = self.links.get_mut(&id).filter(|l| l.generation == generation) else { return };
                l.writer = Some(writer);
                // Connecting is not success yet (a refused handshake follows a connect): the
                // breaker closes once the adapter says it routes.
                self.input(AdapterInput::Connected(id)).await;
            }
            Event::Data(id, generation, bytes) => {
                if self.links.get(&id).is_some_and(|l| l.generation == generation) {
                    self.input(AdapterInput::Data(id, bytes)).await;
                }
            }
            Event::TlsReady(id, generation) => {
                if self.links.get(&id).is_some_and(|l| l.generation == generation) {
                    self.input(AdapterInput::TlsReady(id)).await;
                }
            }
            Event::Resolved(answer) => {
                self.input(AdapterInput::Resolved(answer)).await;
            }
            Event::Closed(id, generation, why) if self.links.get(&id).is_some_and(|l| l.accepted) => {
                if self.links.get(&id).is_some_and(|l| l.generation == generation) {
                    self.links.remove(&id);
                    tracing::info!(adapter = %self.plugin.manifest().name, link = id, reason = %why, "accepted federation link closed");
                    self.input(AdapterInput::Closed(id, why)).await;
                }
            }
            Event::Closed(id, generation, why) => {
                let Some(l) = self.links.get_mut(&id).filter(|l| l.generation == generation) else { return };
                l.writer = None;
                l.task = None;
                // The adapter's own reason (a refused handshake, say) beats "closed by the
                // remote side".
                let why = l.reason.take().unwrap_or(why);
                let retry = l.breaker.failed(now_ms(), &why);
                l.connect_at = Some(Instant::now() + Duration::from_millis(retry.saturating_sub(now_ms())));
                let (b, host, port) = (l.breaker.clone(), l.spec.host.clone(), l.spec.port);
                tracing::info!(adapter = %self.plugin.manifest().name, %host, port, reason = %why, "federation link closed");
                self.status(|s| s.breaker(&b));
                self.fed.metrics.federation.failed(&host);
                self.input(AdapterInput::Closed(id, why)).await;
            }
        }
    }

    /// Fires due timers and reconnects.
    async fn fire(&mut self) {
        let now = Instant::now();
        let due: Vec<u32> = self.timers.iter().filter(|(_, at)| **at <= now).map(|(t, _)| *t).collect();
        for t in due {
            self.timers.remove(&t);
            self.input(AdapterInput::Timer(t)).await;
        }
        let reconnect: Vec<u32> =
            self.links.iter().filter(|(_, l)| l.connect_at.is_some_and(|at| at <= now)).map(|(id, _)| *id).collect();
        for id in reconnect {
            self.connect(id);
        }
    }

    fn connect(&mut self, id: u32) {
        self.generation += 1;
        let generation = self.generation;
        let granted = self.links.get(&id).is_some_and(|l| self.plugin.allows_net(&l.spec.host, l.spec.port));
        let Some(l) = self.links.get_mut(&id) else { return };
        l.connect_at = None;
        l.generation = generation;
        if let Some(t) = l.task.take() {
            t.abort();
        }
        let events = self.events.clone();
        if !granted {
            let why = format!(
                "connection to {}:{} not granted (install the adapter with --grant net:{}:{})",
                l.spec.host, l.spec.port, l.spec.host, l.spec.port
            );
            tracing::warn!(adapter = %self.plugin.manifest().name, "{why}");
            l.task = Some(tokio::spawn(async move {
                let _ = events.send(Event::Closed(id, generation, why)).await;
            }));
            return;
        }
        l.task = Some(tokio::spawn(link_task(l.spec.clone(), generation, events, self.net.clone())));
    }

    /// A listener's report: a new accepted link, or a port that could not be bound.
    async fn incoming(&mut self, inc: Incoming) {
        match inc {
            Incoming::Failed(port, why) => {
                self.listeners.remove(&port);
                tracing::warn!(adapter = %self.plugin.manifest().name, "{why}");
                self.status(|l| l.last_error = Some(why));
            }
            Incoming::Peer(port, stream, peer) => {
                if self.links.len() >= MAX_LINKS {
                    tracing::warn!(adapter = %self.plugin.manifest().name, %peer, "more than {MAX_LINKS} links; connection refused");
                    return;
                }
                let mut id = self.next_accepted;
                while self.links.contains_key(&id) {
                    id = id.checked_add(1).unwrap_or(FIRST_ACCEPTED_LINK);
                }
                self.next_accepted = id.checked_add(1).unwrap_or(FIRST_ACCEPTED_LINK);
                self.generation += 1;
                let generation = self.generation;
                let (wtx, wrx) = mpsc::channel::<Write>(1024);
                let task =
                    tokio::spawn(serve(Box::new(stream), id, generation, self.events.clone(), wrx, self.net.clone()));
                let spec = LinkSpec { id, host: peer.ip().to_string(), port: peer.port(), tls_name: None };
                self.links.insert(
                    id,
                    Link {
                        spec,
                        generation,
                        writer: Some(wtx),
                        task: Some(task),
                        breaker: Breaker::default(),
                        connect_at: None,
                        accepted: true,
                        reason: None,
                    },
                );
                self.input(AdapterInput::Accepted { id, port, peer: peer.to_string() }).await;
            }
        }
    }

    async fn set_routing(&mut self, on: bool) {
        if self.routing == on {
            return;
        }
        self.routing = on;
        self.pending |= on;
        self.status(|l| l.state = if on { "up".into() } else { "down".into() });
        if on {
            // Routing is the adapter's word that its links work: their breakers close.
            for l in self.links.values_mut().filter(|l| l.writer.is_some()) {
                l.breaker.succeeded();
                l.reason = None;
                let b = l.breaker.clone();
                self.fed.link(&self.key, |s| s.breaker(&b));
            }
            tracing::info!(adapter = %self.plugin.manifest().name, "federation adapter routing");
            self.rooms().await;
            self.fed.resync(&self.key).await;
        } else {
            self.fed.unreachable(&self.key);
        }
    }

    /// Carries out actions; `true` if every `send` reached a connected link.
    async fn apply(&mut self, actions: Vec<AdapterAction>) -> bool {
        let mut all_sent = true;
        for a in actions {
            match a {
                AdapterAction::Open(spec) => {
                    if !self.links.contains_key(&spec.id) && self.links.len() >= MAX_LINKS {
                        tracing::warn!(adapter = %self.plugin.manifest().name, "more than {MAX_LINKS} links; open ignored");
                        continue;
                    }
                    let id = spec.id;
                    let breaker = self.links.remove(&id).map(|mut l| {
                        if let Some(t) = l.task.take() {
                            t.abort();
                        }
                        l.breaker.clone()
                    });
                    let breaker = breaker.or_else(|| self.retired.remove(&id)).unwrap_or_default();
                    let wait = Duration::from_millis(breaker.retry_at().saturating_sub(now_ms()));
                    if id >= FIRST_ACCEPTED_LINK {
                        tracing::warn!(adapter = %self.plugin.manifest().name, id, "open: link ids from 2^31 up are the host's; ignored");
                        continue;
                    }
                    self.links.insert(
                        id,
                        Link {
                            spec,
                            generation: 0,
                            writer: None,
                            task: None,
                            breaker,
                            connect_at: None,
                            accepted: false,
                            reason: None,
                        },
                    );
                    if wait.is_zero() {
                        self.connect(id);
                    } else if let Some(l) = self.links.get_mut(&id) {
                        l.connect_at = Some(Instant::now() + wait);
                    }
                }
                AdapterAction::Send(id, bytes) => {
                    let writer = self.links.get(&id).and_then(|l| l.writer.clone());
                    let ok = match writer {
                        Some(w) => w.send(Write::Bytes(bytes)).await.is_ok(),
                        None => false,
                    };
                    if ok {
                        self.sent_to.insert(id);
                    }
                    all_sent &= ok;
                }
                AdapterAction::Close(id) => {
                    let Some(mut l) = self.links.remove(&id) else { continue };
                    if self.retired.len() < MAX_LINKS {
                        let mut breaker = l.breaker.clone();
                        if let Some(why) = l.reason.take() {
                            // Closed on a failure the adapter reported: counted.
                            breaker.failed(now_ms(), &why);
                            self.fed.metrics.federation.failed(&l.spec.host);
                            self.fed.link(&self.key, |s| s.breaker(&breaker));
                        }
                        self.retired.insert(id, breaker);
                    }
                    if let Some(task) = l.task.take() {
                        // Let the link write what it was given (a closing stream error, say)
                        // and shut down; past a grace period it is cut.
                        drop(l.writer.take());
                        tokio::spawn(async move {
                            tokio::time::sleep(CLOSE_GRACE).await;
                            task.abort();
                        });
                    }
                }
                AdapterAction::Routing(on) => self.set_routing(on).await,
                AdapterAction::SetTimer(token, ms) => {
                    if self.timers.len() >= MAX_TIMERS && !self.timers.contains_key(&token) {
                        tracing::warn!(adapter = %self.plugin.manifest().name, "more than {MAX_TIMERS} timers; ignored");
                        continue;
                    }
                    let ms = u64::from(ms).min(24 * 3600 * 1000);
                    self.timers.insert(token, Instant::now() + Duration::from_millis(ms));
                }
                AdapterAction::Deliver(item) => {
                    if let Err((code, why)) = self.fed.inbound(&self.key, item.clone()).await
                        && self.refused.len() < MAX_REFUSED
                    {
                        self.refused.push_back(AdapterInput::Refused(item, code, why));
                    }
                }
                AdapterAction::Bounced(item, code, why) => {
                    let why: String = why.chars().take(512).collect();
                    self.fed.bounced(&self.key, &item, code, &why).await;
                }
                AdapterAction::Reject { domain, reason } => {
                    self.fed.rejected_by_transport(&self.key, domain.as_deref(), &reason)
                }
                AdapterAction::LinkFailed(id, why) => {
                    tracing::info!(adapter = %self.plugin.manifest().name, link = id, reason = %why, "federation link failed");
                    if let Some(l) = self.links.get_mut(&id) {
                        l.reason = Some(why.chars().take(512).collect());
                    }
                }
                AdapterAction::Listen { address, port } => self.listen(address, port),
                AdapterAction::DrainQueued => self.pending = true,
                AdapterAction::Fail(id, why) => {
                    if let Some(l) = self.links.get_mut(&id) {
                        // Stop the link task after it wrote what it was given (the stream
                        // error); the breaker then decides when to open it again.
                        drop(l.writer.take());
                        if let Some(task) = l.task.take() {
                            tokio::spawn(async move {
                                tokio::time::sleep(CLOSE_GRACE).await;
                                task.abort();
                            });
                        }
                        l.generation = 0;
                        let generation = l.generation;
                        let events = self.events.clone();
                        tokio::spawn(async move { events.send(Event::Closed(id, generation, why)).await });
                    }
                }
                AdapterAction::Unlisten(port) => {
                    if let Some(t) = self.listeners.remove(&port) {
                        t.abort();
                    }
                }
                AdapterAction::StartTls(id, role) => {
                    let writer = self.links.get(&id).and_then(|l| l.writer.clone());
                    let ok = match writer {
                        Some(w) => w.send(Write::StartTls(role)).await.is_ok(),
                        None => false,
                    };
                    if !ok {
                        tracing::warn!(adapter = %self.plugin.manifest().name, link = id, "start-tls on a link that is not connected");
                    }
                }
                AdapterAction::Resolve(token, name) => {
                    let events = self.events.clone();
                    if !self.plugin.allows_dns() {
                        let answer = SrvAnswer {
                            token,
                            name,
                            targets: Vec::new(),
                            error: Some("DNS lookups not granted (install the adapter with --grant dns)".into()),
                        };
                        tokio::spawn(async move { events.send(Event::Resolved(answer)).await });
                        continue;
                    }
                    let net = self.net.clone();
                    tokio::spawn(async move {
                        let answer = net.resolve(token, name).await;
                        events.send(Event::Resolved(answer)).await
                    });
                }
            }
        }
        all_sent
    }

    /// Hands the adapter the rooms users of other servers may find.
    async fn rooms(&mut self) {
        let list = self.fed.room_directory();
        Box::pin(self.input(AdapterInput::Rooms(list))).await;
    }

    /// Hands queued items to the adapter while it routes; an item leaves the queue once its
    /// actions ran with every send on a connected link.
    async fn drain(&mut self) {
        'domains: for (domain, _) in self.fed.queued_for(&self.key) {
            loop {
                if !self.routing {
                    return;
                }
                let batch = self.fed.peek(&domain, BATCH);
                if batch.is_empty() {
                    break;
                }
                let mut done = Vec::with_capacity(batch.len());
                let mut stalled = false;
                self.sent_to.clear();
                for q in batch {
                    match self.input(AdapterInput::Outbound(q.item.clone())).await {
                        Outcome::Done => {
                            self.fed.carried(&self.key, &domain, &q.item);
                            done.push(q.seq);
                        }
                        Outcome::Failed => {
                            // Never retried: an item the adapter cannot take would block the
                            // queue behind it.
                            tracing::warn!(%domain, kind = q.item.kind(), "the adapter failed an item; dropped");
                            done.push(q.seq);
                        }
                        Outcome::Unsent => {
                            stalled = true;
                            break;
                        }
                    }
                }
                if !self.confirm().await {
                    // The bytes may not have left: keep the batch for the next routing (at least
                    // once; a resent message may arrive twice).
                    return;
                }
                if let Err(e) = self.fed.done(&domain, &done).await {
                    tracing::error!(error = %e, "federation queue not updated");
                    return;
                }
                if stalled {
                    // The link went away under us, or (a server-to-server adapter) the link to
                    // this domain is not up yet: the rest of this domain's queue waits for the
                    // next routing or `drain-queued`; other domains go on.
                    continue 'domains;
                }
            }
            self.fed.metrics.federation.queue(&domain, 0);
        }
    }
}

impl State {
    /// Hands the adapter what the host refused of its deliveries, so it can answer the senders
    /// (adapters built before 0.1.4 are not told).
    async fn hand_back_refusals(&mut self) {
        let told = !matches!(self.plugin.manifest().api.as_str(), "halo:plugin@0.1.2" | "halo:plugin@0.1.3");
        while let Some(input) = self.refused.pop_front() {
            if told {
                self.input(input).await;
            }
        }
    }

    /// Waits until every link written to since the last call has written it all out; `false`
    /// if one failed or timed out.
    async fn confirm(&mut self) -> bool {
        let links: Vec<u32> = self.sent_to.drain().collect();
        for id in links {
            let Some(w) = self.links.get(&id).and_then(|l| l.writer.clone()) else { return false };
            let (tx, rx) = oneshot::channel();
            if w.send(Write::Flushed(tx)).await.is_err() {
                return false;
            }
            if !matches!(tokio::time::timeout(WRITE_TIMEOUT, rx).await, Ok(Ok(()))) {
                return false;
            }
        }
        true
    }
}

impl State {
    /// Starts accepting on `address:port` if granted.
    fn listen(&mut self, address: String, port: u16) {
        if self.listeners.contains_key(&port) {
            return;
        }
        if !self.plugin.allows_listen(&address, port) {
            let why = format!(
                "listening on {address}:{port} not granted (install the adapter with --grant listen:{address}:{port})"
            );
            tracing::warn!(adapter = %self.plugin.manifest().name, "{why}");
            self.status(|l| l.last_error = Some(why));
            return;
        }
        let task = tokio::spawn(super::adapter_net::listen(address, port, self.incoming.clone()));
        self.listeners.insert(port, task);
    }
}

async fn open(spec: &LinkSpec, net: &AdapterNet) -> Result<Box<dyn Stream>, String> {
    let tcp = tokio::net::TcpStream::connect((spec.host.as_str(), spec.port))
        .await
        .map_err(|e| format!("connecting to {}:{}: {e}", spec.host, spec.port))?;
    let _ = tcp.set_nodelay(true);
    let Some(name) = &spec.tls_name else { return Ok(Box::new(tcp)) };
    let server =
        rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| format!("TLS name {name:?}: {e}"))?;
    let s = tokio_rustls::TlsConnector::from(net.client_tls())
        .connect(server, tcp)
        .await
        .map_err(|e| format!("TLS with {}:{}: {e}", spec.host, spec.port))?;
    Ok(Box::new(s))
}

/// One connection: connects, then reads into `data` events and writes what the runner sends,
/// until either side closes.
async fn link_task(spec: LinkSpec, generation: u64, events: mpsc::Sender<Event>, net: Arc<AdapterNet>) {
    let id = spec.id;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, open(&spec, &net)).await {
        Ok(Ok(s)) => s,
        Ok(Err(why)) => {
            let _ = events.send(Event::Closed(id, generation, why)).await;
            return;
        }
        Err(_) => {
            let why = format!("connecting to {}:{} timed out", spec.host, spec.port);
            let _ = events.send(Event::Closed(id, generation, why)).await;
            return;
        }
    };
    let (wtx, wrx) = mpsc::channel::<Write>(1024);
    if events.send(Event::Connected(id, generation, wtx)).await.is_err() {
        return;
    }
    serve(stream, id, generation, events, wrx, net).await;
}

/// Carries a connected link: reads into `data` events, writes what the runner sends, switches
/// to TLS when asked, until either side closes.
async fn serve(
    stream: Box<dyn Stream>,
    id: u32,
    generation: u64,
    events: mpsc::Sender<Event>,
    mut wrx: mpsc::Receiver<Write>,
    net: Arc<AdapterNet>,
) {
    let (mut r, mut w) = tokio::io::split(stream);
    let mut buf = vec![0u8; READ_CHUNK];
    let why = loop {
        tokio::select! {
            // Writes first: a `StartTls` queued behind the bytes that asked for it (XMPP's
            // `<proceed/>`) is taken before the peer's first TLS bytes are read as data.
            biased;
            m = wrx.recv() => match m {
                Some(Write::Bytes(bytes)) => {
                    if let Err(e) = w.write_all(&bytes).await {
                        break format!("write: {e}");
                    }
                }
                Some(Write::Flushed(done)) => {
                    if let Err(e) = w.flush().await {
                        break format!("write: {e}");
                    }
                    let _ = done.send(());
                }
                Some(Write::StartTls(role)) => {
                    if let Err(e) = w.flush().await {
                        break format!("write: {e}");
                    }
                    let plain = r.unsplit(w);
                    match tokio::time::timeout(CONNECT_TIMEOUT, net.upgrade(plain, &role)).await {
                        Ok(Ok(tls)) => {
                            (r, w) = tokio::io::split(tls);
                            if events.send(Event::TlsReady(id, generation)).await.is_err() {
                                return;
                            }
                        }
                        Ok(Err(why)) => {
                            let _ = events.send(Event::Closed(id, generation, why)).await;
                            return;
                        }
                        Err(_) => {
                            let _ = events.send(Event::Closed(id, generation, "the TLS handshake timed out".into())).await;
                            return;
                        }
                    }
                }
                None => {
                    // Closed by the adapter: finish writing, shut our side, and read what the
                    // other side still sends until it closes, so the socket is not reset under
                    // the last bytes written.
                    let _ = w.shutdown().await;
                    let _ = tokio::time::timeout(CLOSE_GRACE, async {
                        while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
                    })
                    .await;
                    return;
                }
            },
            n = r.read(&mut buf) => match n {
                Ok(0) => break "closed by the remote side".to_owned(),
                Ok(n) => {
                    if events.send(Event::Data(id, generation, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                Err(e) => break format!("read: {e}"),
            },
        }
    };
    let _ = events.send(Event::Closed(id, generation, why)).await;
}

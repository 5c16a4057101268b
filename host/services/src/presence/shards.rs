//! The shards: one OS thread per shard runs a [`halo_core::presence::engine::Engine`] over its
//! inbox and carries out the effects: loads and saves on the store, publications through the
//! outbox and to federation, derive requests to the plugin thread, inputs for other shards to
//! their inboxes, and answers to the callers waiting on them. No lock is shared between shards;
//! a slow plugin never runs on a shard's thread.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use halo_core::presence::engine::{Answer, DeriveRequest, Effect, Engine, Input, Publication, Recipient, Req, Stored};
use halo_core::{Millis, Username};
use halo_store::{Pending, Store, StoreError};
use tokio::sync::oneshot;

use super::remote::Outgoing;
use super::view::{Source, project, remote_view};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::outbox::{Event, Outbox};

/// What a caller gets back: the engine's answer, the store write that failed on the way, or
/// the writes to commit before acknowledging.
pub(crate) struct Reply {
    pub answer: Answer,
    pub failed: Option<StoreError>,
    pub pending: Option<Pending>,
}

/// A message for a shard's thread.
pub(crate) enum Msg {
    /// An input, with where to send its answer.
    Input(Box<Input>, Option<oneshot::Sender<Reply>>),
    /// Ends the thread.
    Stop,
}

/// Where inputs for shards this node does not run go: in a pool, the node owning the user's
/// group (`crate::pool::groups`).
pub(crate) trait Forward: Send + Sync {
    /// Sends `input` to the owner of shard `shard`, with where to put its answer.
    fn forward(&self, shard: usize, input: Input, reply: Option<oneshot::Sender<Reply>>);
}

/// What the shards' threads share: the world the effects touch, and each other's inboxes.
pub(crate) struct World {
    pub store: Store,
    pub outbox: Arc<dyn Outbox>,
    pub metrics: Arc<Metrics>,
    /// Each shard's inbox; `None` for a shard another node of the pool runs.
    pub inboxes: RwLock<Vec<Option<mpsc::Sender<Msg>>>>,
    pub derive: mpsc::Sender<DeriveRequest>,
    pub federation: OnceLock<tokio::sync::mpsc::UnboundedSender<Outgoing>>,
    /// Inputs for shards not run here (pool members only).
    pub forward: OnceLock<Arc<dyn Forward>>,
    /// Request numbers, for callers here and inputs forwarded from other nodes alike.
    pub next_req: AtomicU64,
}

impl World {
    fn inboxes(&self) -> std::sync::RwLockReadGuard<'_, Vec<Option<mpsc::Sender<Msg>>>> {
        self.inboxes.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh request number.
    pub fn req(&self) -> Req {
        Req(self.next_req.fetch_add(1, Ordering::Relaxed))
    }

    /// How many shards there are (in a pool: groups, wherever they run).
    pub fn shards(&self) -> usize {
        self.inboxes().len().max(1)
    }

    /// Hands `input` to the shard that owns it (every shard run here for a broadcast); an
    /// input for a shard another node runs is forwarded there.
    pub fn send(&self, input: Input, reply: Option<oneshot::Sender<Reply>>) {
        let inboxes = self.inboxes();
        match input.shard(inboxes.len().max(1)) {
            Some(s) => match inboxes.get(s) {
                Some(Some(inbox)) => {
                    let _ = inbox.send(Msg::Input(Box::new(input), reply));
                }
                _ => {
                    drop(inboxes);
                    if let Some(forward) = self.forward.get() {
                        forward.forward(s, input, reply);
                    }
                }
            },
            None => {
                for inbox in inboxes.iter().flatten() {
                    let _ = inbox.send(Msg::Input(Box::new(input.clone()), None));
                }
            }
        }
    }

    /// Whether shard `shard` runs here.
    pub fn runs(&self, shard: usize) -> bool {
        matches!(self.inboxes().get(shard), Some(Some(_)))
    }

    /// Sends `input` to the shard `shard` if it runs here; whether it does.
    pub fn send_local(&self, shard: usize, input: Input, reply: Option<oneshot::Sender<Reply>>) -> bool {
        match self.inboxes().get(shard) {
            Some(Some(inbox)) => inbox.send(Msg::Input(Box::new(input), reply)).is_ok(),
            _ => false,
        }
    }

    /// Stops every shard's thread.
    pub fn stop(&self) {
        for inbox in self.inboxes().iter().flatten() {
            let _ = inbox.send(Msg::Stop);
        }
    }

    /// Runs `engine` (for shard `shard`) on a thread of its own from now on, replacing whatever
    /// ran it (pool members, when they take a group).
    pub fn start_shard(self: &Arc<Self>, shard: usize, engine: Engine) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel();
        let world = self.clone();
        std::thread::Builder::new().name(format!("presence-{shard}")).spawn(move || run(engine, rx, &world))?;
        let mut inboxes = self.inboxes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = inboxes.get_mut(shard)
            && let Some(old) = slot.replace(tx)
        {
            let _ = old.send(Msg::Stop);
        }
        Ok(())
    }

    /// Stops running shard `shard` here (its group moved to another node).
    pub fn stop_shard(&self, shard: usize) {
        let mut inboxes = self.inboxes.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = inboxes.get_mut(shard).and_then(Option::take) {
            let _ = old.send(Msg::Stop);
        }
    }

    /// Replaces the shards by `shards` shards none of which runs here yet (joining a pool).
    pub fn reshard(&self, shards: usize) {
        let mut inboxes = self.inboxes.write().unwrap_or_else(|p| p.into_inner());
        for old in inboxes.iter().flatten() {
            let _ = old.send(Msg::Stop);
        }
        *inboxes = vec![None; shards];
    }

    fn load(&self, user: &Username) -> Result<Option<Box<Stored>>, StoreError> {
        let Some(account) = self.store.users().get(user)? else { return Ok(None) };
        let doc = self.store.presence().document(user)?;
        let contacts = self.store.presence().contacts(user)?;
        Ok(Some(Box::new(Stored { account, doc, contacts })))
    }

    /// Projects once per audience, encodes once per audience, and hands the shared bytes out.
    fn publish(&self, p: Publication) {
        let s = &p.snapshot;
        let src = Source { user: &s.user, doc: &s.doc, published: &s.published, since: s.since, custom: &s.custom };
        let mut sent = 0u64;
        for audience in p.audiences {
            let view = project(&src, audience.visibility);
            let event = Event::Presence { presence: view.clone() }.shared();
            for to in audience.to {
                match to {
                    Recipient::Devices(u) => sent += self.outbox.to_user(&u, None, &event) as u64,
                    Recipient::Endpoint { user, endpoint } => {
                        sent += u64::from(self.outbox.to_endpoint(&user, endpoint, &event))
                    }
                    Recipient::Follower(f) => {
                        if let Some(outbox) = self.federation.get() {
                            let _ = outbox.send(Outgoing { from: p.target.clone(), to: f, view: view.clone() });
                        }
                    }
                }
            }
        }
        self.metrics.presence_published.inc();
        self.metrics.presence_notifications.inc_by(sent);
    }
}

/// Starts `engines.len()` shard threads; returns their inboxes.
pub(super) fn spawn(engines: Vec<Engine>, world: &Arc<World>) -> std::io::Result<Vec<Option<mpsc::Sender<Msg>>>> {
    let mut inboxes = Vec::with_capacity(engines.len());
    for (i, engine) in engines.into_iter().enumerate() {
        let (tx, rx) = mpsc::channel();
        let world = world.clone();
        std::thread::Builder::new().name(format!("presence-{i}")).spawn(move || run(engine, rx, &world))?;
        inboxes.push(Some(tx));
    }
    Ok(inboxes)
}

/// A shard's loop: the next message, or a tick when the engine's wake time comes (ticks are
/// not starved by a busy inbox: a due tick goes first).
fn run(mut engine: Engine, rx: mpsc::Receiver<Msg>, world: &World) {
    let mut waiting: HashMap<Req, oneshot::Sender<Reply>> = HashMap::new();
    let mut wake: Option<Millis> = None;
    loop {
        let msg = match wake {
            None => rx.recv().ok(),
            Some(at) => match at.checked_sub(now_ms()).filter(|d| *d > 0) {
                None => Some(Msg::Input(Box::new(Input::Tick), None)),
                Some(wait) => match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => Some(Msg::Input(Box::new(Input::Tick), None)),
                    Err(RecvTimeoutError::Disconnected) => None,
                },
            },
        };
        let Some(Msg::Input(input, reply)) = msg else { break };
        if let (Some(req), Some(tx)) = (input.req(), reply) {
            waiting.insert(req, tx);
        }
        let mut failed: Option<StoreError> = None;
        let mut pending: Option<Pending> = None;
        let mut queue = VecDeque::from([*input]);
        while let Some(input) = queue.pop_front() {
            for effect in engine.apply(input, now_ms()) {
                match effect {
                    Effect::Load { user } => {
                        let result = world.load(&user).map_err(|e| {
                            tracing::error!(user = %user, error = %e, "loading presence data");
                            e.to_string()
                        });
                        queue.push_back(Input::Loaded { user, result });
                    }
                    // Written here, committed (group commits) by the caller before it answers.
                    Effect::SaveDocument { user, doc } => match world.store.presence().put_document(&user, &doc) {
                        Ok(p) => pending = Some(p),
                        Err(e) => {
                            tracing::error!(user = %user, error = %e, "saving a presence document");
                            failed = Some(e);
                        }
                    },
                    Effect::SaveContacts { user, list } => match world.store.presence().put_contacts(&user, &list) {
                        Ok(p) => pending = Some(p),
                        Err(e) => {
                            tracing::error!(user = %user, error = %e, "saving a contact list");
                            failed = Some(e);
                        }
                    },
                    Effect::Publish(p) => world.publish(p),
                    Effect::PublishRemote { remote, info, since, to } => {
                        let view = remote_view(&remote, info.as_ref(), since);
                        let event = Event::Presence { presence: view }.shared();
                        let sent: usize = to.iter().map(|w| world.outbox.to_user(w, None, &event)).sum();
                        world.metrics.presence_notifications.inc_by(sent as u64);
                    }
                    Effect::Derive(request) => {
                        let _ = world.derive.send(request);
                    }
                    Effect::Send(input) => world.send(input, None),
                    Effect::Wake(at) => wake = at,
                    Effect::Reply { req, answer } => {
                        if let Some(tx) = waiting.remove(&req) {
                            let _ = tx.send(Reply { answer, failed: failed.take(), pending: pending.take() });
                        }
                    }
                }
            }
        }
    }
}

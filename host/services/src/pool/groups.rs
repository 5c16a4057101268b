//! The presence engine's user groups in a pool: which node runs which group, and how inputs
//! reach it.
//!
//! The pool's users are split into `groups` (by the same hash as the shards of one node); each
//! group is one engine, run by the node holding the group's lease (`presence_leases` bucket,
//! key `g<N>`). Every node runs the lease loop: it renews what it holds, takes free groups
//! while it holds fewer than its share (all groups over the live nodes, rounded up), and gives
//! one up when it holds more than its share plus one (so a node joining gets work). An input
//! for a user of a group run elsewhere is published on the group's subject
//! (`halo.<pool>.presence.g.<N>`), which only its owner subscribes to, in order from one task;
//! a question (an input with a reply) carries a reply subject and its answer comes back there.
//! A question meeting no owner (the group is moving) is asked again until four times
//! `lease_ttl` has passed.
//!
//! A node taking a group starts a fresh engine for it, subscribes to its subject, then asks
//! every node (`halo.<pool>.presence.rebuild`) to replay what their devices told the group:
//! each node sends a connect (and a machine state) per device of the group's users, and tells
//! its own engines to send again which of the group's users their online users watch
//! ([`Input::Rewatch`]). Documents and contact lists are loaded from the shared store as
//! users are needed, as on any node. What is lost when a group moves: ad-hoc subscriptions
//! (clients renew them) and a lingering offline grace.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use halo_core::presence::engine::{Answer, Input, Refusal};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::lease::{Held, Leases};
use super::{Pool, decode, encode};
use crate::presence::PresenceService;
use crate::presence::shards::{Forward, Reply, World};

#[derive(Serialize, Deserialize)]
struct Answered {
    answer: Answer,
}

#[derive(Serialize, Deserialize)]
struct Rebuild {
    group: usize,
    groups: usize,
}

struct Out {
    group: usize,
    input: Input,
    reply: Option<oneshot::Sender<Reply>>,
}

struct Waiting {
    tx: oneshot::Sender<Reply>,
    subject: String,
    payload: bytes::Bytes,
    since: Instant,
}

struct Owned {
    held: Held,
    serve: JoinHandle<()>,
}

/// This node's side of the presence groups.
pub struct Groups {
    pool: Arc<Pool>,
    presence: std::sync::Weak<PresenceService>,
    world: Arc<World>,
    groups: usize,
    out: mpsc::UnboundedSender<Out>,
    waiting: Mutex<HashMap<u64, Waiting>>,
    next: AtomicU64,
    owned: tokio::sync::Mutex<HashMap<usize, Owned>>,
    /// Groups owned, for `owns` without the async lock.
    owned_now: Mutex<Vec<usize>>,
    leases: Leases,
    /// Rounds each free group was seen free in.
    free_seen: Mutex<HashMap<usize, u32>>,
}

impl Forward for Groups {
    fn forward(&self, group: usize, input: Input, reply: Option<oneshot::Sender<Reply>>) {
        let _ = self.out.send(Out { group, input, reply });
    }
}

fn unavailable(why: String) -> Reply {
    Reply { answer: Answer::Refused(Refusal::Unavailable(why)), failed: None, pending: None }
}

impl Groups {
    /// Turns `presence` into pool groups and starts the lease loop, the forwarder and the
    /// rebuild listener.
    pub(crate) async fn start(pool: Arc<Pool>, presence: Arc<PresenceService>) -> anyhow::Result<Arc<Self>> {
        let groups = pool.settings().groups.max(1);
        let world = presence.world().clone();
        world.reshard(groups);
        let leases = Leases::open(pool.cluster(), "presence_leases", pool.settings().lease_ttl).await?;
        let (out, rx) = mpsc::unbounded_channel();
        let this = Arc::new(Self {
            pool: pool.clone(),
            presence: Arc::downgrade(&presence),
            world: world.clone(),
            groups,
            out,
            waiting: Mutex::default(),
            next: AtomicU64::new(1),
            owned: tokio::sync::Mutex::default(),
            owned_now: Mutex::default(),
            leases,
            free_seen: Mutex::default(),
        });
        let forward: Arc<dyn Forward> = this.clone();
        let _ = world.forward.set(forward);
        let client = pool.cluster().client().clone();
        let mut replies = client.subscribe(this.reply_subject("*")).await?;
        let mut rebuilds = client.subscribe(pool.cluster().subject("presence.rebuild")).await?;
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            while let Some(msg) = replies.next().await {
                let Some(g) = weak.upgrade() else { break };
                g.on_reply(msg).await;
            }
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            while let Some(msg) = rebuilds.next().await {
                let Some(g) = weak.upgrade() else { break };
                if let Some(r) = decode::<Rebuild>(&msg.payload) {
                    g.on_rebuild(r);
                }
            }
        });
        tokio::spawn(Self::forwarder(Arc::downgrade(&this), rx));
        tokio::spawn(Self::leases_loop(Arc::downgrade(&this)));
        Ok(this)
    }

    fn reply_subject(&self, id: &str) -> String {
        self.pool.cluster().subject(&format!("presence.reply.{}.{id}", self.pool.node()))
    }

    fn group_subject(&self, group: usize) -> String {
        self.pool.cluster().subject(&format!("presence.g.{group}"))
    }

    /// The groups this node runs now.
    pub fn owned(&self) -> Vec<usize> {
        self.owned_now.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many groups the pool has.
    pub fn count(&self) -> usize {
        self.groups
    }

    /// Who runs each group, as the leases say (`None`: nobody now).
    pub async fn owners(&self) -> Vec<Option<String>> {
        let all: HashMap<String, String> = self.leases.all().await.into_iter().collect();
        (0..self.groups).map(|g| all.get(&format!("g{g}")).cloned()).collect()
    }

    /// Sends inputs for groups run elsewhere, in order.
    async fn forwarder(weak: std::sync::Weak<Self>, mut rx: mpsc::UnboundedReceiver<Out>) {
        while let Some(out) = rx.recv().await {
            let Some(g) = weak.upgrade() else { break };
            // It may have become ours meanwhile.
            let Out { group, input, reply } = out;
            if g.world.runs(group) {
                g.world.send_local(group, input, reply);
                continue;
            }
            let Some(payload) = encode(&input) else { continue };
            let subject = g.group_subject(group);
            let client = g.pool.cluster().client();
            match reply {
                None => {
                    let _ = client.publish(subject, payload).await;
                }
                Some(tx) => {
                    let id = g.next.fetch_add(1, Ordering::Relaxed);
                    let inbox = g.reply_subject(&id.to_string());
                    g.waiting().insert(
                        id,
                        Waiting { tx, subject: subject.clone(), payload: payload.clone(), since: Instant::now() },
                    );
                    let _ = client.publish_with_reply(subject, inbox, payload).await;
                }
            }
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiting>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn on_reply(self: &Arc<Self>, msg: async_nats::Message) {
        let Some(id) = msg.subject.rsplit('.').next().and_then(|s| s.parse::<u64>().ok()) else { return };
        let no_owner = msg.status == Some(async_nats::StatusCode::NO_RESPONDERS);
        if no_owner {
            // The group is moving: ask again shortly, until four times the lease's life has
            // passed (expiry, the takers' next rounds, a node still counted alive meanwhile).
            let give_up = self.pool.settings().lease_ttl * 4;
            let retry = {
                let mut waiting = self.waiting();
                match waiting.get(&id) {
                    Some(w) if w.since.elapsed() < give_up => Some((w.subject.clone(), w.payload.clone())),
                    Some(_) => {
                        if let Some(w) = waiting.remove(&id) {
                            let _ = w.tx.send(unavailable("no node runs this user's presence group".into()));
                        }
                        None
                    }
                    None => None,
                }
            };
            if let Some((subject, payload)) = retry {
                let this = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let inbox = this.reply_subject(&id.to_string());
                    let _ = this.pool.cluster().client().publish_with_reply(subject, inbox, payload).await;
                });
            }
            return;
        }
        let Some(w) = self.waiting().remove(&id) else { return };
        let reply = match decode::<Answered>(&msg.payload) {
            Some(a) => Reply { answer: a.answer, failed: None, pending: None },
            None => unavailable("an unreadable answer from the group's owner".into()),
        };
        let _ = w.tx.send(reply);
    }

    /// Serves group `group`'s subject: inputs forwarded by other nodes go to the engine; a
    /// question's answer goes back once its writes are durable.
    fn serve(self: &Arc<Self>, group: usize, mut sub: async_nats::Subscriber) -> JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(g) = weak.upgrade() else { break };
                let Some(mut input) = decode::<Input>(&msg.payload) else { continue };
                let Some(reply_to) = msg.reply.clone().filter(|_| input.req().is_some()) else {
                    g.world.send_local(group, input, None);
                    continue;
                };
                if let Some(req) = input.req_mut() {
                    *req = g.world.req();
                }
                let (tx, rx) = oneshot::channel();
                if !g.world.send_local(group, input, Some(tx)) {
                    continue;
                }
                let client = g.pool.cluster().client().clone();
                tokio::spawn(async move {
                    let answer = match rx.await {
                        Ok(reply) => match (reply.failed, reply.pending) {
                            (Some(e), _) => Answer::Refused(Refusal::Unavailable(e.to_string())),
                            (None, Some(p)) => match p.commit().await {
                                Ok(()) => reply.answer,
                                Err(e) => Answer::Refused(Refusal::Unavailable(e.to_string())),
                            },
                            (None, None) => reply.answer,
                        },
                        Err(_) => Answer::Refused(Refusal::Unavailable("the presence group moved".into())),
                    };
                    if let Some(bytes) = encode(&Answered { answer }) {
                        let _ = client.publish(reply_to, bytes).await;
                    }
                });
            }
        })
    }

    /// Another node (or this one) took `group`: replay this node's part.
    fn on_rebuild(&self, r: Rebuild) {
        if r.groups != self.groups {
            tracing::error!(theirs = r.groups, ours = self.groups, "pool nodes disagree on [cluster] groups");
            return;
        }
        self.world.send(Input::Rewatch { shard: r.group }, None);
        if let Some(presence) = self.presence.upgrade() {
            for input in presence.replay(r.group, self.groups) {
                self.world.send(input, None);
            }
        }
    }

    async fn take(self: &Arc<Self>, group: usize, held: Held) -> bool {
        let Some(presence) = self.presence.upgrade() else { return false };
        let client = self.pool.cluster().client().clone();
        let sub = match client.subscribe(self.group_subject(group)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(group, error = %e, "subscribing to a presence group");
                self.leases.release(&format!("g{group}"), held).await;
                return false;
            }
        };
        let (engine, plugins) = presence.engine(group, self.groups);
        if let Err(e) = self.world.start_shard(group, engine) {
            tracing::error!(group, error = %e, "starting a presence group");
            self.leases.release(&format!("g{group}"), held).await;
            return false;
        }
        self.world.send_local(group, plugins, None);
        // Which of the group's users remote users follow (their changes go to them).
        self.world.send_local(group, presence.remote_followers(), None);
        let serve = self.serve(group, sub);
        self.owned.lock().await.insert(group, Owned { held, serve });
        self.publish_owned().await;
        tracing::info!(group, "presence group taken");
        if let Some(bytes) = encode(&Rebuild { group, groups: self.groups }) {
            let _ = client.publish(self.pool.cluster().subject("presence.rebuild"), bytes).await;
        }
        true
    }

    async fn drop_group(&self, group: usize) {
        if let Some(o) = self.owned.lock().await.remove(&group) {
            o.serve.abort();
        }
        self.world.stop_shard(group);
        self.publish_owned().await;
        tracing::warn!(group, "presence group given up");
    }

    async fn publish_owned(&self) {
        let mut owned: Vec<usize> = self.owned.lock().await.keys().copied().collect();
        owned.sort_unstable();
        self.pool.members().set_groups(owned.clone());
        *self.owned_now.lock().unwrap_or_else(|p| p.into_inner()) = owned;
    }

    /// Renews, takes and gives up leases, every third of the lease's life.
    async fn leases_loop(weak: std::sync::Weak<Self>) {
        let every = match weak.upgrade() {
            Some(g) => g.leases.renew_every(),
            None => return,
        };
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Let the first heartbeats arrive, so a node joining a running pool knows its share.
        tokio::time::sleep(every).await;
        loop {
            tick.tick().await;
            let Some(g) = weak.upgrade() else { break };
            g.round().await;
            g.sweep();
        }
    }

    async fn round(self: &Arc<Self>) {
        // Renew.
        let mine: Vec<(usize, Held)> = self.owned.lock().await.iter().map(|(g, o)| (*g, o.held)).collect();
        for (group, mut held) in mine {
            let key = format!("g{group}");
            if self.leases.renew(&key, &mut held).await {
                if let Some(o) = self.owned.lock().await.get_mut(&group) {
                    o.held = held;
                }
            } else {
                self.drop_group(group).await;
            }
        }
        let live = self.pool.members().live().max(1);
        let share = self.groups.div_ceil(live);
        let owned = self.owned.lock().await.len();
        // Give one up when holding more than the share plus one, so a joining node gets work.
        if owned > share + 1 {
            let victim = self.owned.lock().await.iter().map(|(g, o)| (*g, o.held)).max_by_key(|(g, _)| *g);
            if let Some((group, held)) = victim {
                self.drop_group(group).await;
                self.leases.release(&format!("g{group}"), held).await;
            }
            return;
        }
        // Take free groups up to the share; a group free for two rounds is taken regardless.
        let mut owned = owned;
        for group in 0..self.groups {
            if self.owned.lock().await.contains_key(&group) {
                continue;
            }
            let key = format!("g{group}");
            match self.leases.holder(&key).await {
                Ok(None) => {}
                _ => continue,
            }
            if owned >= share && !self.free_long(group) {
                continue;
            }
            if let Some(held) = self.leases.take(&key).await
                && self.take(group, held).await
            {
                owned += 1;
            }
        }
    }

    /// Whether `group` was seen free in the two previous rounds too (then anyone takes it).
    fn free_long(&self, group: usize) -> bool {
        let mut seen = self.free_seen.lock().unwrap_or_else(|p| p.into_inner());
        let n = seen.entry(group).or_insert(0);
        *n += 1;
        if *n > 2 {
            seen.remove(&group);
            true
        } else {
            false
        }
    }

    /// Fails questions that waited too long for an answer.
    fn sweep(&self) {
        let limit = self.pool.settings().lease_ttl * 5;
        let mut waiting = self.waiting();
        let old: Vec<u64> = waiting.iter().filter(|(_, w)| w.since.elapsed() > limit).map(|(id, _)| *id).collect();
        for id in old {
            if let Some(w) = waiting.remove(&id) {
                let _ = w.tx.send(unavailable("the presence group's owner did not answer".into()));
            }
        }
    }
}

//! The presence engine, sans I/O: [`Engine::apply`] takes an [`Input`] and the time, and
//! returns the [`Effect`]s to carry out. It reads no clock and touches no store, socket or
//! plugin; its driver does, and feeds the answers back as inputs.
//!
//! One engine is one shard: it holds the users with [`shard_of`]`(user, shards) == shard`:
//! - per user: account, presence document, contact list, connected devices and their machine
//!   states, the last device lingering after a disconnect, the published state and since when;
//! - per target user: the watcher index (online users with the target in their contacts), the
//!   ad-hoc endpoint subscriptions to the target, and the target's remote followers;
//! - per subscribing endpoint: its subscriptions, for the per-endpoint limit;
//! - per remote user: what their server last said.
//!
//! A fact about a user of another shard crosses as an input ([`Effect::Send`]): when U comes
//! online, U's shard sends "U watches C" to C's shard, so a change of C is published by C's
//! shard alone. Nothing ever needs two shards at once.
//!
//! A change marks its user dirty; `coalesce_ms` after the first change the engine asks for a
//! [`Input::Tick`] ([`Effect::Wake`]), and every dirty user is published once
//! ([`Effect::Publish`]), projected once per visibility. Timers (away after inactivity, end
//! of the offline grace, end of a manual or calendar state, plugin ticks) ride the same wake.
//!
//! With presence plugins, each recomputation asks for a derivation ([`Effect::Derive`]); the
//! built-in state stands until the answer ([`Input::Derived`]) comes back, and an answer to
//! anything but the latest request is ignored. When the built-in state did not change, the
//! last derived state stands instead, so a plugin tick does not flap.
//!
//! Data the engine does not hold is asked for ([`Effect::Load`]); the input that needed it
//! waits and is replayed when [`Input::Loaded`] arrives.

mod effect;
mod entry;
mod input;
mod publish;
mod shard;
mod users;
mod watch;

#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

pub use effect::{Answer, Audience, DeriveRequest, Effect, Publication, Recipient, Refusal, Seen, Snapshot};
use entry::Entry;
pub use input::{ContactEdit, DocPatch, Input, Req, Stored, Viewer};
pub use shard::shard_of;

use crate::federation::PresenceInfo;
use crate::presence::{CustomState, Timers};
use crate::{Millis, Username};

/// How an engine behaves.
#[derive(Debug, Clone)]
pub struct Config {
    /// Away after inactivity, offline grace.
    pub timers: Timers,
    /// Changes within this interval are published once, ms.
    pub coalesce_ms: u64,
    /// Most contacts per user.
    pub max_contacts: usize,
    /// Most ad-hoc subscriptions per endpoint.
    pub max_subscriptions: usize,
    /// Longest life of an ad-hoc subscription, ms.
    pub subscription_ttl_ms: u64,
    /// The configured custom states (the catalog until [`Input::Plugins`] says otherwise).
    pub custom_states: Vec<CustomState>,
    /// This engine's shard.
    pub shard: usize,
    /// How many shards there are.
    pub shards: usize,
}

impl Default for Config {
    /// The `[presence]` defaults: away after 5 min, 10 s grace, 20 ms coalescing, 1000
    /// contacts, 200 subscriptions per endpoint for at most an hour; one shard.
    fn default() -> Self {
        Self {
            timers: Timers { away_after_ms: 300_000, offline_grace_ms: 10_000 },
            coalesce_ms: 20,
            max_contacts: 1000,
            max_subscriptions: 200,
            subscription_ttl_ms: 3_600_000,
            custom_states: Vec::new(),
            shard: 0,
            shards: 1,
        }
    }
}

/// One shard of the presence engine.
pub struct Engine {
    cfg: Config,
    catalog: Arc<Vec<CustomState>>,
    /// Whether presence plugins derive states.
    derive: bool,
    /// Plugin tick: every, next.
    plugin_tick: Option<(u64, Millis)>,
    entries: HashMap<Username, Entry>,
    /// Target → online users with the target in their contacts.
    watchers: HashMap<Username, BTreeSet<Username>>,
    /// Target → endpoint → (its user, expiry).
    adhoc: HashMap<Username, BTreeMap<u64, (Username, Millis)>>,
    /// Endpoint of one of this shard's users → targets it follows and until when.
    subscriptions: HashMap<u64, BTreeMap<Username, Millis>>,
    /// Local user → remote followers.
    followers: HashMap<Username, BTreeSet<Username>>,
    /// Remote user → what their server said, and when.
    remote: HashMap<Username, (PresenceInfo, Millis)>,
    dirty: BTreeSet<Username>,
    flush_at: Option<Millis>,
    deadlines: BinaryHeap<Reverse<(Millis, Username)>>,
    /// The last [`Effect::Wake`] asked for.
    wake: Option<Millis>,
    /// Users asked for with [`Effect::Load`].
    loading: HashSet<Username>,
    /// Inputs waiting for a user's data.
    parked: HashMap<Username, Vec<Input>>,
    /// Users whose load just failed, while their parked inputs replay.
    absent: HashMap<Username, Refusal>,
    next_seq: u64,
    out: Vec<Effect>,
}

impl Engine {
    /// An engine for shard `cfg.shard` of `cfg.shards`, holding nobody yet.
    pub fn new(cfg: Config) -> Self {
        let catalog = Arc::new(cfg.custom_states.clone());
        Self {
            cfg,
            catalog,
            derive: false,
            plugin_tick: None,
            entries: HashMap::new(),
            watchers: HashMap::new(),
            adhoc: HashMap::new(),
            subscriptions: HashMap::new(),
            followers: HashMap::new(),
            remote: HashMap::new(),
            dirty: BTreeSet::new(),
            flush_at: None,
            deadlines: BinaryHeap::new(),
            wake: None,
            loading: HashSet::new(),
            parked: HashMap::new(),
            absent: HashMap::new(),
            next_seq: 0,
            out: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Whether this shard owns `user`.
    pub fn owns(&self, user: &Username) -> bool {
        shard_of(user, self.cfg.shards) == self.cfg.shard
    }

    /// How many users this shard holds in memory.
    pub fn held(&self) -> usize {
        self.entries.len()
    }

    /// Handles `input` at `now`; returns what to do, in order. Saves come before the reply
    /// they lead to.
    pub fn apply(&mut self, input: Input, now: Millis) -> Vec<Effect> {
        self.handle(input, now);
        self.rearm();
        std::mem::take(&mut self.out)
    }

    fn emit(&mut self, e: Effect) {
        self.out.push(e);
    }

    fn reply(&mut self, req: Req, answer: Answer) {
        self.emit(Effect::Reply { req, answer });
    }

    /// Handles an input for another user: here if this shard owns them, else sent on.
    fn send(&mut self, input: Input, now: Millis) {
        match input.shard(self.cfg.shards) {
            Some(s) if s != self.cfg.shard => self.emit(Effect::Send(input)),
            _ => self.handle(input, now),
        }
    }

    fn handle(&mut self, input: Input, now: Millis) {
        let missing: Vec<Username> = input
            .needs()
            .into_iter()
            .filter(|u| !self.entries.contains_key(*u) && !self.absent.contains_key(*u))
            .cloned()
            .collect();
        if let Some(first) = missing.first() {
            for u in &missing {
                if self.loading.insert(u.clone()) {
                    self.emit(Effect::Load { user: u.clone() });
                }
            }
            self.parked.entry(first.clone()).or_default().push(input);
            return;
        }
        if let Some(refusal) = self.refusal(&input) {
            if let Some(req) = input.req() {
                self.reply(req, Answer::Refused(refusal));
            }
            return;
        }
        match input {
            Input::Connect { user, endpoint, req } => self.connect(user, endpoint, req, now),
            Input::Disconnect { user, endpoint } => self.disconnect(user, endpoint, now),
            Input::Machine { user, endpoint, state, req } => self.machine(user, endpoint, state, req, now),
            Input::Update { user, patch, req } => self.update(user, patch, req, now),
            Input::EditContacts { owner, edit, req } => self.edit_contacts(owner, edit, req, now),
            Input::AccountChanged { user } => self.account_changed(user),
            Input::Subscribe { user, endpoint, targets, ttl_ms, req } => {
                self.subscribe(user, endpoint, targets, ttl_ms, req, now)
            }
            Input::Unsubscribe { user, endpoint, targets } => self.unsubscribe(user, endpoint, targets, now),
            Input::Look { targets, viewer, req } => self.look(targets, viewer, req),
            Input::Contacts { owner, req } => self.contacts(owner, req),
            Input::Reach { from, to, req } => self.reach(from, to, req),
            Input::RemoteFollowers(all) => self.remote_followers(all),
            Input::RemoteFollower { local, remote, on } => self.remote_follower(local, remote, on),
            Input::RemotePresence { remote, info } => self.remote_presence(remote, info, now),
            Input::Plugins { catalog, derive, tick_ms } => self.plugins(catalog, derive, tick_ms, now),
            Input::Derived { user, seq, result } => self.derived(user, seq, result, now),
            Input::Loaded { user, result } => self.loaded(user, result, now),
            Input::Watch { target, watcher, on } => self.watch(target, watcher, on),
            Input::Greet { target, watcher } => self.greet(target, watcher),
            Input::Adhoc { target, endpoint, subscriber, expires } => self.adhoc(target, endpoint, subscriber, expires),
            Input::Rewatch { shard } => self.rewatch(shard, now),
            Input::Tick => self.tick(now),
        }
    }

    /// Why `input` cannot be handled: one of the users it needs could not be loaded. A look
    /// shows a missing account as [`Seen::Missing`] instead.
    fn refusal(&self, input: &Input) -> Option<Refusal> {
        let look = matches!(input, Input::Look { .. });
        input
            .needs()
            .into_iter()
            .filter_map(|u| self.absent.get(u))
            .find(|r| !look || !matches!(r, Refusal::NoSuchUser(_)))
            .cloned()
    }

    fn loaded(&mut self, user: Username, result: Result<Option<Box<Stored>>, String>, now: Millis) {
        self.loading.remove(&user);
        match result {
            Ok(Some(stored)) => match self.entries.get_mut(&user) {
                Some(entry) => {
                    if entry.snap.user != stored.account {
                        entry.snap_mut().user = stored.account;
                        self.mark_dirty(&user, now);
                    }
                }
                None => {
                    self.entries.insert(user.clone(), Entry::new(*stored, self.catalog.clone()));
                }
            },
            Ok(None) => {
                self.absent.insert(user.clone(), Refusal::NoSuchUser(user.clone()));
            }
            Err(e) => {
                self.absent.insert(user.clone(), Refusal::Unavailable(e));
            }
        }
        for input in self.parked.remove(&user).unwrap_or_default() {
            self.handle(input, now);
        }
        self.absent.remove(&user);
    }

    /// Asks for the next tick if it moved.
    fn rearm(&mut self) {
        while let Some(Reverse((at, user))) = self.deadlines.peek() {
            if self.entries.get(user).is_some_and(|e| e.deadline == Some(*at)) {
                break;
            }
            self.deadlines.pop();
        }
        let want = [self.flush_at, self.deadlines.peek().map(|Reverse((at, _))| *at), self.plugin_tick.map(|(_, n)| n)]
            .into_iter()
            .flatten()
            .min();
        if want != self.wake {
            self.wake = want;
            self.emit(Effect::Wake(want));
        }
    }
}

//! The presence service: aggregates each user's sources, keeps who watches whom, and fans
//! changes out, through the sans-IO engine of `halo_core::presence::engine`.
//!
//! The users are split into `shards` (by a hash of the name); each shard is an engine on its
//! own thread with an inbox ([`shards`]). A method here sends an input to the shard of the user
//! it concerns and awaits the answer; facts about users of other shards cross between shards as
//! inputs, so no lock is shared and a change for one user never waits for another shard. The
//! presence plugins run on their own thread ([`derive`]): a shard asks, publishes the built-in
//! state meanwhile, and takes the answer when it comes.
//!
//! A publication projects the state once per visibility (owner, each access level, privacy
//! mode) into one shared event per visibility, and hands it to every recipient through the
//! [`Outbox`], which encodes it once for all of their sockets. Store writes happen on the shard's thread without waiting for the
//! disk; the caller commits them (group commits) before it answers.

mod derive;
mod profile;
mod remote;
pub(crate) mod shards;
#[cfg(test)]
mod tests;
mod view;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use halo_core::contacts::{ContactError, ContactList};
use halo_core::presence::engine::{self, Answer, Config, ContactEdit, DocPatch, Engine, Input, Refusal, Req, Seen};
use halo_core::presence::{Calendar, CustomState, MachineState, Manual, Phone, StateChoice, Timers, Visibility};
use halo_core::{Millis, Username};
use halo_plugin_host::Plugin;
use halo_store::Store;
use serde::Deserialize;

pub use profile::{MyPresence, Picture, PresencePatch};
pub use remote::Outgoing;
pub use view::{MeetingView, PresenceView, presence_info};
use view::{Source, project, remote_view};

use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::outbox::{Event, Outbox};

/// Presence settings (`[presence]` in `halo.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceSettings {
    /// An Inactive device turns Away this long later (5 min).
    #[serde(with = "humantime_serde")]
    pub away_after: Duration,
    /// Offline only this long after the last device left (10 s), so reconnects do not flap.
    #[serde(with = "humantime_serde")]
    pub offline_grace: Duration,
    /// Changes within this interval are published once (20 ms).
    #[serde(with = "humantime_serde")]
    pub coalesce: Duration,
    /// Most contacts per user (1000).
    pub max_contacts: usize,
    /// Most ad-hoc subscriptions per endpoint (200).
    pub max_subscriptions: usize,
    /// Longest life of an ad-hoc subscription (1 h).
    #[serde(with = "humantime_serde")]
    pub subscription_ttl: Duration,
    /// Largest picture, bytes (256 KiB).
    pub max_picture_bytes: usize,
    /// States the organisation adds to the built-in ones.
    pub custom_states: Vec<CustomState>,
    /// Presence shards, each a thread owning a share of the users (0: one per CPU core).
    pub shards: usize,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            away_after: Duration::from_secs(300),
            offline_grace: Duration::from_secs(10),
            coalesce: Duration::from_millis(20),
            max_contacts: 1000,
            max_subscriptions: 200,
            subscription_ttl: Duration::from_secs(3600),
            max_picture_bytes: 256 * 1024,
            custom_states: Vec::new(),
            shards: 0,
        }
    }
}

/// Who asks to see presence.
#[derive(Debug, Clone, Copy)]
pub enum Viewer<'a> {
    /// A signed-in user.
    User(&'a Username),
    /// An application with an app token (sees what colleagues see).
    App,
    /// Nobody signed in (sees what External sees; nothing of availability in privacy mode).
    Anonymous,
}

impl Viewer<'_> {
    fn owned(self) -> engine::Viewer {
        match self {
            Viewer::User(u) => engine::Viewer::User(u.clone()),
            Viewer::App => engine::Viewer::App,
            Viewer::Anonymous => engine::Viewer::Anonymous,
        }
    }
}

/// Contacts per snapshot event.
const SNAPSHOT_CHUNK: usize = 250;

/// The presence service.
pub struct PresenceService {
    store: Store,
    world: Arc<shards::World>,
    settings: PresenceSettings,
    plugins: Arc<RwLock<Arc<derive::Plugins>>>,
    /// The engine configuration (shard and shard count set per engine).
    config: Config,
    /// Pool members: this node's devices and their last machine state, replayed to a group's
    /// new owner when it moves.
    devices: std::sync::Mutex<std::collections::HashMap<u64, (Username, MachineState)>>,
    /// Pool members: the group manager.
    pool: std::sync::OnceLock<Arc<crate::pool::groups::Groups>>,
}

fn contact_error(e: ContactError) -> ServiceError {
    match e {
        ContactError::TooMany(_) | ContactError::AlreadyAContact(_) => ServiceError::Conflict(e.to_string()),
        ContactError::NotAContact(_) | ContactError::NoGroup(_) => ServiceError::NotFound(e.to_string()),
        ContactError::DefaultGroup | ContactError::BadGroupName | ContactError::Oneself => {
            ServiceError::Invalid(e.to_string())
        }
    }
}

fn refused(r: Refusal) -> ServiceError {
    match r {
        Refusal::NoSuchUser(u) => ServiceError::NotFound(format!("no user named {:?}", u.as_str())),
        Refusal::Unavailable(why) => ServiceError::StorageUnavailable(why),
        Refusal::Contact(e) => contact_error(e),
        Refusal::UntilInPast | Refusal::TooManySubscriptions { .. } => ServiceError::Invalid(r.to_string()),
        Refusal::Blocked(u) => ServiceError::Blocked(u.to_string()),
        Refusal::DoNotDisturb(u) => ServiceError::DoNotDisturb(u.to_string()),
    }
}

fn unexpected(a: &Answer) -> ServiceError {
    ServiceError::Internal(format!("presence answered out of turn: {a:?}"))
}

/// How a [`Seen`] looks on the wire (`None` for no such account).
fn seen_view(seen: &Seen) -> Option<PresenceView> {
    match seen {
        Seen::Local { snapshot: s, visibility } => {
            let src = Source { user: &s.user, doc: &s.doc, published: &s.published, since: s.since, custom: &s.custom };
            Some(project(&src, *visibility))
        }
        Seen::Remote { user, info, since } => Some(remote_view(user, info.as_ref(), *since)),
        Seen::Missing(_) => None,
    }
}

impl PresenceService {
    /// The service: starts its shard threads and its plugin thread.
    pub fn new(store: Store, outbox: Arc<dyn Outbox>, metrics: Arc<Metrics>, settings: PresenceSettings) -> Self {
        let shards = match settings.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let (derive_tx, derive_rx) = std::sync::mpsc::channel();
        let world = Arc::new(shards::World {
            store: store.clone(),
            outbox,
            metrics: metrics.clone(),
            inboxes: RwLock::new(Vec::new()),
            derive: derive_tx,
            federation: std::sync::OnceLock::new(),
            forward: std::sync::OnceLock::new(),
            next_req: AtomicU64::new(1),
        });
        let cfg = Config {
            timers: Timers {
                away_after_ms: settings.away_after.as_millis() as u64,
                offline_grace_ms: settings.offline_grace.as_millis() as u64,
            },
            coalesce_ms: settings.coalesce.as_millis() as u64,
            max_contacts: settings.max_contacts,
            max_subscriptions: settings.max_subscriptions,
            subscription_ttl_ms: settings.subscription_ttl.as_millis() as u64,
            custom_states: settings.custom_states.clone(),
            shard: 0,
            shards,
        };
        let engines = (0..shards).map(|shard| Engine::new(Config { shard, ..cfg.clone() })).collect();
        match shards::spawn(engines, &world) {
            Ok(inboxes) => *world.inboxes.write().unwrap_or_else(|p| p.into_inner()) = inboxes,
            Err(e) => tracing::error!(error = %e, "starting presence shards"),
        }
        let plugins = derive::Plugins { catalog: Arc::new(settings.custom_states.clone()), ..Default::default() };
        let plugins = Arc::new(RwLock::new(Arc::new(plugins)));
        if let Err(e) = derive::spawn(plugins.clone(), metrics, Arc::downgrade(&world), derive_rx) {
            tracing::error!(error = %e, "starting the presence plugin thread");
        }
        Self {
            store,
            world,
            settings,
            plugins,
            config: cfg,
            devices: std::sync::Mutex::default(),
            pool: std::sync::OnceLock::new(),
        }
    }

    /// How many shards there are (in a pool: the pool's user groups, wherever they run).
    pub fn shards(&self) -> usize {
        self.world.shards()
    }

    /// Makes this node's presence part of `pool`: the shards become the pool's user groups,
    /// each run by the node holding its lease (see `crate::pool::groups`). Call once, before
    /// any device connects.
    pub async fn join_pool(self: &Arc<Self>, pool: Arc<crate::pool::Pool>) -> anyhow::Result<()> {
        let groups = crate::pool::groups::Groups::start(pool, self.clone()).await?;
        let _ = self.pool.set(groups);
        Ok(())
    }

    /// The pool's group manager, for pool members.
    pub fn groups(&self) -> Option<&Arc<crate::pool::groups::Groups>> {
        self.pool.get()
    }

    pub(crate) fn world(&self) -> &Arc<shards::World> {
        &self.world
    }

    /// A fresh engine for shard `shard` of `shards`, with the current plugins' catalog.
    pub(crate) fn engine(&self, shard: usize, shards: usize) -> (Engine, Input) {
        let engine = Engine::new(Config { shard, shards, ..self.config.clone() });
        let plugins = self.plugins();
        let tick_ms = plugins.list.iter().filter_map(|p| p.tick_seconds().ok().flatten()).min();
        let input = Input::Plugins {
            catalog: plugins.catalog.clone(),
            derive: !plugins.list.is_empty(),
            tick_ms: tick_ms.map(|t| t.as_millis() as u64),
        };
        (engine, input)
    }

    /// The inputs that rebuild, on its new owner, what this node's devices told group `shard`
    /// of `shards`: a connect per device of its users, and its machine state if not Active.
    pub(crate) fn replay(&self, shard: usize, shards: usize) -> Vec<Input> {
        let devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let mut inputs = Vec::new();
        for (endpoint, (user, state)) in devices.iter() {
            if engine::shard_of(user, shards) != shard {
                continue;
            }
            inputs.push(Input::Connect { user: user.clone(), endpoint: *endpoint, req: self.req() });
            if *state != MachineState::Active {
                inputs.push(Input::Machine { user: user.clone(), endpoint: *endpoint, state: *state, req: self.req() });
            }
        }
        inputs
    }

    fn track(&self, endpoint: u64, device: Option<(Username, MachineState)>) {
        if self.pool.get().is_none() {
            return;
        }
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        match device {
            Some(d) => {
                devices.insert(endpoint, d);
            }
            None => {
                devices.remove(&endpoint);
            }
        }
    }

    fn plugins(&self) -> Arc<derive::Plugins> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The custom states: the configured ones, then those of enabled plugins.
    pub fn custom_states(&self) -> Arc<Vec<CustomState>> {
        self.plugins().catalog.clone()
    }

    /// Replaces the enabled presence plugins (after an install, upgrade, config change, enable
    /// or disable): rebuilds the state catalog and re-derives every loaded user.
    pub fn set_plugins(&self, list: Vec<Arc<Plugin>>) {
        let mut catalog = self.settings.custom_states.clone();
        let mut tick: Option<Duration> = None;
        for p in &list {
            match p.states() {
                Ok(states) => {
                    for s in states {
                        if catalog.iter().any(|c| c.id == s.id) {
                            tracing::warn!(plugin = %p.manifest().name, state = %s.id, "state id taken; skipped");
                        } else {
                            catalog.push(s);
                        }
                    }
                }
                Err(e) => tracing::warn!(plugin = %p.manifest().name, error = %e, "plugin states unavailable"),
            }
            if let Ok(Some(t)) = p.tick_seconds() {
                tick = Some(tick.map_or(t, |old| old.min(t)));
            }
        }
        let derive = !list.is_empty();
        let catalog = Arc::new(catalog);
        let changed = {
            let mut w = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            let changed = *w.catalog != *catalog;
            *w = Arc::new(derive::Plugins { list, catalog: catalog.clone() });
            changed
        };
        if changed {
            let states = catalog.as_ref().clone();
            self.world.outbox.to_all(&Event::PresenceStates { states }.shared());
        }
        let tick_ms = tick.map(|t| t.as_millis() as u64);
        self.world.send(Input::Plugins { catalog, derive, tick_ms }, None);
    }

    /// Settings.
    pub fn settings(&self) -> &PresenceSettings {
        &self.settings
    }

    fn req(&self) -> Req {
        self.world.req()
    }

    /// Sends an input to its shard and awaits the answer; refusals and failed writes are errors.
    async fn ask(&self, input: Input) -> Result<Answer, ServiceError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.world.send(input, Some(tx));
        let reply = rx.await.map_err(|_| ServiceError::Internal("the presence shard stopped".into()))?;
        if let Some(e) = reply.failed {
            return Err(e.into());
        }
        if let Some(p) = reply.pending {
            p.commit().await?;
        }
        match reply.answer {
            Answer::Refused(r) => Err(refused(r)),
            a => Ok(a),
        }
    }

    /// How `targets` look to `viewer`, in order (missing accounts left out): one question per
    /// shard, asked at once.
    async fn look(&self, targets: &[Username], viewer: Viewer<'_>) -> Result<Vec<PresenceView>, ServiceError> {
        let shards = self.shards();
        let mut by_shard: Vec<Vec<(usize, Username)>> = vec![Vec::new(); shards];
        for (i, t) in targets.iter().enumerate() {
            by_shard[engine::shard_of(t, shards)].push((i, t.clone()));
        }
        let mut asks = Vec::new();
        for group in by_shard.into_iter().filter(|g| !g.is_empty()) {
            let (order, targets): (Vec<usize>, Vec<Username>) = group.into_iter().unzip();
            let (tx, rx) = tokio::sync::oneshot::channel();
            self.world.send(Input::Look { targets, viewer: viewer.owned(), req: self.req() }, Some(tx));
            asks.push((order, rx));
        }
        let mut views: Vec<Option<PresenceView>> = vec![None; targets.len()];
        for (order, rx) in asks {
            let reply = rx.await.map_err(|_| ServiceError::Internal("the presence shard stopped".into()))?;
            match reply.answer {
                Answer::Views(seen) => {
                    for (i, s) in order.into_iter().zip(seen.iter()) {
                        views[i] = seen_view(s);
                    }
                }
                Answer::Refused(r) => return Err(refused(r)),
                other => return Err(unexpected(&other)),
            }
        }
        Ok(views.into_iter().flatten().collect())
    }

    /// A device of `user` connected: it counts as Active; the user starts watching their
    /// contacts. Returns the snapshot events to send after `hello`.
    pub async fn connect(&self, user: &Username, endpoint: u64) -> Result<Vec<Event>, ServiceError> {
        self.track(endpoint, Some((user.clone(), MachineState::Active)));
        let answer = self.ask(Input::Connect { user: user.clone(), endpoint, req: self.req() }).await?;
        let Answer::Connected { me, contacts } = answer else { return Err(unexpected(&answer)) };
        let views = self.look(&contacts, Viewer::User(user)).await?;
        let mut first_chunk = seen_view(&me);
        let mut frames = Vec::new();
        let mut chunks = views.chunks(SNAPSHOT_CHUNK).peekable();
        if chunks.peek().is_none() {
            frames.push(Event::PresenceSnapshot { contacts: Vec::new(), me: first_chunk.take(), last: true });
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            frames.push(Event::PresenceSnapshot { contacts: chunk.to_vec(), me: first_chunk.take(), last });
        }
        Ok(frames)
    }

    /// A device of `user` disconnected.
    pub fn disconnect(&self, user: &Username, endpoint: u64) {
        self.track(endpoint, None);
        self.world.send(Input::Disconnect { user: user.clone(), endpoint }, None);
    }

    async fn own(&self, input: Input) -> Result<PresenceView, ServiceError> {
        match self.ask(input).await? {
            Answer::Seen(seen) => seen_view(&seen).ok_or_else(|| ServiceError::Internal("no own view".into())),
            other => Err(unexpected(&other)),
        }
    }

    /// How `target` looks to `viewer`, as the engine answers.
    async fn seen(&self, target: &Username, viewer: Viewer<'_>) -> Result<Seen, ServiceError> {
        let input = Input::Look { targets: vec![target.clone()], viewer: viewer.owned(), req: self.req() };
        match self.ask(input).await? {
            Answer::Views(mut seen) if seen.len() == 1 => match seen.remove(0) {
                Seen::Missing(_) => Err(ServiceError::NotFound(format!("no user named {:?}", target.as_str()))),
                s => Ok(s),
            },
            other => Err(unexpected(&other)),
        }
    }

    /// `user`'s own presence, with their document.
    async fn own_seen(&self, user: &Username) -> Result<Seen, ServiceError> {
        self.seen(user, Viewer::User(user)).await
    }

    /// Applies `patch` and answers the owner's presence with their document.
    async fn update_seen(&self, user: &Username, patch: DocPatch) -> Result<Seen, ServiceError> {
        match self.ask(Input::Update { user: user.clone(), patch, req: self.req() }).await? {
            Answer::Seen(seen) => Ok(seen),
            other => Err(unexpected(&other)),
        }
    }

    /// A device reports its machine state.
    pub async fn machine(
        &self,
        user: &Username,
        endpoint: u64,
        state: MachineState,
    ) -> Result<PresenceView, ServiceError> {
        if let Some(d) = self.devices.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&endpoint) {
            d.1 = state;
        }
        self.own(Input::Machine { user: user.clone(), endpoint, state, req: self.req() }).await
    }

    /// Changes `user`'s stored document (fields validated by the caller), republishes, and
    /// returns the owner's view once the document is durable.
    pub async fn update(&self, user: &Username, patch: DocPatch) -> Result<PresenceView, ServiceError> {
        self.own(Input::Update { user: user.clone(), patch, req: self.req() }).await
    }

    /// Sets or clears the manual state.
    pub async fn set_manual(&self, user: &Username, manual: Option<Manual>) -> Result<PresenceView, ServiceError> {
        self.update(user, DocPatch { manual: Some(manual), ..DocPatch::default() }).await
    }

    /// Sets or clears calendar input.
    pub async fn set_calendar(
        &self,
        user: &Username,
        calendar: Option<Calendar>,
    ) -> Result<PresenceView, ServiceError> {
        self.update(user, DocPatch { calendar: Some(calendar), ..DocPatch::default() }).await
    }

    /// Sets or clears phone input.
    pub async fn set_phone(&self, user: &Username, phone: Option<Phone>) -> Result<PresenceView, ServiceError> {
        self.update(user, DocPatch { phone: Some(phone), ..DocPatch::default() }).await
    }

    /// `user`'s account changed (contact card, display name): the held copy is reloaded from
    /// the store on the user's shard (so of two quick changes the later one wins) and the user
    /// is republished to their own devices and watchers. A user not held is read afresh when
    /// next needed.
    pub fn refresh_account(&self, user: &Username) -> Result<(), ServiceError> {
        self.world.send(Input::AccountChanged { user: user.clone() }, None);
        Ok(())
    }

    /// `target`'s presence as `viewer` sees it.
    pub async fn view(&self, target: &Username, viewer: Viewer<'_>) -> Result<PresenceView, ServiceError> {
        let seen = self.seen(target, viewer).await?;
        seen_view(&seen).ok_or_else(|| ServiceError::NotFound(format!("no user named {:?}", target.as_str())))
    }

    /// The visibility `viewer` has on `target` (users of other servers: External).
    pub async fn visibility(&self, target: &Username, viewer: Viewer<'_>) -> Result<Visibility, ServiceError> {
        match self.seen(target, viewer).await? {
            Seen::Local { visibility, .. } => Ok(visibility),
            _ => Ok(Visibility::Level(halo_core::presence::AccessLevel::External)),
        }
    }

    /// Changes `owner`'s contact list, stores it, updates who watches whom, and republishes the
    /// owner (their contacts' views of them may have changed). Returns the new list once it is
    /// durable, and tells the owner's connected devices (`contacts.changed`), so a contact added
    /// on one device shows on the others.
    pub async fn edit_contacts(&self, owner: &Username, edit: ContactEdit) -> Result<ContactList, ServiceError> {
        match self.ask(Input::EditContacts { owner: owner.clone(), edit, req: self.req() }).await? {
            Answer::Contacts(list) => {
                self.world.outbox.to_user(owner, None, &Event::ContactsChanged);
                Ok(list)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// `owner`'s contact list.
    pub async fn contacts(&self, owner: &Username) -> Result<ContactList, ServiceError> {
        match self.ask(Input::Contacts { owner: owner.clone(), req: self.req() }).await? {
            Answer::Contacts(list) => Ok(list),
            other => Err(unexpected(&other)),
        }
    }

    /// Subscribes endpoint `endpoint` of `user` to `targets` for `ttl`; returns their presence.
    pub async fn subscribe(
        &self,
        user: &Username,
        endpoint: u64,
        targets: &[Username],
        ttl: Duration,
    ) -> Result<Vec<PresenceView>, ServiceError> {
        let ttl_ms = ttl.as_millis() as u64;
        let input =
            Input::Subscribe { user: user.clone(), endpoint, targets: targets.to_vec(), ttl_ms, req: self.req() };
        self.ask(input).await?;
        self.look(targets, Viewer::User(user)).await
    }

    /// Ends subscriptions of an endpoint of `user`.
    pub fn unsubscribe(&self, user: &Username, endpoint: u64, targets: &[Username]) {
        self.world.send(Input::Unsubscribe { user: user.clone(), endpoint, targets: targets.to_vec() }, None);
    }

    /// The seam IM asks before a message from `from` reaches a local `to`: Blocked contacts are
    /// refused; while `to` is in Do Not Disturb only their Workgroup contacts get through.
    pub async fn check_reach(&self, from: &Username, to: &Username) -> Result<(), ServiceError> {
        if to.is_remote() {
            // Their server decides; federation has checked the domain.
            return Ok(());
        }
        self.ask(Input::Reach { from: from.clone(), to: to.clone(), req: self.req() }).await.map(|_| ())
    }

    /// Resolves a manual state request: a `state` token, or an `availability` with an optional
    /// `activity`, until an optional time.
    pub fn manual(
        &self,
        state: Option<&str>,
        availability: Option<u32>,
        activity: Option<&str>,
        until: Option<Millis>,
    ) -> Result<Manual, ServiceError> {
        let choice = match (state, availability) {
            (Some(token), None) if activity.is_none() => StateChoice::from_token(token, &self.custom_states()),
            (None, Some(a)) => StateChoice::explicit(a, activity),
            _ => {
                return Err(ServiceError::Invalid(
                    "give either `state`, or `availability` (with an optional `activity`)".into(),
                ));
            }
        }
        .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        Ok(Manual { choice, until })
    }

    /// Parses usernames of existing accounts.
    pub fn users(&self, names: &[String]) -> Result<Vec<Username>, ServiceError> {
        names.iter().map(|n| crate::accounts::existing_user(&self.store, n)).collect()
    }
}

impl Drop for PresenceService {
    fn drop(&mut self) {
        self.world.stop();
    }
}

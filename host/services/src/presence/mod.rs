//! The presence service: aggregates each user's sources, keeps who watches whom, and fans
//! changes out.
//!
//! All state lives in one [`Engine`] behind a mutex: per-user entries (stored document, contact
//! list, connected devices, published state), the watcher index (target → online users who have
//! the target in their contacts), ad-hoc endpoint subscriptions, a dirty set and a deadline
//! heap. A change marks its user dirty; every `coalesce` interval the dirty users are published
//! once each (rapid changes coalesce). A publication projects the state once per visibility
//! (owner, each access level, privacy mode) into one [`Shared`] event per visibility, and
//! hands it to every watcher through the [`Outbox`], which encodes it once for all of their
//! sockets: nothing is re-filtered per watcher.
//!
//! Writes to the store happen under the lock without waiting for the disk; callers await
//! [`Store::flush`] before acknowledging.

mod profile;
mod remote;
#[cfg(test)]
mod tests;
mod view;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use halo_core::contacts::{ContactError, ContactList};
use halo_core::presence::{
    AccessLevel, Band, Calendar, CustomState, Document, Inputs, Machine, MachineState, Manual, Phone, Published,
    StateChoice, Timers, Visibility, aggregate,
};
use halo_core::{Millis, User, Username};
use halo_plugin_host::Plugin;
use halo_store::{Pending, Store};
use serde::Deserialize;

pub use profile::{MyPresence, Picture, PresencePatch};
pub use remote::Outgoing;
pub use view::{MeetingView, PresenceView, presence_info};
use view::{Source, project};

use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::outbox::{Event, Outbox, Shared};

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

/// Contacts per snapshot event.
const SNAPSHOT_CHUNK: usize = 250;

struct Entry {
    user: User,
    doc: Document,
    contacts: ContactList,
    endpoints: BTreeMap<u64, Machine>,
    lingering: Option<(Machine, Millis)>,
    published: Published,
    since: Millis,
    events: HashMap<Visibility, Arc<Shared>>,
}

impl Entry {
    fn visibility(&self, viewer: Viewer<'_>) -> Visibility {
        match viewer {
            Viewer::User(v) => Visibility::resolve(
                v == &self.user.username,
                self.contacts.level_of(v),
                self.doc.privacy_mode,
                // Users of other servers are External unless the owner says otherwise.
                if v.is_remote() { AccessLevel::External } else { AccessLevel::Colleagues },
            ),
            Viewer::App => Visibility::Level(AccessLevel::Colleagues),
            Viewer::Anonymous => {
                if self.doc.privacy_mode {
                    Visibility::Private
                } else {
                    Visibility::Level(AccessLevel::External)
                }
            }
        }
    }

    fn view(&self, vis: Visibility, custom: &[CustomState]) -> PresenceView {
        let src = Source { user: &self.user, doc: &self.doc, published: &self.published, since: self.since, custom };
        project(&src, vis)
    }

    fn event(&mut self, vis: Visibility, custom: &[CustomState]) -> Arc<Shared> {
        if let Some(f) = self.events.get(&vis) {
            return f.clone();
        }
        let f = Shared::new(Event::Presence { presence: self.view(vis, custom) });
        self.events.insert(vis, f.clone());
        f
    }
}

#[derive(Default)]
struct Engine {
    entries: HashMap<Username, Entry>,
    /// Target → online users with the target in their contacts.
    watchers: HashMap<Username, HashSet<Username>>,
    /// Target → endpoint → (its user, expiry).
    adhoc: HashMap<Username, HashMap<u64, (Username, Millis)>>,
    /// Endpoint → targets it subscribed to.
    adhoc_by_endpoint: HashMap<u64, HashSet<Username>>,
    dirty: HashSet<Username>,
    deadlines: BinaryHeap<Reverse<(Millis, Username)>>,
}

/// Enabled presence plugins, in install order, with the state catalog they make.
#[derive(Default)]
struct Plugins {
    list: Vec<Arc<Plugin>>,
    /// Config states, then each plugin's (ids already taken are skipped).
    catalog: Arc<Vec<CustomState>>,
    tick: Option<Duration>,
}

/// The presence service.
pub struct PresenceService {
    store: Store,
    outbox: Arc<dyn Outbox>,
    metrics: Arc<Metrics>,
    settings: PresenceSettings,
    timers: Timers,
    engine: Mutex<Engine>,
    plugins: std::sync::RwLock<Plugins>,
    last_tick: Mutex<std::time::Instant>,
    remote: remote::Remote,
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

impl PresenceService {
    /// The service; call [`PresenceService::run`] in a task to publish changes.
    pub fn new(store: Store, outbox: Arc<dyn Outbox>, metrics: Arc<Metrics>, settings: PresenceSettings) -> Self {
        let timers = Timers {
            away_after_ms: settings.away_after.as_millis() as u64,
            offline_grace_ms: settings.offline_grace.as_millis() as u64,
        };
        let plugins = Plugins { catalog: Arc::new(settings.custom_states.clone()), ..Default::default() };
        Self {
            store,
            outbox,
            metrics,
            settings,
            timers,
            engine: Mutex::default(),
            plugins: std::sync::RwLock::new(plugins),
            last_tick: Mutex::new(std::time::Instant::now()),
            remote: remote::Remote::default(),
        }
    }

    /// The custom states: the configured ones, then those of enabled plugins.
    pub fn custom_states(&self) -> Arc<Vec<CustomState>> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner()).catalog.clone()
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
        let changed = {
            let mut w = self.plugins.write().unwrap_or_else(|p| p.into_inner());
            let changed = *w.catalog != catalog;
            *w = Plugins { list, catalog: Arc::new(catalog.clone()), tick };
            changed
        };
        if changed {
            let event = Event::Shared(Shared::new(Event::PresenceStates { states: catalog }));
            self.outbox.to_all(&event);
        }
        self.recompute_all(true);
    }

    /// Recomputes every loaded user (`all`) or those with a device connected.
    fn recompute_all(&self, all: bool) {
        let now = now_ms();
        let mut e = self.engine();
        let users: Vec<Username> =
            e.entries.iter().filter(|(_, en)| all || !en.endpoints.is_empty()).map(|(u, _)| u.clone()).collect();
        for u in &users {
            if all {
                Self::touched(&mut e, u);
            }
            self.recompute(&mut e, u, now);
        }
    }

    /// Runs the enabled plugins' `derive` over the built-in result; a failing plugin is skipped
    /// (its users keep the built-in state), and its answer must name a known state.
    fn derive_with_plugins(&self, user: &Username, inputs: &Inputs, now: Millis, builtin: Published) -> Published {
        let plugins = self.plugins.read().unwrap_or_else(|p| p.into_inner());
        let mut current = builtin;
        for p in &plugins.list {
            let started = std::time::Instant::now();
            let result = p.derive(user.as_str(), inputs, now, &current);
            self.metrics.plugin_call(&p.manifest().name, started.elapsed(), result.as_ref().err());
            match result {
                Ok(Some(derived))
                    if derived.custom.as_ref().is_none_or(|c| plugins.catalog.iter().any(|s| &s.id == c)) =>
                {
                    current = derived
                }
                Ok(Some(_)) => tracing::debug!(plugin = %p.manifest().name, "derived an unknown custom state; ignored"),
                Ok(None) | Err(_) => {}
            }
        }
        current
    }

    /// Settings.
    pub fn settings(&self) -> &PresenceSettings {
        &self.settings
    }

    fn engine(&self) -> MutexGuard<'_, Engine> {
        self.engine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes dirty users and fires timers, every `coalesce` interval, forever.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.coalesce.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.publish(now_ms());
        }
    }

    /// Fires due timers and plugin ticks, and publishes every dirty user once.
    pub fn publish(&self, now: Millis) {
        let tick = self.plugins.read().unwrap_or_else(|p| p.into_inner()).tick;
        if let Some(every) = tick {
            let mut last = self.last_tick.lock().unwrap_or_else(|p| p.into_inner());
            if last.elapsed() >= every {
                *last = std::time::Instant::now();
                drop(last);
                self.recompute_all(false);
            }
        }
        let mut e = self.engine();
        while let Some(Reverse((at, _))) = e.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, user))) = e.deadlines.pop() else { break };
            self.recompute(&mut e, &user, now);
        }
        let dirty: Vec<Username> = e.dirty.drain().collect();
        for target in dirty {
            self.fan_out(&mut e, &target, now);
        }
    }

    fn fan_out(&self, e: &mut Engine, target: &Username, now: Millis) {
        let Engine { entries, watchers, adhoc, .. } = e;
        let Some(entry) = entries.get_mut(target) else { return };
        let catalog = self.custom_states();
        let custom = catalog.as_slice();
        let mut sent = 0u64;
        let own = Event::Shared(entry.event(Visibility::Own, custom));
        sent += self.outbox.to_user(target, None, &own) as u64;
        if let Some(ws) = watchers.get(target) {
            for w in ws {
                let vis = entry.visibility(Viewer::User(w));
                if vis.hears_changes() {
                    sent += self.outbox.to_user(w, None, &Event::Shared(entry.event(vis, custom))) as u64;
                }
            }
        }
        if let Some(subs) = adhoc.get_mut(target) {
            subs.retain(|_, (_, expires)| *expires > now);
            for (ep, (w, _)) in subs.iter() {
                let vis = entry.visibility(Viewer::User(w));
                if vis.hears_changes() {
                    sent += u64::from(self.outbox.to_endpoint(w, *ep, &Event::Shared(entry.event(vis, custom))));
                }
            }
        }
        self.remote.fan_out(entry, target, custom);
        self.metrics.presence_published.inc();
        self.metrics.presence_notifications.inc_by(sent);
    }

    /// Loads `user` into the engine if needed.
    fn load<'e>(&self, e: &'e mut Engine, user: &Username) -> Result<&'e mut Entry, ServiceError> {
        if !e.entries.contains_key(user) {
            let account = self
                .store
                .users()
                .get(user)?
                .ok_or_else(|| ServiceError::NotFound(format!("no user named {:?}", user.as_str())))?;
            let doc = self.store.presence().document(user)?;
            let contacts = self.store.presence().contacts(user)?;
            let entry = Entry {
                user: account,
                doc,
                contacts,
                endpoints: BTreeMap::new(),
                lingering: None,
                published: Published::offline(),
                since: 0,
                events: HashMap::new(),
            };
            e.entries.insert(user.clone(), entry);
        }
        e.entries.get_mut(user).ok_or_else(|| ServiceError::Internal("presence entry vanished".into()))
    }

    fn recompute(&self, e: &mut Engine, user: &Username, now: Millis) {
        let Some(entry) = e.entries.get_mut(user) else { return };
        let inputs = Inputs {
            manual: entry.doc.manual.clone(),
            endpoints: entry.endpoints.clone(),
            lingering: entry.lingering,
            calendar: entry.doc.calendar.clone(),
            phone: entry.doc.phone,
        };
        let (builtin, next) = aggregate(&inputs, now, &self.timers);
        let has_plugins = !self.plugins.read().unwrap_or_else(|p| p.into_inner()).list.is_empty();
        let published = if has_plugins { self.derive_with_plugins(user, &inputs, now, builtin) } else { builtin };
        let Some(entry) = e.entries.get_mut(user) else { return };
        if published != entry.published {
            entry.published = published;
            entry.since = now;
            entry.events.clear();
            e.dirty.insert(user.clone());
        }
        if let Some(at) = next {
            e.deadlines.push(Reverse((at, user.clone())));
        }
    }

    /// Marks `user`'s document or contacts changed: views are rebuilt and published.
    fn touched(e: &mut Engine, user: &Username) {
        if let Some(entry) = e.entries.get_mut(user) {
            entry.events.clear();
        }
        e.dirty.insert(user.clone());
    }

    /// A device of `user` connected: it counts as Active; the user starts watching their
    /// contacts. Returns the snapshot events to send after `hello`, once the last-active time it
    /// stored is durable.
    pub async fn connect(&self, user: &Username, endpoint: u64) -> Result<Vec<Event>, ServiceError> {
        let (events, pending) = self.connect_locked(user, endpoint)?;
        pending.commit().await?;
        Ok(events)
    }

    fn connect_locked(&self, user: &Username, endpoint: u64) -> Result<(Vec<Event>, Pending), ServiceError> {
        let now = now_ms();
        let mut e = self.engine();
        let entry = self.load(&mut e, user)?;
        let first = entry.endpoints.is_empty();
        entry.endpoints.insert(endpoint, Machine { state: MachineState::Active, since: now });
        entry.lingering = None;
        entry.doc.last_active = Some(now);
        let pending = self.store.presence().put_document(user, &entry.doc)?;
        let contacts: Vec<Username> = entry.contacts.contacts.keys().cloned().collect();
        if first {
            for c in &contacts {
                e.watchers.entry(c.clone()).or_default().insert(user.clone());
            }
        }
        self.recompute(&mut e, user, now);
        Self::touched(&mut e, user);
        let mut views = Vec::with_capacity(contacts.len());
        for c in &contacts {
            if c.is_remote() {
                views.push(self.remote.view(c));
            } else if let Ok(entry) = self.load(&mut e, c) {
                let vis = entry.visibility(Viewer::User(user));
                views.push(entry.view(vis, &self.custom_states()));
            }
        }
        let me = self.load(&mut e, user)?.view(Visibility::Own, &self.custom_states());
        let mut events = Vec::new();
        let mut chunks = views.chunks(SNAPSHOT_CHUNK).peekable();
        let mut first_chunk = Some(me);
        if chunks.peek().is_none() {
            events.push(Event::PresenceSnapshot { contacts: Vec::new(), me: first_chunk.take(), last: true });
        }
        while let Some(chunk) = chunks.next() {
            let last = chunks.peek().is_none();
            events.push(Event::PresenceSnapshot { contacts: chunk.to_vec(), me: first_chunk.take(), last });
        }
        Ok((events, pending))
    }

    /// A device of `user` disconnected.
    pub fn disconnect(&self, user: &Username, endpoint: u64) {
        let now = now_ms();
        let mut e = self.engine();
        if let Some(targets) = e.adhoc_by_endpoint.remove(&endpoint) {
            for t in targets {
                if let Some(subs) = e.adhoc.get_mut(&t) {
                    subs.remove(&endpoint);
                }
            }
        }
        let Some(entry) = e.entries.get_mut(user) else { return };
        let Some(machine) = entry.endpoints.remove(&endpoint) else { return };
        if entry.endpoints.is_empty() {
            entry.lingering = Some((machine, now));
            let contacts: Vec<Username> = entry.contacts.contacts.keys().cloned().collect();
            for c in contacts {
                if let Some(w) = e.watchers.get_mut(&c) {
                    w.remove(user);
                }
            }
        }
        self.recompute(&mut e, user, now);
    }

    /// A device reports its machine state; returns once what it stored (the last-active time,
    /// for Active) is durable.
    pub async fn machine(
        &self,
        user: &Username,
        endpoint: u64,
        state: MachineState,
    ) -> Result<PresenceView, ServiceError> {
        let (view, pending) = {
            let now = now_ms();
            let mut e = self.engine();
            let entry = self.load(&mut e, user)?;
            entry.endpoints.insert(endpoint, Machine { state, since: now });
            let pending = if state == MachineState::Active {
                entry.doc.last_active = Some(now);
                Some(self.store.presence().put_document(user, &entry.doc)?)
            } else {
                None
            };
            self.recompute(&mut e, user, now);
            (self.own_view(&mut e, user)?, pending)
        };
        if let Some(p) = pending {
            p.commit().await?;
        }
        Ok(view)
    }

    fn own_view(&self, e: &mut Engine, user: &Username) -> Result<PresenceView, ServiceError> {
        Ok(self.load(e, user)?.view(Visibility::Own, &self.custom_states()))
    }

    /// Changes `user`'s stored document with `f` (validated inside), republishes, and returns
    /// the owner's view once the document is durable.
    pub async fn update<T>(
        &self,
        user: &Username,
        f: impl FnOnce(&mut Document) -> Result<T, ServiceError>,
    ) -> Result<(T, PresenceView), ServiceError> {
        let (out, pending) = {
            let now = now_ms();
            let mut e = self.engine();
            let entry = self.load(&mut e, user)?;
            let mut doc = entry.doc.clone();
            let out = f(&mut doc)?;
            let pending = self.store.presence().put_document(user, &doc)?;
            entry.doc = doc;
            Self::touched(&mut e, user);
            self.recompute(&mut e, user, now);
            ((out, self.own_view(&mut e, user)?), pending)
        };
        pending.commit().await?;
        Ok(out)
    }

    /// Sets or clears the manual state, durably.
    pub async fn set_manual(&self, user: &Username, manual: Option<Manual>) -> Result<PresenceView, ServiceError> {
        if let Some(until) = manual.as_ref().and_then(|m| m.until)
            && until <= now_ms()
        {
            return Err(ServiceError::Invalid("until is in the past".into()));
        }
        let ((), view) = self
            .update(user, |d| {
                d.manual = manual;
                Ok(())
            })
            .await?;
        Ok(view)
    }

    /// Sets or clears calendar input, durably.
    pub async fn set_calendar(
        &self,
        user: &Username,
        calendar: Option<Calendar>,
    ) -> Result<PresenceView, ServiceError> {
        let ((), view) = self
            .update(user, |d| {
                d.calendar = calendar;
                Ok(())
            })
            .await?;
        Ok(view)
    }

    /// Sets or clears phone input, durably.
    pub async fn set_phone(&self, user: &Username, phone: Option<Phone>) -> Result<PresenceView, ServiceError> {
        let ((), view) = self
            .update(user, |d| {
                d.phone = phone;
                Ok(())
            })
            .await?;
        Ok(view)
    }

    /// `user`'s account changed (contact card, display name): the cached copy is reloaded from
    /// the store (so of two quick changes the later one wins) and the user is republished to
    /// their own devices and watchers. A user not loaded is read afresh when next needed.
    pub fn refresh_account(&self, user: &Username) -> Result<(), ServiceError> {
        let mut e = self.engine();
        if let Some(entry) = e.entries.get_mut(user) {
            if let Some(account) = self.store.users().get(user)? {
                entry.user = account;
            }
            Self::touched(&mut e, user);
        }
        Ok(())
    }

    /// `target`'s presence as `viewer` sees it.
    pub fn view(&self, target: &Username, viewer: Viewer<'_>) -> Result<PresenceView, ServiceError> {
        if target.is_remote() {
            return Ok(self.remote.view(target));
        }
        let mut e = self.engine();
        let entry = self.load(&mut e, target)?;
        let vis = entry.visibility(viewer);
        Ok(entry.view(vis, &self.custom_states()))
    }

    /// The visibility `viewer` has on `target`.
    pub fn visibility(&self, target: &Username, viewer: Viewer<'_>) -> Result<Visibility, ServiceError> {
        let mut e = self.engine();
        Ok(self.load(&mut e, target)?.visibility(viewer))
    }

    /// Runs `f` on `owner`'s contact list, stores it, updates who watches whom, and republishes
    /// the owner (their contacts' views of them may have changed). Returns once the list is
    /// durable.
    pub async fn with_contacts<T>(
        &self,
        owner: &Username,
        f: impl FnOnce(&mut ContactList) -> Result<T, ContactError>,
    ) -> Result<T, ServiceError> {
        let (out, pending) = self.with_contacts_locked(owner, f)?;
        pending.commit().await?;
        Ok(out)
    }

    fn with_contacts_locked<T>(
        &self,
        owner: &Username,
        f: impl FnOnce(&mut ContactList) -> Result<T, ContactError>,
    ) -> Result<(T, Pending), ServiceError> {
        let now = now_ms();
        let mut e = self.engine();
        let entry = self.load(&mut e, owner)?;
        let mut list = entry.contacts.clone();
        let out = f(&mut list).map_err(contact_error)?;
        let pending = self.store.presence().put_contacts(owner, &list)?;
        let before: HashSet<Username> = entry.contacts.contacts.keys().cloned().collect();
        let after: HashSet<Username> = list.contacts.keys().cloned().collect();
        let online = !entry.endpoints.is_empty();
        entry.contacts = list;
        if online {
            for gone in before.difference(&after) {
                if let Some(w) = e.watchers.get_mut(gone) {
                    w.remove(owner);
                }
            }
            for new in after.difference(&before) {
                e.watchers.entry(new.clone()).or_default().insert(owner.clone());
                if new.is_remote() {
                    let event = Event::Presence { presence: self.remote.view(new) };
                    self.outbox.to_user(owner, None, &event);
                } else if let Ok(target) = self.load(&mut e, new) {
                    let vis = target.visibility(Viewer::User(owner));
                    let event = Event::Shared(target.event(vis, &self.custom_states()));
                    self.outbox.to_user(owner, None, &event);
                }
            }
        }
        Self::touched(&mut e, owner);
        self.recompute(&mut e, owner, now);
        Ok((out, pending))
    }

    /// `owner`'s contact list.
    pub fn contacts(&self, owner: &Username) -> Result<ContactList, ServiceError> {
        let mut e = self.engine();
        Ok(self.load(&mut e, owner)?.contacts.clone())
    }

    /// Subscribes endpoint `endpoint` of `user` to `targets` for `ttl`; returns their presence.
    pub fn subscribe(
        &self,
        user: &Username,
        endpoint: u64,
        targets: &[Username],
        ttl: Duration,
    ) -> Result<Vec<PresenceView>, ServiceError> {
        let now = now_ms();
        let expires = now + ttl.min(self.settings.subscription_ttl).as_millis() as u64;
        let mut e = self.engine();
        let current = e.adhoc_by_endpoint.get(&endpoint).map_or(0, HashSet::len);
        let new =
            targets.iter().filter(|t| !e.adhoc_by_endpoint.get(&endpoint).is_some_and(|s| s.contains(*t))).count();
        if current + new > self.settings.max_subscriptions {
            return Err(ServiceError::Invalid(format!(
                "at most {} subscriptions per endpoint (this one has {current})",
                self.settings.max_subscriptions
            )));
        }
        let mut views = Vec::with_capacity(targets.len());
        for t in targets {
            let entry = self.load(&mut e, t)?;
            let vis = entry.visibility(Viewer::User(user));
            views.push(entry.view(vis, &self.custom_states()));
        }
        for t in targets {
            e.adhoc.entry(t.clone()).or_default().insert(endpoint, (user.clone(), expires));
            e.adhoc_by_endpoint.entry(endpoint).or_default().insert(t.clone());
        }
        Ok(views)
    }

    /// Ends subscriptions of an endpoint.
    pub fn unsubscribe(&self, endpoint: u64, targets: &[Username]) {
        let mut e = self.engine();
        for t in targets {
            if let Some(subs) = e.adhoc.get_mut(t) {
                subs.remove(&endpoint);
            }
            if let Some(s) = e.adhoc_by_endpoint.get_mut(&endpoint) {
                s.remove(t);
            }
        }
    }

    /// The seam IM asks before a message from `from` reaches a local `to`: Blocked contacts are refused;
    /// while `to` is in Do Not Disturb only their Workgroup contacts get through.
    pub fn check_reach(&self, from: &Username, to: &Username) -> Result<(), ServiceError> {
        if to.is_remote() {
            // Their server decides; federation has checked the domain.
            return Ok(());
        }
        let mut e = self.engine();
        let entry = self.load(&mut e, to)?;
        let level = entry.contacts.level_of(from);
        if level == Some(AccessLevel::Blocked) {
            return Err(ServiceError::Blocked(to.to_string()));
        }
        if Band::of(entry.published.availability) == Band::DoNotDisturb
            && !level.is_some_and(AccessLevel::interrupts_dnd)
        {
            return Err(ServiceError::DoNotDisturb(to.to_string()));
        }
        Ok(())
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

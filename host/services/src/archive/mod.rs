//! Compliance archiving: policies, the spool (which is also the built-in archive), sinks,
//! search, export and retention.
//!
//! The IM and room services ask [`ArchiveService::record`] for the record of each event before
//! they write it; the record goes into the IM log in the same entry as the message, and the
//! archive follower (`crate::followers`) stores it in the archive (`halo_store::Archive`), so
//! what was acknowledged is archived. From there:
//! - [`sinks`] delivers records to each enabled `archive-sink` plugin in id order, at least
//!   once, with its own cursor, retrying with backoff;
//! - [`index`] follows the archive into its own full-text index for compliance search;
//! - [`ArchiveService::purge`] applies retention, never past a sink's cursor.

mod index;
mod sinks;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use halo_core::Username;
use halo_core::archive::{Place, Policies, Policy, Record, Settings};
use halo_core::conversation::Conversation;
use halo_core::message::{Body, Message};
use halo_plugin_host::Plugin;
use halo_search::{Container, SearchQuery};
use halo_store::Store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::metrics::Metrics;

pub use sinks::SinkStatus;

/// Records purged per pass (a pass repeats until nothing is due).
const PURGE_BATCH: usize = 10_000;

/// The policies as admins see and set them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    /// Applies to users without a policy of their own.
    #[schema(value_type = Object)]
    pub global: Policy,
    /// Per-user policies (they win).
    #[schema(value_type = Object)]
    pub users: std::collections::BTreeMap<String, Policy>,
}

/// What to look for in the archive.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ArchiveQuery {
    /// Words (all must match; `"a phrase"` and `-word` work).
    pub q: Option<String>,
    /// Events a user took part in (sent, received, joined, left).
    pub user: Option<String>,
    /// One conversation.
    pub conversation: Option<u64>,
    /// One room.
    pub room: Option<u64>,
    /// From this time on (ms, inclusive).
    pub since: Option<u64>,
    /// Before this time (ms, exclusive).
    pub until: Option<u64>,
    /// Most records (search: 100 by default, at most 1000; export: all).
    pub limit: Option<usize>,
}

impl ArchiveQuery {
    fn matches(&self, r: &Record) -> bool {
        let user_ok = self
            .user
            .as_deref()
            .is_none_or(|u| r.from == u || r.user.as_deref() == Some(u) || r.participants.iter().any(|p| p == u));
        let place_ok = match r.place {
            Place::Conversation(c) => self.room.is_none() && self.conversation.is_none_or(|x| x == c),
            Place::Room(x) => self.conversation.is_none() && self.room.is_none_or(|y| y == x),
        };
        user_ok && place_ok && self.since.is_none_or(|s| r.at >= s) && self.until.is_none_or(|u| r.at < u)
    }

    fn words(&self) -> Option<&str> {
        self.q.as_deref().filter(|q| !q.trim().is_empty())
    }
}

/// What a purge did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurgeReport {
    /// Records removed.
    pub purged: u64,
    /// Records due but held because a sink has not stored them yet.
    pub held: u64,
    /// The cutoff (ms); none when records are kept for ever.
    pub before: Option<u64>,
}

/// The archive's state for admins and compliance officers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArchiveStatus {
    /// Records in the built-in archive.
    pub records: u64,
    /// The settings.
    #[schema(value_type = Object)]
    pub settings: Settings,
    /// Why new messages of archived users are being refused, if they are.
    pub blocking: Option<String>,
    /// Each archive sink.
    pub sinks: Vec<SinkStatus>,
}

/// The archiving service.
pub struct ArchiveService {
    store: Store,
    metrics: Arc<Metrics>,
    policies: RwLock<Policies>,
    settings: RwLock<Settings>,
    index: index::ArchiveIndex,
    sinks: sinks::Sinks,
    /// How far in the IM log the archive follower has stored records.
    followed: tokio::sync::watch::Sender<u64>,
}

/// The longest a read of the archive waits for the archive follower to store what was
/// acknowledged before it (it trails the log by milliseconds; longer only when storage fails).
const CATCH_UP: Duration = Duration::from_secs(5);

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(l: &RwLock<T>, v: T) {
    *l.write().unwrap_or_else(|p| p.into_inner()) = v;
}

impl ArchiveService {
    /// Loads policies and settings, opens the archive index in `index_dir` and starts its
    /// follower and the retention timer (needs a runtime).
    pub fn start(store: Store, index_dir: &std::path::Path, metrics: Arc<Metrics>) -> anyhow::Result<Arc<Self>> {
        let policies = store.archive().policies()?;
        let settings = store.archive().settings()?;
        let index = index::ArchiveIndex::start(store.clone(), index_dir)?;
        let sinks = sinks::Sinks::new(store.clone(), metrics.clone());
        let service = Arc::new(Self {
            store,
            metrics,
            policies: RwLock::new(policies),
            settings: RwLock::new(settings),
            index,
            sinks,
            followed: tokio::sync::watch::channel(0).0,
        });
        tokio::spawn(retention(Arc::downgrade(&service)));
        if let Some(changes) = service.store.archive().changes() {
            tokio::spawn(follow_policies(Arc::downgrade(&service), changes));
        }
        Ok(service)
    }

    /// Runs `f` on the policies under the read lock (no copy per message).
    fn with_policies<T>(&self, f: impl FnOnce(&Policies) -> T) -> T {
        f(&self.policies.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The settings.
    pub fn settings(&self) -> Settings {
        read(&self.settings)
    }

    /// The record of `msg` in `place`, when someone it concerns is archived: the sender, the
    /// `participants` (those present after the event) and whoever joined or left. A text
    /// message is refused while archiving is failing and the settings say to block.
    pub fn record(
        &self,
        place: Place,
        msg: &Message,
        participants: &[&Username],
    ) -> Result<Option<Record>, ServiceError> {
        let subject = match &msg.body {
            Body::Joined { user } | Body::Left { user } => Some(user),
            Body::Text { .. } => None,
        };
        let concerned = participants.iter().copied().chain([&msg.from]).chain(subject);
        let external = concerned.clone().any(|u| halo_core::archive::is_external(u.as_str()));
        if !self.with_policies(|p| p.archives(concerned, external)) {
            return Ok(None);
        }
        if matches!(msg.body, Body::Text { .. }) {
            self.check_blocking()?;
        }
        Ok(Some(Record::of_message(place, msg, participants.iter().copied())))
    }

    /// The record of a change (edit, deletion, reaction) `id` by `by` to message `of`, when a
    /// participant is archived; an edit is refused while archiving fails, like a message.
    pub fn record_change(
        &self,
        place: Place,
        (id, at, by): (u64, halo_core::Millis, &Username),
        of: u64,
        change: &halo_core::im::Change,
        participants: &[&Username],
    ) -> Result<Option<Record>, ServiceError> {
        let concerned = participants.iter().copied().chain([by]);
        let external = concerned.clone().any(|u| halo_core::archive::is_external(u.as_str()));
        if !self.with_policies(|p| p.archives(concerned, external)) {
            return Ok(None);
        }
        if matches!(change, halo_core::im::Change::Edited { .. }) {
            self.check_blocking()?;
        }
        Ok(Some(Record::of_change(place, (id, at, by), of, change, participants.iter().copied())))
    }

    /// The record of a conversation being started, when a participant is archived.
    pub fn started(&self, conv: &Conversation, by: &Username) -> Option<Record> {
        let members: Vec<&Username> = conv.members().collect();
        let external = members.iter().any(|u| halo_core::archive::is_external(u.as_str()));
        self.with_policies(|p| p.archives(members.iter().copied(), external))
            .then(|| Record::started(conv.id, conv.created_at, by, members))
    }

    /// The archive follower has stored the records of the IM log up to entry `seq`.
    pub(crate) fn followed(&self, seq: u64) {
        self.followed.send_if_modified(|s| {
            let moved = seq > *s;
            *s = (*s).max(seq);
            moved
        });
    }

    /// The log position reads must wait for: everything acknowledged so far.
    fn target(&self) -> u64 {
        use halo_store::EventLog;
        self.store.im().log().last_durable()
    }

    /// Waits (blocking, at most [`CATCH_UP`]) until every record acknowledged before the call
    /// is in the archive, so a read sees what the sender was told is archived.
    fn caught_up_blocking(&self) {
        let target = self.target();
        let deadline = std::time::Instant::now() + CATCH_UP;
        let rx = self.followed.subscribe();
        while *rx.borrow() < target && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`Self::caught_up_blocking`] for async callers.
    async fn caught_up(&self) {
        let target = self.target();
        let mut rx = self.followed.subscribe();
        let _ = tokio::time::timeout(CATCH_UP, rx.wait_for(|s| *s >= target)).await;
    }

    /// Delivers to the sinks only while `gate` is open (a pool member: while it holds the
    /// pool's `archive-sinks` task).
    pub fn gate_sinks(&self, gate: crate::pool::tasks::Gate, shared: Option<Arc<crate::pool::tasks::SharedCursors>>) {
        self.sinks.set_gate(gate, shared);
    }

    /// `n` records were stored (by the archive follower): wakes the sinks and the index.
    pub fn written(&self, n: u64) {
        self.metrics.archive.records.inc_by(n);
        self.sinks.wake();
        self.index.wake();
    }

    fn check_blocking(&self) -> Result<(), ServiceError> {
        let settings = self.settings();
        if !settings.block_on_failure {
            return Ok(());
        }
        match self.sinks.failing(&settings) {
            Some(why) => {
                self.metrics.archive.refused.inc();
                Err(ServiceError::ArchiveUnavailable(why))
            }
            None => Ok(()),
        }
    }

    /// The policies.
    pub fn policy_view(&self) -> PolicyView {
        self.with_policies(|p| PolicyView {
            global: p.global,
            users: p.users.iter().map(|(u, p)| (u.to_string(), *p)).collect(),
        })
    }

    /// Sets the global policy.
    pub async fn set_global(&self, policy: Policy) -> Result<PolicyView, ServiceError> {
        self.store.archive().set_global(policy).await?;
        write(&self.policies, self.store.archive().policies()?);
        tracing::info!(?policy, "global archiving policy set");
        Ok(self.policy_view())
    }

    /// Sets (or with `None` removes) a user's own policy.
    pub async fn set_user(&self, user: &str, policy: Option<Policy>) -> Result<PolicyView, ServiceError> {
        let user = crate::accounts::existing_user(&self.store, user)?;
        self.store.archive().set_user(&user, policy).await?;
        write(&self.policies, self.store.archive().policies()?);
        tracing::info!(%user, ?policy, "user archiving policy set");
        Ok(self.policy_view())
    }

    /// Replaces the settings.
    pub async fn set_settings(&self, settings: Settings) -> Result<Settings, ServiceError> {
        settings.check().map_err(|e| ServiceError::Invalid(e.to_string()))?;
        self.store.archive().set_settings(&settings).await?;
        write(&self.settings, settings.clone());
        tracing::info!(?settings, "archiving settings set");
        Ok(settings)
    }

    /// The archive's state.
    pub fn status(&self) -> Result<ArchiveStatus, ServiceError> {
        self.caught_up_blocking();
        let settings = self.settings();
        Ok(ArchiveStatus {
            records: self.store.archive().len() as u64,
            blocking: if settings.block_on_failure { self.sinks.failing(&settings) } else { None },
            settings,
            sinks: self.sinks.status()?,
        })
    }

    /// Hands the enabled archive-sink plugins over (replacing the previous set).
    pub fn set_sinks(&self, plugins: Vec<Arc<Plugin>>) {
        self.sinks.set(plugins);
    }

    /// A sink plugin was installed: it gets every record kept, and holds retention back.
    pub async fn sink_installed(&self, name: &str) -> Result<(), ServiceError> {
        Ok(self.store.archive().add_cursor(name).await?)
    }

    /// A sink plugin was removed: its cursor no longer holds records back.
    pub async fn sink_removed(&self, name: &str) -> Result<(), ServiceError> {
        self.sinks.set_removed(name);
        Ok(self.store.archive().remove_cursor(name).await?)
    }

    /// Records matching `q`, newest first, through the archive's index (which trails the
    /// archive by a fraction of a second).
    pub fn search(&self, q: &ArchiveQuery, limit: usize) -> Result<Vec<Record>, ServiceError> {
        self.caught_up_blocking();
        let hits = self.index.search(&SearchQuery {
            everyone: true,
            words: q.words().map(str::to_owned),
            with: q.user.clone(),
            conversation: q.conversation,
            room: q.room,
            since: q.since,
            until: q.until,
            limit,
            ..Default::default()
        })?;
        let mut out = Vec::with_capacity(hits.len());
        for h in hits {
            if let Some(r) = self.store.archive().get(h.id)?
                && q.matches(&r)
            {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Every record matching `q` in id order, through `each` (which returns false to stop):
    /// straight from the archive, or through the index when `q` has words.
    pub fn export(&self, q: &ArchiveQuery, mut each: impl FnMut(Record) -> bool) -> Result<(), ServiceError> {
        self.caught_up_blocking();
        if q.words().is_some() {
            let mut found = self.search(q, q.limit.unwrap_or(100_000).min(100_000))?;
            found.sort_by_key(|r| r.id);
            for r in found {
                if !each(r) {
                    break;
                }
            }
            return Ok(());
        }
        let mut left = q.limit.unwrap_or(usize::MAX);
        if left == 0 {
            return Ok(());
        }
        self.scan(q, |r| {
            left = left.saturating_sub(1);
            each(r) && left > 0
        })
    }

    /// Walks the archive in id order.
    fn scan(&self, q: &ArchiveQuery, mut each: impl FnMut(Record) -> bool) -> Result<(), ServiceError> {
        let mut after = 0;
        loop {
            let batch = self.store.archive().after(after, u64::MAX, 1_000)?;
            let Some(last) = batch.last() else { return Ok(()) };
            after = last.id;
            for r in batch {
                if q.matches(&r) && !each(r) {
                    return Ok(());
                }
            }
        }
    }

    /// Applies retention now: removes records older than `older_than_hours` (default: the
    /// `keep_days` setting) that every sink has stored. Like Lync's
    /// `Invoke-CsArchivingDatabasePurge -PurgeDataOlderThanHours`.
    pub async fn purge(&self, older_than_hours: Option<u64>) -> Result<PurgeReport, ServiceError> {
        self.caught_up().await;
        let now = now_ms();
        let before = match older_than_hours {
            Some(h) => Some(now.saturating_sub(h.saturating_mul(3_600_000))),
            None => self.settings().purge_before(now),
        };
        let Some(before) = before else {
            return Ok(PurgeReport { purged: 0, held: 0, before: None });
        };
        let max_id = self.store.archive().cursors()?.into_iter().map(|(_, c)| c).min().unwrap_or(u64::MAX);
        let mut purged = 0;
        loop {
            let ids = self.store.archive().purge(before, max_id, PURGE_BATCH).await?;
            if ids.is_empty() {
                break;
            }
            purged += ids.len() as u64;
            self.index.remove(&ids)?;
        }
        let held =
            self.store.archive().after(max_id, u64::MAX, PURGE_BATCH)?.iter().take_while(|r| r.at < before).count()
                as u64;
        self.metrics.archive.purged.inc_by(purged);
        if purged > 0 || held > 0 {
            tracing::info!(purged, held, before, "archive retention applied");
        }
        Ok(PurgeReport { purged, held, before: Some(before) })
    }

    /// Refreshes the gauges (at each scrape).
    pub fn refresh_metrics(&self) {
        self.metrics.archive.kept.set(self.store.archive().len() as i64);
    }
}

/// A pool member: reads the policies and settings again whenever they change in the pool (an
/// admin set them through another node), so this node archives by the same rules.
async fn follow_policies(service: std::sync::Weak<ArchiveService>, mut changes: halo_store::PolicyChanges) {
    while changes.changed().await {
        let Some(s) = service.upgrade() else { return };
        match (s.store.archive().policies(), s.store.archive().settings()) {
            (Ok(policies), Ok(settings)) => {
                write(&s.policies, policies);
                write(&s.settings, settings);
            }
            (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "reading the archive policies again"),
        }
    }
}

/// Applies retention every hour (and once shortly after start).
async fn retention(service: std::sync::Weak<ArchiveService>) {
    tokio::time::sleep(Duration::from_secs(30)).await;
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    loop {
        every.tick().await;
        let Some(s) = service.upgrade() else { return };
        if let Err(e) = s.purge(None).await {
            tracing::warn!(error = %e, "archive retention failed; retrying next hour");
        }
    }
}

/// Where a record lives, for the index.
fn container(place: Place) -> Container {
    match place {
        Place::Conversation(c) => Container::Conversation(c),
        Place::Room(r) => Container::Room(r),
    }
}

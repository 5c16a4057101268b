//! Halo's application services, apart from any transport: accounts and sessions, instant
//! messaging, rooms, presence and contacts, compliance archiving, federation, plugins and
//! search.
//!
//! The services work over the domain ([`halo_core`]) and storage ([`halo_store`]). They answer
//! with their own results and a typed [`ServiceError`], and tell users what happened through
//! an [`Outbox`] of domain [`Event`]s. They know nothing of HTTP, WebSockets or wire formats:
//! `halo-server` is the transport that maps errors to statuses, events to frames, and a bearer
//! token to the [`Principal`] that [`accounts::Accounts::authenticate`] resolves.
//!
//! [`Services::start`] wires them all together.

pub mod accounts;
pub mod apps;
pub mod archive;
pub mod attachments;
pub mod changes;
pub mod clock;
pub mod error;
pub mod federation;
pub mod followers;
pub mod im;
pub mod metrics;
pub mod outbox;
mod password;
pub mod plugins;
pub mod pool;
pub mod presence;
pub mod principal;
pub mod rooms;
pub mod search;
pub mod settings;
pub mod storage;
pub mod token;
pub mod views;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_store::{Store, TokenHash};

pub use error::{Result, ServiceError};
pub use outbox::{Disconnect, Event, Outbox};
pub use principal::{Caller, Identity, Principal};
pub use settings::{AuthSettings, ServiceSettings};

use accounts::Accounts;
use archive::ArchiveService;
use attachments::AttachmentService;
use changes::ChangeService;
use federation::FederationService;
use im::ImService;
use metrics::Metrics;
use plugins::PluginService;
use presence::PresenceService;
use rooms::RoomService;
use search::Indexer;

/// Every service, wired together; clones share everything.
#[derive(Clone)]
pub struct Services {
    /// Storage health, and the final flush.
    pub storage: Arc<storage::Storage>,
    /// Logins, sessions and account changes.
    pub accounts: Arc<Accounts>,
    /// Metrics the services and the transport record.
    pub metrics: Arc<Metrics>,
    /// Conversations and messages.
    pub im: Arc<ImService>,
    /// Persistent chat rooms.
    pub rooms: Arc<RoomService>,
    /// Edits, deletions, reactions and mutes of messages in conversations and rooms.
    pub changes: Arc<ChangeService>,
    /// Files attached to messages.
    pub attachments: Arc<AttachmentService>,
    /// Full-text search over history.
    pub search: Arc<Indexer>,
    /// Presence and contacts.
    pub presence: Arc<PresenceService>,
    /// Installed plugins.
    pub plugins: Arc<PluginService>,
    /// Compliance archiving.
    pub archive: Arc<ArchiveService>,
    /// Federation with other servers.
    pub federation: Arc<FederationService>,
    /// The store, for the figures of [`Services::log_lag`] and [`Services::pool_consumers`].
    store: Store,
}

impl Services {
    /// Makes these services a member of `pool` (after [`Services::start`], before serving):
    /// presence runs the pool's user groups, and the once-per-pool tasks (archive sink
    /// delivery, federation transports) run only while this node holds their lease.
    pub async fn join_pool(&self, pool: Arc<pool::Pool>) -> anyhow::Result<Arc<pool::tasks::Tasks>> {
        self.metrics.set_node(pool.node());
        let store = self.store.clone();
        pool.members().report_log(move || pool::status::log_lag(&store));
        self.presence.join_pool(pool.clone()).await?;
        let tasks = pool::tasks::Tasks::start(pool.clone()).await?;
        pool.set_tasks(tasks.clone());
        self.archive.gate_sinks(tasks.gate("archive-sinks"), Some(tasks.cursors()));
        self.federation.join_pool(pool.clone(), tasks.cursors());
        self.federation.gate_transports(tasks.gate("federation"));
        pool::plugins::follow(&pool, &self.plugins).await?;
        Ok(tasks)
    }

    /// Where this node's copy of the IM log and its followers stand.
    pub fn log_lag(&self) -> pool::status::LogLag {
        pool::status::log_lag(&self.store)
    }

    /// The lag of the consumers `pool` runs once (the archive sinks), as this node sees it.
    pub async fn pool_consumers(&self, pool: &pool::Pool) -> Vec<pool::status::ConsumerLag> {
        pool::status::consumers(pool, &self.store).await
    }

    /// Wires the services over `store`, keeping the search indexes and plugins under
    /// `data_dir` and delivering events to `outbox`; `local_admin` is the hash of the local CLI
    /// token, if any. Starts the storage watcher, the search indexer, the presence publisher
    /// and the installed plugins (needs a runtime).
    pub fn start(
        store: Store,
        data_dir: &Path,
        settings: &ServiceSettings,
        outbox: Arc<dyn Outbox>,
        metrics: Arc<Metrics>,
        local_admin: Option<TokenHash>,
    ) -> anyhow::Result<Self> {
        storage::watch(store.clone(), metrics.clone());
        let accounts =
            Arc::new(Accounts::new(store.clone(), settings.auth.clone(), outbox.clone(), metrics.clone(), local_admin));
        halo_core::presence::check_custom_states(&settings.presence.custom_states)?;
        let presence =
            Arc::new(PresenceService::new(store.clone(), outbox.clone(), metrics.clone(), settings.presence.clone()));
        let archive = ArchiveService::start(store.clone(), &data_dir.join("archive-index"), metrics.clone())?;
        let federation =
            FederationService::new(store.clone(), presence.clone(), metrics.clone(), &settings.federation)?;
        let limiter = Arc::new(im::SendLimiter::new(&settings.im));
        let changes = Arc::new(ChangeService::new(store.clone(), outbox.clone(), archive.clone(), limiter.clone()));
        let attachments = Arc::new(AttachmentService::new(
            store.clone(),
            changes.clone(),
            limiter.clone(),
            settings.im.max_attachment_bytes,
            settings.im.attachment_bytes_per_hour,
        ));
        let im = Arc::new(ImService::new(
            store.clone(),
            outbox.clone(),
            metrics.clone(),
            presence.clone(),
            archive.clone(),
            federation.clone(),
            limiter,
            changes.clone(),
        ));
        federation.start(&im)?;
        followers::start(store.clone(), archive.clone(), federation.clone(), metrics.clone());
        let rooms = Arc::new(RoomService::new(
            store.clone(),
            outbox.clone(),
            metrics.clone(),
            archive.clone(),
            changes.clone(),
            im.limiter(),
            federation.clone(),
        ));
        federation.set_rooms(&rooms);
        let search = Arc::new(Indexer::start(
            store.clone(),
            &data_dir.join("search"),
            Duration::from_millis(250),
            metrics.clone(),
        )?);
        let plugins = Arc::new(PluginService::start(
            store.clone(),
            data_dir.join("plugins"),
            settings.plugins.clone(),
            presence.clone(),
            archive.clone(),
            federation.clone(),
            metrics.clone(),
        )?);
        Ok(Self {
            storage: Arc::new(storage::Storage::new(store.clone())),
            store,
            accounts,
            metrics,
            im,
            rooms,
            changes,
            attachments,
            search,
            presence,
            plugins,
            archive,
            federation,
        })
    }
}

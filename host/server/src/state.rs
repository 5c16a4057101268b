//! `AppState`: the one cheap-to-clone state every handler gets.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use halo_store::{Store, TokenHash};

use crate::accounts::Accounts;
use crate::archive::ArchiveService;
use crate::federation::FederationService;
use crate::im::ImService;
use crate::metrics::Metrics;
use crate::plugins::PluginService;
use crate::presence::PresenceService;
use crate::rooms::RoomService;
use crate::search::Indexer;
use crate::settings::Settings;
use crate::stream::hub::Hub;

/// Shared server state; clones share everything.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Logins, sessions and account changes.
    pub accounts: Arc<Accounts>,
    /// Connected endpoints.
    pub hub: Arc<Hub>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Conversations and messages.
    pub im: Arc<ImService>,
    /// Persistent chat rooms.
    pub rooms: Arc<RoomService>,
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
}

impl AppState {
    /// Wires the state over `store`, keeping the search indexes and plugins under `data_dir`;
    /// `local_admin` is the hash of the local CLI token, if any. Starts the search indexer,
    /// the presence publisher and the installed plugins (needs a runtime).
    pub fn new(
        store: Store,
        data_dir: &Path,
        settings: Settings,
        local_admin: Option<TokenHash>,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        crate::storage::watch(store.clone(), metrics.clone());
        let hub =
            Arc::new(Hub::new(settings.limits.send_queue, settings.limits.max_endpoints_per_user, metrics.clone()));
        let accounts =
            Arc::new(Accounts::new(store.clone(), settings.auth.clone(), hub.clone(), metrics.clone(), local_admin));
        halo_core::presence::check_custom_states(&settings.presence.custom_states)?;
        let presence =
            Arc::new(PresenceService::new(store.clone(), hub.clone(), metrics.clone(), settings.presence.clone()));
        let archive = ArchiveService::start(store.clone(), &data_dir.join("archive-index"), metrics.clone())?;
        let federation =
            FederationService::new(store.clone(), presence.clone(), metrics.clone(), &settings.federation)?;
        let im = Arc::new(ImService::new(
            store.clone(),
            hub.clone(),
            metrics.clone(),
            presence.clone(),
            archive.clone(),
            federation.clone(),
            &settings.im,
        ));
        federation.start(&im)?;
        let rooms =
            Arc::new(RoomService::new(store.clone(), hub.clone(), metrics.clone(), archive.clone(), im.limiter()));
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
            store,
            accounts,
            hub,
            metrics,
            settings: Arc::new(settings),
            im,
            rooms,
            search,
            presence,
            plugins,
            archive,
            federation,
        })
    }
}

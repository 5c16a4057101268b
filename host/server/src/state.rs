//! `AppState`: the one cheap-to-clone state every handler gets: the services, the hub of
//! connected endpoints and the settings.

use std::path::Path;
use std::sync::Arc;

use halo_services::Services;
use halo_services::accounts::Accounts;
use halo_services::archive::ArchiveService;
use halo_services::federation::FederationService;
use halo_services::im::ImService;
use halo_services::metrics::Metrics;
use halo_services::plugins::PluginService;
use halo_services::presence::PresenceService;
use halo_services::rooms::RoomService;
use halo_services::search::Indexer;
use halo_services::storage::Storage;
use halo_store::{Store, TokenHash};

use crate::settings::Settings;
use crate::stream::hub::Hub;

/// Shared server state; clones share everything.
#[derive(Clone)]
pub struct AppState {
    /// Storage health, and the final flush.
    pub storage: Arc<Storage>,
    /// Logins, sessions and account changes.
    pub accounts: Arc<Accounts>,
    /// Connected endpoints: the services' outbox.
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
    /// `local_admin` is the hash of the local CLI token, if any. Starts the services
    /// ([`Services::start`]; needs a runtime) with the hub as their outbox.
    pub fn new(
        store: Store,
        data_dir: &Path,
        settings: Settings,
        local_admin: Option<TokenHash>,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let hub =
            Arc::new(Hub::new(settings.limits.send_queue, settings.limits.max_endpoints_per_user, metrics.clone()));
        let services = Services::start(store, data_dir, &settings.services(), hub.clone(), metrics, local_admin)?;
        Ok(Self::from_services(services, hub, settings))
    }

    /// The state over services already started with `hub` as their outbox.
    pub fn from_services(services: Services, hub: Arc<Hub>, settings: Settings) -> Self {
        let Services { storage, accounts, metrics, im, rooms, search, presence, plugins, archive, federation } =
            services;
        Self {
            storage,
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
        }
    }
}

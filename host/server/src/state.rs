//! `AppState`: the one cheap-to-clone state every handler gets: the services, the hub of
//! connected endpoints and the settings.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use halo_services::Services;
use halo_services::metrics::Metrics;
use halo_store::{Store, TokenHash};

use crate::settings::Settings;
use crate::stream::hub::Hub;

/// Shared server state; clones share everything. The services are reached through it
/// (`state.im`, `state.presence`, …: it derefs to [`Services`]).
#[derive(Clone)]
pub struct AppState {
    /// Every service.
    pub services: Services,
    /// Connected endpoints: the services' outbox.
    pub hub: Arc<Hub>,
    /// Settings.
    pub settings: Arc<Settings>,
    /// Open TCP connections against `[http] max_connections` (every listener).
    pub cap: Arc<crate::cap::Cap>,
    /// The pool this node is a member of (`halo serve --cluster`), if any.
    pub pool: Option<Arc<halo_services::pool::Pool>>,
}

impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
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

    /// As [`AppState::new`], for a member of `pool`: the services' outbox is the hub joined to
    /// the pool ([`crate::stream::pool::PoolHub`]) and presence runs the pool's user groups.
    pub async fn new_pooled(
        store: Store,
        data_dir: &Path,
        settings: Settings,
        local_admin: Option<TokenHash>,
        pool: Arc<halo_services::pool::Pool>,
    ) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::new());
        let hub =
            Arc::new(Hub::new(settings.limits.send_queue, settings.limits.max_endpoints_per_user, metrics.clone()));
        let outbox = crate::stream::pool::PoolHub::start(hub.clone(), pool.clone()).await?;
        let services = Services::start(store, data_dir, &settings.services(), outbox, metrics, local_admin)?;
        services.join_pool(pool.clone()).await?;
        let mut state = Self::from_services(services, hub, settings);
        state.pool = Some(pool);
        Ok(state)
    }

    /// The state over services already started with `hub` as their outbox.
    pub fn from_services(services: Services, hub: Arc<Hub>, settings: Settings) -> Self {
        let cap = crate::cap::Cap::new(settings.http.max_connections, services.metrics.clone());
        Self { services, hub, settings: Arc::new(settings), cap, pool: None }
    }
}

//! `AppState`: the one cheap-to-clone state every handler gets.

use std::sync::Arc;

use halo_store::{Store, TokenHash};

use crate::accounts::Accounts;
use crate::metrics::Metrics;
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
}

impl AppState {
    /// Wires the state over `store`; `local_admin` is the hash of the local CLI token, if any.
    pub fn new(store: Store, settings: Settings, local_admin: Option<TokenHash>) -> Self {
        let metrics = Arc::new(Metrics::new());
        let hub =
            Arc::new(Hub::new(settings.limits.send_queue, settings.limits.max_endpoints_per_user, metrics.clone()));
        let accounts =
            Arc::new(Accounts::new(store.clone(), settings.auth.clone(), hub.clone(), metrics.clone(), local_admin));
        Self { store, accounts, hub, metrics, settings: Arc::new(settings) }
    }
}

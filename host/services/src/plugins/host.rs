//! What the plugin host calls back into: plugin kv kept in the store, and an observer handing
//! call reports to the metrics and self-disables to the task that persists them.

use std::sync::Arc;

use halo_plugin_host::cap::kv::{KvBackend, KvFailure};
use halo_plugin_host::{CallError, CallObserver};
use halo_store::{Store, StoreError};

/// Plugin kv in the store. Guest calls run outside the async workers (see the plugin host), so
/// a write blocks its guest call until it is durable.
pub(super) struct StoreKv {
    store: Store,
    /// The runtime to wait on when a guest call runs on a thread outside it.
    handle: Option<tokio::runtime::Handle>,
}

impl StoreKv {
    pub(super) fn new(store: Store) -> Self {
        Self { store, handle: tokio::runtime::Handle::try_current().ok() }
    }

    /// Waits for a store write from a guest call.
    fn wait<T>(&self, write: impl std::future::Future<Output = Result<T, StoreError>>) -> Result<T, KvFailure> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let handle = match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::CurrentThread => {
                return Err(KvFailure::Unavailable("plugin kv writes need the multi-threaded runtime".into()));
            }
            Ok(h) => h,
            Err(_) => self.handle.clone().ok_or_else(|| KvFailure::Unavailable("no runtime".into()))?,
        };
        tokio::task::block_in_place(|| handle.block_on(write)).map_err(kv_failure)
    }
}

fn kv_failure(e: StoreError) -> KvFailure {
    match e {
        StoreError::QuotaExceeded { .. } => KvFailure::QuotaExceeded,
        other => KvFailure::Unavailable(other.to_string()),
    }
}

impl KvBackend for StoreKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        self.store.plugins().kv_get(plugin, key).map_err(kv_failure)
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), KvFailure> {
        let plugins = self.store.plugins();
        self.wait(plugins.kv_set(plugin, key, value, quota))
    }
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvFailure> {
        let plugins = self.store.plugins();
        self.wait(plugins.kv_delete(plugin, key))
    }
}

/// A plugin that disabled itself: its name, its load, and why.
pub(super) type SelfDisabled = (String, u64, String);

/// Hands the executors' reports to the metrics, and the plugins that disabled themselves to
/// the task that persists it.
pub(super) struct Observer {
    pub(super) metrics: Arc<dyn CallObserver>,
    pub(super) disabled: tokio::sync::mpsc::UnboundedSender<SelfDisabled>,
}

impl CallObserver for Observer {
    fn call(&self, plugin: &str, guest: std::time::Duration, error: Option<&CallError>) {
        self.metrics.call(plugin, guest, error);
    }

    fn invalid(&self, plugin: &str) {
        self.metrics.invalid(plugin);
    }

    fn disabled(&self, plugin: &str, load_id: u64, reason: &str) {
        let _ = self.disabled.send((plugin.to_owned(), load_id, reason.to_owned()));
    }
}

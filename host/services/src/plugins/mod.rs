//! The plugin service: install, inspect, upgrade, configure, enable, disable and remove
//! plugins on a running server, persisting records (`halo-store`) and component files
//! (`<data>/plugins/<sha256>.wasm`), and handing the enabled plugins to their users: presence
//! plugins to presence, archive sinks to archiving, federation adapters to federation.
//!
//! A swap (upgrade, config change) replaces the `Arc<Plugin>` in the map: calls in flight
//! finish on the old instance.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use halo_plugin_host::cap::log::LogSink;
use halo_plugin_host::{Manifest, Plugin, PluginLimits, PluginStatus, Runtime, StateInfo};
use halo_store::{PluginRecord, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::archive::ArchiveService;
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::federation::FederationService;
use crate::metrics::Metrics;
use crate::presence::PresenceService;

mod grants;
mod host;

use grants::change_grants;
use host::{Observer, SelfDisabled, StoreKv};

/// Plugin settings (`[plugins]` in `halo.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginSettings {
    /// Largest component accepted, bytes (64 MiB: a Python plugin is ~18 MiB).
    pub max_component_bytes: usize,
    /// Limits applied to every plugin.
    pub limits: PluginLimits,
}

impl Default for PluginSettings {
    fn default() -> Self {
        Self { max_component_bytes: 64 << 20, limits: PluginLimits::default() }
    }
}

/// A plugin as admins see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginInfo {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// World: `presence-states` or `archive-sink`.
    pub kind: String,
    /// WIT version it was built against.
    pub api: String,
    /// What it does.
    pub description: String,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Capabilities it asks for.
    pub requested: Vec<String>,
    /// Capabilities granted.
    pub granted: Vec<String>,
    /// The effective config.
    pub config: BTreeMap<String, String>,
    /// Its config schema.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// Enabled by the admin.
    pub enabled: bool,
    /// The limits in force for this plugin.
    #[schema(value_type = Object)]
    pub limits: PluginLimits,
    /// Health: disabled reason (by an admin or by its trap budget), counters, memory.
    #[schema(value_type = Object)]
    pub status: Option<PluginStatus>,
    /// Why it failed to load, if it did.
    pub load_error: Option<String>,
    /// The states it defines.
    #[schema(value_type = Vec<Object>)]
    pub states: Vec<StateInfo>,
    /// When installed or upgraded, ms.
    pub installed_at: u64,
}

/// What a component asks for, read before installing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Inspection {
    /// The manifest.
    #[schema(value_type = Object)]
    pub manifest: Manifest,
    /// SHA-256 of the component.
    pub sha256: String,
    /// Whether a plugin of this name is installed (then use upgrade).
    pub installed: bool,
}

/// The result of an upgrade.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upgrade {
    /// The plugin now.
    pub plugin: PluginInfo,
    /// Capabilities the new version asks for that the old did not.
    pub added_capabilities: Vec<String>,
    /// Capabilities no longer asked for.
    pub removed_capabilities: Vec<String>,
}

struct Loaded {
    record: PluginRecord,
    plugin: Option<Arc<Plugin>>,
    error: Option<String>,
}

type LoadedMap = Arc<RwLock<BTreeMap<String, Loaded>>>;

fn write_map(m: &RwLock<BTreeMap<String, Loaded>>) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Loaded>> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Persists each self-disable in the plugin's record (unless the plugin was reloaded since:
/// the reload carried the reason over itself), so that neither a restart nor a config change
/// enables it again.
async fn persist_disables(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<SelfDisabled>,
    loaded: LoadedMap,
    writes: Arc<tokio::sync::Mutex<()>>,
    store: Store,
) {
    while let Some((name, load_id, reason)) = rx.recv().await {
        let _w = writes.lock().await;
        let record = {
            let mut map = write_map(&loaded);
            match map.get_mut(&name) {
                Some(l) if l.record.enabled && l.plugin.as_ref().is_some_and(|p| p.load_id() == load_id) => {
                    l.record.disabled = Some(reason);
                    l.record.clone()
                }
                _ => continue,
            }
        };
        if let Err(e) = store.plugins().put(&record).await {
            tracing::error!(plugin = %name, error = %e, "could not persist that the plugin disabled itself");
        }
    }
}

/// Applies a record's enabled state to a freshly loaded plugin.
fn apply_state(plugin: &Plugin, record: &PluginRecord) {
    if !record.enabled {
        plugin.disable("disabled by an admin");
    } else if let Some(reason) = &record.disabled {
        plugin.disable(reason);
    }
}

/// A record as it must be saved before its plugin is replaced: a plugin that disabled itself
/// (and whose report may still be on its way) stays disabled.
fn carry_disabled(l: &Loaded) -> PluginRecord {
    let mut record = l.record.clone();
    if record.enabled
        && record.disabled.is_none()
        && let Some(reason) = l.plugin.as_ref().and_then(|p| p.status().disabled)
    {
        record.disabled = Some(reason);
    }
    record
}

/// The plugin service.
pub struct PluginService {
    runtime: Runtime,
    store: Store,
    dir: PathBuf,
    settings: PluginSettings,
    presence: Arc<PresenceService>,
    archive: Arc<ArchiveService>,
    federation: Arc<FederationService>,
    metrics: Arc<Metrics>,
    loaded: LoadedMap,
    writes: Arc<tokio::sync::Mutex<()>>,
    /// Told of each change made through this node (pool members).
    notify: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

fn sha_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl PluginService {
    /// Opens the service over `<data>/plugins` and loads every installed plugin (a plugin that
    /// fails to load stays listed with its error; presence runs without it).
    pub fn start(
        store: Store,
        dir: PathBuf,
        settings: PluginSettings,
        presence: Arc<PresenceService>,
        archive: Arc<ArchiveService>,
        federation: Arc<FederationService>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(dir.join("logs"))?;
        let mut runtime = Runtime::new(Some(dir.join("cache")), Arc::new(StoreKv::new(store.clone())))?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        runtime.observe(Arc::new(Observer { metrics: metrics.plugin_calls(), disabled: tx }));
        let (loaded, writes) = (LoadedMap::default(), Arc::new(tokio::sync::Mutex::new(())));
        match tokio::runtime::Handle::try_current() {
            Ok(h) => drop(h.spawn(persist_disables(rx, loaded.clone(), writes.clone(), store.clone()))),
            Err(_) => tracing::warn!("no runtime: plugins that disable themselves are not persisted"),
        }
        let service = Self {
            runtime,
            store,
            dir,
            settings,
            presence,
            archive,
            federation,
            metrics,
            loaded,
            writes,
            notify: std::sync::OnceLock::new(),
        };
        for record in service.store.plugins().all()? {
            let loaded = service.load_record(record);
            if let Some(e) = &loaded.error {
                tracing::error!(plugin = %loaded.record.name, error = %e, "plugin failed to load");
            }
            service.write().insert(loaded.record.name.clone(), loaded);
        }
        service.publish();
        Ok(service)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Loaded>> {
        write_map(&self.loaded)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Loaded>> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner())
    }

    fn file(&self, sha: &str) -> PathBuf {
        self.dir.join(format!("{sha}.wasm"))
    }

    /// Deletes component `sha` and its compiled artifacts unless a plugin still uses it.
    fn delete_unused(&self, sha: &str) {
        if self.read().values().any(|l| l.record.sha256 == sha) {
            return;
        }
        let _ = std::fs::remove_file(self.file(sha));
        let prefix = format!("{sha}-");
        if let Ok(entries) = std::fs::read_dir(self.dir.join("cache")) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The log of plugin `name`: its previous load's (a reload keeps the lines), else the one
    /// kept in `<data>/plugins/logs/NAME.log`.
    fn log_of(&self, name: &str, limits: &PluginLimits) -> Arc<LogSink> {
        let previous = self.read().get(name).and_then(|l| l.plugin.as_ref().map(|p| p.log_sink()));
        previous.unwrap_or_else(|| LogSink::with_file(name, limits.log_lines_per_sec, self.log_path(name)))
    }

    /// The limits of a plugin: its own, else the server's.
    fn limits_of(&self, record: &PluginRecord) -> PluginLimits {
        record
            .limits
            .as_deref()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| self.settings.limits.clone())
    }

    fn load_record(&self, record: PluginRecord) -> Loaded {
        let limits = self.limits_of(&record);
        let log = self.log_of(&record.name, &limits);
        let result = std::fs::read(self.file(&record.sha256))
            .map_err(|e| anyhow::anyhow!("reading the component: {e}"))
            .and_then(|bytes| self.runtime.load_with_log(&bytes, &record.grants, &record.config, limits, Some(log)));
        match result {
            Ok(p) => {
                apply_state(&p, &record);
                Loaded { record, plugin: Some(Arc::new(p)), error: None }
            }
            Err(e) => Loaded { record, plugin: None, error: Some(format!("{e:#}")) },
        }
    }

    /// An admin changed a plugin here: [`PluginService::publish`], and tell the other nodes
    /// of the pool (which [`PluginService::resync`]).
    fn changed(&self) {
        self.publish();
        if let Some(notify) = self.notify.get() {
            notify();
        }
    }

    /// Calls `notify` after each change made through this node (a pool member tells the
    /// others to [`PluginService::resync`]).
    pub fn on_change(&self, notify: Box<dyn Fn() + Send + Sync>) {
        let _ = self.notify.set(notify);
    }

    /// Loads again what the store says, where it differs from what runs: the records another
    /// node of the pool changed (installed, upgraded, configured, enabled, disabled, removed).
    pub async fn resync(&self) -> Result<(), ServiceError> {
        let _w = self.writes.lock().await;
        let records = self.store.plugins().all()?;
        let names: std::collections::BTreeSet<String> = records.iter().map(|r| r.name.clone()).collect();
        let mut changed = false;
        for record in records {
            if self.read().get(&record.name).is_some_and(|l| l.record == record) {
                continue;
            }
            let name = record.name.clone();
            if !self.file(&record.sha256).exists() {
                match self.store.component(&record.sha256).await {
                    Ok(Some(bytes)) => self.save_file(&bytes, &record.sha256).await?,
                    Ok(None) => tracing::warn!(plugin = %name, "component not in the pool's object store"),
                    Err(e) => tracing::warn!(plugin = %name, error = %e, "reading the pool's object store"),
                }
            }
            let loaded = self.load_record(record);
            match &loaded.error {
                Some(e) => tracing::error!(plugin = %name, error = %e, "plugin changed by another node failed to load"),
                None => tracing::info!(plugin = %name, "plugin changed by another node loaded"),
            }
            self.write().insert(name, loaded);
            changed = true;
        }
        let gone: Vec<String> = self.read().keys().filter(|n| !names.contains(*n)).cloned().collect();
        for name in gone {
            let removed = self.write().remove(&name);
            if let Some(l) = removed {
                tracing::info!(plugin = %name, "plugin removed by another node");
                self.delete_unused(&l.record.sha256);
                if l.plugin.is_some_and(|p| p.manifest().kind == "archive-sink") {
                    self.archive.sink_removed(&name).await?;
                }
            }
            changed = true;
        }
        // Every archive sink of the pool has a cursor in this node's archive too (installed
        // through another node, or before this node joined), so this node's retention keeps
        // what a sink has yet to store, and the node can take the sinks over.
        let sinks: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, l)| l.plugin.as_ref().is_some_and(|p| p.manifest().kind == "archive-sink"))
            .map(|(n, _)| n.clone())
            .collect();
        for name in sinks {
            self.archive.sink_installed(&name).await?;
        }
        if changed {
            self.publish();
        }
        Ok(())
    }

    /// Hands the enabled presence plugins to presence, the archive sinks to archiving and the
    /// federation adapters to federation.
    fn publish(&self) {
        let enabled: Vec<Arc<Plugin>> =
            self.read().values().filter(|l| l.record.enabled).filter_map(|l| l.plugin.clone()).collect();
        let of = |kind: &str| enabled.iter().filter(|p| p.manifest().kind == kind).cloned().collect::<Vec<_>>();
        self.presence.set_plugins(of("presence-states"));
        self.archive.set_sinks(of("archive-sink"));
        self.federation.set_adapters(of("federation-adapter"));
    }

    /// What admins see of a plugin; its states come from a call on its executor (a disabled
    /// or failing plugin lists none).
    async fn info(&self, l: &Loaded) -> PluginInfo {
        let (manifest, status, states, config) = match &l.plugin {
            Some(p) => (
                Some(p.manifest().clone()),
                Some(p.status()),
                p.states_async().await.unwrap_or_default(),
                p.config().clone(),
            ),
            None => (None, None, Vec::new(), l.record.config.clone()),
        };
        let m = manifest.as_ref();
        // Secrets are write-only.
        let config = config
            .into_iter()
            .map(|(k, v)| {
                let v = if halo_plugin_host::is_secret(m.map(|m| &m.config), &k) {
                    halo_plugin_host::SECRET_MASK.to_owned()
                } else {
                    v
                };
                (k, v)
            })
            .collect();
        PluginInfo {
            name: l.record.name.clone(),
            version: m.map(|m| m.version.clone()).unwrap_or_default(),
            kind: m.map(|m| m.kind.clone()).unwrap_or_default(),
            api: m.map(|m| m.api.clone()).unwrap_or_default(),
            description: m.map(|m| m.description.clone()).unwrap_or_default(),
            sha256: l.record.sha256.clone(),
            requested: m.map(|m| m.capabilities.clone()).unwrap_or_default(),
            granted: l.plugin.as_ref().map_or_else(|| l.record.grants.clone(), |p| p.grants().to_vec()),
            config,
            schema: m.and_then(|m| serde_json::to_value(&m.config).ok()).unwrap_or_default(),
            enabled: l.record.enabled,
            limits: self.limits_of(&l.record),
            status,
            load_error: l.error.clone(),
            states,
            installed_at: l.record.installed_at,
        }
    }

    fn check_size(&self, bytes: &[u8]) -> Result<(), ServiceError> {
        if bytes.len() > self.settings.max_component_bytes {
            return Err(ServiceError::Invalid(format!(
                "components are at most {} bytes",
                self.settings.max_component_bytes
            )));
        }
        Ok(())
    }

    /// Reads a component's manifest without installing it.
    pub fn inspect(&self, bytes: &[u8]) -> Result<Inspection, ServiceError> {
        self.check_size(bytes)?;
        let manifest = Manifest::read(bytes).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let installed = self.read().contains_key(&manifest.name);
        Ok(Inspection { manifest, sha256: sha_hex(bytes), installed })
    }

    fn load(
        &self,
        bytes: &[u8],
        grants: &[String],
        config: &BTreeMap<String, String>,
        limits: PluginLimits,
    ) -> Result<Plugin, ServiceError> {
        let name = Manifest::read(bytes).map_err(|e| ServiceError::Invalid(e.to_string()))?.name;
        let log = self.log_of(&name, &limits);
        self.runtime
            .load_with_log(bytes, grants, config, limits, Some(log))
            .map_err(|e| ServiceError::Invalid(format!("{e:#}")))
    }

    async fn save_file(&self, bytes: &[u8], sha: &str) -> Result<(), ServiceError> {
        let path = self.file(sha);
        let tmp = path.with_extension("tmp");
        let io = |e: std::io::Error| ServiceError::Internal(format!("writing {}: {e}", path.display()));
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        let f = tokio::fs::File::open(&tmp).await.map_err(io)?;
        f.sync_all().await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)?;
        // In a pool, every node can fetch it from the pool's object store (nothing alone).
        self.store.put_component(sha, bytes).await?;
        Ok(())
    }

    /// Installs a plugin with the granted capabilities (a subset of what it asks for: deny by
    /// default) and `enabled` state. Refuses a name already installed (upgrade instead).
    pub async fn install(
        &self,
        bytes: &[u8],
        grants: &[String],
        config: &BTreeMap<String, String>,
        enabled: bool,
    ) -> Result<PluginInfo, ServiceError> {
        self.check_size(bytes)?;
        let _w = self.writes.lock().await;
        let name = Manifest::read(bytes).map_err(|e| ServiceError::Invalid(e.to_string()))?.name;
        if self.read().contains_key(&name) {
            return Err(ServiceError::Conflict(format!("plugin {name} is installed; use upgrade")));
        }
        let plugin = self.load(bytes, grants, config, self.settings.limits.clone())?;
        if let Some(bad) = grants.iter().find(|g| !plugin.grants().contains(&g.trim().to_owned())) {
            let requested = plugin.manifest().capabilities.join(", ");
            return Err(ServiceError::Invalid(format!(
                "cannot grant {bad:?}: the plugin asks for: {}",
                if requested.is_empty() { "nothing" } else { &requested }
            )));
        }
        let sha = plugin.sha256().to_owned();
        self.save_file(bytes, &sha).await?;
        let record = PluginRecord {
            name: name.clone(),
            sha256: sha,
            grants: plugin.grants().to_vec(),
            config: config.clone(),
            enabled,
            installed_at: now_ms(),
            limits: None,
            disabled: None,
        };
        self.store.plugins().put(&record).await?;
        if plugin.manifest().kind == "archive-sink" {
            self.archive.sink_installed(&name).await?;
        }
        tracing::info!(plugin = %name, version = %plugin.manifest().version, grants = ?record.grants, "plugin installed");
        self.write().insert(name.clone(), Loaded { record, plugin: Some(Arc::new(plugin)), error: None });
        self.changed();
        self.get(&name).await
    }

    /// Replaces a plugin with a new version of it; keeps its config (checked against the new
    /// schema) and, unless `grants` is given, the old grants the new version still asks for.
    pub async fn upgrade(&self, name: &str, bytes: &[u8], grants: Option<&[String]>) -> Result<Upgrade, ServiceError> {
        self.check_size(bytes)?;
        let _w = self.writes.lock().await;
        let (old_record, old_caps) = {
            let map = self.read();
            let l = map.get(name).ok_or_else(|| not_found(name))?;
            let caps: BTreeSet<String> =
                l.plugin.as_ref().map(|p| p.manifest().capabilities.iter().cloned().collect()).unwrap_or_default();
            (carry_disabled(l), caps)
        };
        let grants = grants.map_or_else(|| old_record.grants.clone(), <[String]>::to_vec);
        let plugin = self.load(bytes, &grants, &old_record.config, self.limits_of(&old_record))?;
        if plugin.manifest().name != name {
            return Err(ServiceError::Invalid(format!("this component is {:?}, not {name:?}", plugin.manifest().name)));
        }
        let new_caps: BTreeSet<String> = plugin.manifest().capabilities.iter().cloned().collect();
        let sha = plugin.sha256().to_owned();
        self.save_file(bytes, &sha).await?;
        let old_sha = old_record.sha256.clone();
        let record =
            PluginRecord { sha256: sha, grants: plugin.grants().to_vec(), installed_at: now_ms(), ..old_record };
        apply_state(&plugin, &record);
        self.store.plugins().put(&record).await?;
        tracing::info!(plugin = %name, version = %plugin.manifest().version, "plugin upgraded");
        self.write().insert(name.to_owned(), Loaded { record, plugin: Some(Arc::new(plugin)), error: None });
        self.changed();
        self.delete_unused(&old_sha);
        Ok(Upgrade {
            plugin: self.get(name).await?,
            added_capabilities: new_caps.difference(&old_caps).cloned().collect(),
            removed_capabilities: old_caps.difference(&new_caps).cloned().collect(),
        })
    }

    /// Replaces a plugin's config (validated against its schema). A secret given as the mask
    /// shown for it (a config read and written back) keeps its stored value.
    pub async fn configure(
        &self,
        name: &str,
        mut config: BTreeMap<String, String>,
    ) -> Result<PluginInfo, ServiceError> {
        let schema = self.read().get(name).and_then(|l| l.plugin.as_ref().map(|p| p.manifest().config.clone()));
        self.reload(name, |r| {
            for (k, v) in config.iter_mut() {
                if v == halo_plugin_host::SECRET_MASK
                    && halo_plugin_host::is_secret(schema.as_ref(), k)
                    && let Some(old) = r.config.get(k)
                {
                    v.clone_from(old);
                }
            }
            r.config = config;
        })
        .await
    }

    /// Grants capabilities to an installed plugin and takes others away (see
    /// `change_grants`), checked against what it asks for and what its world may have; the
    /// plugin is loaded again with them at once.
    pub async fn change_grants(
        &self,
        name: &str,
        grant: &[String],
        revoke: &[String],
    ) -> Result<PluginInfo, ServiceError> {
        let (current, requested, kind) = {
            let map = self.read();
            let l = map.get(name).ok_or_else(|| not_found(name))?;
            let p = l.plugin.as_ref().ok_or_else(|| {
                ServiceError::Invalid(format!("{name} does not load; upgrade it before changing its grants"))
            })?;
            (l.record.grants.clone(), p.manifest().capabilities.clone(), p.manifest().kind.clone())
        };
        let grants = change_grants(&current, grant, revoke, &requested, &kind)?;
        tracing::info!(plugin = %name, ?grants, "plugin grants changed");
        self.reload(name, |r| r.grants = grants).await
    }

    /// Sets a plugin's own limits (`None`: back to the server's).
    pub async fn set_limits(&self, name: &str, limits: Option<PluginLimits>) -> Result<PluginInfo, ServiceError> {
        let json =
            limits.map(|l| serde_json::to_string(&l)).transpose().map_err(|e| ServiceError::Internal(e.to_string()))?;
        self.reload(name, |r| r.limits = json).await
    }

    /// Changes a record, loads the plugin anew from it (validating), stores and swaps it.
    async fn reload(&self, name: &str, change: impl FnOnce(&mut PluginRecord)) -> Result<PluginInfo, ServiceError> {
        let _w = self.writes.lock().await;
        let mut record = self.read().get(name).map(carry_disabled).ok_or_else(|| not_found(name))?;
        change(&mut record);
        let bytes = std::fs::read(self.file(&record.sha256))
            .map_err(|e| ServiceError::Internal(format!("reading the component: {e}")))?;
        let plugin = self.load(&bytes, &record.grants, &record.config, self.limits_of(&record))?;
        apply_state(&plugin, &record);
        self.store.plugins().put(&record).await?;
        self.write().insert(name.to_owned(), Loaded { record, plugin: Some(Arc::new(plugin)), error: None });
        self.changed();
        self.get(name).await
    }

    /// Enables or disables a plugin (enabling also resets its trap budget).
    pub async fn set_enabled(&self, name: &str, enabled: bool) -> Result<PluginInfo, ServiceError> {
        let _w = self.writes.lock().await;
        let record = {
            let mut map = self.write();
            let l = map.get_mut(name).ok_or_else(|| not_found(name))?;
            l.record.enabled = enabled;
            l.record.disabled = None;
            if let Some(p) = &l.plugin {
                if enabled { p.enable() } else { p.disable("disabled by an admin") }
            }
            l.record.clone()
        };
        self.store.plugins().put(&record).await?;
        self.changed();
        self.get(name).await
    }

    /// Removes a plugin, its storage and (if unused) its file.
    pub async fn remove(&self, name: &str) -> Result<(), ServiceError> {
        let _w = self.writes.lock().await;
        let removed = self.write().remove(name).ok_or_else(|| not_found(name))?;
        self.store.plugins().remove(name).await?;
        self.archive.sink_removed(name).await?;
        self.delete_unused(&removed.record.sha256);
        for path in [self.log_path(name), self.dir.join("logs").join(format!("{name}.log.1"))] {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(plugin = %name, "plugin removed");
        self.changed();
        Ok(())
    }

    /// Refreshes the per-plugin memory gauges (at each scrape).
    pub fn refresh_metrics(&self) {
        for l in self.read().values() {
            if let Some(p) = &l.plugin {
                self.metrics.plugin_memory(&p.manifest().name, p.status().memory_bytes);
            }
        }
    }

    /// A snapshot of one loaded plugin (the map's lock is not held across calls).
    fn snapshot(&self, name: &str) -> Option<Loaded> {
        self.read().get(name).map(|l| Loaded {
            record: l.record.clone(),
            plugin: l.plugin.clone(),
            error: l.error.clone(),
        })
    }

    /// One plugin.
    pub async fn get(&self, name: &str) -> Result<PluginInfo, ServiceError> {
        let l = self.snapshot(name).ok_or_else(|| not_found(name))?;
        Ok(self.info(&l).await)
    }

    /// Every plugin, by name.
    pub async fn list(&self) -> Vec<PluginInfo> {
        let names: Vec<String> = self.read().keys().cloned().collect();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(l) = self.snapshot(&name) {
                out.push(self.info(&l).await);
            }
        }
        out
    }

    /// A plugin's recent log lines and the count of dropped ones.
    pub fn logs(&self, name: &str) -> Result<(Vec<halo_plugin_host::cap::log::LogLine>, u64), ServiceError> {
        let map = self.read();
        let l = map.get(name).ok_or_else(|| not_found(name))?;
        Ok(l.plugin.as_ref().map(|p| p.logs()).unwrap_or_default())
    }

    /// Installs each component of `files` not installed yet (disabled: an admin configures and
    /// enables it). Used by `halo serve --preinstall`.
    pub async fn preinstall(&self, files: &[PathBuf]) -> anyhow::Result<()> {
        for f in files {
            let bytes = std::fs::read(f).map_err(|e| anyhow::anyhow!("reading {}: {e}", f.display()))?;
            let inspection = self.inspect(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
            if !inspection.installed {
                self.install(&bytes, &[], &BTreeMap::new(), false)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
                tracing::info!(plugin = %inspection.manifest.name, "preinstalled (disabled): configure and enable it with `halo plugin`");
            }
        }
        Ok(())
    }
}

fn not_found(name: &str) -> ServiceError {
    ServiceError::NotFound(format!("no plugin named {name:?}"))
}

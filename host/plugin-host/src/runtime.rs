//! The wasmtime engine shared by every plugin: configuration, the epoch ticker that enforces
//! call deadlines, and the compile cache.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::PresenceStatesPre;
use crate::bindings::fed::FederationAdapterPre;
use crate::bindings::fed_legacy::FederationAdapterPre as LegacyAdapterPre;
use crate::bindings::sink::ArchiveSinkPre;
use crate::cap;
use crate::cap::kv::KvBackend;
use crate::cap::log::LogSink;
use crate::executor::{CallObserver, PluginState, WorldPre};
use crate::limits::PluginLimits;
use crate::manifest::Manifest;
use crate::plugin::Plugin;

/// One epoch tick: call deadlines are counted in these.
pub(crate) const TICK: Duration = Duration::from_millis(2);

/// Stops the epoch thread when the runtime and every plugin it loaded are gone.
pub(crate) struct Ticker(AtomicBool);

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The engine, its ticker, the compile cache and the storage plugins' `kv` uses.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
    cache_dir: Option<PathBuf>,
    kv: Arc<dyn KvBackend>,
    ticker: Arc<Ticker>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl Runtime {
    /// A runtime keeping compiled artifacts in `cache_dir` (none: compile on every load).
    pub fn new(cache_dir: Option<PathBuf>, kv: Arc<dyn KvBackend>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let ticker = Arc::new(Ticker(AtomicBool::new(false)));
        {
            let (engine, weak) = (engine.clone(), Arc::downgrade(&ticker));
            std::thread::Builder::new().name("halo-plugin-epoch".into()).spawn(move || {
                while weak.upgrade().is_some_and(|t| !t.0.load(Ordering::Relaxed)) {
                    std::thread::sleep(TICK);
                    engine.increment_epoch();
                }
            })?;
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
        cap::dir::add_to_linker(&mut linker)?;
        cap::log::add_to_linker(&mut linker)?;
        cap::config::add_to_linker(&mut linker)?;
        cap::kv::add_to_linker(&mut linker)?;
        cap::calendar::add_to_linker(&mut linker)?;
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(Self { engine, linker, cache_dir, kv, ticker, observer: None })
    }

    /// Tells `observer` about every call of the plugins loaded from now on (metrics).
    pub fn observe(&mut self, observer: Arc<dyn CallObserver>) {
        self.observer = Some(observer);
    }

    fn cache_path(&self, sha: &str) -> Option<PathBuf> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.cache_dir.as_ref().map(|d| d.join(format!("{sha}-{:016x}.cwasm", h.finish())))
    }

    /// Compiles `bytes`, or loads the artifact compiled earlier for the same bytes and engine.
    fn compile(&self, bytes: &[u8], sha: &str) -> anyhow::Result<Component> {
        if let Some(path) = self.cache_path(sha) {
            if path.exists() {
                // SAFETY: the file was written by `precompile_component` of an engine with the
                // same compatibility hash (it is in the name), in the server's own data
                // directory; nothing else writes there.
                #[allow(unsafe_code)]
                match unsafe { Component::deserialize_file(&self.engine, &path) } {
                    Ok(c) => return Ok(c),
                    Err(e) => tracing::warn!(path = %path.display(), error = %e, "discarding a cached plugin artifact"),
                }
            }
            let artifact = self.engine.precompile_component(bytes)?;
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, &artifact)?;
            std::fs::rename(&tmp, &path)?;
            #[allow(unsafe_code)]
            // SAFETY: written just above by this engine.
            return Ok(unsafe { Component::deserialize_file(&self.engine, &path) }?);
        }
        Ok(Component::new(&self.engine, bytes)?)
    }

    /// Validates, compiles and links a plugin component, and starts its executor thread.
    /// Grants not asked for in the manifest are dropped (see [`cap::Grants`]); the config is
    /// checked against the manifest's schema. Called from async code, the plugin's thread
    /// enters the caller's tokio runtime (for WASI streams and `wasi:http`).
    pub fn load(
        &self,
        bytes: &[u8],
        grants: &[String],
        config: &BTreeMap<String, String>,
        limits: PluginLimits,
    ) -> anyhow::Result<Plugin> {
        self.load_with_log(bytes, grants, config, limits, None)
    }

    /// [`Runtime::load`], writing the plugin's log lines to `log` (the previous load's, to keep
    /// its lines; or one kept in a file), else to a new log in memory.
    pub fn load_with_log(
        &self,
        bytes: &[u8],
        grants: &[String],
        config: &BTreeMap<String, String>,
        limits: PluginLimits,
        log: Option<Arc<LogSink>>,
    ) -> anyhow::Result<Plugin> {
        let manifest = Manifest::read(bytes)?;
        let config = manifest.check_config(config).map_err(anyhow::Error::msg)?;
        let sha = hex(&Sha256::digest(bytes));
        let component =
            self.compile(bytes, &sha).map_err(|e| anyhow::anyhow!("the component does not compile: {e:#}"))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("the component needs imports this Halo does not offer: {e:#}"))?;
        let wrong_world =
            |e: wasmtime::Error| anyhow::anyhow!("the component does not implement the {} world: {e:#}", manifest.kind);
        let pre = match manifest.kind.as_str() {
            "archive-sink" => WorldPre::Sink(ArchiveSinkPre::new(pre).map_err(wrong_world)?),
            // 0.1.4 added federation cases: older adapters export the 0.1.3 variants.
            "federation-adapter" if crate::manifest::LEGACY_FED_APIS.contains(&manifest.api.as_str()) => {
                WorldPre::FedLegacy(LegacyAdapterPre::new(pre).map_err(wrong_world)?)
            }
            "federation-adapter" => WorldPre::Fed(FederationAdapterPre::new(pre).map_err(wrong_world)?),
            _ => WorldPre::Presence(PresenceStatesPre::new(pre).map_err(wrong_world)?),
        };
        let grants = cap::Grants::parse(grants, &manifest.capabilities)?;
        Plugin::new(
            manifest,
            sha,
            grants,
            config,
            limits,
            self.engine.clone(),
            pre,
            self.kv.clone(),
            self.ticker.clone(),
            self.observer.clone(),
            log,
        )
        .map_err(|e| anyhow::anyhow!("starting the plugin's thread: {e}"))
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

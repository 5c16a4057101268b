//! One loaded plugin: its live instance (re-created from the `InstancePre` after a trap, since
//! a trap poisons the whole store), limits, trap budget, statistics and calls.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use halo_core::presence::{CustomState, Inputs, Published};
use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::bindings::fed::halo::plugin::federation::Action as FedAction;
use crate::bindings::fed::{FederationAdapter, FederationAdapterPre};
use crate::bindings::federation::{action_from_wit, input_to_wit as fed_input_to_wit};
use crate::bindings::sink::{ArchiveSink, ArchiveSinkPre};
use crate::bindings::{PresenceStates, PresenceStatesPre, input_to_wit, published_from_wit, record_to_wit};
use crate::cap::Grants;
use crate::cap::config::ConfigState;
use crate::cap::http::HttpState;
use crate::cap::kv::{KvBackend, KvState};
use crate::cap::log::{LogLine, LogSink, LogState};
use crate::federation::{AdapterAction, AdapterInput, MAX_ACTIONS, MAX_SEND_BYTES};
use crate::limits::PluginLimits;
use crate::manifest::Manifest;
use crate::runtime::{TICK, Ticker};

/// The data of a plugin's store: WASI (inert, no sockets, env or stdio; files only under a
/// granted `dir`, HTTP only to a granted host) and one field per capability.
pub struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: Limiter,
    pub(crate) log: LogState,
    pub(crate) config: ConfigState,
    pub(crate) kv: KvState,
    pub(crate) http: HttpState,
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView { ctx: &mut self.http.ctx, table: &mut self.table, hooks: &mut self.http.hooks }
    }
}

struct Limiter {
    max_memory: usize,
    max_instances: usize,
    used: Arc<AtomicUsize>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            return Err(wasmtime::Error::msg(format!(
                "memory limit: the plugin asked for {desired} bytes, its limit is {}",
                self.max_memory
            )));
        }
        self.used.store(desired, Ordering::Relaxed);
        Ok(true)
    }
    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
    fn instances(&self) -> usize {
        self.max_instances
    }
    fn tables(&self) -> usize {
        self.max_instances
    }
    fn memories(&self) -> usize {
        self.max_instances
    }
}

/// Why a call produced no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The plugin is disabled.
    #[error("plugin disabled: {0}")]
    Disabled(String),
    /// It trapped (deadline, memory limit, panic); the instance was discarded.
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// It answered something invalid.
    #[error("plugin answered invalid data: {0}")]
    Invalid(String),
}

/// A state a plugin defines, as the host keeps it.
pub type StateInfo = CustomState;

/// What admins see of a plugin's health.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// Why it is disabled, if it is (by an admin, or by its trap budget).
    pub disabled: Option<String>,
    /// Calls made.
    pub calls: u64,
    /// Calls that answered invalid data.
    pub errors: u64,
    /// Calls that trapped.
    pub traps: u64,
    /// Linear memory of the live instance, bytes.
    pub memory_bytes: usize,
    /// Log lines dropped by the flood limit.
    pub dropped_log_lines: u64,
}

/// The instantiator of the plugin's world.
pub(crate) enum WorldPre {
    /// `presence-states`.
    Presence(PresenceStatesPre<PluginState>),
    /// `archive-sink`.
    Sink(ArchiveSinkPre<PluginState>),
    /// `federation-adapter`.
    Fed(FederationAdapterPre<PluginState>),
}

enum Bindings {
    Presence(PresenceStates),
    Sink(ArchiveSink),
    Fed(FederationAdapter),
}

struct Live {
    store: Store<PluginState>,
    bindings: Bindings,
}

/// What an archive sink said about a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkOutcome {
    /// Stored durably.
    Stored,
    /// Not now; send the same batch again later.
    Retry(String),
    /// Cannot take records as configured; disable until an admin acts.
    Permanent(String),
}

/// A loaded plugin.
pub struct Plugin {
    manifest: Manifest,
    sha256: String,
    grants: Grants,
    config: Arc<BTreeMap<String, String>>,
    limits: PluginLimits,
    engine: wasmtime::Engine,
    pre: WorldPre,
    kv: Arc<dyn KvBackend>,
    log: Arc<LogSink>,
    live: Mutex<Option<Live>>,
    traps: Mutex<VecDeque<Instant>>,
    disabled: Mutex<Option<String>>,
    calls: AtomicU64,
    errors: AtomicU64,
    trap_count: AtomicU64,
    memory: Arc<AtomicUsize>,
    /// Keeps the epoch thread (the deadline) alive as long as the plugin.
    _ticker: Arc<Ticker>,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.manifest.name).field("sha256", &self.sha256).finish()
    }
}

/// Runs a guest call so that WASI's sync bindings, which block on a tokio runtime when the
/// guest touches a stream (a panic message to stderr, say), never do so on an async worker.
fn outside_async<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() / TICK.as_millis()).max(1) as u64
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Plugin {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        manifest: Manifest,
        sha256: String,
        grants: Grants,
        config: BTreeMap<String, String>,
        limits: PluginLimits,
        engine: wasmtime::Engine,
        pre: WorldPre,
        kv: Arc<dyn KvBackend>,
        ticker: Arc<Ticker>,
    ) -> Self {
        let log = LogSink::new(&manifest.name, limits.log_lines_per_sec);
        Self {
            manifest,
            sha256,
            grants,
            config: Arc::new(config),
            limits,
            engine,
            pre,
            kv,
            log,
            live: Mutex::new(None),
            traps: Mutex::new(VecDeque::new()),
            disabled: Mutex::new(None),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            trap_count: AtomicU64::new(0),
            memory: Arc::new(AtomicUsize::new(0)),
            _ticker: ticker,
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the component, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Capabilities granted (a subset of what the manifest asks for).
    pub fn grants(&self) -> &[String] {
        &self.grants.raw
    }

    /// The effective config (defaults filled in).
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    /// Kept log lines and the count of dropped ones.
    pub fn logs(&self) -> (Vec<LogLine>, u64) {
        self.log.lines()
    }

    /// Health and counters.
    pub fn status(&self) -> PluginStatus {
        PluginStatus {
            disabled: lock(&self.disabled).clone(),
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            traps: self.trap_count.load(Ordering::Relaxed),
            memory_bytes: self.memory.load(Ordering::Relaxed),
            dropped_log_lines: self.log.lines().1,
        }
    }

    /// Disables the plugin with a reason admins see.
    pub fn disable(&self, reason: &str) {
        *lock(&self.disabled) = Some(reason.to_owned());
        *lock(&self.live) = None;
    }

    /// Enables it again with a clean trap budget.
    pub fn enable(&self) {
        *lock(&self.disabled) = None;
        lock(&self.traps).clear();
    }

    fn instantiate(&self) -> wasmtime::Result<Live> {
        let mut wasi = WasiCtx::builder();
        if let Some(dir) = &self.grants.dir {
            dir.apply(&mut wasi).map_err(|e| wasmtime::Error::msg(format!("{e:#}")))?;
        }
        let state = PluginState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter {
                max_memory: self.limits.memory_bytes,
                max_instances: self.limits.instances,
                used: self.memory.clone(),
            },
            log: LogState { sink: self.log.clone() },
            config: ConfigState { values: self.config.clone() },
            kv: KvState {
                plugin: self.manifest.name.as_str().into(),
                granted: self.grants.kv,
                quota: self.limits.kv_quota_bytes,
                backend: self.kv.clone(),
            },
            http: HttpState::new(self.grants.http.clone()),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(ticks(self.limits.deadline));
        let bindings = match &self.pre {
            WorldPre::Presence(pre) => Bindings::Presence(pre.instantiate(&mut store)?),
            WorldPre::Sink(pre) => Bindings::Sink(pre.instantiate(&mut store)?),
            WorldPre::Fed(pre) => Bindings::Fed(pre.instantiate(&mut store)?),
        };
        Ok(Live { store, bindings })
    }

    /// Runs `f` on the live instance (creating it if needed). A trap discards the instance and
    /// counts against the trap budget; past it the plugin disables itself.
    fn call<T>(
        &self,
        deadline: Duration,
        f: impl FnOnce(&mut Store<PluginState>, &Bindings) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if let Some(reason) = lock(&self.disabled).clone() {
            return Err(CallError::Disabled(reason));
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut live = lock(&self.live);
        if live.is_none() {
            *live = Some(outside_async(|| self.instantiate()).map_err(|e| self.trapped(&e))?);
        }
        let Some(l) = live.as_mut() else { return Err(CallError::Trap("no instance".into())) };
        l.store.set_epoch_deadline(ticks(deadline));
        match outside_async(|| f(&mut l.store, &l.bindings)) {
            Ok(v) => Ok(v),
            Err(e) => {
                *live = None;
                drop(live);
                Err(self.trapped(&e))
            }
        }
    }

    fn trapped(&self, e: &wasmtime::Error) -> CallError {
        self.trap_count.fetch_add(1, Ordering::Relaxed);
        let reason = match e.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::Interrupt) => "ran past its deadline".to_owned(),
            Some(t) => format!("{t}"),
            None => format!("{:#}", e.root_cause()),
        };
        self.log.write("error", &format!("trapped: {reason}"));
        let now = Instant::now();
        let mut traps = lock(&self.traps);
        traps.push_back(now);
        while traps.front().is_some_and(|t| now.duration_since(*t) > self.limits.trap_window) {
            traps.pop_front();
        }
        if traps.len() as u32 >= self.limits.max_traps {
            let why = format!(
                "disabled after {} traps within {} s; last: {reason}",
                traps.len(),
                self.limits.trap_window.as_secs()
            );
            tracing::error!(plugin = %self.manifest.name, "{why}");
            *lock(&self.disabled) = Some(why);
        }
        CallError::Trap(reason)
    }

    fn invalid(&self, why: String) -> CallError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.log.write("error", &format!("invalid answer: {why}"));
        CallError::Invalid(why)
    }

    /// Calls an export of the `presence-states` world.
    fn presence_call<T>(
        &self,
        f: impl FnOnce(&mut Store<PluginState>, &PresenceStates) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if !matches!(self.pre, WorldPre::Presence(_)) {
            return Err(CallError::Invalid(format!("{} is not a presence-states plugin", self.manifest.name)));
        }
        self.call(self.limits.deadline, |store, b| match b {
            Bindings::Presence(p) => f(store, p),
            _ => Err(wasmtime::Error::msg("not a presence-states instance")),
        })
    }

    /// The states the plugin defines, checked (ids, bands, colours, labels, count); none for
    /// plugins of other worlds.
    pub fn states(&self) -> Result<Vec<StateInfo>, CallError> {
        if !matches!(self.pre, WorldPre::Presence(_)) {
            return Ok(Vec::new());
        }
        let raw = self.presence_call(|store, b| b.call_states(store))?;
        if raw.len() > self.limits.max_states {
            return Err(self.invalid(format!("{} states; the limit is {}", raw.len(), self.limits.max_states)));
        }
        let states: Vec<CustomState> = raw
            .into_iter()
            .map(|s| CustomState {
                id: s.id,
                labels: s.labels.into_iter().map(|l| (l.lang, l.text)).collect(),
                availability: s.availability,
                colour: s.colour,
            })
            .collect();
        halo_core::presence::check_custom_states(&states).map_err(|e| self.invalid(e.to_string()))?;
        Ok(states)
    }

    /// The plugin's view of a user's published state; `None` keeps `builtin`.
    pub fn derive(
        &self,
        user: &str,
        inputs: &Inputs,
        now_ms: u64,
        builtin: &Published,
    ) -> Result<Option<Published>, CallError> {
        let input = input_to_wit(user, inputs, now_ms, builtin);
        match self.presence_call(|store, b| b.call_derive(store, &input))? {
            None => Ok(None),
            Some(p) => published_from_wit(p).map(Some).map_err(|e| self.invalid(e)),
        }
    }

    /// Seconds between ticks the plugin wants (at least 10 when set).
    pub fn tick_seconds(&self) -> Result<Option<Duration>, CallError> {
        let s = self.presence_call(|store, b| b.call_tick_seconds(store))?;
        Ok((s > 0).then(|| Duration::from_secs(u64::from(s).max(10))))
    }

    /// Hands a batch of archive records to an `archive-sink` plugin (within the
    /// `batch_deadline` limit).
    pub fn deliver(&self, batch: &[halo_core::archive::Record]) -> Result<SinkOutcome, CallError> {
        use crate::bindings::sink::halo::plugin::archive::SinkError;
        if !matches!(self.pre, WorldPre::Sink(_)) {
            return Err(CallError::Invalid(format!("{} is not an archive-sink plugin", self.manifest.name)));
        }
        let records: Vec<_> = batch.iter().map(record_to_wit).collect();
        let answer = self.call(self.limits.batch_deadline, |store, b| match b {
            Bindings::Sink(s) => s.call_deliver(store, &records),
            _ => Err(wasmtime::Error::msg("not an archive-sink instance")),
        })?;
        Ok(match answer {
            Ok(()) => SinkOutcome::Stored,
            Err(SinkError::Retry(m)) => SinkOutcome::Retry(clip(m)),
            Err(SinkError::Permanent(m)) => SinkOutcome::Permanent(clip(m)),
        })
    }

    /// Whether the admin granted a connection to `host:port`.
    pub fn allows_net(&self, host: &str, port: u16) -> bool {
        self.grants.allows_net(host, port)
    }

    /// Calls an export of the `federation-adapter` world and checks the actions.
    fn adapter_call(
        &self,
        f: impl FnOnce(&mut Store<PluginState>, &FederationAdapter) -> wasmtime::Result<Vec<FedAction>>,
    ) -> Result<Vec<AdapterAction>, CallError> {
        if !matches!(self.pre, WorldPre::Fed(_)) {
            return Err(CallError::Invalid(format!("{} is not a federation-adapter plugin", self.manifest.name)));
        }
        let raw = self.call(self.limits.deadline, |store, b| match b {
            Bindings::Fed(a) => f(store, a),
            _ => Err(wasmtime::Error::msg("not a federation-adapter instance")),
        })?;
        if raw.len() > MAX_ACTIONS {
            return Err(self.invalid(format!("{} actions in one answer; the limit is {MAX_ACTIONS}", raw.len())));
        }
        let actions: Vec<AdapterAction> = raw.into_iter().map(action_from_wit).collect();
        let bytes: usize = actions.iter().map(|a| if let AdapterAction::Send(_, b) = a { b.len() } else { 0 }).sum();
        if bytes > MAX_SEND_BYTES {
            return Err(self.invalid(format!("{bytes} bytes to send in one answer; the limit is {MAX_SEND_BYTES}")));
        }
        Ok(actions)
    }

    /// A federation adapter's first actions (when enabled, and again after its instance was
    /// re-created).
    pub fn adapter_start(&self) -> Result<Vec<AdapterAction>, CallError> {
        self.adapter_call(|store, a| a.call_start(store))
    }

    /// Hands a federation adapter one input.
    pub fn adapter_handle(&self, input: &AdapterInput) -> Result<Vec<AdapterAction>, CallError> {
        let input = fed_input_to_wit(input);
        self.adapter_call(|store, a| a.call_handle(store, &input))
    }
}

/// Clips a message from a plugin to 1 KiB.
fn clip(mut m: String) -> String {
    if m.len() > 1024 {
        let mut end = 1024;
        while !m.is_char_boundary(end) {
            end -= 1;
        }
        m.truncate(end);
    }
    m
}

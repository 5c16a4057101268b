//! One loaded plugin: the handle callers use. Its calls run on the plugin's own executor
//! thread (see [`crate::executor`]), which owns the live instance (re-created from the
//! `InstancePre` after a trap, since a trap poisons the whole store), and count against its
//! deadline, trap budget and CPU budget.
//!
//! Calls come in two forms. Async ones (`derive_async`, [`Plugin::derive_many`],
//! `states_async`, `tick_seconds_async`, [`Plugin::deliver`], [`Plugin::adapter_start`],
//! [`Plugin::adapter_handle`]) never run guest code on, nor block, the calling task's worker:
//! the task waits for the executor's answer. Blocking ones ([`Plugin::derive`],
//! [`Plugin::derive_many_blocking`], [`Plugin::states`], [`Plugin::tick_seconds`]) park the
//! calling thread until the answer comes: for callers that are not async (a presence shard
//! on its own thread, say); on a tokio worker they hold that worker for the handoff and the
//! guest's time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use halo_core::presence::{CustomState, Inputs, Published};
use serde::Serialize;

use crate::bindings::federation::{action_from_wit, input_to_wit as fed_input_to_wit};
use crate::bindings::federation_legacy as legacy;
use crate::bindings::{DeriveInput, derive_input, published_from_wit, record_to_wit};
use crate::budget::Budget;
use crate::cap::Grants;
use crate::cap::kv::KvBackend;
use crate::cap::log::{LogLine, LogSink};
use crate::executor::{Bindings, CallObserver, Executor, Shared, Worker, WorldPre, lock};
use crate::federation::{AdapterAction, AdapterInput, MAX_ACTIONS, MAX_SEND_BYTES};
use crate::limits::PluginLimits;
use crate::manifest::Manifest;
use crate::runtime::Ticker;

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
    /// It used its CPU budget for this window ([`PluginLimits::cpu_budget`]); calls are
    /// refused, without entering the guest, until the window ends.
    #[error("plugin throttled: {0}")]
    Throttled(String),
}

/// A state a plugin defines, as the host keeps it.
pub type StateInfo = CustomState;

/// What admins see of a plugin's health.
#[derive(Debug, Clone, Serialize)]
pub struct PluginStatus {
    /// Why it is disabled, if it is (by an admin, by its trap budget or by its CPU budget).
    pub disabled: Option<String>,
    /// Why its calls are refused until the current CPU window ends, if they are.
    pub throttled: Option<String>,
    /// Calls made.
    pub calls: u64,
    /// Calls that answered invalid data.
    pub errors: u64,
    /// Calls that trapped.
    pub traps: u64,
    /// Calls refused by the CPU budget.
    pub throttled_calls: u64,
    /// Guest time charged in the current CPU window, ms.
    pub cpu_window_ms: u64,
    /// Guest time charged since loaded, ms.
    pub cpu_total_ms: u64,
    /// Linear memory of the live instance, bytes.
    pub memory_bytes: usize,
    /// Log lines dropped by the flood limit.
    pub dropped_log_lines: u64,
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

/// One user's `derive` in a batch ([`Plugin::derive_many`]).
#[derive(Debug, Clone, Copy)]
pub struct DeriveRequest<'a> {
    /// The user.
    pub user: &'a str,
    /// Their presence inputs.
    pub inputs: &'a Inputs,
    /// Now, ms since the epoch.
    pub now_ms: u64,
    /// What the built-in rules (and the plugins before this one) made of them.
    pub builtin: &'a Published,
}

/// A loaded plugin. Cheap to share (`Arc<Plugin>`); its calls are serialised on its own
/// executor thread, which stops when the last handle is dropped and the queued calls are done.
pub struct Plugin {
    shared: Arc<Shared>,
    exec: Executor,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.shared.manifest.name).field("sha256", &self.shared.sha256).finish()
    }
}

/// What a `derive` answer means: `None` keeps the input's state.
fn derive_on(w: &mut Worker, input: &DeriveInput) -> Result<Option<Published>, CallError> {
    let deadline = w.shared.limits.deadline;
    let answer = w.call(deadline, |store, b| match b {
        Bindings::Presence(p) => {
            // The `calendar` import answers this user's event during this call only.
            store.data_mut().calendar.current = input.event.clone();
            let answer = p.call_derive(&mut *store, &input.input);
            store.data_mut().calendar.current = None;
            answer
        }
        _ => Err(wasmtime::Error::msg("not a presence-states instance")),
    })?;
    match answer {
        None => Ok(None),
        Some(p) => published_from_wit(p, input.input.builtin.availability).map(Some).map_err(|e| w.shared.invalid(e)),
    }
}

fn states_on(w: &mut Worker) -> Result<Vec<StateInfo>, CallError> {
    let deadline = w.shared.limits.deadline;
    let raw = w.call(deadline, |store, b| match b {
        Bindings::Presence(p) => p.call_states(store),
        _ => Err(wasmtime::Error::msg("not a presence-states instance")),
    })?;
    let s = &w.shared;
    if raw.len() > s.limits.max_states {
        return Err(s.invalid(format!("{} states; the limit is {}", raw.len(), s.limits.max_states)));
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
    halo_core::presence::check_custom_states(&states).map_err(|e| s.invalid(e.to_string()))?;
    Ok(states)
}

fn tick_on(w: &mut Worker) -> Result<Option<Duration>, CallError> {
    let deadline = w.shared.limits.deadline;
    let s = w.call(deadline, |store, b| match b {
        Bindings::Presence(p) => p.call_tick_seconds(store),
        _ => Err(wasmtime::Error::msg("not a presence-states instance")),
    })?;
    Ok((s > 0).then(|| Duration::from_secs(u64::from(s).max(10))))
}

/// Which federation export to call.
enum AdapterCall {
    Start,
    Handle(AdapterInput),
}

/// An adapter's answer, in the WIT version it was built against.
enum RawActions {
    Current(Vec<crate::bindings::fed::halo::plugin::federation::Action>),
    Legacy(Vec<crate::bindings::fed_legacy::halo::plugin::federation::Action>),
}

fn adapter_on(w: &mut Worker, which: AdapterCall) -> Result<Vec<AdapterAction>, CallError> {
    let deadline = w.shared.limits.deadline;
    let raw = w.call(deadline, |store, b| match (b, &which) {
        (Bindings::Fed(a), AdapterCall::Start) => a.call_start(store).map(RawActions::Current),
        (Bindings::Fed(a), AdapterCall::Handle(input)) => match fed_input_to_wit(input) {
            Some(input) => a.call_handle(store, &input).map(RawActions::Current),
            None => Ok(RawActions::Current(Vec::new())),
        },
        (Bindings::FedLegacy(a), AdapterCall::Start) => a.call_start(store).map(RawActions::Legacy),
        (Bindings::FedLegacy(a), AdapterCall::Handle(input)) => match legacy::input_to_wit(input) {
            Some(input) => a.call_handle(store, &input).map(RawActions::Legacy),
            // An input a 0.1.2/0.1.3 adapter has no case for: it would not understand it.
            None => Ok(RawActions::Legacy(Vec::new())),
        },
        _ => Err(wasmtime::Error::msg("not a federation-adapter instance")),
    })?;
    let s = &w.shared;
    let count = match &raw {
        RawActions::Current(a) => a.len(),
        RawActions::Legacy(a) => a.len(),
    };
    if count > MAX_ACTIONS {
        return Err(s.invalid(format!("{count} actions in one answer; the limit is {MAX_ACTIONS}")));
    }
    let actions: Vec<AdapterAction> = match raw {
        RawActions::Current(a) => a.into_iter().map(action_from_wit).collect(),
        RawActions::Legacy(a) => a.into_iter().map(legacy::action_from_wit).collect(),
    };
    let bytes: usize = actions.iter().map(|a| if let AdapterAction::Send(_, b) = a { b.len() } else { 0 }).sum();
    if bytes > MAX_SEND_BYTES {
        return Err(s.invalid(format!("{bytes} bytes to send in one answer; the limit is {MAX_SEND_BYTES}")));
    }
    Ok(actions)
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
        observer: Option<Arc<dyn CallObserver>>,
        log: Option<Arc<LogSink>>,
    ) -> std::io::Result<Self> {
        static LOADS: AtomicU64 = AtomicU64::new(1);
        let log = match log {
            Some(l) => {
                l.set_rate(limits.log_lines_per_sec);
                l
            }
            None => LogSink::new(&manifest.name, limits.log_lines_per_sec),
        };
        let quota = grants.dir.as_ref().map(|d| crate::cap::dir::Quota::new(d.path.clone(), limits.dir_quota_bytes));
        let shared = Arc::new(Shared {
            load_id: LOADS.fetch_add(1, Ordering::Relaxed),
            traps_in_a_row: AtomicU32::new(0),
            dir_quota: quota,
            manifest,
            sha256,
            grants,
            config: Arc::new(config),
            limits,
            engine,
            pre,
            kv,
            log,
            observer,
            traps: Mutex::default(),
            disabled: Mutex::new(None),
            budget: Mutex::new(Budget::new(Instant::now())),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            trap_count: AtomicU64::new(0),
            throttled_calls: AtomicU64::new(0),
            memory: Arc::new(AtomicUsize::new(0)),
            _ticker: ticker,
        });
        // A current-thread runtime's drivers only run inside its own `block_on`: entering it
        // from the plugin's thread could leave a WASI wait hanging, so only a multi-thread
        // runtime (the server's) is entered.
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let exec = Executor::start(shared.clone(), runtime)?;
        Ok(Self { shared, exec })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.shared.manifest
    }

    /// SHA-256 of the component, hex.
    pub fn sha256(&self) -> &str {
        &self.shared.sha256
    }

    /// Capabilities granted (a subset of what the manifest asks for).
    pub fn grants(&self) -> &[String] {
        &self.shared.grants.raw
    }

    /// The effective config (defaults filled in).
    pub fn config(&self) -> &BTreeMap<String, String> {
        &self.shared.config
    }

    /// The limits in force.
    pub fn limits(&self) -> &PluginLimits {
        &self.shared.limits
    }

    /// Kept log lines and the count of dropped ones.
    pub fn logs(&self) -> (Vec<LogLine>, u64) {
        self.shared.log.lines()
    }

    /// The plugin's log, to hand to its next load (a config change, an upgrade) so its lines
    /// are kept.
    pub fn log_sink(&self) -> Arc<LogSink> {
        self.shared.log.clone()
    }

    /// This load of the plugin: unique in the process, a new one for every load (a config
    /// change or an upgrade loads the plugin again).
    pub fn load_id(&self) -> u64 {
        self.shared.load_id
    }

    /// Health and counters.
    pub fn status(&self) -> PluginStatus {
        let s = &self.shared;
        let now = Instant::now();
        let budget = lock(&s.budget);
        PluginStatus {
            disabled: lock(&s.disabled).clone(),
            throttled: budget.throttled(now, &s.limits),
            calls: s.calls.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            traps: s.trap_count.load(Ordering::Relaxed),
            throttled_calls: s.throttled_calls.load(Ordering::Relaxed),
            cpu_window_ms: budget.used(now, &s.limits).as_millis() as u64,
            cpu_total_ms: budget.total.as_millis() as u64,
            memory_bytes: s.memory.load(Ordering::Relaxed),
            dropped_log_lines: s.log.lines().1,
        }
    }

    /// Disables the plugin with a reason admins see (its instance is dropped): an admin's
    /// decision, or one the server persisted earlier.
    pub fn disable(&self, reason: &str) {
        *lock(&self.shared.disabled) = Some(reason.to_owned());
        self.exec.post(Worker::discard);
    }

    /// Disables the plugin for a fault of its own (an archive sink refusing records for
    /// good): logged, and reported to the [`CallObserver`] like a trap budget's verdict, so the
    /// server keeps it disabled until an admin enables it.
    pub fn fail(&self, reason: &str) {
        self.shared.set_disabled(reason.to_owned());
        self.exec.post(Worker::discard);
    }

    /// Enables it again with a clean trap budget and CPU budget.
    pub fn enable(&self) {
        *lock(&self.shared.disabled) = None;
        lock(&self.shared.traps).clear();
        self.shared.traps_in_a_row.store(0, Ordering::Relaxed);
        lock(&self.shared.budget).reset(Instant::now());
    }

    fn is_presence(&self) -> Result<(), CallError> {
        match self.shared.pre {
            WorldPre::Presence(_) => Ok(()),
            _ => Err(CallError::Invalid(format!("{} is not a presence-states plugin", self.shared.manifest.name))),
        }
    }

    /// The states the plugin defines, checked (ids, bands, colours, labels, count); none for
    /// plugins of other worlds.
    pub async fn states_async(&self) -> Result<Vec<StateInfo>, CallError> {
        if self.is_presence().is_err() {
            return Ok(Vec::new());
        }
        self.exec.run(states_on).await?
    }

    /// [`Plugin::states_async`], blocking the calling thread.
    pub fn states(&self) -> Result<Vec<StateInfo>, CallError> {
        if self.is_presence().is_err() {
            return Ok(Vec::new());
        }
        self.exec.run_blocking(states_on)?
    }

    /// Seconds between ticks the plugin wants (at least 10 when set).
    pub async fn tick_seconds_async(&self) -> Result<Option<Duration>, CallError> {
        self.is_presence()?;
        self.exec.run(tick_on).await?
    }

    /// [`Plugin::tick_seconds_async`], blocking the calling thread.
    pub fn tick_seconds(&self) -> Result<Option<Duration>, CallError> {
        self.is_presence()?;
        self.exec.run_blocking(tick_on)?
    }

    /// The plugin's view of a user's published state; `None` keeps `builtin`. Blocks the
    /// calling thread for the handoff to the plugin's executor and the guest's time: kept for
    /// the presence service until it moves to the async, batched
    /// [`Plugin::derive_many`] (one crossing for every user of a batch, the per-user cost
    /// then being the guest call alone, about a microsecond for `custom-states`) or
    /// [`Plugin::derive_async`]; a caller on its own thread uses
    /// [`Plugin::derive_many_blocking`].
    pub fn derive(
        &self,
        user: &str,
        inputs: &Inputs,
        now_ms: u64,
        builtin: &Published,
    ) -> Result<Option<Published>, CallError> {
        self.is_presence()?;
        let input = derive_input(user, inputs, now_ms, builtin);
        self.exec.run_blocking(move |w| derive_on(w, &input))?
    }

    /// [`Plugin::derive`] for async callers: the task waits for the executor, no worker is
    /// held.
    pub async fn derive_async(
        &self,
        user: &str,
        inputs: &Inputs,
        now_ms: u64,
        builtin: &Published,
    ) -> Result<Option<Published>, CallError> {
        self.is_presence()?;
        let input = derive_input(user, inputs, now_ms, builtin);
        self.exec.run(move |w| derive_on(w, &input)).await?
    }

    fn batch(&self, requests: &[DeriveRequest<'_>]) -> Vec<DeriveInput> {
        requests.iter().map(|r| derive_input(r.user, r.inputs, r.now_ms, r.builtin)).collect()
    }

    /// `derive` for many users in one crossing to the plugin's executor: one answer per
    /// request, in order. Each call has its own deadline and counts against the budgets; a
    /// trap re-creates the instance for the next request, and once the plugin is disabled or
    /// throttled the remaining requests answer that error at once. A failed answer keeps that
    /// user's built-in state, like [`Plugin::derive`].
    pub async fn derive_many(&self, requests: &[DeriveRequest<'_>]) -> Vec<Result<Option<Published>, CallError>> {
        if let Err(e) = self.is_presence() {
            return vec![Err(e); requests.len()];
        }
        let (inputs, n) = (self.batch(requests), requests.len());
        match self.exec.run(move |w| inputs.iter().map(|i| derive_on(w, i)).collect()).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); n],
        }
    }

    /// [`Plugin::derive_many`], blocking the calling thread (for callers that are not async).
    pub fn derive_many_blocking(&self, requests: &[DeriveRequest<'_>]) -> Vec<Result<Option<Published>, CallError>> {
        if let Err(e) = self.is_presence() {
            return vec![Err(e); requests.len()];
        }
        let (inputs, n) = (self.batch(requests), requests.len());
        match self.exec.run_blocking(move |w| inputs.iter().map(|i| derive_on(w, i)).collect()) {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); n],
        }
    }

    /// Hands a batch of archive records to an `archive-sink` plugin (within the
    /// `batch_deadline` limit).
    pub async fn deliver(&self, batch: &[halo_core::archive::Record]) -> Result<SinkOutcome, CallError> {
        use crate::bindings::sink::halo::plugin::archive::SinkError;
        if !matches!(self.shared.pre, WorldPre::Sink(_)) {
            return Err(CallError::Invalid(format!("{} is not an archive-sink plugin", self.shared.manifest.name)));
        }
        let records: Vec<_> = batch.iter().map(record_to_wit).collect();
        let answer = self
            .exec
            .run(move |w| {
                let deadline = w.shared.limits.batch_deadline;
                w.call(deadline, |store, b| match b {
                    Bindings::Sink(s) => s.call_deliver(store, &records),
                    _ => Err(wasmtime::Error::msg("not an archive-sink instance")),
                })
            })
            .await??;
        Ok(match answer {
            Ok(()) => SinkOutcome::Stored,
            Err(SinkError::Retry(m)) => SinkOutcome::Retry(clip(m)),
            Err(SinkError::Permanent(m)) => SinkOutcome::Permanent(clip(m)),
        })
    }

    /// Whether the admin granted a connection to `host:port`.
    pub fn allows_net(&self, host: &str, port: u16) -> bool {
        self.shared.grants.allows_net(host, port)
    }

    /// Whether the admin granted accepting connections on `address:port` (`listen:`).
    pub fn allows_listen(&self, address: &str, port: u16) -> bool {
        self.shared.grants.allows_listen(address, port)
    }

    /// Whether the admin granted SRV lookups (`dns`).
    pub fn allows_dns(&self) -> bool {
        self.shared.grants.dns
    }

    async fn adapter(&self, which: AdapterCall) -> Result<Vec<AdapterAction>, CallError> {
        if !matches!(self.shared.pre, WorldPre::Fed(_) | WorldPre::FedLegacy(_)) {
            return Err(CallError::Invalid(format!(
                "{} is not a federation-adapter plugin",
                self.shared.manifest.name
            )));
        }
        self.exec.run(move |w| adapter_on(w, which)).await?
    }

    /// A federation adapter's first actions (when enabled, and again after its instance was
    /// re-created).
    pub async fn adapter_start(&self) -> Result<Vec<AdapterAction>, CallError> {
        self.adapter(AdapterCall::Start).await
    }

    /// Hands a federation adapter one input.
    pub async fn adapter_handle(&self, input: &AdapterInput) -> Result<Vec<AdapterAction>, CallError> {
        self.adapter(AdapterCall::Handle(input.clone())).await
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

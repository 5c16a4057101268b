//! Prometheus metrics, all prefixed `halo_`, rendered at `GET /metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabel {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

/// Compliance archiving metrics.
#[derive(Default)]
pub struct ArchiveMetrics {
    /// Records written to the archive (spooled with their message).
    pub records: Counter,
    /// Messages refused because archiving was failing (BlockOnArchiveFailure).
    pub refused: Counter,
    /// Records removed by retention.
    pub purged: Counter,
    /// Records kept in the built-in archive (refreshed at each scrape).
    pub kept: Gauge,
    depth: Family<SinkLabel, Gauge>,
    oldest: Family<SinkLabel, Gauge>,
    delivered: Family<SinkLabel, Counter>,
    failures: Family<SinkLabel, Counter>,
}

impl ArchiveMetrics {
    fn register(&self, r: &mut Registry) {
        r.register("archive_records", "Records written to the compliance archive", self.records.clone());
        r.register("archive_refused", "Messages refused while archiving was failing", self.refused.clone());
        r.register("archive_purged", "Archive records removed by retention", self.purged.clone());
        r.register("archive_kept_records", "Records in the built-in archive", self.kept.clone());
        r.register("archive_spool_depth", "Records waiting for an archive sink", self.depth.clone());
        r.register("archive_oldest_age_seconds", "Age of the oldest record waiting for a sink", self.oldest.clone());
        r.register("archive_delivered", "Records an archive sink stored", self.delivered.clone());
        r.register("archive_sink_failures", "Failed deliveries to an archive sink", self.failures.clone());
    }

    /// Sets a sink's backlog gauges.
    pub fn sink_backlog(&self, sink: &str, depth: u64, oldest_age_secs: u64) {
        let l = SinkLabel { sink: sink.to_owned() };
        self.depth.get_or_create(&l).set(depth as i64);
        self.oldest.get_or_create(&l).set(oldest_age_secs as i64);
    }

    /// Counts records a sink stored.
    pub fn sink_delivered(&self, sink: &str, n: u64) {
        self.delivered.get_or_create(&SinkLabel { sink: sink.to_owned() }).inc_by(n);
    }

    /// Counts a failed delivery.
    pub fn sink_failed(&self, sink: &str) {
        self.failures.get_or_create(&SinkLabel { sink: sink.to_owned() }).inc();
    }

    /// Drops a removed sink's gauges.
    pub fn sink_removed(&self, sink: &str) {
        let l = SinkLabel { sink: sink.to_owned() };
        self.depth.remove(&l);
        self.oldest.remove(&l);
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowerLabel {
    follower: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabel {
    domain: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainKindLabel {
    domain: String,
    kind: &'static str,
}

/// Connection metrics: open TCP connections against the cap, refusals.
#[derive(Default)]
pub struct ConnectionMetrics {
    /// Open TCP connections (HTTP and WebSocket).
    pub open: Gauge,
    /// The connection cap.
    pub max: Gauge,
    refused: Family<ReasonLabel, Counter>,
}

impl ConnectionMetrics {
    fn register(&self, r: &mut Registry) {
        r.register("connections_open", "Open TCP connections (HTTP and WebSocket)", self.open.clone());
        r.register("connections_max", "The connection cap", self.max.clone());
        r.register(
            "connections_refused",
            "Connections refused: max_connections (answered 503), hard_limit (closed at once)",
            self.refused.clone(),
        );
    }

    /// Counts a refused connection.
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabel { reason }).inc();
    }
}

/// Federation metrics, per remote domain.
#[derive(Default)]
pub struct FederationMetrics {
    sent: Family<DomainKindLabel, Counter>,
    received: Family<DomainKindLabel, Counter>,
    rejected: Family<DomainLabel, Counter>,
    failures: Family<DomainLabel, Counter>,
    queue: Family<DomainLabel, Gauge>,
}

impl FederationMetrics {
    fn register(&self, r: &mut Registry) {
        r.register("federation_sent", "Items carried to a remote domain, by kind", self.sent.clone());
        r.register("federation_received", "Items accepted from a remote domain, by kind", self.received.clone());
        r.register("federation_rejected", "Remote stanzas or requests refused, by domain", self.rejected.clone());
        r.register("federation_link_failures", "Failed connections or deliveries, by domain", self.failures.clone());
        r.register("federation_queue_depth", "Items waiting for a remote domain", self.queue.clone());
    }

    /// Counts an item carried out.
    pub fn sent(&self, domain: &str, kind: &'static str) {
        self.sent.get_or_create(&DomainKindLabel { domain: domain.to_owned(), kind }).inc();
    }

    /// Counts an item accepted.
    pub fn received(&self, domain: &str, kind: &'static str) {
        self.received.get_or_create(&DomainKindLabel { domain: domain.to_owned(), kind }).inc();
    }

    /// Counts a refusal (`?` when the domain is unknown).
    pub fn rejected(&self, domain: &str) {
        self.rejected.get_or_create(&DomainLabel { domain: domain.to_owned() }).inc();
    }

    /// Counts a failed connection or delivery.
    pub fn failed(&self, domain: &str) {
        self.failures.get_or_create(&DomainLabel { domain: domain.to_owned() }).inc();
    }

    /// Sets a domain's queue depth.
    pub fn queue(&self, domain: &str, depth: u64) {
        self.queue.get_or_create(&DomainLabel { domain: domain.to_owned() }).set(depth as i64);
    }
}

type HistogramFamily = Family<PluginLabel, Histogram, fn() -> Histogram>;

fn plugin_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_001, 4.0, 12))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: &'static str,
}

/// The server's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    /// A pool member's name, added as the `node` label of every sample.
    node: std::sync::OnceLock<String>,
    http_requests: Family<HttpLabels, Counter>,
    logins: Family<ResultLabel, Counter>,
    ws_frame_errors: Family<CodeLabel, Counter>,
    ws_closed: Family<ReasonLabel, Counter>,
    /// Connected WebSocket endpoints.
    pub ws_connections: Gauge,
    /// WebSocket endpoints accepted since start.
    pub ws_accepted: Counter,
    /// Frames received from clients.
    pub ws_frames_received: Counter,
    /// Frames sent to clients.
    pub ws_frames_sent: Counter,
    /// Endpoints dropped because their send queue was full.
    pub ws_slow_consumers: Counter,
    /// Accounts (refreshed at each scrape).
    pub users: Gauge,
    /// Messages and room posts stored.
    pub im_sent: Counter,
    /// Messages queued to at least one endpoint of a recipient, per recipient.
    pub im_delivered: Counter,
    /// Messages waiting for a device to acknowledge them, offline or pushed live (refreshed at
    /// each scrape).
    pub im_offline_queue: Gauge,
    /// Seconds from a send request to the message stored and queued to every recipient.
    pub im_delivery: Histogram,
    /// Presence changes published (after coalescing).
    pub presence_published: Counter,
    /// Presence frames queued to watchers' sockets.
    pub presence_notifications: Counter,
    plugin_calls: Family<PluginLabel, Counter>,
    plugin_errors: Family<PluginLabel, Counter>,
    plugin_traps: Family<PluginLabel, Counter>,
    plugin_seconds: HistogramFamily,
    plugin_wait: HistogramFamily,
    plugin_throttled: Family<PluginLabel, Counter>,
    plugin_refused: Family<PluginLabel, Counter>,
    plugin_memory: Family<PluginLabel, Gauge>,
    /// 1 while storage takes writes, 0 while it fails (disk full, I/O errors).
    pub storage_available: Gauge,
    /// Times the store recovered from a storage failure by reopening its database.
    pub storage_recoveries: Counter,
    /// Search index commits that failed (retried with backoff).
    pub search_index_failures: Counter,
    log_follower_lag: Family<FollowerLabel, Gauge>,
    /// The IM log's last durable sequence number (refreshed at each scrape).
    pub log_last: Gauge,
    /// Entries of the pool's IM stream this node has not folded yet (0 alone; refreshed at
    /// each scrape).
    pub log_stream_lag: Gauge,
    /// Compliance archiving.
    pub archive: ArchiveMetrics,
    /// Federation.
    pub federation: FederationMetrics,
    /// TCP connections.
    pub conn: ConnectionMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("halo");
        let m = Self {
            http_requests: Family::default(),
            logins: Family::default(),
            ws_frame_errors: Family::default(),
            ws_closed: Family::default(),
            ws_connections: Gauge::default(),
            ws_accepted: Counter::default(),
            ws_frames_received: Counter::default(),
            ws_frames_sent: Counter::default(),
            ws_slow_consumers: Counter::default(),
            users: Gauge::default(),
            im_sent: Counter::default(),
            im_delivered: Counter::default(),
            im_offline_queue: Gauge::default(),
            im_delivery: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            presence_published: Counter::default(),
            presence_notifications: Counter::default(),
            plugin_calls: Family::default(),
            plugin_errors: Family::default(),
            plugin_traps: Family::default(),
            plugin_seconds: Family::new_with_constructor(plugin_histogram),
            plugin_wait: Family::new_with_constructor(plugin_histogram),
            plugin_throttled: Family::default(),
            plugin_refused: Family::default(),
            plugin_memory: Family::default(),
            storage_available: Gauge::default(),
            storage_recoveries: Counter::default(),
            search_index_failures: Counter::default(),
            log_follower_lag: Family::default(),
            log_last: Gauge::default(),
            log_stream_lag: Gauge::default(),
            archive: ArchiveMetrics::default(),
            federation: FederationMetrics::default(),
            conn: ConnectionMetrics::default(),
            registry: Registry::default(),
            node: std::sync::OnceLock::new(),
        };
        let build_info: Family<VersionLabel, Gauge> = Family::default();
        build_info.get_or_create(&VersionLabel { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Halo version (value is always 1)", build_info);
        registry.register("http_requests", "HTTP requests by method, route and status", m.http_requests.clone());
        registry.register("logins", "Login attempts by result", m.logins.clone());
        registry.register("ws_connections", "Connected WebSocket endpoints", m.ws_connections.clone());
        registry.register("ws_accepted", "WebSocket endpoints accepted", m.ws_accepted.clone());
        registry.register("ws_frames_received", "Frames received on WebSockets", m.ws_frames_received.clone());
        registry.register("ws_frames_sent", "Frames sent on WebSockets", m.ws_frames_sent.clone());
        registry.register("ws_frame_errors", "Refused WebSocket frames by error code", m.ws_frame_errors.clone());
        registry.register("ws_closed", "WebSocket endpoints closed, by reason", m.ws_closed.clone());
        registry.register("ws_slow_consumers", "Endpoints dropped for a full send queue", m.ws_slow_consumers.clone());
        registry.register("users", "Accounts", m.users.clone());
        m.storage_available.set(1);
        registry.register(
            "storage_available",
            "1 while storage takes writes, 0 while it fails",
            m.storage_available.clone(),
        );
        registry.register(
            "storage_recoveries",
            "Recoveries from a storage failure without restart",
            m.storage_recoveries.clone(),
        );
        registry.register(
            "search_index_failures",
            "Failed search index commits (retried)",
            m.search_index_failures.clone(),
        );
        registry.register(
            "log_follower_lag",
            "IM log entries a follower (search, archive, federation) has yet to process",
            m.log_follower_lag.clone(),
        );
        registry.register("log_last_seq", "The IM log's last durable sequence number", m.log_last.clone());
        registry.register(
            "log_stream_lag",
            "Entries of the pool's IM stream this node has not folded yet (0 on a standalone node)",
            m.log_stream_lag.clone(),
        );
        registry.register("im_sent", "Messages and room posts stored", m.im_sent.clone());
        registry.register("im_delivered", "Messages queued to a recipient's devices", m.im_delivered.clone());
        registry.register(
            "im_offline_queue",
            "Messages (offline, or pushed live) waiting for a device to acknowledge them",
            m.im_offline_queue.clone(),
        );
        registry.register("plugin_calls", "Plugin calls", m.plugin_calls.clone());
        registry.register("plugin_errors", "Plugin calls that answered invalid data", m.plugin_errors.clone());
        registry.register(
            "plugin_traps",
            "Plugin calls that trapped (deadline, memory limit, panic)",
            m.plugin_traps.clone(),
        );
        registry.register(
            "plugin_call_seconds",
            "Time of one plugin call in the guest, on the plugin's executor thread",
            m.plugin_seconds.clone(),
        );
        registry.register(
            "plugin_wait_seconds",
            "Time a caller waited for one plugin call or batch (queue, thread handoff, guest)",
            m.plugin_wait.clone(),
        );
        registry.register(
            "plugin_throttled",
            "Plugin calls refused because the plugin used its CPU budget for the window",
            m.plugin_throttled.clone(),
        );
        registry.register(
            "plugin_refused",
            "Plugin calls refused because the plugin is disabled (not traps: they never entered it)",
            m.plugin_refused.clone(),
        );
        registry.register("plugin_memory_bytes", "Linear memory of a plugin's live instance", m.plugin_memory.clone());
        registry.register("presence_published", "Presence changes published", m.presence_published.clone());
        registry.register(
            "presence_notifications",
            "Presence frames queued to watchers",
            m.presence_notifications.clone(),
        );
        registry.register(
            "im_delivery_seconds",
            "Send request to stored and queued to recipients",
            m.im_delivery.clone(),
        );
        m.archive.register(&mut registry);
        m.federation.register(&mut registry);
        m.conn.register(&mut registry);
        Self { registry, ..m }
    }

    /// Counts one HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        let labels = HttpLabels { method: method.to_owned(), route: route.to_owned(), status };
        self.http_requests.get_or_create(&labels).inc();
    }

    /// Counts one login attempt by result (`ok`, `invalid`, `disabled`, `rate_limited`).
    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&ResultLabel { result }).inc();
    }

    /// Records the time a caller waited for one call (or one batch) of `plugin`: queueing,
    /// the handoff to its executor thread and back, and the guest. The calls themselves are
    /// counted by the executor ([`PluginCalls`]).
    pub fn plugin_wait(&self, plugin: &str, waited: std::time::Duration) {
        self.plugin_wait.get_or_create(&PluginLabel { plugin: plugin.to_owned() }).observe(waited.as_secs_f64());
    }

    /// Kept for the presence service, which measures its blocking `derive` itself: records the
    /// wait only (see [`Metrics::plugin_wait`]).
    pub fn plugin_call(&self, plugin: &str, took: std::time::Duration, _error: Option<&halo_plugin_host::CallError>) {
        self.plugin_wait(plugin, took);
    }

    /// The observer to give the plugin runtime: counts every call, its guest time, invalid
    /// answers, traps and calls refused by the CPU budget.
    pub fn plugin_calls(self: &Arc<Self>) -> Arc<dyn halo_plugin_host::CallObserver> {
        Arc::new(PluginCalls(self.clone()))
    }

    /// Sets how many IM log entries `follower` has yet to process.
    pub fn follower_lag(&self, follower: &'static str, entries: u64) {
        self.log_follower_lag.get_or_create(&FollowerLabel { follower }).set(entries as i64);
    }

    /// Sets a plugin's memory gauge.
    pub fn plugin_memory(&self, plugin: &str, bytes: usize) {
        self.plugin_memory.get_or_create(&PluginLabel { plugin: plugin.to_owned() }).set(bytes as i64);
    }

    /// Counts one refused frame.
    pub fn ws_frame_error(&self, code: &str) {
        self.ws_frame_errors.get_or_create(&CodeLabel { code: code.to_owned() }).inc();
    }

    /// Counts one closed endpoint by reason (`client` when the client closed or vanished).
    pub fn ws_closed(&self, reason: &'static str) {
        self.ws_closed.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
        }
        match self.node.get() {
            Some(node) => with_node(&out, node),
            None => out,
        }
    }

    /// Labels every sample with `node="<node>"` (a pool member: each node's `/metrics` says
    /// whose figures they are, so a scraper of the whole pool can tell them apart and sum).
    pub fn set_node(&self, node: &str) {
        let _ = self.node.set(node.replace(['\\', '"'], "_"));
    }
}

/// `text` (Prometheus text format) with `node="<node>"` added to every sample's labels.
fn with_node(text: &str, node: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
        } else if let Some(i) = line.find('{') {
            out.push_str(&line[..=i]);
            out.push_str(&format!("node=\"{node}\","));
            out.push_str(&line[i + 1..]);
        } else if let Some(i) = line.find(' ') {
            out.push_str(&line[..i]);
            out.push_str(&format!("{{node=\"{node}\"}}"));
            out.push_str(&line[i..]);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// What the plugin executor reports, turned into metrics ([`Metrics::plugin_calls`]).
pub struct PluginCalls(Arc<Metrics>);

impl halo_plugin_host::CallObserver for PluginCalls {
    fn call(&self, plugin: &str, guest: std::time::Duration, error: Option<&halo_plugin_host::CallError>) {
        use halo_plugin_host::CallError;
        let m = &self.0;
        let label = PluginLabel { plugin: plugin.to_owned() };
        match error {
            Some(CallError::Throttled(_)) => {
                m.plugin_throttled.get_or_create(&label).inc();
                return;
            }
            Some(CallError::Disabled(_)) => {
                m.plugin_refused.get_or_create(&label).inc();
                return;
            }
            _ => {}
        }
        m.plugin_calls.get_or_create(&label).inc();
        m.plugin_seconds.get_or_create(&label).observe(guest.as_secs_f64());
        if let Some(CallError::Trap(_)) = error {
            m.plugin_traps.get_or_create(&label).inc();
        }
    }

    fn invalid(&self, plugin: &str) {
        self.0.plugin_errors.get_or_create(&PluginLabel { plugin: plugin.to_owned() }).inc();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_pool_member_labels_every_sample_with_its_node() {
        let text = "# HELP halo_users Accounts.\n# TYPE halo_users gauge\nhalo_users 3\nhalo_logins_total{result=\"ok\"} 2\n# EOF\n";
        let out = super::with_node(text, "fe1");
        assert_eq!(
            out,
            "# HELP halo_users Accounts.\n# TYPE halo_users gauge\nhalo_users{node=\"fe1\"} 3\nhalo_logins_total{node=\"fe1\",result=\"ok\"} 2\n# EOF\n"
        );
    }
}

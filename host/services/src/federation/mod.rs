//! Federation: IM and presence with users of other servers (`name@domain`).
//!
//! [`FederationService`] holds the admin's domain rules, routes what local users send to
//! remote ones into a durable per-domain queue (`halo-store`'s `fed_queue`), and hands each
//! queue to its transport: an adapter plugin (`adapter.rs`: the host owns the sockets, timers
//! and reconnects; the plugin translates) or a Halo peer (`peer.rs`: HTTPS with signed
//! requests). A transport takes an item off the queue only once it carried it, so a peer that
//! is down holds its items until it is back, and never blocks local IM.
//!
//! Inbound traffic, from either transport, comes through [`FederationService::inbound`]: the
//! sender's domain must be allowed and routed through the transport it arrived on (no
//! spoofing another domain), the recipient must be a local account, and then it becomes a
//! message in a 1:1 conversation, a remote presence, or a subscription change. Group traffic
//! (`groups.rs`) goes to or comes from a group: a conversation or room hosted here, or the
//! conversation standing here for one hosted elsewhere.

mod adapter;
mod adapter_net;
mod bounce;
mod farewell;
mod groups;
mod limits;
mod overview;
pub mod peer;
mod pooled;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};

use halo_core::Username;
use halo_core::federation::{
    Access, Breaker, BreakerState, Domain, FederationError, Item, Refusal, Route, RouteKey, Rule, Rules, Subscription,
};
use halo_plugin_host::Plugin;
use halo_store::{Outbound, Store};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::error::ServiceError;
use crate::im::ImService;
use crate::metrics::Metrics;
use crate::presence::{PresenceService, Viewer, presence_info};
use crate::rooms::RoomService;

pub use overview::{DomainView, Overview};

/// Federation settings (`[federation]` in `halo.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSettings {
    /// This server's domain: how other servers address its users (`alice@<domain>`). Halo
    /// peers need it; adapters name their own (e.g. the XMPP component's domain).
    pub domain: Option<String>,
    /// Where to accept Halo peers (HTTPS only), e.g. `0.0.0.0:5271`.
    pub listen: Option<String>,
    /// PEM certificate chain for `listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `listen`.
    pub tls_key: Option<PathBuf>,
    /// PEM certificate chain federation adapters present when they switch an accepted link to
    /// TLS as the server (STARTTLS on an XMPP server-to-server link): one valid for the
    /// adapter's domain.
    pub adapter_tls_cert: Option<PathBuf>,
    /// PEM private key for `adapter_tls_cert`.
    pub adapter_tls_key: Option<PathBuf>,
    /// A PEM CA file adapters' TLS clients trust instead of Mozilla's roots (a private CA).
    pub adapter_tls_ca: Option<PathBuf>,
    /// SRV answers to use instead of DNS, per domain: `{ "xmpp.example.org" = "10.0.0.5:5269" }`
    /// answers every `_service._proto.xmpp.example.org` lookup with that one target.
    pub srv_override: BTreeMap<String, String>,
    /// Messages per second each remote domain may send (all its users together; the `[im]`
    /// per-user limit is for local users). Over it, messages are refused with an error to the
    /// sender.
    pub remote_messages_per_sec: f64,
    /// Messages a remote domain may send in a burst above its steady rate.
    pub remote_burst: f64,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            domain: None,
            listen: None,
            tls_cert: None,
            tls_key: None,
            remote_messages_per_sec: limits::DEFAULT_PER_SEC,
            remote_burst: limits::DEFAULT_BURST,
            adapter_tls_cert: None,
            adapter_tls_key: None,
            adapter_tls_ca: None,
            srv_override: BTreeMap::new(),
        }
    }
}

/// How a transport is doing, as admins see it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct LinkStatus {
    /// `up` (carrying traffic), `down`, or `disabled` (the adapter plugin is not running).
    pub state: String,
    /// The circuit breaker: `closed`, `backoff` or `open`.
    #[schema(value_type = String)]
    pub breaker: Option<BreakerState>,
    /// Failures in a row.
    pub failures: u32,
    /// The last failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the next attempt is due, ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// Items carried out.
    pub sent: u64,
    /// Items accepted in.
    pub received: u64,
    /// Remote traffic refused.
    pub rejected: u64,
    /// Messages accepted in that had arrived before (same sender and id; not delivered again).
    pub duplicates: u64,
}

impl LinkStatus {
    fn breaker(&mut self, b: &Breaker) {
        self.breaker = Some(b.state());
        self.failures = b.failures();
        self.last_error = b.last_error().map(str::to_owned);
        self.retry_at = (b.failures() > 0).then(|| b.retry_at());
    }
}

fn route_name(k: &RouteKey) -> String {
    match k {
        RouteKey::Adapter(p) => format!("adapter:{p}"),
        RouteKey::Halo(d) => format!("halo:{d}"),
    }
}

/// The federation service.
pub struct FederationService {
    store: Store,
    presence: Arc<PresenceService>,
    metrics: Arc<Metrics>,
    domain: Option<Domain>,
    rules: RwLock<Rules>,
    im: OnceLock<Weak<ImService>>,
    rooms: OnceLock<Weak<RoomService>>,
    /// Counts room changes (adapters keep a directory of the rooms).
    rooms_changed: tokio::sync::watch::Sender<u64>,
    wakers: Mutex<HashMap<RouteKey, Arc<Notify>>>,
    links: Mutex<BTreeMap<RouteKey, LinkStatus>>,
    adapters: Mutex<HashMap<String, adapter::Running>>,
    peers: Mutex<HashMap<String, tokio::task::JoinHandle<()>>>,
    /// Remote traffic refused by the sender's domain, as `halo_federation_rejected_total`
    /// counts it (requests that failed authentication included).
    rejected: Mutex<BTreeMap<String, u64>>,
    /// How fast each remote domain may send messages.
    limits: limits::DomainLimits,
    /// TLS and DNS for adapters (0.1.4).
    adapter_net: Arc<adapter_net::AdapterNet>,
    /// Whether this node carries the queues (in a pool, the `federation` task's holder only).
    gate: Mutex<crate::pool::tasks::Gate>,
    /// A pool member's view of the queues' progress marks (`pool/federation.rs`).
    pool: OnceLock<Arc<crate::pool::federation::Queues>>,
}

/// Runs the transport `make` makes while `gate` is open; stops it when the gate closes, and
/// starts it afresh when it opens again. In a pool, what the previous holder of the queues
/// carried is dropped before it starts.
async fn gated<F, Fut>(fed: Weak<FederationService>, mut gate: crate::pool::tasks::Gate, make: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    loop {
        gate.opened().await;
        let pool = fed.upgrade().and_then(|f| f.pool.get().cloned());
        tokio::select! {
            () = async {
                if let Some(pool) = pool {
                    pool.ready().await;
                }
                make().await
            } => return,
            () = gate.closed() => tracing::info!("federation transport stopped: another pool node carries it"),
        }
    }
}

/// Most domains [`FederationService`] counts refusals for by name; the rest count as `(other)`.
const MAX_REJECTED_DOMAINS: usize = 256;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fed_error(e: FederationError) -> ServiceError {
    match e {
        FederationError::Blocked(_) | FederationError::NotFederated(_) => ServiceError::forbidden(e.to_string()),
        _ => ServiceError::Invalid(e.to_string()),
    }
}

impl FederationService {
    /// The service over `store`'s rules and queues. Call [`FederationService::start`] once the
    /// IM service exists.
    pub fn new(
        store: Store,
        presence: Arc<PresenceService>,
        metrics: Arc<Metrics>,
        settings: &FederationSettings,
    ) -> anyhow::Result<Arc<Self>> {
        let domain = settings.domain.as_deref().map(Domain::parse).transpose()?;
        let rules = Rules { by_domain: store.federation().rules()? };
        let adapter_net = Arc::new(adapter_net::AdapterNet::new(settings)?);
        Ok(Arc::new(Self {
            store,
            presence,
            metrics,
            domain,
            rules: RwLock::new(rules),
            im: OnceLock::new(),
            rooms: OnceLock::new(),
            rooms_changed: tokio::sync::watch::Sender::new(0),
            wakers: Mutex::default(),
            links: Mutex::default(),
            adapters: Mutex::default(),
            peers: Mutex::default(),
            rejected: Mutex::default(),
            limits: limits::DomainLimits::new(settings.remote_messages_per_sec, settings.remote_burst),
            adapter_net,
            gate: Mutex::new(crate::pool::tasks::Gate::open()),
            pool: OnceLock::new(),
        }))
    }

    /// Connects IM (for inbound messages), presence (for local changes going out) and starts
    /// the Halo peer links.
    pub fn start(self: &Arc<Self>, im: &Arc<ImService>) -> anyhow::Result<()> {
        let _ = self.im.set(Arc::downgrade(im));
        let mut outbox = self.presence.federate(self.store.federation().all_followers()?);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            // What waits is queued together (a pool member: one log entry).
            while let Some(first) = outbox.recv().await {
                let Some(me) = me.upgrade() else { return };
                let mut batch = vec![first];
                while batch.len() < 256
                    && let Ok(out) = outbox.try_recv()
                {
                    batch.push(out);
                }
                let entries = batch.into_iter().filter_map(|out| {
                    let info = presence_info(&out.view);
                    me.outbound(Item::Presence { from: out.from.to_string(), to: out.to.to_string(), info }).ok()
                });
                if let Err(e) = me.queue(entries.collect()).await {
                    tracing::debug!(error = %e, "presence for remote followers not queued");
                }
            }
        });
        self.sync_peers();
        Ok(())
    }

    /// Connects the room service, for traffic to and from rooms.
    pub fn set_rooms(&self, rooms: &Arc<RoomService>) {
        let _ = self.rooms.set(Arc::downgrade(rooms));
    }

    fn room_service(&self) -> Result<Arc<RoomService>, ServiceError> {
        self.rooms
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| ServiceError::Internal("federation is not started".into()))
    }

    /// A room was created, renamed or changed: adapters refresh their directories.
    pub fn rooms_changed(&self) {
        self.rooms_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The rooms users of other servers may find, for adapters' directories.
    fn room_directory(&self) -> Vec<halo_plugin_host::federation::RoomInfo> {
        RoomService::directory(&self.store)
            .into_iter()
            .map(|r| halo_plugin_host::federation::RoomInfo {
                group: halo_core::federation::Group::Room(r.id).local(),
                name: r.name.clone(),
                subject: r.topic.clone(),
                members_only: r.privacy != halo_core::room::Privacy::Open,
                members: u32::try_from(r.members.len()).unwrap_or(u32::MAX),
            })
            .collect()
    }

    /// This server's federation domain, if set.
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_ref().map(Domain::as_str)
    }

    fn rules(&self) -> std::sync::RwLockReadGuard<'_, Rules> {
        self.rules.read().unwrap_or_else(|p| p.into_inner())
    }

    fn im(&self) -> Result<Arc<ImService>, ServiceError> {
        self.im.get().and_then(Weak::upgrade).ok_or_else(|| ServiceError::Internal("federation is not started".into()))
    }

    /// Parses a remote address a local user names (a contact to add, someone to write to) and
    /// checks its domain is federated.
    pub fn address(&self, raw: &str) -> Result<Username, ServiceError> {
        let addr = Username::parse_address(raw).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let Some(domain) = addr.domain() else {
            return Err(ServiceError::Invalid(format!("{raw:?} is not a federated address (name@domain)")));
        };
        if Some(domain) == self.domain() {
            return Err(ServiceError::Invalid(format!("{domain} is this server; name the user without @{domain}")));
        }
        if halo_core::federation::is_group(addr.as_str()) {
            return Err(ServiceError::Invalid(format!("{raw:?} is a group, not a user")));
        }
        self.rules().route(domain).map_err(fed_error)?;
        Ok(addr)
    }

    fn waker(&self, key: &RouteKey) -> Arc<Notify> {
        lock(&self.wakers).entry(key.clone()).or_default().clone()
    }

    fn link<T>(&self, key: &RouteKey, f: impl FnOnce(&mut LinkStatus) -> T) -> T {
        let mut links = lock(&self.links);
        f(links.entry(key.clone()).or_insert_with(|| LinkStatus { state: "down".into(), ..Default::default() }))
    }

    /// Queues `item` (to a remote user) for its domain, durably, and wakes its transport.
    pub async fn send(&self, item: Item) -> Result<(), ServiceError> {
        let entry = self.outbound(item)?;
        self.queue(vec![entry]).await
    }

    /// Queues `items` made by [`outbound`](Self::outbound), durably: on one node into their
    /// domains' queues; on a pool member into the IM log, from which every node queues them
    /// (and the node carrying the queues sends them, whichever node made them).
    async fn queue(&self, items: Vec<(Outbound, RouteKey)>) -> Result<(), ServiceError> {
        if self.pool.get().is_some() {
            // The federation follower queues them and wakes the transports.
            self.store.im().federate(items.into_iter().map(|(o, _)| o).collect()).await?;
            return Ok(());
        }
        for (outbound, key) in items {
            self.store.federation().enqueue(&outbound.domain, std::slice::from_ref(&outbound.item)).await?;
            self.wake(&key);
        }
        Ok(())
    }

    /// The first `limit` items waiting for `domain` (in a pool, what the pool carried is
    /// dropped first).
    fn peek(&self, domain: &str, limit: usize) -> Vec<halo_store::Queued> {
        if let Some(pool) = self.pool.get() {
            pool.trim_domain(domain);
        }
        self.store.federation().peek(domain, limit).unwrap_or_default()
    }

    /// Takes the items at `seqs` (carried, or dropped for good) off `domain`'s queue; in a
    /// pool, moves the domain's progress mark to the last of them.
    async fn done(&self, domain: &str, seqs: &[u64]) -> Result<(), halo_store::StoreError> {
        self.store.federation().remove(domain, seqs).await?;
        if let (Some(pool), Some(last)) = (self.pool.get(), seqs.iter().max()) {
            pool.carried(domain, *last).await;
        }
        Ok(())
    }

    /// `item` (to a remote user) as the queue entry of its domain, to be stored in the same
    /// commit as what it carries (a message: [`halo_store::Im::append`]), with the route to
    /// [`wake`](Self::wake) once it is stored. Refused while the domain is not routed (blocked,
    /// or no rule allows it): then nothing is to be stored.
    pub fn outbound(&self, item: Item) -> Result<(Outbound, RouteKey), ServiceError> {
        let to = Username::parse_address(item.to()).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let Some(domain) = to.domain() else { return Err(ServiceError::Invalid("not a remote address".into())) };
        let key = {
            let rules = self.rules();
            RouteKey::of(domain, rules.route(domain).map_err(fed_error)?)
        };
        Ok((Outbound { domain: domain.to_owned(), item }, key))
    }

    /// Tells the transport carrying `domain` that items wait for it (when the domain is
    /// routed).
    pub fn wake_domain(&self, domain: &str) {
        let route = self.rules().route(domain).map(|r| RouteKey::of(domain, r));
        if let Ok(key) = route {
            self.wake(&key);
        }
    }

    /// Tells the transport of `key` that items wait for it.
    pub fn wake(&self, key: &RouteKey) {
        self.waker(key).notify_one();
    }

    /// The domains with items waiting that `key` carries, and how many wait for each.
    fn queued_for(&self, key: &RouteKey) -> Vec<(String, u64)> {
        let depths = self.store.federation().depths().unwrap_or_default();
        let rules = self.rules();
        depths
            .into_iter()
            .filter(|(d, _)| rules.route(d).is_ok_and(|r| &RouteKey::of(d, r) == key))
            .inspect(|(d, n)| self.metrics.federation.queue(d, *n))
            .collect()
    }

    /// What arrived from a remote server through `via`: checked, then delivered. A refusal is
    /// logged, counted, and answered with why, for the transport to tell the sender.
    pub async fn inbound(&self, via: &RouteKey, item: Item) -> Result<Accepted, (Refusal, String)> {
        let result = self.accept(via, item).await;
        if let Err((domain, refusal, why)) = &result {
            tracing::info!(route = %route_name(via), domain, refusal = refusal.code(), reason = %why, "remote traffic refused");
            self.count_rejected(Some(via), domain);
        }
        result.map_err(|(_, refusal, why)| (refusal, why))
    }

    /// Counts a refusal a transport found itself (an adapter's `reject`, a peer's bad item).
    pub fn rejected_by_transport(&self, via: &RouteKey, domain: Option<&str>, reason: &str) {
        tracing::info!(route = %route_name(via), domain = domain.unwrap_or("?"), reason, "adapter refused remote traffic");
        self.count_rejected(Some(via), domain.unwrap_or("?"));
    }

    /// Counts one refusal of traffic from `domain` (`?` when unknown): in the metric, in the
    /// overview's `rejected`, and on the link it came through, if any.
    /// Past [`MAX_REJECTED_DOMAINS`] names, both count it as `(other)`.
    pub(crate) fn count_rejected(&self, via: Option<&RouteKey>, domain: &str) {
        {
            let mut counts = lock(&self.rejected);
            let name =
                if counts.contains_key(domain) || counts.len() < MAX_REJECTED_DOMAINS { domain } else { "(other)" };
            *counts.entry(name.to_owned()).or_default() += 1;
            self.metrics.federation.rejected(name);
        }
        if let Some(via) = via {
            self.link(via, |l| l.rejected += 1);
        }
    }

    async fn accept(&self, via: &RouteKey, item: Item) -> Result<Accepted, (String, Refusal, String)> {
        let from = Username::parse_address(item.from())
            .ok()
            .filter(Username::is_remote)
            .ok_or_else(|| ("?".to_owned(), Refusal::BadRequest, format!("invalid sender {:?}", item.from())))?;
        let domain = from.domain().unwrap_or("?").to_owned();
        let refuse = |refusal: Refusal, why: String| (domain.clone(), refusal, why);
        if Some(domain.as_str()) == self.domain() {
            return Err(refuse(Refusal::NotFederated, format!("sender {from} claims this server's own domain")));
        }
        self.rules()
            .accepts(&domain, via)
            .map_err(|e| refuse(Refusal::NotFederated, format!("{e} (via {})", route_name(via))))?;
        if item.to_group() {
            self.to_group(via, &from, item).await.map_err(|e| refuse(Refusal::BadRequest, e))?;
            return Ok(Accepted::New);
        }
        if halo_core::federation::is_group(from.as_str()) != item.from_group() {
            return Err(refuse(
                Refusal::BadRequest,
                format!("{} from {from}: a group speaks only for itself", item.kind()),
            ));
        }
        let to = Username::parse(item.to())
            .map_err(|_| refuse(Refusal::NoSuchUser, format!("invalid recipient {:?}", item.to())))?;
        let exists = matches!(self.store.users().get(&to), Ok(Some(u)) if !u.disabled);
        if !exists {
            // A subscription request is answered the XMPP way, with a refusal (RFC 6121 §3.1.3),
            // so the asker's contact list does not wait for ever.
            if let Item::Subscribe { kind: Subscription::Request, .. } = &item {
                let refuse = Item::Subscribe { from: to.to_string(), to: from.to_string(), kind: Subscription::Refuse };
                let _ = self.send(refuse).await;
            }
            return Err(refuse(Refusal::NoSuchUser, format!("no user {to} here")));
        }
        let kind = item.kind();
        let mut accepted = Accepted::New;
        match item {
            Item::Message { text, id, .. } => {
                if !self.limits.take(&domain) {
                    return Err(refuse(
                        Refusal::RateLimited,
                        format!("{domain} sends more than its limit of {} messages per second", self.limits.per_sec()),
                    ));
                }
                let im = self.im().map_err(|e| refuse(Refusal::Internal, e.to_string()))?;
                let new = im.receive(&from, &to, &text, &id).await.map_err(|e| {
                    let r = refusal_of(&e);
                    refuse(r, e.to_string())
                })?;
                if !new {
                    accepted = Accepted::Duplicate;
                    self.link(via, |l| l.duplicates += 1);
                }
            }
            Item::Presence { info, .. } => {
                let wanted = self.presence.has_contact(&to, &from).await;
                if !wanted {
                    return Err(refuse(Refusal::BadRequest, format!("{to} has no contact {from}")));
                }
                self.presence.remote_presence(&from, info, wanted);
            }
            Item::Subscribe { kind, .. } => {
                self.subscription(&from, &to, kind).await.map_err(|e| refuse(refusal_of(&e), e.to_string()))?
            }
            group => self.group_traffic(&from, &to, group).await.map_err(|e| refuse(refusal_of(&e), e.to_string()))?,
        }
        self.metrics.federation.received(&domain, kind);
        self.link(via, |l| l.received += 1);
        Ok(accepted)
    }

    /// A remote user's subscription stanza for local user `to`. Requests are granted unless
    /// `to` blocked the requester: what they then see is what `to`'s access level for them
    /// allows (External unless `to` chose otherwise), as for local watchers.
    async fn subscription(&self, from: &Username, to: &Username, kind: Subscription) -> Result<(), ServiceError> {
        let fed = self.store.federation();
        match kind {
            Subscription::Request => {
                let blocked = self.presence.visibility(to, Viewer::User(from)).await?
                    == halo_core::presence::Visibility::Level(halo_core::presence::AccessLevel::Blocked);
                if blocked {
                    let refuse =
                        Item::Subscribe { from: to.to_string(), to: from.to_string(), kind: Subscription::Refuse };
                    return self.send(refuse).await;
                }
                fed.add_follower(to, from).await?;
                self.presence.set_follower(to, from, true);
                let accept = Item::Subscribe { from: to.to_string(), to: from.to_string(), kind: Subscription::Accept };
                self.send(accept).await?;
                self.send_presence(to, from).await
            }
            Subscription::Cancel => {
                fed.remove_follower(to, from).await?;
                self.presence.set_follower(to, from, false);
                Ok(())
            }
            Subscription::Probe => {
                if fed.follows(to, from)? {
                    self.send_presence(to, from).await?;
                }
                Ok(())
            }
            Subscription::Refuse => {
                let wanted = self.presence.has_contact(to, from).await;
                self.presence.remote_presence(from, halo_core::federation::PresenceInfo::offline(), wanted);
                Ok(())
            }
            Subscription::Accept => Ok(()),
        }
    }

    /// Queues `local`'s current presence, as `remote` may see it.
    async fn send_presence(&self, local: &Username, remote: &Username) -> Result<(), ServiceError> {
        let view = self.presence.view(local, Viewer::User(remote)).await?;
        self.send(Item::Presence { from: local.to_string(), to: remote.to_string(), info: presence_info(&view) }).await
    }

    /// A local user added (`on`) or removed a remote contact: ask for, or give up, their presence.
    pub async fn follow(&self, local: &Username, remote: &Username, on: bool) -> Result<(), ServiceError> {
        self.store.federation().set_following(local, remote, on).await?;
        let kind = if on { Subscription::Request } else { Subscription::Cancel };
        self.send(Item::Subscribe { from: local.to_string(), to: remote.to_string(), kind }).await
    }

    /// A transport came (back) up: every local user's presence goes again to their followers
    /// there, and the remote contacts there are probed, so both sides are current.
    async fn resync(&self, key: &RouteKey) {
        let fed = self.store.federation();
        let mut items = Vec::new();
        for (local, remotes) in fed.all_followers().unwrap_or_default() {
            for r in remotes.iter().filter(|r| self.carried_by(r, key)) {
                match self.presence.view(&local, Viewer::User(r)).await {
                    Ok(view) => {
                        let info = presence_info(&view);
                        items.push(Item::Presence { from: local.to_string(), to: r.to_string(), info });
                    }
                    Err(e) => tracing::debug!(error = %e, "resync: presence not queued"),
                }
            }
        }
        for (local, remotes) in fed.all_following().unwrap_or_default() {
            for r in remotes.iter().filter(|r| self.carried_by(r, key)) {
                items.push(Item::Subscribe { from: local.to_string(), to: r.to_string(), kind: Subscription::Probe });
            }
        }
        let entries = items.into_iter().filter_map(|i| self.outbound(i).ok()).collect();
        if let Err(e) = self.queue(entries).await {
            tracing::debug!(error = %e, "resync: items not queued");
        }
    }

    /// Whether the domain of remote user `u` is carried by `key`.
    fn carried_by(&self, u: &Username, key: &RouteKey) -> bool {
        u.domain().is_some_and(|d| self.rules().route(d).is_ok_and(|r| &RouteKey::of(d, r) == key))
    }

    /// A transport went down: the remote contacts it carries show "presence unknown" until it
    /// is back and their servers answer the probes, rather than a state nobody vouches for.
    fn unreachable(&self, key: &RouteKey) {
        let following = self.store.federation().all_following().unwrap_or_default();
        let remotes: std::collections::BTreeSet<&Username> =
            following.values().flatten().filter(|r| self.carried_by(r, key)).collect();
        for r in remotes {
            self.presence.remote_unknown(r);
        }
    }

    /// The enabled federation-adapter plugins: starts the new ones, stops those gone.
    pub fn set_adapters(self: &Arc<Self>, list: Vec<Arc<Plugin>>) {
        let mut running = lock(&self.adapters);
        running.retain(|name, r| {
            let keep =
                !r.task.is_finished() && list.iter().any(|p| &p.manifest().name == name && Arc::ptr_eq(p, &r.plugin));
            if !keep {
                r.task.abort();
                self.link(&RouteKey::Adapter(name.clone()), |l| l.state = "disabled".into());
            }
            keep
        });
        for p in list {
            if let std::collections::hash_map::Entry::Vacant(slot) = running.entry(p.manifest().name.clone()) {
                let (this, plugin) = (self.clone(), p.clone());
                let make = move || adapter::run(this.clone(), plugin.clone());
                let task = tokio::spawn(gated(Arc::downgrade(self), lock(&self.gate).clone(), make));
                slot.insert(adapter::Running { plugin: p, task });
            }
        }
    }

    /// Carries the queues only while `gate` is open (a pool member: while it holds the pool's
    /// `federation` task); running transports restart under it.
    pub fn gate_transports(self: &Arc<Self>, gate: crate::pool::tasks::Gate) {
        *lock(&self.gate) = gate;
        let adapters: Vec<Arc<Plugin>> = {
            let mut running = lock(&self.adapters);
            let list = running.values().map(|r| r.plugin.clone()).collect();
            for r in running.values() {
                r.task.abort();
            }
            running.clear();
            list
        };
        self.set_adapters(adapters);
        for (_, task) in lock(&self.peers).drain() {
            task.abort();
        }
        self.sync_peers();
    }

    /// Starts a delivery task for every Halo peer in the rules, stops those gone.
    fn sync_peers(self: &Arc<Self>) {
        let wanted: Vec<String> = self
            .rules()
            .by_domain
            .iter()
            .filter(|(_, r)| r.access == Access::Allow && matches!(r.route, Some(Route::Halo { .. })))
            .map(|(d, _)| d.clone())
            .collect();
        let mut peers = lock(&self.peers);
        peers.retain(|d, task| {
            let keep = wanted.contains(d);
            if !keep {
                task.abort();
                lock(&self.links).remove(&RouteKey::Halo(d.clone()));
            }
            keep
        });
        for d in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = peers.entry(d.clone()) {
                let (this, domain) = (self.clone(), d);
                let make = move || peer::deliver(this.clone(), domain.clone());
                slot.insert(tokio::spawn(gated(Arc::downgrade(self), lock(&self.gate).clone(), make)));
            }
        }
    }

    /// Sets the rule of `domain` (or `*`).
    pub async fn put_rule(self: &Arc<Self>, domain: &str, rule: Rule) -> Result<(), ServiceError> {
        let domain = if domain == halo_core::federation::ANY_DOMAIN {
            domain.to_owned()
        } else {
            Domain::parse(domain).map_err(fed_error)?.as_str().to_owned()
        };
        if Some(domain.as_str()) == self.domain() {
            return Err(ServiceError::Invalid(format!("{domain} is this server's own domain")));
        }
        rule.check().map_err(fed_error)?;
        if let Some(Route::Halo { ca: Some(ca), .. }) = &rule.route {
            peer::read_ca(ca).map_err(|e| ServiceError::Invalid(format!("ca {ca:?}: {e:#}")))?;
        }
        self.store.federation().put_rule(&domain, &rule).await?;
        self.rules.write().unwrap_or_else(|p| p.into_inner()).by_domain.insert(domain.clone(), rule);
        self.sync_peers();
        // Queues this rule now routes may move.
        for w in lock(&self.wakers).values() {
            w.notify_one();
        }
        Ok(())
    }

    /// Removes the rule of `domain` (and what waits for it).
    pub async fn remove_rule(self: &Arc<Self>, domain: &str) -> Result<(), ServiceError> {
        let domain = domain.to_ascii_lowercase();
        if !self.store.federation().remove_rule(&domain).await? {
            return Err(ServiceError::NotFound(format!("no federation rule for {domain}")));
        }
        self.rules.write().unwrap_or_else(|p| p.into_inner()).by_domain.remove(&domain);
        self.metrics.federation.queue(&domain, 0);
        self.sync_peers();
        Ok(())
    }

    /// The Halo peer route of `domain`, if it has one.
    fn halo_route(&self, domain: &str) -> Option<(String, String, Option<String>)> {
        match self.rules().by_domain.get(domain) {
            Some(Rule { access: Access::Allow, route: Some(Route::Halo { url, secret, ca }) }) => {
                Some((url.clone(), secret.clone(), ca.clone()))
            }
            _ => None,
        }
    }

    /// Records a carried item.
    fn carried(&self, key: &RouteKey, domain: &str, item: &Item) {
        self.metrics.federation.sent(domain, item.kind());
        self.link(key, |l| l.sent += 1);
    }
}

/// What became of an item a remote server sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Taken.
    New,
    /// A message already taken (same sender and id): not delivered again.
    Duplicate,
}

/// How a refused local operation is told to a remote sender.
fn refusal_of(e: &ServiceError) -> Refusal {
    match e {
        ServiceError::Blocked(_) => Refusal::Blocked,
        ServiceError::DoNotDisturb(_) | ServiceError::RecipientOffline(_) => Refusal::Unavailable,
        ServiceError::TooFast | ServiceError::RateLimited { .. } | ServiceError::Busy { .. } => Refusal::RateLimited,
        ServiceError::NotFound(_) => Refusal::NoSuchUser,
        ServiceError::TooLarge(_) => Refusal::TooBig,
        ServiceError::Invalid(m) if m.contains("longer than") => Refusal::TooBig,
        ServiceError::Invalid(_) | ServiceError::Conflict(_) | ServiceError::IdempotencyConflict => Refusal::BadRequest,
        ServiceError::Forbidden(_) => Refusal::Blocked,
        _ => Refusal::Internal,
    }
}

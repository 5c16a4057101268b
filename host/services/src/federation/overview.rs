//! What admins see of federation: the rules, each domain's transport and queue, every link's
//! state, and (a pool member) the pool's progress marks.

use std::collections::BTreeMap;

use halo_core::federation::{Access, Route, RouteKey};
use serde::Serialize;
use utoipa::ToSchema;

use super::{FederationService, LinkStatus, lock, route_name};

impl FederationService {
    /// The rules, status and queues, for admins. Peer secrets are never shown.
    pub fn overview(&self) -> Overview {
        let depths = self.store.federation().depths().unwrap_or_default();
        let rules = self
            .rules()
            .by_domain
            .iter()
            .map(|(d, r)| {
                let (via, adapter, url) = match &r.route {
                    Some(Route::Adapter { plugin }) => (Some("adapter"), Some(plugin.clone()), None),
                    Some(Route::Halo { url, .. }) => (Some("halo"), None, Some(url.clone())),
                    None => (None, None, None),
                };
                let link = r.route.as_ref().map(|route| {
                    let key = RouteKey::of(d, route);
                    let mut status = lock(&self.links).get(&key).cloned().unwrap_or_default();
                    if let Route::Adapter { plugin } = route
                        && lock(&self.adapters).get(plugin).is_none_or(|a| a.task.is_finished())
                    {
                        status.state = "disabled".into();
                        status.last_error.get_or_insert_with(|| {
                            format!("the adapter plugin {plugin} is not installed, or not enabled")
                        });
                    }
                    if status.state.is_empty() {
                        status.state = "down".into();
                    }
                    (route_name(&key), status)
                });
                DomainView {
                    domain: d.clone(),
                    access: r.access,
                    via: via.map(str::to_owned),
                    adapter,
                    url,
                    queued: depths.get(d).copied().unwrap_or(0),
                    link: link.as_ref().map(|(n, _)| n.clone()),
                    status: link.map(|(_, s)| s),
                }
            })
            .collect();
        let links = lock(&self.links).iter().map(|(k, s)| (route_name(k), s.clone())).collect();
        let rejected = lock(&self.rejected).clone();
        let marks = self.pool.get().map(|p| p.marks()).unwrap_or_default();
        Overview { domain: self.domain().map(str::to_owned), domains: rules, links, queues: depths, rejected, marks }
    }
}

/// One domain's rule and how it is doing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainView {
    /// The domain, or `*`.
    pub domain: String,
    /// `allow` or `block`.
    #[schema(value_type = String)]
    pub access: Access,
    /// `adapter` or `halo`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The adapter plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
    /// The Halo peer's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Items waiting for it.
    pub queued: u64,
    /// The transport carrying it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The transport's state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<LinkStatus>,
}

/// Federation at a glance.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overview {
    /// This server's domain.
    pub domain: Option<String>,
    /// The rules.
    pub domains: Vec<DomainView>,
    /// Every transport's state.
    pub links: BTreeMap<String, LinkStatus>,
    /// Items waiting, by domain.
    pub queues: BTreeMap<String, u64>,
    /// Remote traffic refused since the server started, by the sender's domain (`?` when it
    /// named none): the same counts as `halo_federation_rejected_total`, so requests that failed
    /// authentication (bad signature, stale timestamp, a domain with no rule) show too.
    pub rejected: BTreeMap<String, u64>,
    /// A pool member: the last position of each domain's queue the pool carried (the
    /// progress marks every node drops its copy of the queue up to). Absent on one node.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub marks: BTreeMap<String, u64>,
}

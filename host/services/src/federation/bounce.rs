//! Refusals coming back: a remote server refused an item a local user sent. A message becomes
//! a failed message (in the history and as `im.failed` to the sender's devices), with why;
//! presence and subscriptions are logged.

use halo_core::Username;
use halo_core::federation::{DeliveryFailure, Item, Refusal, RouteKey};

use super::{FederationService, route_name};

/// Longest remote reason kept.
const MAX_REASON: usize = 300;

impl FederationService {
    /// The remote side of `via` refused `item` (from a local user), with `code` and `reason`.
    pub async fn bounced(&self, via: &RouteKey, item: &Item, code: Refusal, reason: &str) {
        let reason: String = reason.chars().take(MAX_REASON).collect();
        tracing::info!(route = %route_name(via), kind = item.kind(), to = item.to(), code = code.code(), %reason, "the remote side refused an item");
        let Item::Message { from, to, id, .. } = item else { return };
        let (Ok(from), Ok(id)) = (Username::parse(from), id.parse::<u64>()) else { return };
        let failure = DeliveryFailure { to: to.clone(), code, reason };
        match self.im() {
            Ok(im) => {
                if let Err(e) = im.failed(&from, id, failure).await {
                    tracing::info!(error = %e, "a refused message could not be marked failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "a refused message could not be marked failed"),
        }
    }
}

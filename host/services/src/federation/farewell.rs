//! Leaving cleanly: on a graceful stop every remote follower is told that the local users
//! they follow are offline, before the links close, so XMPP contacts and Halo peers do not
//! show them online while the server is down. A pool member says so only when it is the
//! pool's last live node: one node stopping is not the server going away (its users'
//! devices reconnect to the others).

use std::time::Duration;

use halo_core::federation::{Item, PresenceInfo, RouteKey};
use halo_store::EventLog;

use super::{FederationService, lock};

/// Longest a graceful stop waits for the unavailable presence to go out.
pub const FAREWELL_WAIT: Duration = Duration::from_secs(3);

impl FederationService {
    /// Queues an unavailable presence from every local user to each of their remote
    /// followers, wakes the transports, and waits (at most [`FAREWELL_WAIT`]) until the links
    /// that are up carried it. What a link that is down could not carry stays queued and goes
    /// out when it is back, followed by the current presence (the resync), so nothing stale
    /// remains.
    pub async fn farewell(&self) {
        if self.pool.get().is_some_and(|p| !p.alone()) {
            return;
        }
        let followers = self.store.federation().all_followers().unwrap_or_default();
        let mut keys = std::collections::BTreeSet::new();
        let mut entries = Vec::new();
        for (local, remotes) in followers {
            for r in remotes {
                let item = Item::Presence { from: local.to_string(), to: r.to_string(), info: PresenceInfo::offline() };
                match self.outbound(item) {
                    Ok((entry, key)) => {
                        keys.insert(key.clone());
                        entries.push((entry, key));
                    }
                    Err(e) => tracing::debug!(error = %e, "no farewell presence for {r}"),
                }
            }
        }
        if keys.is_empty() {
            return;
        }
        if let Err(e) = self.queue(entries).await {
            tracing::warn!(error = %e, "farewell presence not queued");
        }
        // A pool member's items are queued by its federation follower, from the log.
        let written = self.store.im().log().last_durable();
        let queued = || {
            self.pool.get().is_none()
                || self.store.log_cursor(halo_store::FEDERATION_FOLLOWER).is_ok_and(|c| c >= written)
        };
        for k in &keys {
            self.wake(k);
        }
        let deadline = tokio::time::Instant::now() + FAREWELL_WAIT;
        while tokio::time::Instant::now() < deadline {
            if queued() && keys.iter().all(|k| !self.is_up(k) || self.queued_for(k).iter().all(|(_, n)| *n == 0)) {
                tracing::info!("remote followers told this server's users are offline");
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!("stopping before every remote follower was told this server's users are offline");
    }

    fn is_up(&self, key: &RouteKey) -> bool {
        lock(&self.links).get(key).is_some_and(|l| l.state == "up")
    }
}

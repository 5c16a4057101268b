//! A pool member's side of the service: joining the pool's queues (see
//! `crate::pool::federation`), and routing by the rules other nodes change.

use std::sync::Arc;

use super::{FederationService, lock};

impl FederationService {
    /// Joins `pool`: direct sends go through the IM log, the queues follow the pool's progress
    /// marks (in `cursors`) and the rules other nodes change. Before the transports are gated.
    pub fn join_pool(self: &Arc<Self>, pool: Arc<crate::pool::Pool>, cursors: Arc<crate::pool::tasks::SharedCursors>) {
        let queues = crate::pool::federation::Queues::start(pool, cursors, self.store.clone(), self);
        let _ = self.pool.set(queues);
    }

    /// The last position of `domain`'s queue the pool carried (0 on one node): the federation
    /// follower does not queue what is at or below it.
    pub(crate) fn carried_mark(&self, domain: &str) -> u64 {
        self.pool.get().map_or(0, |p| p.mark(domain))
    }

    /// Loads the rules again from the store (a pool member: another node changed them), drops
    /// the queues of the domains whose rule is gone, and restarts the transports accordingly.
    pub(crate) fn reload_rules(self: &Arc<Self>) {
        let by_domain = match self.store.federation().rules() {
            Ok(r) => r,
            Err(e) => return tracing::warn!(error = %e, "reading the federation rules"),
        };
        let gone: Vec<String> = {
            let mut rules = self.rules.write().unwrap_or_else(|p| p.into_inner());
            if rules.by_domain == by_domain {
                return;
            }
            let gone = rules.by_domain.keys().filter(|d| !by_domain.contains_key(*d)).cloned().collect();
            rules.by_domain = by_domain;
            gone
        };
        for d in gone {
            if let Err(e) = self.store.federation().drop_queue(&d) {
                tracing::warn!(domain = %d, error = %e, "dropping the queue of a removed domain");
            }
            self.metrics.federation.queue(&d, 0);
        }
        self.sync_peers();
        for w in lock(&self.wakers).values() {
            w.notify_one();
        }
    }
}

//! Federation queues in a pool: filled the same on every node, carried once (see docs/pool.md,
//! "Once per pool").
//!
//! Every node's federation follower queues the items of the IM log (a message's, and the
//! `Federated` entries that direct sends make on a pool member) under their place in the log
//! (`halo_store::queue_position`), so the same item has the same position on every node. Only
//! the holder of the `federation` lease runs the transports. After a batch is carried, the
//! holder moves the domain's **progress mark** in the pool's cursors bucket (key `fed.<domain>`,
//! value the last position carried). Every node follows the marks (a watch of the bucket):
//! it drops what its own queue holds at or below them, so the copies of the queue on the other
//! nodes do not grow, and its follower does not queue what is marked already. A node taking the
//! lease reads every mark again before its transports start, and a transport drops what is
//! marked before it reads a batch: what the previous holder carried and marked is not sent
//! again. A batch carried but not yet marked when its holder died is sent again by the next
//! one (at least once for that batch only; a Halo peer recognises a message's id, an XMPP
//! stanza carries its id).
//!
//! The domain rules are shared too (a bucket), and every node must route as they say: a node
//! watches its replica of the rules and loads them again when another node changed them,
//! dropping the queue of a domain whose rule is gone, as the node that removed it did.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use halo_store::Store;

use super::Pool;
use super::tasks::SharedCursors;
use crate::federation::FederationService;

/// Prefix of the progress marks' keys in the cursors bucket.
const PREFIX: &str = "fed.";
/// How often every queue is trimmed to the marks anyway (a mark learnt before the follower
/// queued what it covers), and the rules read again (a change the watch missed).
const SWEEP: Duration = Duration::from_secs(10);
/// How long reading the marks may take before it counts as failed.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The progress mark's key of `domain`: `fed.<domain>` (a domain's labels are valid key
/// tokens), or `fed._<hex>` for a name that is not a plain domain.
pub(crate) fn mark_key(domain: &str) -> String {
    let plain = !domain.is_empty()
        && domain
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('_') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if plain {
        format!("{PREFIX}{domain}")
    } else {
        let hex: String = domain.bytes().map(|b| format!("{b:02x}")).collect();
        format!("{PREFIX}_{hex}")
    }
}

/// The domain of a mark's key.
pub(crate) fn domain_of(key: &str) -> Option<String> {
    let rest = key.strip_prefix(PREFIX)?;
    match rest.strip_prefix('_') {
        Some(hex) if hex.len() % 2 == 0 => {
            let bytes: Option<Vec<u8>> =
                (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect();
            String::from_utf8(bytes?).ok()
        }
        Some(_) => None,
        None => Some(rest.to_owned()),
    }
}

/// A pool member's view of the federation queues' progress marks.
pub struct Queues {
    pool: Arc<Pool>,
    store: Store,
    cursors: Arc<SharedCursors>,
    /// The highest mark known per domain.
    known: Mutex<HashMap<String, u64>>,
}

impl Queues {
    /// Follows the pool's marks and rules for `fed` (needs a runtime).
    pub(crate) fn start(
        pool: Arc<Pool>,
        cursors: Arc<SharedCursors>,
        store: Store,
        fed: &Arc<FederationService>,
    ) -> Arc<Self> {
        let this = Arc::new(Self { pool, store, cursors, known: Mutex::default() });
        tokio::spawn(watch_marks(Arc::downgrade(&this)));
        tokio::spawn(follow_rules(Arc::downgrade(fed), this.store.clone()));
        this
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last position of `domain`'s queue carried by the pool (0: none known).
    pub fn mark(&self, domain: &str) -> u64 {
        self.lock().get(domain).copied().unwrap_or(0)
    }

    /// Every mark known, for admins.
    pub fn marks(&self) -> BTreeMap<String, u64> {
        self.lock().iter().map(|(d, m)| (d.clone(), *m)).collect()
    }

    /// Whether this node is the only live node of the pool.
    pub fn alone(&self) -> bool {
        self.pool.members().live() <= 1
    }

    /// Notes `mark` for `domain` (the highest wins) and drops what this node's queue holds at
    /// or below it.
    fn learn(&self, domain: &str, mark: u64) {
        let now = {
            let mut known = self.lock();
            let m = known.entry(domain.to_owned()).or_default();
            *m = (*m).max(mark);
            *m
        };
        self.trim(domain, now);
    }

    fn trim(&self, domain: &str, mark: u64) {
        if mark == 0 {
            return;
        }
        if let Err(e) = self.store.federation().drop_upto(domain, mark) {
            tracing::warn!(%domain, error = %e, "dropping carried federation items");
        }
    }

    /// Drops what `domain`'s queue holds at or below its mark (before a transport reads it).
    pub fn trim_domain(&self, domain: &str) {
        self.trim(domain, self.mark(domain));
    }

    /// Reads every mark from the pool and drops what they cover: a node taking the
    /// `federation` lease does this before its transports start.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let kv = self.cursors.kv();
        let keys: Vec<String> = tokio::time::timeout(READ_TIMEOUT, async {
            let keys = kv.keys().await?;
            let keys: Vec<Result<String, _>> = keys.collect().await;
            keys.into_iter().collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::from)
        })
        .await
        .map_err(|_| anyhow::anyhow!("reading the pool's marks timed out"))??;
        for key in keys.iter().filter(|k| k.starts_with(PREFIX)) {
            let Some(domain) = domain_of(key) else { continue };
            let value = tokio::time::timeout(READ_TIMEOUT, kv.get(key.as_str()))
                .await
                .map_err(|_| anyhow::anyhow!("reading the pool's mark {key} timed out"))??;
            if let Some(mark) = value.as_deref().and_then(parse) {
                self.learn(&domain, mark);
            }
        }
        Ok(())
    }

    /// Waits until [`Queues::refresh`] succeeded (retrying every second).
    pub async fn ready(&self) {
        let mut failures = 0u32;
        while let Err(e) = self.refresh().await {
            if failures == 0 {
                tracing::warn!(error = %e, "reading the federation queues' marks; retrying before carrying them");
            }
            failures = failures.saturating_add(1);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The holder carried `domain`'s queue up to `upto`: moves the pool's mark there (never
    /// back: a mark another holder moved further stays).
    pub async fn carried(&self, domain: &str, upto: u64) {
        self.learn(domain, upto);
        let kv = self.cursors.kv();
        let key = mark_key(domain);
        let value: bytes::Bytes = upto.to_string().into_bytes().into();
        for _ in 0..5 {
            let done = match kv.entry(key.as_str()).await {
                Ok(Some(e)) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                    if parse(&e.value).is_some_and(|m| m >= upto) {
                        return;
                    }
                    kv.update(key.as_str(), value.clone(), e.revision).await.map(drop).map_err(|e| e.to_string())
                }
                Ok(_) => kv.create(key.as_str(), value.clone()).await.map(drop).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match done {
                Ok(()) => return,
                Err(e) => tracing::debug!(%domain, error = %e, "moving a federation mark; again"),
            }
        }
        // The next holder may send this batch again (at least once).
        tracing::warn!(%domain, upto, "the pool's federation mark was not moved");
    }
}

fn parse(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Follows every change of the marks (from the last value of each on), and trims every queue
/// to them every [`SWEEP`].
async fn watch_marks(queues: Weak<Queues>) {
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let watch = match queues.upgrade() {
            Some(q) => q.cursors.kv().watch_with_history(format!("{PREFIX}>")).await,
            None => return,
        };
        let mut watch = match watch {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "watching the federation marks; again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            tokio::select! {
                entry = watch.next() => {
                    let Some(q) = queues.upgrade() else { return };
                    match entry {
                        Some(Ok(e)) => {
                            if let (Some(domain), Some(mark)) = (domain_of(&e.key), parse(&e.value)) {
                                q.learn(&domain, mark);
                            }
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "watching the federation marks; again");
                            break;
                        }
                        None => break,
                    }
                }
                _ = sweep.tick() => {
                    let Some(q) = queues.upgrade() else { return };
                    let known = q.marks();
                    for (domain, mark) in known {
                        q.trim(&domain, mark);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Loads the rules again whenever this node's replica of them changes (another node's
/// change arrived), and every [`SWEEP`].
async fn follow_rules(fed: Weak<FederationService>, store: Store) {
    loop {
        let mut changes = store.federation().watch_rules();
        loop {
            let closed = tokio::select! {
                open = changes.changed() => !open,
                () = tokio::time::sleep(SWEEP) => false,
            };
            let Some(fed) = fed.upgrade() else { return };
            fed.reload_rules();
            if closed {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_keys_are_valid_and_round_trip() {
        for d in ["b.example", "xn--bcher-kva.example", "a-b.c", "weird_domain", "", "é.fr", "a..b"] {
            let k = mark_key(d);
            assert!(k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)), "{k}");
            assert!(!k.ends_with('.') && !k.contains(".."), "{k}");
            assert_eq!(domain_of(&k).as_deref(), Some(d), "{k}");
        }
        assert_eq!(mark_key("b.example"), "fed.b.example");
        assert_eq!(domain_of("archive-sink"), None);
    }
}

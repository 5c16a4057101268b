//! Federation: the admin's domain rules, the outbound queues and who follows whom across
//! servers.
//!
//! Trees: `fed_rules` (domain or `*` → [`Rule`]), `fed_queue` (domain, 0, position → [`Item`]:
//! what waits for a remote domain, in order; an item leaves once its transport carried it; on
//! one node a position is a number from sled's counter, in a pool the item's place in the IM
//! log, [`position`], the same on every node),
//! `fed_followers` (local user, 0, remote address → nothing: remote users allowed to see a
//! local user's presence), `fed_following` (local user, 0, remote address → nothing: remote
//! contacts whose presence a local user asked for, probed again when a link comes back),
//! `fed_failed` (message id → [`DeliveryFailure`]: messages a remote server refused).

use std::collections::BTreeMap;

use halo_core::Username;
use halo_core::federation::{DeliveryFailure, Item, Rule};
use halo_core::im::Outbound;
use sled::Transactional;

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

const RULES: &str = "fed_rules";
const QUEUE: &str = "fed_queue";
const FOLLOWERS: &str = "fed_followers";
const FOLLOWING: &str = "fed_following";
const FAILED: &str = "fed_failed";

/// Bits of a pool queue position holding the item's index in its log entry.
const INDEX_BITS: u32 = 16;

/// The queue position, in a pool, of the `index`th item of log entry `seq`: the same on every
/// node, increasing with the log. An entry carries fewer than 65,536 items (a message: one per
/// remote domain; [`crate::Im::federate`] splits larger lists).
pub fn position(seq: u64, index: usize) -> u64 {
    (seq << INDEX_BITS) | (index as u64 & ((1 << INDEX_BITS) - 1))
}

/// Most items one log entry of [`crate::Im::federate`] carries.
pub const MAX_ITEMS_PER_ENTRY: usize = 4_096;

/// A queued item with its place in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Position (increasing with arrival; in a pool, [`position`]).
    pub seq: u64,
    /// The item.
    pub item: Item,
}

/// Typed access to federation state.
#[derive(Clone)]
pub struct Federation {
    db: crate::flush::Db,
    rules: crate::tree::Tree,
    queue: sled::Tree,
    followers: crate::tree::Tree,
    following: crate::tree::Tree,
    failed: crate::tree::Tree,
    log_cursors: sled::Tree,
    /// A pool member: queue positions come from the log ([`position`]).
    pool: bool,
}

/// Changes to the domain rules (another node's too, in a pool), to wait on.
pub struct RuleChanges(sled::Subscriber);

impl RuleChanges {
    /// Waits for the next change; `false` once the store was closed (reopened after a
    /// failure: watch again).
    pub async fn changed(&mut self) -> bool {
        (&mut self.0).await.is_some()
    }
}

/// The key of item `seq` in `domain`'s queue.
fn queue_key(domain: &str, seq: u64) -> Vec<u8> {
    pair(domain, &seq.to_be_bytes())
}

fn pair(a: &str, b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + 1 + b.len());
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b);
    k
}

fn prefix(a: &str) -> Vec<u8> {
    pair(a, &[])
}

impl Federation {
    pub(crate) fn open(db: &crate::flush::Db, log_cursors: sled::Tree) -> Result<Self, StoreError> {
        Ok(Self {
            log_cursors,
            pool: db.replicator().is_some(),
            db: db.clone(),
            rules: crate::tree::Tree::open(db, RULES)?,
            queue: db.open_tree(QUEUE).db()?,
            followers: crate::tree::Tree::open(db, FOLLOWERS)?,
            following: crate::tree::Tree::open(db, FOLLOWING)?,
            failed: crate::tree::Tree::open(db, FAILED)?,
        })
    }

    /// Every domain rule.
    pub fn rules(&self) -> Result<BTreeMap<String, Rule>, StoreError> {
        self.rules
            .iter()
            .map(|kv| {
                let (k, v) = kv.db()?;
                Ok((String::from_utf8_lossy(&k).into_owned(), decode(RULES, &v)?))
            })
            .collect()
    }

    /// Sets the rule of `domain`, durably.
    pub async fn put_rule(&self, domain: &str, rule: &Rule) -> Result<(), StoreError> {
        self.rules.insert(domain, encode(RULES, rule)?).db()?;
        self.db.flush().await
    }

    /// Removes the rule of `domain` (and drops what waits for it); whether there was one.
    pub async fn remove_rule(&self, domain: &str) -> Result<bool, StoreError> {
        let had = self.rules.remove(domain).db()?.is_some();
        self.drop_queue(domain)?;
        self.db.flush().await?;
        Ok(had)
    }

    /// Changes to the rules from now on.
    pub fn watch_rules(&self) -> RuleChanges {
        RuleChanges(self.rules.watch_prefix(Vec::new()))
    }

    /// Drops everything waiting for `domain` (not flushed: its rule's removal is what counts).
    pub fn drop_queue(&self, domain: &str) -> Result<(), StoreError> {
        for kv in self.queue.scan_prefix(prefix(domain)) {
            self.queue.remove(kv.db()?.0).db()?;
        }
        Ok(())
    }

    /// Drops the items of `domain`'s queue at positions up to `upto` (carried by the pool's
    /// node carrying the queues); how many. Not flushed: after a crash the pool's mark drops
    /// them again.
    pub fn drop_upto(&self, domain: &str, upto: u64) -> Result<usize, StoreError> {
        let (from, to) = (queue_key(domain, 0), queue_key(domain, upto));
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for kv in self.queue.range(from..=to) {
            batch.remove(kv.db()?.0);
            n += 1;
        }
        if n > 0 {
            self.queue.apply_batch(batch).db()?;
        }
        Ok(n)
    }

    /// Appends `items` to `domain`'s queue, durably (one node; a pool member queues through
    /// the log, [`crate::Im::federate`]).
    pub async fn enqueue(&self, domain: &str, items: &[Item]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for item in items {
            let seq = self.db.generate_id().db()?;
            batch.insert(queue_key(domain, seq), encode(QUEUE, item)?);
        }
        self.queue.apply_batch(batch).db()?;
        self.db.flush().await
    }

    /// Queues `items` from the IM log (each in its domain's queue, in order; each with its
    /// [`position`] in the log, the key of its place in a pool), and the federation follower's
    /// cursor `upto` in the same transaction. Not flushed: after a crash the follower queues
    /// them again from its cursor, which landed with them or not at all.
    pub fn enqueue_from_log(&self, items: &[(u64, &Outbound)], upto: u64) -> Result<(), StoreError> {
        let values = items
            .iter()
            .map(|(pos, o)| {
                let seq = if self.pool { *pos } else { self.db.generate_id().db()? };
                Ok((queue_key(&o.domain, seq), encode(QUEUE, &o.item)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let r = (&self.queue, &self.log_cursors).transaction(|(queue, cursors)| {
            for (k, v) in &values {
                queue.insert(k.as_slice(), v.as_slice())?;
            }
            cursors.insert(crate::FEDERATION_FOLLOWER, &upto.to_be_bytes())?;
            Ok(())
        });
        crate::im::tx_result(r)?;
        Ok(())
    }

    /// The first `limit` items waiting for `domain`, oldest first.
    pub fn peek(&self, domain: &str, limit: usize) -> Result<Vec<Queued>, StoreError> {
        let p = prefix(domain);
        self.queue
            .scan_prefix(&p)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv.db()?;
                Ok(Queued { seq: crate::keys::u64_at(&k, p.len()), item: decode(QUEUE, &v)? })
            })
            .collect()
    }

    /// Removes delivered items, durably.
    pub async fn remove(&self, domain: &str, seqs: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for s in seqs {
            batch.remove(pair(domain, &s.to_be_bytes()));
        }
        self.queue.apply_batch(batch).db()?;
        self.db.flush().await
    }

    /// Items waiting per domain.
    pub fn depths(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for kv in self.queue.iter() {
            let (k, _) = kv.db()?;
            let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
            *out.entry(String::from_utf8_lossy(&k[..end]).into_owned()).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// Records that a remote server refused message `id`, durably.
    pub async fn set_failed(&self, id: u64, failure: &DeliveryFailure) -> Result<(), StoreError> {
        self.failed.insert(id.to_be_bytes(), encode(FAILED, failure)?).db()?;
        self.db.flush().await
    }

    /// Why a remote server refused message `id`, if it did.
    pub fn failed(&self, id: u64) -> Result<Option<DeliveryFailure>, StoreError> {
        self.failed.get(id.to_be_bytes()).db()?.map(|v| decode(FAILED, &v)).transpose()
    }

    /// Lets remote user `remote` see `local`'s presence, durably.
    pub async fn add_follower(&self, local: &Username, remote: &Username) -> Result<(), StoreError> {
        self.followers.insert(pair(local.as_str(), remote.as_str().as_bytes()), &[]).db()?;
        self.db.flush().await
    }

    /// Withdraws it, durably.
    pub async fn remove_follower(&self, local: &Username, remote: &Username) -> Result<(), StoreError> {
        self.followers.remove(pair(local.as_str(), remote.as_str().as_bytes())).db()?;
        self.db.flush().await
    }

    /// Whether `remote` follows `local`.
    pub fn follows(&self, local: &Username, remote: &Username) -> Result<bool, StoreError> {
        self.followers.contains_key(pair(local.as_str(), remote.as_str().as_bytes())).db()
    }

    /// Every local user with remote followers, and those followers.
    pub fn all_followers(&self) -> Result<BTreeMap<Username, Vec<Username>>, StoreError> {
        pairs(&self.followers)
    }

    /// Records that `local` asked for `remote`'s presence (`on`), or no longer does; durably.
    pub async fn set_following(&self, local: &Username, remote: &Username, on: bool) -> Result<(), StoreError> {
        let k = pair(local.as_str(), remote.as_str().as_bytes());
        if on {
            self.following.insert(k, &[]).db()?;
        } else {
            self.following.remove(k).db()?;
        }
        self.db.flush().await
    }

    /// Every local user following remote users, and whom.
    pub fn all_following(&self) -> Result<BTreeMap<Username, Vec<Username>>, StoreError> {
        pairs(&self.following)
    }
}

/// Reads a (local, remote) tree.
fn pairs(tree: &crate::tree::Tree) -> Result<BTreeMap<Username, Vec<Username>>, StoreError> {
    let mut out: BTreeMap<Username, Vec<Username>> = BTreeMap::new();
    for kv in tree.iter() {
        let (k, _) = kv.db()?;
        let Some(end) = k.iter().position(|b| *b == 0) else { continue };
        let (Ok(local), Ok(remote)) = (
            Username::parse(&String::from_utf8_lossy(&k[..end])),
            Username::parse_address(&String::from_utf8_lossy(&k[end + 1..])),
        ) else {
            continue;
        };
        out.entry(local).or_default().push(remote);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use halo_core::federation::{Access, Route};

    use super::*;

    fn msg(n: u32) -> Item {
        Item::Message { from: "alice".into(), to: "bob@b.org".into(), text: format!("m{n}"), id: n.to_string() }
    }

    #[tokio::test]
    async fn queues_keep_order_per_domain_and_survive_reopen() {
        let dir = tempfile::tempdir().expect("test");
        {
            let store = crate::Store::open(dir.path()).expect("test");
            let f = store.federation();
            f.enqueue("b.org", &[msg(1), msg(2)]).await.expect("test");
            f.enqueue("c.org", &[msg(9)]).await.expect("test");
            f.enqueue("b.org", &[msg(3)]).await.expect("test");
            let rule = Rule { access: Access::Allow, route: Some(Route::Adapter { plugin: "xmpp".into() }) };
            f.put_rule("b.org", &rule).await.expect("test");
            let a = Username::parse("alice").expect("test");
            f.add_follower(&a, &Username::parse_address("bob@b.org").expect("test")).await.expect("test");
        }
        let store = crate::Store::open(dir.path()).expect("test");
        let f = store.federation();
        let q = f.peek("b.org", 10).expect("test");
        assert_eq!(q.iter().map(|q| q.item.clone()).collect::<Vec<_>>(), vec![msg(1), msg(2), msg(3)]);
        assert_eq!(f.depths().expect("test"), [("b.org".to_string(), 3), ("c.org".to_string(), 1)].into());
        f.remove("b.org", &[q[0].seq]).await.expect("test");
        assert_eq!(f.peek("b.org", 1).expect("test")[0].item, msg(2));
        assert_eq!(f.rules().expect("test").len(), 1);
        let a = Username::parse("alice").expect("test");
        let bob = Username::parse_address("bob@b.org").expect("test");
        assert!(f.follows(&a, &bob).expect("test"));
        assert_eq!(f.all_followers().expect("test"), [(a.clone(), vec![bob.clone()])].into());
        f.set_following(&a, &bob, true).await.expect("test");
        assert_eq!(f.all_following().expect("test"), [(a.clone(), vec![bob.clone()])].into());
        f.set_following(&a, &bob, false).await.expect("test");
        assert!(f.all_following().expect("test").is_empty());
        f.remove_follower(&a, &bob).await.expect("test");
        assert!(!f.follows(&a, &bob).expect("test"));
        assert!(f.remove_rule("b.org").await.expect("test"));
        assert!(f.peek("b.org", 10).expect("test").is_empty());
        assert_eq!(f.peek("c.org", 10).expect("test").len(), 1);
    }

    #[tokio::test]
    async fn carried_items_are_dropped_up_to_a_mark_and_a_domain_queue_as_a_whole() {
        let dir = tempfile::tempdir().expect("test");
        let store = crate::Store::open(dir.path()).expect("test");
        let f = store.federation();
        f.enqueue("b.org", &[msg(1), msg(2), msg(3)]).await.expect("test");
        f.enqueue("b.orga", &[msg(7)]).await.expect("test");
        f.enqueue("c.org", &[msg(9)]).await.expect("test");
        let q = f.peek("b.org", 10).expect("test");
        assert_eq!(f.drop_upto("b.org", q[1].seq).expect("test"), 2);
        assert_eq!(f.peek("b.org", 10).expect("test"), q[2..].to_vec());
        assert_eq!(f.drop_upto("b.org", q[1].seq).expect("test"), 0, "nothing left below the mark");
        f.drop_queue("b.org").expect("test");
        assert!(f.peek("b.org", 10).expect("test").is_empty());
        assert_eq!(f.depths().expect("test"), [("b.orga".to_string(), 1), ("c.org".to_string(), 1)].into());
        // Positions in a pool: by log entry, then index in it.
        assert!(position(7, 65_535) < position(8, 0));
        assert_eq!(position(1, 2), (1 << 16) | 2);
    }
}

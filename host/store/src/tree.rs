//! A tree of the store that a pool shares: the sled tree every read goes to, and in a pool the
//! JetStream key-value bucket it mirrors (see `pool/replica.rs` and docs/pool.md, Storage).
//!
//! One node alone: a plain sled tree; writes are made durable by the caller's flush, as ever.
//! In a pool: the sled tree is this node's replica of the bucket. A write is applied to it at
//! once (so the writer reads its own write) and published to the bucket in order; the caller's
//! flush ([`crate::flush::Db::flush`]) returns once JetStream acknowledged every write published
//! before it (stored on a majority of the bucket's replicas). Writes from other nodes reach the
//! replica through the bucket's watcher. Reads stay synchronous and local.

use std::sync::Arc;

use sled::IVec;

use crate::StoreError;
use crate::pool::Replicator;

/// A sled tree, mirrored to a JetStream bucket in a pool.
#[derive(Clone)]
pub(crate) struct Tree {
    local: sled::Tree,
    mirror: Option<(Arc<Replicator>, &'static str)>,
}

impl Tree {
    /// Opens the tree `name` of `db`; in a pool its writes go to the bucket of the same name.
    pub(crate) fn open(db: &crate::flush::Db, name: &'static str) -> Result<Self, StoreError> {
        let local = db.open_tree(name).map_err(crate::from_sled)?;
        let mirror = db.replicator().map(|r| (r, name));
        if let Some((r, _)) = &mirror {
            r.attach(name, local.clone());
        }
        Ok(Self { local, mirror })
    }

    /// In a pool, a counter bumped each time a change of the bucket (another node's write, or
    /// this node's own coming back) reached this replica; `None` alone.
    pub(crate) fn changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.mirror.as_ref().and_then(|(r, name)| r.changes(name))
    }

    pub(crate) fn get<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        self.local.get(key)
    }

    pub(crate) fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<bool> {
        self.local.contains_key(key)
    }

    pub(crate) fn iter(&self) -> sled::Iter {
        self.local.iter()
    }

    pub(crate) fn range<K: AsRef<[u8]>, R: std::ops::RangeBounds<K>>(&self, range: R) -> sled::Iter {
        self.local.range(range)
    }

    /// Changes to keys under `prefix` of the replica (in a pool: other nodes' writes too).
    pub(crate) fn watch_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Subscriber {
        self.local.watch_prefix(prefix)
    }

    pub(crate) fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> sled::Iter {
        self.local.scan_prefix(prefix)
    }

    pub(crate) fn len(&self) -> usize {
        self.local.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// Sets `key` to `value` here, and in a pool publishes it to the bucket.
    pub(crate) fn insert<K: AsRef<[u8]>, V: Into<IVec>>(&self, key: K, value: V) -> sled::Result<Option<IVec>> {
        let value: IVec = value.into();
        let old = self.local.insert(key.as_ref(), value.clone())?;
        if let Some((r, name)) = &self.mirror {
            r.put(name, key.as_ref(), Some(value.to_vec()));
        }
        Ok(old)
    }

    /// Removes `key` here, and in a pool from the bucket.
    pub(crate) fn remove<K: AsRef<[u8]>>(&self, key: K) -> sled::Result<Option<IVec>> {
        let old = self.local.remove(key.as_ref())?;
        // Published even when this replica had nothing: the bucket may have a value not here yet.
        if let Some((r, name)) = &self.mirror {
            r.put(name, key.as_ref(), None);
        }
        Ok(old)
    }

    /// Creates `key` with `value` unless it exists, in the whole pool: `false` when it existed
    /// (here, or in the bucket: two nodes creating the same key race on the bucket, and one
    /// wins). Not flushed by itself on one node; in a pool it returns once the bucket took it.
    pub(crate) async fn create(&self, key: &[u8], value: Vec<u8>) -> Result<bool, StoreError> {
        match &self.mirror {
            None => {
                let swapped =
                    self.local.compare_and_swap(key, None as Option<&[u8]>, Some(value)).map_err(crate::from_sled)?;
                Ok(swapped.is_ok())
            }
            Some((r, name)) => {
                if self.local.contains_key(key).map_err(crate::from_sled)? {
                    return Ok(false);
                }
                if !r.create(name, key, &value).await? {
                    return Ok(false);
                }
                self.local.insert(key, value).map_err(crate::from_sled)?;
                Ok(true)
            }
        }
    }
}

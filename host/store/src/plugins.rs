//! Installed plugins: `plugins` (name → [`PluginRecord`]) and `plugin_kv` (name, 0, key →
//! value: plugins' private storage). Component files live beside the database, named by hash.
//!
//! Plugin storage is durable like everything else: [`Plugins::kv_set`] and
//! [`Plugins::kv_delete`] return once the write is flushed, or with the error that kept it from
//! being stored, which the host hands to the guest. Each plugin's keys and values are bounded by
//! a quota the caller passes; the check and the write happen under one lock, so concurrent
//! writes of one plugin cannot overshoot it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use halo_core::Millis;

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

const PLUGINS: &str = "plugins";
const KV: &str = "plugin_kv";

/// What is persisted of an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRecord {
    /// Name (from its manifest).
    pub name: String,
    /// SHA-256 of the component (the file name), hex.
    pub sha256: String,
    /// Capabilities the admin granted.
    pub grants: Vec<String>,
    /// The admin's config.
    pub config: BTreeMap<String, String>,
    /// Enabled by the admin.
    pub enabled: bool,
    /// When it was installed or last upgraded.
    pub installed_at: Millis,
    /// Limits set for this plugin (JSON of the host's limits), replacing the server's defaults.
    pub limits: Option<String>,
    /// Why the plugin disabled itself (its trap or CPU budget, a sink's permanent refusal), if
    /// it did: it stays disabled, across reloads and restarts, until an admin enables it.
    pub disabled: Option<String>,
}

/// Typed access to plugin records and plugin storage.
#[derive(Clone)]
pub struct Plugins {
    db: crate::flush::Db,
    records: crate::tree::Tree,
    kv: crate::tree::Tree,
    /// Bytes stored per plugin, counted on its first write since the database opened; also
    /// the lock that makes a quota check and its write one step.
    usage: Arc<Mutex<HashMap<String, u64>>>,
}

fn entry_bytes(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

fn kv_key(plugin: &str, key: &str) -> Vec<u8> {
    let mut k = plugin.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl Plugins {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            records: crate::tree::Tree::open(db, PLUGINS)?,
            kv: crate::tree::Tree::open(db, KV)?,
            usage: Arc::default(),
        })
    }

    fn usage(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every record.
    pub fn all(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.records.iter().map(|kv| decode(PLUGINS, &kv.db()?.1)).collect()
    }

    /// One record.
    pub fn get(&self, name: &str) -> Result<Option<PluginRecord>, StoreError> {
        self.records.get(name).db()?.map(|v| decode(PLUGINS, &v)).transpose()
    }

    /// Stores a record durably.
    pub async fn put(&self, record: &PluginRecord) -> Result<(), StoreError> {
        self.records.insert(record.name.as_str(), encode(PLUGINS, record)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// Removes a record and the plugin's storage, durably.
    pub async fn remove(&self, name: &str) -> Result<(), StoreError> {
        {
            let mut usage = self.usage();
            self.records.remove(name).db()?;
            let mut prefix = name.as_bytes().to_vec();
            prefix.push(0);
            for kv in self.kv.scan_prefix(&prefix) {
                self.kv.remove(kv.db()?.0).db()?;
            }
            usage.remove(name);
        }
        self.db.flush().await?;
        Ok(())
    }

    /// A plugin's stored value.
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(kv_key(plugin, key)).db()?.map(|v| v.to_vec()))
    }

    /// Sets a plugin's value, durably, if the plugin's keys and values stay within `quota`
    /// bytes (else [`StoreError::QuotaExceeded`], and nothing is written).
    pub async fn kv_set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), StoreError> {
        {
            let mut usage = self.usage();
            let used = match usage.get(plugin) {
                Some(n) => *n,
                None => self.kv_usage(plugin)?,
            };
            let k = kv_key(plugin, key);
            let old = self.kv.get(&k).db()?.map_or(0, |v| entry_bytes(key, &v));
            let needed = used.saturating_sub(old).saturating_add(entry_bytes(key, value));
            if needed > quota {
                usage.insert(plugin.to_owned(), used);
                return Err(StoreError::QuotaExceeded { plugin: plugin.to_owned(), needed, quota });
            }
            self.kv.insert(k, value).db()?;
            usage.insert(plugin.to_owned(), needed);
        }
        self.db.flush().await
    }

    /// Deletes a plugin's value, durably.
    pub async fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError> {
        {
            let mut usage = self.usage();
            if let Some(old) = self.kv.remove(kv_key(plugin, key)).db()?
                && let Some(n) = usage.get_mut(plugin)
            {
                *n = n.saturating_sub(entry_bytes(key, &old));
            }
        }
        self.db.flush().await
    }

    /// Bytes a plugin stores (keys and values).
    pub fn kv_usage(&self, plugin: &str) -> Result<u64, StoreError> {
        let mut prefix = plugin.as_bytes().to_vec();
        prefix.push(0);
        let mut n = 0u64;
        for kv in self.kv.scan_prefix(&prefix) {
            let (k, v) = kv.db()?;
            n += (k.len().saturating_sub(prefix.len()) + v.len()) as u64;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreError};

    #[tokio::test]
    async fn kv_writes_are_durable_and_bounded_by_the_quota() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            let p = store.plugins();
            p.kv_set("a", "k1", &[1; 40], 100).await.expect("fits");
            p.kv_set("a", "k1", &[2; 90], 100).await.expect("replacing counts the old value out");
            let over = p.kv_set("a", "k2", &[3; 20], 100).await;
            assert!(
                matches!(&over, Err(StoreError::QuotaExceeded { plugin, needed: 114, quota: 100 }) if plugin == "a"),
                "{over:?}"
            );
            assert_eq!(p.kv_get("a", "k2").expect("get"), None, "nothing written over the quota");
            p.kv_set("b", "k2", &[3; 20], 100).await.expect("another plugin has its own quota");
            p.kv_delete("a", "k1").await.expect("delete");
            p.kv_set("a", "k2", &[4; 90], 100).await.expect("a delete frees its bytes");
        }
        // No flush but the writes' own: reopened, everything acknowledged is there.
        let store = Store::open(dir.path()).expect("reopen");
        let p = store.plugins();
        assert_eq!(p.kv_get("a", "k1").expect("get"), None);
        assert_eq!(p.kv_get("a", "k2").expect("get"), Some(vec![4; 90]));
        assert_eq!(p.kv_usage("a").expect("usage"), 92);
        p.remove("a").await.expect("remove");
        assert_eq!(p.kv_usage("a").expect("usage"), 0);
        p.kv_set("a", "k", &[5; 99], 100).await.expect("a removed plugin's quota starts empty");
    }
}

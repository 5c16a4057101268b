//! Installed plugins: `plugins` (name → [`PluginRecord`]) and `plugin_kv` (name, 0, key →
//! value: plugins' private storage). Component files live beside the database, named by hash.

use std::collections::BTreeMap;

use halo_core::Millis;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::codec::{decode, encode};

const PLUGINS: &str = "plugins";
const KV: &str = "plugin_kv";

/// What is persisted of an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub limits: Option<String>,
}

/// Typed access to plugin records and plugin storage.
#[derive(Clone)]
pub struct Plugins {
    db: crate::flush::Db,
    records: sled::Tree,
    kv: sled::Tree,
}

fn kv_key(plugin: &str, key: &str) -> Vec<u8> {
    let mut k = plugin.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

impl Plugins {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self { db: db.clone(), records: db.open_tree(PLUGINS)?, kv: db.open_tree(KV)? })
    }

    /// Every record.
    pub fn all(&self) -> Result<Vec<PluginRecord>, StoreError> {
        self.records.iter().map(|kv| decode(PLUGINS, &kv?.1)).collect()
    }

    /// One record.
    pub fn get(&self, name: &str) -> Result<Option<PluginRecord>, StoreError> {
        self.records.get(name)?.map(|v| decode(PLUGINS, &v)).transpose()
    }

    /// Stores a record durably.
    pub async fn put(&self, record: &PluginRecord) -> Result<(), StoreError> {
        self.records.insert(record.name.as_str(), encode(PLUGINS, record)?)?;
        self.db.flush().await?;
        Ok(())
    }

    /// Removes a record and the plugin's storage, durably.
    pub async fn remove(&self, name: &str) -> Result<(), StoreError> {
        self.records.remove(name)?;
        let mut prefix = name.as_bytes().to_vec();
        prefix.push(0);
        for kv in self.kv.scan_prefix(&prefix) {
            self.kv.remove(kv?.0)?;
        }
        self.db.flush().await?;
        Ok(())
    }

    /// A plugin's stored value.
    pub fn kv_get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.kv.get(kv_key(plugin, key))?.map(|v| v.to_vec()))
    }

    /// Sets a plugin's value (durable with the next flush).
    pub fn kv_set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.kv.insert(kv_key(plugin, key), value)?;
        Ok(())
    }

    /// Deletes a plugin's value.
    pub fn kv_delete(&self, plugin: &str, key: &str) -> Result<(), StoreError> {
        self.kv.remove(kv_key(plugin, key))?;
        Ok(())
    }

    /// Bytes a plugin stores (keys and values).
    pub fn kv_usage(&self, plugin: &str) -> Result<u64, StoreError> {
        let mut prefix = plugin.as_bytes().to_vec();
        prefix.push(0);
        let mut n = 0u64;
        for kv in self.kv.scan_prefix(&prefix) {
            let (k, v) = kv?;
            n += (k.len() - prefix.len() + v.len()) as u64;
        }
        Ok(n)
    }
}

//! `halo:plugin/kv`: plugin-private key-value storage within a quota. Denied unless the admin
//! granted `kv`. The server supplies the storage through [`KvBackend`].

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::halo::plugin::kv::{self as wit, KvError};
use crate::executor::PluginState;

/// Longest key, bytes.
pub const MAX_KEY: usize = 256;
/// Largest value, bytes.
pub const MAX_VALUE: usize = 64 * 1024;

/// Where a plugin's keys live (one namespace per plugin).
pub trait KvBackend: Send + Sync {
    /// A value.
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>>;
    /// Sets a value.
    fn set(&self, plugin: &str, key: &str, value: &[u8]);
    /// Removes a value.
    fn delete(&self, plugin: &str, key: &str);
    /// Bytes used by the plugin (keys and values).
    fn usage(&self, plugin: &str) -> u64;
}

/// Per-instance state.
pub struct KvState {
    /// Plugin name (the namespace).
    pub plugin: Arc<str>,
    /// Whether `kv` was granted.
    pub granted: bool,
    /// Quota, bytes.
    pub quota: u64,
    /// Storage.
    pub backend: Arc<dyn KvBackend>,
}

impl KvState {
    fn check(&self) -> Result<(), KvError> {
        if self.granted { Ok(()) } else { Err(KvError::AccessDenied) }
    }
}

impl wit::Host for KvState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.check()?;
        Ok(self.backend.get(&self.plugin, &key))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.check()?;
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(KvError::TooLarge);
        }
        let old = self.backend.get(&self.plugin, &key).map_or(0, |v| (key.len() + v.len()) as u64);
        let new_usage = self.backend.usage(&self.plugin) - old + (key.len() + value.len()) as u64;
        if new_usage > self.quota {
            return Err(KvError::QuotaExceeded);
        }
        self.backend.set(&self.plugin, &key, &value);
        Ok(())
    }

    fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.check()?;
        self.backend.delete(&self.plugin, &key);
        Ok(())
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<PluginState, HasSelf<KvState>>(linker, |s| &mut s.kv)
}

/// An in-memory backend (tests, and plugins on a server without storage).
#[derive(Default)]
pub struct MemoryKv(std::sync::Mutex<std::collections::BTreeMap<(String, String), Vec<u8>>>);

impl KvBackend for MemoryKv {
    fn get(&self, plugin: &str, key: &str) -> Option<Vec<u8>> {
        self.0.lock().ok()?.get(&(plugin.to_owned(), key.to_owned())).cloned()
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8]) {
        if let Ok(mut m) = self.0.lock() {
            m.insert((plugin.to_owned(), key.to_owned()), value.to_vec());
        }
    }
    fn delete(&self, plugin: &str, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(&(plugin.to_owned(), key.to_owned()));
        }
    }
    fn usage(&self, plugin: &str) -> u64 {
        self.0.lock().map_or(0, |m| {
            m.iter().filter(|((p, _), _)| p == plugin).map(|((_, k), v)| (k.len() + v.len()) as u64).sum()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(granted: bool) -> KvState {
        KvState { plugin: "p".into(), granted, quota: 100, backend: Arc::new(MemoryKv::default()) }
    }

    #[test]
    fn denied_without_grant_and_bounded_by_quota() {
        use wit::Host;
        let mut denied = state(false);
        assert!(matches!(denied.get("k".into()), Err(KvError::AccessDenied)));
        let mut kv = state(true);
        kv.set("a".into(), vec![0; 50]).expect("fits");
        kv.set("a".into(), vec![0; 90]).expect("replacing counts the old value out");
        assert!(matches!(kv.set("b".into(), vec![0; 20]), Err(KvError::QuotaExceeded)));
        assert!(matches!(kv.set("k".repeat(300), vec![]), Err(KvError::TooLarge)));
        kv.delete("a".into()).expect("delete");
        assert!(matches!(kv.get("a".into()), Ok(None)));
    }
}

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

/// Why a backend did not do a kv operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvFailure {
    /// The write would take the plugin past its quota; nothing was written.
    #[error("over the plugin's kv quota")]
    QuotaExceeded,
    /// Storage failed (disk full, I/O error): the write was not stored, or the read not done.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<KvFailure> for KvError {
    /// The 0.1 interface has no case for a storage failure: it reads as `quota-exceeded`
    /// (no room to store this now; nothing was stored), documented in `docs/plugins.md`.
    fn from(f: KvFailure) -> Self {
        match f {
            KvFailure::QuotaExceeded | KvFailure::Unavailable(_) => KvError::QuotaExceeded,
        }
    }
}

/// Where a plugin's keys live (one namespace per plugin). Writes return once they are durable,
/// or with why they were not done; the guest sees every failure as an error.
pub trait KvBackend: Send + Sync {
    /// A value.
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvFailure>;
    /// Sets a value, durably, if the plugin's keys and values stay within `quota` bytes.
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), KvFailure>;
    /// Removes a value, durably.
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvFailure>;
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

impl KvState {
    fn failed(&self, what: &str, key: &str, f: KvFailure) -> KvError {
        if let KvFailure::Unavailable(why) = &f {
            tracing::warn!(plugin = %self.plugin, key, reason = %why, "plugin kv {what} failed");
        }
        f.into()
    }
}

impl wit::Host for KvState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, KvError> {
        self.check()?;
        self.backend.get(&self.plugin, &key).map_err(|f| self.failed("read", &key, f))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.check()?;
        if key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(KvError::TooLarge);
        }
        self.backend.set(&self.plugin, &key, &value, self.quota).map_err(|f| self.failed("write", &key, f))
    }

    fn delete(&mut self, key: String) -> Result<(), KvError> {
        self.check()?;
        self.backend.delete(&self.plugin, &key).map_err(|f| self.failed("delete", &key, f))
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<PluginState, HasSelf<KvState>>(linker, |s| &mut s.kv)
}

type Entries = std::collections::BTreeMap<(String, String), Vec<u8>>;

/// An in-memory backend (tests, and plugins on a server without storage).
#[derive(Default)]
pub struct MemoryKv(std::sync::Mutex<Entries>);

impl MemoryKv {
    fn map(&self) -> Result<std::sync::MutexGuard<'_, Entries>, KvFailure> {
        self.0.lock().map_err(|_| KvFailure::Unavailable("poisoned".into()))
    }
}

impl KvBackend for MemoryKv {
    fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, KvFailure> {
        Ok(self.map()?.get(&(plugin.to_owned(), key.to_owned())).cloned())
    }
    fn set(&self, plugin: &str, key: &str, value: &[u8], quota: u64) -> Result<(), KvFailure> {
        let mut m = self.map()?;
        let used: usize =
            m.iter().filter(|((p, k), _)| p == plugin && k != key).map(|((_, k), v)| k.len() + v.len()).sum();
        if (used + key.len() + value.len()) as u64 > quota {
            return Err(KvFailure::QuotaExceeded);
        }
        m.insert((plugin.to_owned(), key.to_owned()), value.to_vec());
        Ok(())
    }
    fn delete(&self, plugin: &str, key: &str) -> Result<(), KvFailure> {
        self.map()?.remove(&(plugin.to_owned(), key.to_owned()));
        Ok(())
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

    struct Broken;

    impl KvBackend for Broken {
        fn get(&self, _: &str, _: &str) -> Result<Option<Vec<u8>>, KvFailure> {
            Err(KvFailure::Unavailable("disk on fire".into()))
        }
        fn set(&self, _: &str, _: &str, _: &[u8], _: u64) -> Result<(), KvFailure> {
            Err(KvFailure::Unavailable("disk on fire".into()))
        }
        fn delete(&self, _: &str, _: &str) -> Result<(), KvFailure> {
            Err(KvFailure::Unavailable("disk on fire".into()))
        }
    }

    #[test]
    fn storage_failures_reach_the_guest_as_errors() {
        use wit::Host;
        let mut kv = KvState { plugin: "p".into(), granted: true, quota: 100, backend: Arc::new(Broken) };
        assert!(matches!(kv.set("a".into(), vec![1]), Err(KvError::QuotaExceeded)));
        assert!(matches!(kv.get("a".into()), Err(KvError::QuotaExceeded)));
        assert!(matches!(kv.delete("a".into()), Err(KvError::QuotaExceeded)));
    }
}

//! A simulated host for unit-testing plugin logic natively (`cargo test`), with the same
//! rules as the server: config values, a kv store that needs the grant, captured logs.

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::{Host, KvError, Level, MachineState, PresenceInput, Published};

/// An in-memory host.
#[derive(Debug, Default)]
pub struct TestHost {
    config: BTreeMap<String, String>,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    kv_granted: bool,
    logs: RefCell<Vec<(Level, String)>>,
}

impl TestHost {
    /// A host with no config and no grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a config value.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Grants `kv`.
    pub fn with_kv(mut self) -> Self {
        self.kv_granted = true;
        self
    }

    /// The lines logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for TestHost {
    fn config(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
    fn config_all(&self) -> Vec<(String, String)> {
        self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        if key.len() > 256 || value.len() > 64 * 1024 {
            return Err(KvError::TooLarge);
        }
        self.kv.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        self.kv.borrow_mut().remove(key);
        Ok(())
    }
}

/// A presence input for one active device at `now_ms` (built-in: Available).
pub fn input(user: &str, now_ms: u64) -> PresenceInput {
    PresenceInput {
        user: user.to_owned(),
        manual: None,
        endpoints: vec![crate::Endpoint { id: 1, state: MachineState::Active, since_ms: now_ms }],
        calendar: None,
        phone: None,
        now_ms,
        builtin: Published { availability: 3500, activity: None, custom: None },
    }
}

//! `halo:plugin/config`: the admin's config of this plugin (validated against its schema, with
//! defaults filled in).

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::halo::plugin::config as wit;
use crate::executor::PluginState;

/// Per-instance state: the config.
pub struct ConfigState {
    /// Key → value.
    pub values: Arc<BTreeMap<String, String>>,
}

impl wit::Host for ConfigState {
    fn get(&mut self, key: String) -> Option<String> {
        self.values.get(&key).cloned()
    }

    fn all(&mut self) -> Vec<(String, String)> {
        self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

pub(crate) fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wit::add_to_linker::<PluginState, HasSelf<ConfigState>>(linker, |s| &mut s.config)
}

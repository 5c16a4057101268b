//! Installed plugins.

use std::collections::BTreeMap;

use halo_core::Millis;
use serde::{Deserialize, Serialize};

use super::stored;
use crate::plugins::PluginRecord;

stored!(PluginRecord => PluginRecordV1);

/// `plugins`: what is persisted of an installed plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PluginRecordV1 {
    pub(crate) name: String,
    pub(crate) sha256: String,
    pub(crate) grants: Vec<String>,
    pub(crate) config: BTreeMap<String, String>,
    pub(crate) enabled: bool,
    pub(crate) installed_at: Millis,
    #[serde(default)]
    pub(crate) limits: Option<String>,
    /// Added later; absent in older records, and left out when none (so records without it
    /// are written byte for byte as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) disabled: Option<String>,
}

impl From<&PluginRecord> for PluginRecordV1 {
    fn from(r: &PluginRecord) -> Self {
        let PluginRecord { name, sha256, grants, config, enabled, installed_at, limits, disabled } = r.clone();
        Self { name, sha256, grants, config, enabled, installed_at, limits, disabled }
    }
}

impl From<PluginRecordV1> for PluginRecord {
    fn from(r: PluginRecordV1) -> Self {
        let PluginRecordV1 { name, sha256, grants, config, enabled, installed_at, limits, disabled } = r;
        Self { name, sha256, grants, config, enabled, installed_at, limits, disabled }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::golden::pin;

    #[test]
    fn plugin_record_v1_is_pinned() {
        let full = PluginRecord {
            name: "custom-states".into(),
            sha256: "0f".repeat(32),
            grants: vec!["presence:derive".into(), "kv".into()],
            config: [("mode".to_owned(), "strict".to_owned())].into(),
            enabled: true,
            installed_at: 1_700_000_000_000,
            limits: Some(r#"{"deadline_ms":50}"#.into()),
            disabled: None,
        };
        let bare = PluginRecord {
            name: "x".into(),
            sha256: String::new(),
            grants: Vec::new(),
            config: BTreeMap::new(),
            enabled: false,
            installed_at: 0,
            limits: None,
            disabled: None,
        };
        pin("plugins", include_str!("golden/plugin_record_v1.hex"), &[full, bare]);
    }

    #[test]
    fn plugin_record_v1_with_a_disabled_reason_is_pinned() {
        let disabled = PluginRecord {
            name: "hostile".into(),
            sha256: "0f".repeat(32),
            grants: Vec::new(),
            config: BTreeMap::new(),
            enabled: true,
            installed_at: 1_700_000_000_000,
            limits: None,
            disabled: Some("disabled after 5 traps in a row".into()),
        };
        pin("plugins", include_str!("golden/plugin_record_v1_disabled.hex"), &[disabled]);
    }

    #[test]
    fn plugin_record_v1_reads_a_record_without_limits() {
        // Written before `limits` existed.
        let old = PluginRecordV1 {
            name: "x".into(),
            sha256: String::new(),
            grants: Vec::new(),
            config: BTreeMap::new(),
            enabled: true,
            installed_at: 1,
            limits: None,
            disabled: None,
        };
        #[derive(Serialize)]
        struct Before<'a> {
            name: &'a str,
            sha256: &'a str,
            grants: &'a [String],
            config: &'a BTreeMap<String, String>,
            enabled: bool,
            installed_at: Millis,
        }
        let bytes = rmp_serde::to_vec_named(&Before {
            name: &old.name,
            sha256: &old.sha256,
            grants: &old.grants,
            config: &old.config,
            enabled: true,
            installed_at: 1,
        })
        .expect("encodes");
        let back: PluginRecord = crate::codec::decode("plugins", &bytes).expect("decodes");
        assert_eq!(back, old.into());
    }
}

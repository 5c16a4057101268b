//! `custom-states`: the Lync feature of an organisation's own presence states. The admin lists
//! them in the `states` config value (JSON); `max_states` caps how many are accepted.
//!
//! ```json
//! [{"id": "focusing", "labels": {"en": "Focusing", "fr": "Concentration"}, "availability": 6500, "colour": "#8e44ad"}]
//! ```

use std::collections::BTreeMap;

use halo_sdk::{Host, Level, PresencePlugin, StateDef};
use serde::Deserialize;

halo_sdk::manifest!(
    r#"{"name": "custom-states", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0",
  "description": "An organisation's own presence states, with labels per language and colours.",
  "capabilities": [],
  "config": {
    "states": {"type": "string", "default": "[]", "description": "JSON list of {id, labels: {lang: text}, availability, colour}"},
    "max_states": {"type": "integer", "default": "20", "description": "Most states accepted"}
  }}"#
);

#[derive(Deserialize)]
struct Def {
    id: String,
    labels: BTreeMap<String, String>,
    availability: u32,
    colour: String,
}

/// The plugin.
pub struct CustomStates;

impl PresencePlugin for CustomStates {
    fn states(host: &dyn Host) -> Vec<StateDef> {
        let raw = host.config("states").unwrap_or_else(|| "[]".into());
        let max = host.config("max_states").and_then(|m| m.parse().ok()).unwrap_or(20usize);
        let defs: Vec<Def> = match serde_json::from_str(&raw) {
            Ok(d) => d,
            Err(e) => {
                host.log(Level::Error, &format!("config `states` is not a valid JSON list: {e}"));
                return Vec::new();
            }
        };
        if defs.len() > max {
            host.log(Level::Warn, &format!("{} states configured; only the first {max} are used", defs.len()));
        }
        defs.into_iter()
            .take(max)
            .map(|d| StateDef {
                id: d.id,
                labels: d.labels.into_iter().collect(),
                availability: d.availability,
                colour: d.colour,
            })
            .collect()
    }
}

halo_sdk::presence_plugin!(CustomStates);

#[cfg(test)]
mod tests {
    use halo_sdk::testing::TestHost;

    use super::*;

    #[test]
    fn states_come_from_config_up_to_the_cap() {
        let json = r##"[{"id":"focusing","labels":{"en":"Focusing","fr":"Concentration"},"availability":6500,"colour":"#8e44ad"},
                      {"id":"on-site","labels":{"en":"On site"},"availability":3500,"colour":"#0078d4"}]"##;
        let host = TestHost::new().with_config("states", json).with_config("max_states", "1");
        let states = CustomStates::states(&host);
        assert_eq!(states.len(), 1);
        assert_eq!(states[0].id, "focusing");
        assert!(states[0].labels.contains(&("fr".into(), "Concentration".into())));
        assert_eq!(host.logs().len(), 1, "the cap is reported");
        let broken = TestHost::new().with_config("states", "not json");
        assert!(CustomStates::states(&broken).is_empty());
        assert_eq!(broken.logs()[0].0, Level::Error);
    }
}

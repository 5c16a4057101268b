//! `custom-states`: the Lync feature of an organisation's own presence states. The admin lists
//! them in the `states` config value (JSON); `max_states` caps how many are accepted.
//!
//! ```json
//! [{"id": "focusing", "labels": {"en": "Focusing", "fr": "Concentration"}, "availability": 6500, "colour": "#8e44ad"}]
//! ```
//!
//! Calendar keyword states: `calendar_keywords` (JSON, keyword → state id) publishes one of
//! those states while the user's current calendar event has the keyword in its title (any
//! case; the longest matching keyword wins), unless they set a state by hand. The title comes
//! from the calendar integration (halo:plugin@0.1.3's `calendar` import) and is never published.
//!
//! ```json
//! {"focus time": "focusing", "lunch": "at-lunch"}
//! ```

use std::collections::BTreeMap;

use halo_sdk::{Host, Level, PresenceInput, PresencePlugin, Published, StateDef};
use serde::Deserialize;

halo_sdk::manifest!(
    r#"{"name": "custom-states", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.3",
  "description": "An organisation's own presence states, with labels per language and colours, and calendar keyword states.",
  "capabilities": [],
  "config": {
    "states": {"type": "string", "default": "[]", "description": "JSON list of {id, labels: {lang: text}, availability, colour}"},
    "max_states": {"type": "integer", "default": "20", "description": "Most states accepted"},
    "calendar_keywords": {"type": "string", "default": "{}", "description": "JSON object: a keyword of calendar event titles -> the id of one of the states"}
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

    fn derive(host: &dyn Host, input: &PresenceInput) -> Option<Published> {
        let title = input.calendar_event.as_ref()?.title.as_deref()?.to_lowercase();
        // A hand-picked state stands; and a plugin never makes a signed-out user look online.
        if input.manual.is_some() || input.builtin.availability >= 18_000 {
            return None;
        }
        let raw = host.config("calendar_keywords")?;
        let keywords: BTreeMap<String, String> = match serde_json::from_str(&raw) {
            Ok(k) => k,
            Err(e) => {
                host.log(Level::Error, &format!("config `calendar_keywords` is not a JSON object of strings: {e}"));
                return None;
            }
        };
        let (_, id) = keywords
            .iter()
            .filter(|(k, _)| !k.is_empty() && title.contains(&k.to_lowercase()))
            .max_by_key(|(k, _)| k.chars().count())?;
        let Some(state) = Self::states(host).into_iter().find(|s| &s.id == id) else {
            host.log(Level::Warn, &format!("calendar keyword state {id:?} is not in `states`"));
            return None;
        };
        Some(Published { availability: state.availability, activity: None, custom: Some(state.id) })
    }
}

halo_sdk::presence_plugin!(CustomStates);

#[cfg(test)]
mod tests {
    use halo_sdk::testing::TestHost;

    use super::*;

    const STATES: &str = r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"},
                              {"id":"at-lunch","labels":{"en":"At lunch"},"availability":12500,"colour":"#ff8c00"}]"##;

    #[test]
    fn a_calendar_keyword_in_the_title_picks_its_state() {
        use halo_sdk::testing::{in_meeting, input};
        let host = TestHost::new().with_config("states", STATES).with_config(
            "calendar_keywords",
            r#"{"focus": "at-lunch", "Focus Time": "focusing", "lunch": "at-lunch"}"#,
        );
        let now = 1_796_200_200_000;
        let focus = CustomStates::derive(&host, &in_meeting("alice", now, "Deep FOCUS TIME (no meetings)"));
        assert_eq!(focus.map(|p| (p.availability, p.custom)), Some((6500, Some("focusing".into()))), "longest wins");
        let lunch = CustomStates::derive(&host, &in_meeting("alice", now, "Team lunch"));
        assert_eq!(lunch.and_then(|p| p.custom).as_deref(), Some("at-lunch"));
        assert_eq!(CustomStates::derive(&host, &in_meeting("alice", now, "1:1 with Bob")), None, "no keyword");
        assert_eq!(CustomStates::derive(&host, &input("alice", now)), None, "no event");
        let mut manual = in_meeting("alice", now, "Focus time");
        manual.manual =
            Some(halo_sdk::ManualState { availability: 9500, activity: None, custom: None, until_ms: None });
        assert_eq!(CustomStates::derive(&host, &manual), None, "a manual state is left alone");
        let mut offline = in_meeting("alice", now, "Focus time");
        offline.builtin.availability = 18_500;
        assert_eq!(CustomStates::derive(&host, &offline), None, "signed out stays offline");
        let unknown =
            TestHost::new().with_config("states", STATES).with_config("calendar_keywords", r#"{"x": "nope"}"#);
        assert_eq!(CustomStates::derive(&unknown, &in_meeting("alice", now, "x")), None);
        assert_eq!(unknown.logs()[0].0, Level::Warn);
        let broken = TestHost::new().with_config("calendar_keywords", "[");
        assert_eq!(CustomStates::derive(&broken, &in_meeting("alice", now, "x")), None);
        assert_eq!(broken.logs()[0].0, Level::Error);
    }

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

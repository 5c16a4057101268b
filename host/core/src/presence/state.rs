//! Availability numbers, bands, activities, built-in and custom states.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An availability number: 0-18500, lower is more available.
pub type Availability = u32;

/// Highest availability accepted (Offline's canonical value).
pub const MAX_AVAILABILITY: Availability = 18_500;

/// Why a presence input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresenceError {
    /// Not a built-in or configured state.
    #[error("unknown state {0:?}")]
    UnknownState(String),
    /// Not a known activity token.
    #[error("unknown activity {0:?}")]
    UnknownActivity(String),
    /// Outside 0-18500.
    #[error("availability must be 0-18500, got {0}")]
    AvailabilityOutOfRange(u32),
    /// A text field is too long or has control characters.
    #[error("{0}")]
    InvalidField(&'static str),
    /// A custom state definition is invalid.
    #[error("custom state {id:?}: {reason}")]
    InvalidCustomState {
        /// The state's id.
        id: String,
        /// What is wrong.
        reason: &'static str,
    },
}

/// What people see of an availability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// 0-4499.
    Available,
    /// 4500-5999: available but the device is idle.
    AvailableIdle,
    /// 6000-7499.
    Busy,
    /// 7500-8999: busy and idle.
    BusyIdle,
    /// 9000-11999.
    DoNotDisturb,
    /// 12000-14999.
    BeRightBack,
    /// 15000-17999.
    Away,
    /// 18000 and above.
    Offline,
}

impl Band {
    /// The band of an availability number.
    pub fn of(a: Availability) -> Self {
        match a {
            0..=4499 => Band::Available,
            4500..=5999 => Band::AvailableIdle,
            6000..=7499 => Band::Busy,
            7500..=8999 => Band::BusyIdle,
            9000..=11999 => Band::DoNotDisturb,
            12000..=14999 => Band::BeRightBack,
            15000..=17999 => Band::Away,
            _ => Band::Offline,
        }
    }

    /// The band's canonical number.
    pub fn canonical(self) -> Availability {
        match self {
            Band::Available => 3500,
            Band::AvailableIdle => 5000,
            Band::Busy => 6500,
            Band::BusyIdle => 7500,
            Band::DoNotDisturb => 9500,
            Band::BeRightBack => 12500,
            Band::Away => 15500,
            Band::Offline => 18500,
        }
    }

    /// The usual colour of the band's presence dot.
    pub fn colour(self) -> &'static str {
        match self {
            Band::Available | Band::AvailableIdle => "#3fb34f",
            Band::Busy | Band::BusyIdle => "#d9342b",
            Band::DoNotDisturb => "#a4262c",
            Band::BeRightBack | Band::Away => "#f8c61b",
            Band::Offline => "#a19f9d",
        }
    }

    /// English label.
    pub fn label(self) -> &'static str {
        match self {
            Band::Available => "Available",
            Band::AvailableIdle => "Inactive",
            Band::Busy => "Busy",
            Band::BusyIdle => "Busy",
            Band::DoNotDisturb => "Do not disturb",
            Band::BeRightBack => "Be right back",
            Band::Away => "Away",
            Band::Offline => "Offline",
        }
    }
}

/// Activity tokens refining the availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activity {
    /// Away band: outside working hours.
    OffWork,
    /// Busy band: calendar says a meeting is on.
    InAMeeting,
    /// Busy band: on the phone.
    InACall,
    /// Busy band: in a conference call.
    InAConference,
    /// Out of office (calendar); the availability comes from the other sources.
    OutOfOffice,
}

impl Activity {
    /// English label.
    pub fn label(self) -> &'static str {
        match self {
            Activity::OffWork => "Off work",
            Activity::InAMeeting => "In a meeting",
            Activity::InACall => "In a call",
            Activity::InAConference => "In a conference",
            Activity::OutOfOffice => "Out of office",
        }
    }

    /// Parses a token.
    pub fn parse(s: &str) -> Result<Self, PresenceError> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| PresenceError::UnknownActivity(s.to_owned()))
    }
}

/// The states a user picks by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BuiltinState {
    /// 3500.
    Available,
    /// 6500.
    Busy,
    /// 9500.
    DoNotDisturb,
    /// 12500.
    BeRightBack,
    /// 15500 with activity off-work.
    OffWork,
    /// 15500.
    Away,
    /// 18500: shown Offline while signed in.
    AppearOffline,
}

impl BuiltinState {
    /// Every built-in state.
    pub const ALL: [BuiltinState; 7] = [
        BuiltinState::Available,
        BuiltinState::Busy,
        BuiltinState::DoNotDisturb,
        BuiltinState::BeRightBack,
        BuiltinState::OffWork,
        BuiltinState::Away,
        BuiltinState::AppearOffline,
    ];

    /// Its availability and activity.
    pub fn value(self) -> (Availability, Option<Activity>) {
        match self {
            BuiltinState::Available => (3500, None),
            BuiltinState::Busy => (6500, None),
            BuiltinState::DoNotDisturb => (9500, None),
            BuiltinState::BeRightBack => (12500, None),
            BuiltinState::OffWork => (15500, Some(Activity::OffWork)),
            BuiltinState::Away => (15500, None),
            BuiltinState::AppearOffline => (18500, None),
        }
    }

    /// Its token.
    pub fn token(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
    }
}

/// A state an organisation defines (from the config today, from plugins later).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomState {
    /// Token, e.g. `focusing` (a-z, 0-9, `-`; not a built-in token).
    pub id: String,
    /// Label per language tag, e.g. `{ en = "Focusing", fr = "Concentré" }`; `en` is required.
    pub labels: BTreeMap<String, String>,
    /// Availability number; its band is what people without access to the state see.
    pub availability: Availability,
    /// Colour of the dot, `#rrggbb`.
    pub colour: String,
}

/// Checks a set of custom state definitions.
pub fn check_custom_states(states: &[CustomState]) -> Result<(), PresenceError> {
    let mut seen = std::collections::BTreeSet::new();
    for s in states {
        let bad = |reason| PresenceError::InvalidCustomState { id: s.id.clone(), reason };
        let token_ok = !s.id.is_empty()
            && s.id.len() <= 32
            && s.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !token_ok {
            return Err(bad("id must be 1-32 characters of a-z, 0-9, -"));
        }
        if BuiltinState::ALL.iter().any(|b| b.token() == s.id) || Activity::parse(&s.id).is_ok() {
            return Err(bad("id clashes with a built-in state or activity"));
        }
        if !seen.insert(s.id.as_str()) {
            return Err(bad("defined twice"));
        }
        if s.availability >= 18_000 {
            return Err(bad("availability must be below the Offline band (18000)"));
        }
        if !s.labels.contains_key("en") || s.labels.values().any(|l| l.is_empty() || l.chars().count() > 64) {
            return Err(bad("labels need an `en` entry, each 1-64 characters"));
        }
        let colour_ok =
            s.colour.len() == 7 && s.colour.starts_with('#') && s.colour[1..].bytes().all(|b| b.is_ascii_hexdigit());
        if !colour_ok {
            return Err(bad("colour must be #rrggbb"));
        }
    }
    Ok(())
}

/// A state chosen by hand, resolved: built-in or custom, or explicit numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChoice {
    /// Availability.
    pub availability: Availability,
    /// Activity, if any.
    pub activity: Option<Activity>,
    /// Custom state id, if any.
    pub custom: Option<String>,
}

impl StateChoice {
    /// Resolves a state token against the built-in states and `custom`.
    pub fn from_token(token: &str, custom: &[CustomState]) -> Result<Self, PresenceError> {
        if let Some(b) = BuiltinState::ALL.iter().find(|b| b.token() == token) {
            let (availability, activity) = b.value();
            return Ok(Self { availability, activity, custom: None });
        }
        if let Some(c) = custom.iter().find(|c| c.id == token) {
            return Ok(Self { availability: c.availability, activity: None, custom: Some(c.id.clone()) });
        }
        Err(PresenceError::UnknownState(token.to_owned()))
    }

    /// Explicit numbers: availability 0-18500 and an optional activity token.
    pub fn explicit(availability: Availability, activity: Option<&str>) -> Result<Self, PresenceError> {
        if availability > MAX_AVAILABILITY {
            return Err(PresenceError::AvailabilityOutOfRange(availability));
        }
        let activity = activity.map(Activity::parse).transpose()?;
        Ok(Self { availability, activity, custom: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_lync() {
        let rows = [
            (0, Band::Available),
            (4499, Band::Available),
            (4500, Band::AvailableIdle),
            (6000, Band::Busy),
            (7500, Band::BusyIdle),
            (9000, Band::DoNotDisturb),
            (12000, Band::BeRightBack),
            (15000, Band::Away),
            (17999, Band::Away),
            (18000, Band::Offline),
        ];
        for (a, band) in rows {
            assert_eq!(Band::of(a), band, "{a}");
            assert_eq!(Band::of(band.canonical()), band);
        }
    }

    fn focus() -> CustomState {
        CustomState {
            id: "focusing".into(),
            labels: [("en".into(), "Focusing".into())].into(),
            availability: 6500,
            colour: "#8e44ad".into(),
        }
    }

    #[test]
    fn tokens_resolve_to_states() {
        assert_eq!(
            StateChoice::from_token("off-work", &[]).map(|s| (s.availability, s.activity)),
            Ok((15500, Some(Activity::OffWork)))
        );
        assert_eq!(StateChoice::from_token("focusing", &[focus()]).map(|s| s.custom), Ok(Some("focusing".into())));
        assert!(StateChoice::from_token("sleeping", &[]).is_err());
        assert!(StateChoice::explicit(18501, None).is_err());
        assert!(StateChoice::explicit(6500, Some("in-a-call")).is_ok());
        assert!(StateChoice::explicit(6500, Some("juggling")).is_err());
    }

    #[test]
    fn custom_states_are_checked() {
        assert!(check_custom_states(&[focus()]).is_ok());
        for bad in [
            CustomState { id: "busy".into(), ..focus() },
            CustomState { id: "Has Caps".into(), ..focus() },
            CustomState { availability: 18000, ..focus() },
            CustomState { colour: "purple".into(), ..focus() },
            CustomState { labels: [("fr".into(), "x".into())].into(), ..focus() },
        ] {
            assert!(check_custom_states(std::slice::from_ref(&bad)).is_err(), "{bad:?}");
        }
        assert!(check_custom_states(&[focus(), focus()]).is_err());
    }
}

//! `office-hours`: shows signed-in users as Off Work (Away band, activity `off-work`) outside
//! the configured working hours, in the configured IANA time zone (daylight saving included).
//! A manual state always wins; the built-in Offline is left alone. Re-checked every minute.

use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use halo_sdk::{Host, Level, PresenceInput, PresencePlugin, Published, StateDef};

halo_sdk::manifest!(
    r#"{"name": "office-hours", "version": "0.1.0", "kind": "presence-states", "api": "halo:plugin@0.1.0",
  "description": "Off Work outside working hours, time-zone aware.",
  "capabilities": [],
  "config": {
    "timezone": {"type": "string", "default": "UTC", "description": "IANA time zone, e.g. Europe/Paris"},
    "start": {"type": "string", "default": "09:00", "description": "Start of the working day, HH:MM"},
    "end": {"type": "string", "default": "17:00", "description": "End of the working day, HH:MM"},
    "days": {"type": "string", "default": "mon,tue,wed,thu,fri", "description": "Working days"}
  }}"#
);

struct Hours {
    tz: Tz,
    start: NaiveTime,
    end: NaiveTime,
    days: Vec<Weekday>,
}

fn hours(host: &dyn Host) -> Option<Hours> {
    let get = |k: &str, d: &str| host.config(k).unwrap_or_else(|| d.to_owned());
    let tz: Tz = match get("timezone", "UTC").parse() {
        Ok(tz) => tz,
        Err(_) => {
            host.log(Level::Error, "config `timezone` is not an IANA time zone");
            return None;
        }
    };
    let time = |k: &str, d: &str| NaiveTime::parse_from_str(&get(k, d), "%H:%M").ok();
    let (Some(start), Some(end)) = (time("start", "09:00"), time("end", "17:00")) else {
        host.log(Level::Error, "config `start` and `end` must be HH:MM");
        return None;
    };
    let days = get("days", "mon,tue,wed,thu,fri").split(',').filter_map(|d| d.trim().parse::<Weekday>().ok()).collect();
    Some(Hours { tz, start, end, days })
}

/// Whether `now_ms` (UTC) is within working hours.
fn working(h: &Hours, now_ms: u64) -> bool {
    let Some(local) = h.tz.timestamp_millis_opt(now_ms as i64).single() else { return true };
    let t = NaiveTime::from_hms_opt(local.hour(), local.minute(), 0).unwrap_or(NaiveTime::MIN);
    h.days.contains(&local.weekday()) && t >= h.start && t < h.end
}

/// The plugin.
pub struct OfficeHours;

impl PresencePlugin for OfficeHours {
    fn states(_: &dyn Host) -> Vec<StateDef> {
        Vec::new()
    }

    fn derive(host: &dyn Host, input: &PresenceInput) -> Option<Published> {
        if input.manual.is_some() || input.endpoints.is_empty() || input.builtin.availability >= 18_000 {
            return None;
        }
        // The config is fixed for an instance's life (a config change starts a new instance),
        // so it is parsed once.
        #[cfg(not(test))]
        let h = {
            static HOURS: std::sync::OnceLock<Option<Hours>> = std::sync::OnceLock::new();
            HOURS.get_or_init(|| hours(host)).as_ref()?
        };
        #[cfg(test)]
        let parsed = hours(host);
        #[cfg(test)]
        let h = parsed.as_ref()?;
        if working(h, input.now_ms) {
            return None;
        }
        Some(Published { availability: 15_500, activity: Some("off-work".into()), custom: None })
    }

    fn tick_seconds(_: &dyn Host) -> u32 {
        60
    }
}

halo_sdk::presence_plugin!(OfficeHours);

#[cfg(test)]
mod tests {
    use halo_sdk::testing::{TestHost, input};

    use super::*;

    // 2026-11-26 is a Thursday. 08:30 UTC is 09:30 in Paris (CET, UTC+1).
    const THU_0830_UTC: u64 = 1_796_200_200_000;

    #[test]
    fn off_work_outside_hours_in_the_configured_zone() {
        let paris = TestHost::new().with_config("timezone", "Europe/Paris");
        assert_eq!(OfficeHours::derive(&paris, &input("alice", THU_0830_UTC)), None, "09:30 in Paris");
        let ny = TestHost::new().with_config("timezone", "America/New_York");
        let off = OfficeHours::derive(&ny, &input("alice", THU_0830_UTC)).expect("03:30 in New York");
        assert_eq!((off.availability, off.activity.as_deref()), (15_500, Some("off-work")));
        let weekend = TestHost::new().with_config("timezone", "Europe/Paris").with_config("days", "mon,tue");
        assert!(OfficeHours::derive(&weekend, &input("alice", THU_0830_UTC)).is_some(), "not a working day");
    }

    #[test]
    fn manual_state_and_offline_are_left_alone() {
        let ny = TestHost::new().with_config("timezone", "America/New_York");
        let mut i = input("alice", THU_0830_UTC);
        i.manual = Some(halo_sdk::ManualState { availability: 6500, activity: None, custom: None, until_ms: None });
        assert_eq!(OfficeHours::derive(&ny, &i), None);
        let mut i = input("alice", THU_0830_UTC);
        i.endpoints.clear();
        assert_eq!(OfficeHours::derive(&ny, &i), None);
        let bad = TestHost::new().with_config("timezone", "Mars/Olympus");
        assert_eq!(OfficeHours::derive(&bad, &input("alice", THU_0830_UTC)), None);
        assert_eq!(bad.logs()[0].0, Level::Error);
    }
}

//! Aggregation: a user's sources in, one published state (and the next time it may change) out.
//!
//! The rules, in order:
//! 1. No device connected (after the grace period) → Offline.
//! 2. A manual state that has not expired wins.
//! 3. Otherwise the most active device wins (Active 3500, Inactive 5000, Away 15500; an
//!    Inactive device turns Away `away_after` later), combined with phone and calendar: in a
//!    call or conference → Busy 6500; in a meeting → Busy 6500, or Busy-Idle 7500 when no device
//!    is active; out of office → the device's availability with the out-of-office activity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::state::{Activity, Availability, StateChoice};
use crate::Millis;

/// A device's machine state, as its client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    /// The user is using the device.
    Active,
    /// No input for the user's idle timeout.
    Inactive,
    /// Locked, or away for long.
    Away,
}

/// One device's state and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The state.
    pub state: MachineState,
    /// When it was reported.
    pub since: Millis,
}

/// A state set by hand, possibly until a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manual {
    /// What was chosen.
    pub choice: StateChoice,
    /// When it stops applying (e.g. Be Right Back for 15 minutes).
    pub until: Option<Millis>,
}

/// What the calendar says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalendarActivity {
    /// A meeting is on.
    InAMeeting,
    /// Out of office.
    OutOfOffice,
}

/// Calendar input, set by an integration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calendar {
    /// The activity.
    pub activity: CalendarActivity,
    /// When it ends.
    pub until: Option<Millis>,
    /// Meeting subject (a meeting detail: shown to Workgroup contacts only).
    pub subject: Option<String>,
}

/// Phone input, set by a telephony integration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phone {
    /// On a call.
    InACall,
    /// In a conference call.
    InAConference,
}

/// Everything aggregation looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inputs {
    /// Manual state.
    pub manual: Option<Manual>,
    /// Connected devices by endpoint id.
    pub endpoints: BTreeMap<u64, Machine>,
    /// The last device's state while the grace period after its disconnect runs.
    pub lingering: Option<(Machine, Millis)>,
    /// Calendar.
    pub calendar: Option<Calendar>,
    /// Phone.
    pub phone: Option<Phone>,
}

/// Timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// Inactive → Away after this long.
    pub away_after_ms: u64,
    /// Offline only this long after the last device left, so a reconnect does not flap.
    pub offline_grace_ms: u64,
}

/// The published state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Availability number.
    pub availability: Availability,
    /// Activity token.
    pub activity: Option<Activity>,
    /// Custom state id.
    pub custom: Option<String>,
}

impl Published {
    /// Offline, nothing else.
    pub fn offline() -> Self {
        Self { availability: 18_500, activity: None, custom: None }
    }
}

fn machine_value(m: &Machine, now: Millis, t: &Timers, next: &mut Option<Millis>) -> Availability {
    match m.state {
        MachineState::Active => 3500,
        MachineState::Away => 15500,
        MachineState::Inactive => {
            let away_at = m.since.saturating_add(t.away_after_ms);
            if now >= away_at {
                15500
            } else {
                earliest(next, away_at);
                5000
            }
        }
    }
}

fn earliest(next: &mut Option<Millis>, at: Millis) {
    *next = Some(next.map_or(at, |n| n.min(at)));
}

/// The published state at `now`, and when it may next change by itself (a timer).
pub fn aggregate(i: &Inputs, now: Millis, t: &Timers) -> (Published, Option<Millis>) {
    let mut next = None;
    let lingering = i.lingering.filter(|(_, left)| now < left.saturating_add(t.offline_grace_ms));
    if let Some((_, left)) = lingering {
        earliest(&mut next, left.saturating_add(t.offline_grace_ms));
    }
    let devices: Vec<&Machine> = i.endpoints.values().chain(lingering.as_ref().map(|(m, _)| m)).collect();
    if devices.is_empty() {
        return (Published::offline(), None);
    }
    if let Some(m) = &i.manual
        && m.until.is_none_or(|u| now < u)
    {
        if let Some(u) = m.until {
            earliest(&mut next, u);
        }
        let c = &m.choice;
        return (Published { availability: c.availability, activity: c.activity, custom: c.custom.clone() }, next);
    }
    let machine = devices.iter().map(|m| machine_value(m, now, t, &mut next)).min().unwrap_or(18_500);
    let calendar = i.calendar.as_ref().filter(|c| c.until.is_none_or(|u| now < u));
    if let Some(u) = calendar.and_then(|c| c.until) {
        earliest(&mut next, u);
    }
    let published = match (i.phone, calendar.map(|c| c.activity)) {
        (Some(p), _) => {
            let activity = match p {
                Phone::InACall => Activity::InACall,
                Phone::InAConference => Activity::InAConference,
            };
            Published { availability: 6500, activity: Some(activity), custom: None }
        }
        (None, Some(CalendarActivity::InAMeeting)) => {
            let availability = if machine < 4500 { 6500 } else { 7500 };
            Published { availability, activity: Some(Activity::InAMeeting), custom: None }
        }
        (None, Some(CalendarActivity::OutOfOffice)) => {
            Published { availability: machine, activity: Some(Activity::OutOfOffice), custom: None }
        }
        (None, None) => Published { availability: machine, activity: None, custom: None },
    };
    (published, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::state::StateChoice;

    const T: Timers = Timers { away_after_ms: 300_000, offline_grace_ms: 10_000 };

    fn device(state: MachineState, since: Millis) -> Machine {
        Machine { state, since }
    }

    fn manual(token: &str, until: Option<Millis>) -> Option<Manual> {
        Some(Manual { choice: StateChoice::from_token(token, &[]).expect("token"), until })
    }

    #[track_caller]
    fn check(i: Inputs, now: Millis, availability: Availability, activity: Option<Activity>, next: Option<Millis>) {
        let (p, n) = aggregate(&i, now, &T);
        assert_eq!((p.availability, p.activity, n), (availability, activity, next));
    }

    #[test]
    fn table() {
        use MachineState::*;
        let one = |s, since| [(1, device(s, since))].into();
        // No device: Offline, whatever else is set.
        check(Inputs { manual: manual("busy", None), ..Default::default() }, 0, 18500, None, None);
        // The most active device wins.
        let two = [(1, device(Away, 0)), (2, device(Active, 0))].into();
        check(Inputs { endpoints: two, ..Default::default() }, 0, 3500, None, None);
        // Inactive turns Away after the timer.
        check(Inputs { endpoints: one(Inactive, 1000), ..Default::default() }, 2000, 5000, None, Some(301_000));
        check(Inputs { endpoints: one(Inactive, 1000), ..Default::default() }, 301_000, 15500, None, None);
        // Manual wins over devices, until it expires.
        check(
            Inputs { endpoints: one(Active, 0), manual: manual("be-right-back", Some(900)), ..Default::default() },
            10,
            12500,
            None,
            Some(900),
        );
        check(
            Inputs { endpoints: one(Active, 0), manual: manual("be-right-back", Some(900)), ..Default::default() },
            900,
            3500,
            None,
            None,
        );
        check(
            Inputs { endpoints: one(Away, 0), manual: manual("off-work", None), ..Default::default() },
            0,
            15500,
            Some(Activity::OffWork),
            None,
        );
        // Calendar and phone.
        let meeting = Some(Calendar { activity: CalendarActivity::InAMeeting, until: Some(5000), subject: None });
        check(
            Inputs { endpoints: one(Active, 0), calendar: meeting.clone(), ..Default::default() },
            0,
            6500,
            Some(Activity::InAMeeting),
            Some(5000),
        );
        check(
            Inputs { endpoints: one(Inactive, 0), calendar: meeting.clone(), ..Default::default() },
            0,
            7500,
            Some(Activity::InAMeeting),
            Some(5000),
        );
        check(
            Inputs { endpoints: one(Active, 0), calendar: meeting.clone(), ..Default::default() },
            5000,
            3500,
            None,
            None,
        );
        let call =
            Inputs { endpoints: one(Away, 0), calendar: meeting, phone: Some(Phone::InACall), ..Default::default() };
        check(call, 0, 6500, Some(Activity::InACall), Some(5000));
        let oof = Some(Calendar { activity: CalendarActivity::OutOfOffice, until: None, subject: None });
        check(
            Inputs { endpoints: one(Away, 0), calendar: oof, ..Default::default() },
            0,
            15500,
            Some(Activity::OutOfOffice),
            None,
        );
        // A reconnect inside the grace period does not flap to Offline.
        let gone = Inputs { lingering: Some((device(Active, 0), 100)), ..Default::default() };
        check(gone.clone(), 5000, 3500, None, Some(10_100));
        check(gone, 10_100, 18500, None, None);
    }

    #[test]
    fn custom_states_publish_their_id() {
        let custom = crate::presence::CustomState {
            id: "focusing".into(),
            labels: [("en".into(), "Focusing".into())].into(),
            availability: 6500,
            colour: "#8e44ad".into(),
        };
        let choice = StateChoice::from_token("focusing", &[custom]).expect("custom");
        let i = Inputs {
            manual: Some(Manual { choice, until: None }),
            endpoints: [(1, device(MachineState::Active, 0))].into(),
            ..Default::default()
        };
        let (p, _) = aggregate(&i, 0, &T);
        assert_eq!((p.availability, p.custom.as_deref()), (6500, Some("focusing")));
    }
}

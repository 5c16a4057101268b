//! Aggregation across devices, away after inactivity, offline grace, manual state, calendar
//! and phone, coalescing.

use super::harness::*;
use crate::presence::Phone;

#[test]
fn first_device_publishes_active_to_own_devices() {
    Sim::new().users(&["alice"]).check(
        vec![(0, connect("alice", 1)), (100, advance())],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        ",
    );
}

#[test]
fn the_most_active_device_wins_and_inactive_turns_away() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (0, connect("alice", 2)),
            (1000, machine("alice", 1, AwayState)),
            (2000, machine("alice", 2, Inactive)),
            (400_000, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @0 connect alice#2
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @1000 machine alice#1 Away
          reply alice own 3500
        @2000 machine alice#2 Inactive
          reply alice own 5000
        @2020 tick
          publish alice 5000 since=2000
            own 5000 -> alice
        @302020 tick
          publish alice 15500 since=302000
            own 15500 -> alice
        ",
    );
}

#[test]
fn a_reconnect_within_the_grace_period_does_not_flap() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (1000, disconnect("alice", 1)),
            (5000, connect("alice", 2)),
            (6000, disconnect("alice", 2)),
            (30_000, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @1000 disconnect alice#1
        @5000 connect alice#2
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @5020 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @6000 disconnect alice#2
        @16020 tick
          publish alice 18500 since=16000
            own 18500 -> alice
        ",
    );
}

#[test]
fn a_manual_state_holds_until_its_end() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (100, manual("alice", "be-right-back", Some(60_000))),
            (200, manual("alice", "busy", Some(150))),
            (70_000, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @100 update alice manual=12500 until=Some(60000)
          save-doc alice
          reply alice own 12500
        @120 tick
          publish alice 12500 since=100
            own 12500 -> alice
        @200 update alice manual=6500 until=Some(150)
          reply refused: until is in the past
        @60020 tick
          publish alice 3500 since=60000
            own 3500 -> alice
        ",
    );
}

#[test]
fn calendar_and_phone_make_busy() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (100, meeting("alice", Some(10_000))),
            (200, machine("alice", 1, Inactive)),
            (300, phone("alice", Some(Phone::InACall))),
            (400, phone("alice", None)),
            (20_000, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @100 update alice calendar=Some((InAMeeting, Some(10000)))
          save-doc alice
          reply alice own 6500 in-a-meeting
        @120 tick
          publish alice 6500 in-a-meeting since=100
            own 6500 in-a-meeting -> alice
        @200 machine alice#1 Inactive
          reply alice own 7500 in-a-meeting
        @220 tick
          publish alice 7500 in-a-meeting since=200
            own 7500 in-a-meeting -> alice
        @300 update alice phone=Some(InACall)
          save-doc alice
          reply alice own 6500 in-a-call
        @320 tick
          publish alice 6500 in-a-call since=300
            own 6500 in-a-call -> alice
        @400 update alice phone=None
          save-doc alice
          reply alice own 7500 in-a-meeting
        @420 tick
          publish alice 7500 in-a-meeting since=400
            own 7500 in-a-meeting -> alice
        @10020 tick
          publish alice 5000 since=10000
            own 5000 -> alice
        ",
    );
}

#[test]
fn quick_changes_are_published_once() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (100, machine("alice", 1, Inactive)),
            (105, note("alice", "lunch")),
            (110, machine("alice", 1, Active)),
            (200, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @100 machine alice#1 Inactive
          reply alice own 5000
        @105 update alice note=lunch
          save-doc alice
          reply alice own 5000 note:lunch
        @110 machine alice#1 Active
          save-doc alice
          reply alice own 3500 note:lunch
        @120 tick
          publish alice 3500 since=110
            own 3500 note:lunch -> alice
        ",
    );
}

#[test]
fn a_report_from_a_gone_device_changes_nothing() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, connect("alice", 1)),
            (50, disconnect("alice", 1)),
            (60, machine("alice", 1, Active)),
            (20_000, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @50 disconnect alice#1
        @60 machine alice#1 Active
          reply alice own 3500
        @10070 tick
          publish alice 18500 since=10050
            own 18500 -> alice
        ",
    );
}

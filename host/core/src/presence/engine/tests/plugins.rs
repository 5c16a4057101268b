//! Plugin derivation: the built-in state stands while a plugin thinks, stale answers are
//! ignored, unknown states refused; custom states.

use super::harness::*;
use crate::presence::AccessLevel::*;

#[test]
fn a_stale_answer_is_ignored() {
    Sim::new().users(&["alice", "bob"]).contact("bob", "alice", Colleagues).check(
        vec![
            (0, plugins(true, None)),
            (0, connect("bob", 2)),
            (0, connect("alice", 1)),
            (5, derived("alice", 2, Some(published(6500, Some("focusing"))))),
            (100, advance()),
            (200, machine("alice", 1, Inactive)),
            (210, derived("alice", 2, Some(published(6500, Some("focusing"))))),
            (300, advance()),
            (400, derived("alice", 3, Some(published(6500, Some("focusing"))))),
            (500, advance()),
        ],
        "
        @0 plugins catalog=1 derive=true tick=None
        @0 connect bob#2
          load bob
          save-doc bob
          derive bob #1 builtin=3500
          reply connected bob own 3500 contacts=[alice]
        @0 connect alice#1
          load alice
          save-doc alice
          derive alice #2 builtin=3500
          reply connected alice own 3500 contacts=[]
        @5 derived alice #2 6500 custom:focusing
        @20 tick
          publish alice 6500 custom:focusing since=5
            own 6500 custom:focusing -> alice
            colleagues 6500 custom:focusing -> bob
          publish bob 3500 since=0
            own 3500 -> bob
        @200 machine alice#1 Inactive
          derive alice #3 builtin=5000
          reply alice own 5000
        @210 derived alice #2 6500 custom:focusing
        @220 tick
          publish alice 5000 since=200
            own 5000 -> alice
            colleagues 5000 -> bob
        @400 derived alice #3 6500 custom:focusing
        @420 tick
          publish alice 6500 custom:focusing since=400
            own 6500 custom:focusing -> alice
            colleagues 6500 custom:focusing -> bob
        ",
    );
}

#[test]
fn an_unknown_state_or_no_answer_keeps_the_builtin_state() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, plugins(true, None)),
            (0, connect("alice", 1)),
            (5, derived("alice", 1, Some(published(6500, Some("juggling"))))),
            (100, advance()),
            (200, machine("alice", 1, Inactive)),
            (210, derived("alice", 2, None)),
            (300, advance()),
        ],
        "
        @0 plugins catalog=1 derive=true tick=None
        @0 connect alice#1
          load alice
          save-doc alice
          derive alice #1 builtin=3500
          reply connected alice own 3500 contacts=[]
        @5 derived alice #1 6500 custom:juggling
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @200 machine alice#1 Inactive
          derive alice #2 builtin=5000
          reply alice own 5000
        @210 derived alice #2 none
        @220 tick
          publish alice 5000 since=200
            own 5000 -> alice
        ",
    );
}

#[test]
fn a_plugin_tick_rederives_without_flapping() {
    Sim::new().users(&["alice", "bob"]).check(
        vec![
            (0, connect("alice", 1)),
            (0, plugins(true, Some(60_000))),
            (5, derived("alice", 1, Some(published(6500, Some("focusing"))))),
            (100, advance()),
            (60_000, advance()),
            (60_100, derived("alice", 2, Some(published(6500, Some("focusing"))))),
            (60_200, plugins(false, None)),
            (60_300, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @0 plugins catalog=1 derive=true tick=Some(60000)
          derive alice #1 builtin=3500
        @5 derived alice #1 6500 custom:focusing
        @20 tick
          publish alice 6500 custom:focusing since=5
            own 6500 custom:focusing -> alice
        @60000 tick
          derive alice #2 builtin=3500
        @60100 derived alice #2 6500 custom:focusing
        @60200 plugins catalog=1 derive=false tick=None
        @60220 tick
          publish alice 3500 since=60200
            own 3500 -> alice
        ",
    );
}

#[test]
fn custom_states_show_to_colleagues_and_as_their_band_to_external() {
    Sim::new()
        .users(&["alice", "bob", "carol"])
        .contact("alice", "carol", External)
        .contact("bob", "alice", Colleagues)
        .contact("carol", "alice", Colleagues)
        .check(
            vec![
                (0, plugins(false, None)),
                (0, connect("bob", 2)),
                (0, connect("carol", 3)),
                (0, connect("alice", 1)),
                (10, manual("alice", "focusing", None)),
                (100, advance()),
            ],
            "
            @0 plugins catalog=1 derive=false tick=None
            @0 connect bob#2
              load bob
              save-doc bob
              reply connected bob own 3500 contacts=[alice]
            @0 connect carol#3
              load carol
              save-doc carol
              reply connected carol own 3500 contacts=[alice]
            @0 connect alice#1
              load alice
              save-doc alice
              reply connected alice own 3500 contacts=[carol]
            @10 update alice manual=6500 custom:focusing until=None
              save-doc alice
              reply alice own 6500 custom:focusing
            @20 tick
              publish alice 6500 custom:focusing since=10
                own 6500 custom:focusing -> alice
                colleagues 6500 custom:focusing -> bob
                external 6500 -> carol
              publish bob 3500 since=0
                own 3500 -> bob
              publish carol 3500 since=0
                own 3500 -> carol
                colleagues 3500 -> alice
            ",
        );
}

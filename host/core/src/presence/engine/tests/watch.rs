//! Who hears of whom: watchers follow contact lists and devices, ad-hoc subscriptions with
//! their limits and expiry, remote users.

use super::harness::*;
use crate::federation::PresenceInfo;
use crate::presence::AccessLevel::*;
use crate::presence::engine::{Config, ContactEdit, Input};

#[test]
fn watching_starts_with_the_first_device_and_ends_with_the_last() {
    Sim::new().users(&["alice", "bob"]).contact("alice", "bob", Colleagues).check(
        vec![
            (0, connect("bob", 1)),
            (0, connect("alice", 2)),
            (0, connect("alice", 3)),
            (100, note("bob", "one")),
            (200, disconnect("alice", 2)),
            (300, note("bob", "two")),
            (400, disconnect("alice", 3)),
            (500, note("bob", "three")),
            (600, advance()),
        ],
        "
        @0 connect bob#1
          load bob
          save-doc bob
          reply connected bob own 3500 contacts=[]
        @0 connect alice#2
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[bob]
        @0 connect alice#3
          save-doc alice
          reply connected alice own 3500 contacts=[bob]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
          publish bob 3500 since=0
            own 3500 -> bob
            colleagues 3500 -> alice
        @100 update bob note=one
          save-doc bob
          reply bob own 3500 note:one
        @120 tick
          publish bob 3500 since=0
            own 3500 note:one -> bob
            colleagues 3500 note:one -> alice
        @200 disconnect alice#2
        @300 update bob note=two
          save-doc bob
          reply bob own 3500 note:two
        @320 tick
          publish bob 3500 since=0
            own 3500 note:two -> bob
            colleagues 3500 note:two -> alice
        @400 disconnect alice#3
        @500 update bob note=three
          save-doc bob
          reply bob own 3500 note:three
        @520 tick
          publish bob 3500 since=0
            own 3500 note:three -> bob
        ",
    );
}

#[test]
fn adding_and_removing_a_contact_changes_who_hears() {
    Sim::new().users(&["alice", "bob"]).check(
        vec![
            (0, connect("alice", 1)),
            (100, add("alice", "bob", Workgroup)),
            (200, connect("bob", 2)),
            (300, advance()),
            (400, edit("alice", ContactEdit::Remove { user: u("bob") })),
            (500, note("bob", "gone")),
            (600, add("alice", "alice", Workgroup)),
            (600, add("alice", "carol", Workgroup)),
            (700, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @100 edit-contacts alice add bob workgroup
          save-contacts alice [bob:workgroup]
          load bob
          reply contacts [bob:workgroup]
          publish bob 18500 since=0
            colleagues 18500 -> alice
        @120 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @200 connect bob#2
          save-doc bob
          reply connected bob own 3500 contacts=[]
        @220 tick
          publish bob 3500 since=200
            own 3500 -> bob
            colleagues 3500 -> alice
        @400 edit-contacts alice remove bob
          save-contacts alice []
          reply contacts []
        @420 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @500 update bob note=gone
          save-doc bob
          reply bob own 3500 note:gone
        @520 tick
          publish bob 3500 since=200
            own 3500 note:gone -> bob
        @600 edit-contacts alice add alice workgroup
          reply refused: you cannot add yourself
        @600 edit-contacts alice add carol workgroup
          save-contacts alice [carol:workgroup]
          load carol
          reply contacts [carol:workgroup]
        @620 tick
          publish alice 3500 since=0
            own 3500 -> alice
        ",
    );
}

fn small() -> Config {
    Config { max_subscriptions: 2, subscription_ttl_ms: 10_000, ..Config::default() }
}

#[test]
fn adhoc_subscriptions_are_limited_per_endpoint_and_expire() {
    Sim::with(small(), 1).users(&["alice", "bob", "carol", "dave"]).check(
        vec![
            (0, connect("alice", 1)),
            (0, connect("carol", 7)),
            (10, subscribe("carol", 7, &["alice", "bob"], 60_000)),
            (10, subscribe("carol", 7, &["dave"], 60_000)),
            (10, subscribe("carol", 7, &["alice"], 1000)),
            (20, note("alice", "hi")),
            (100, advance()),
            (20_000, note("alice", "later")),
            (20_010, subscribe("carol", 7, &["dave", "alice"], 1000)),
            (20_020, Input::Unsubscribe { user: u("carol"), endpoint: 7, targets: vec![u("alice")] }),
            (20_030, note("alice", "unheard")),
            (20_100, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @0 connect carol#7
          load carol
          save-doc carol
          reply connected carol own 3500 contacts=[]
        @10 subscribe carol#7 [alice bob] ttl=60000
          reply done
        @10 subscribe carol#7 [dave] ttl=60000
          reply refused: at most 2 subscriptions per endpoint (this one has 2)
        @10 subscribe carol#7 [alice] ttl=1000
          reply done
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
            colleagues 3500 -> carol#7
          publish carol 3500 since=0
            own 3500 -> carol
        @20 update alice note=hi
          save-doc alice
          reply alice own 3500 note:hi
        @40 tick
          publish alice 3500 since=0
            own 3500 note:hi -> alice
            colleagues 3500 note:hi -> carol#7
        @20000 update alice note=later
          save-doc alice
          reply alice own 3500 note:later
        @20010 subscribe carol#7 [dave alice] ttl=1000
          reply done
        @20020 tick
          publish alice 3500 since=0
            own 3500 note:later -> alice
            colleagues 3500 note:later -> carol#7
        @20020 unsubscribe carol#7 [alice]
        @20030 update alice note=unheard
          save-doc alice
          reply alice own 3500 note:unheard
        @20050 tick
          publish alice 3500 since=0
            own 3500 note:unheard -> alice
        ",
    );
}

#[test]
fn a_disconnect_ends_its_subscriptions() {
    Sim::new().users(&["alice", "carol"]).check(
        vec![
            (0, connect("alice", 1)),
            (0, connect("carol", 7)),
            (0, connect("carol", 8)),
            (10, subscribe("carol", 7, &["alice"], 60_000)),
            (100, advance()),
            (200, disconnect("carol", 7)),
            (300, note("alice", "unheard by #7")),
            (400, advance()),
        ],
        "
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @0 connect carol#7
          load carol
          save-doc carol
          reply connected carol own 3500 contacts=[]
        @0 connect carol#8
          save-doc carol
          reply connected carol own 3500 contacts=[]
        @10 subscribe carol#7 [alice] ttl=60000
          reply done
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
            colleagues 3500 -> carol#7
          publish carol 3500 since=0
            own 3500 -> carol
        @200 disconnect carol#7
        @300 update alice note=unheard by #7
          save-doc alice
          reply alice own 3500 note:unheard_by_#7
        @320 tick
          publish alice 3500 since=0
            own 3500 note:unheard_by_#7 -> alice
        ",
    );
}

#[test]
fn remote_contacts_show_what_their_server_says() {
    let busy = PresenceInfo { state: "busy".into(), activity: None, label: "Busy".into(), note: None };
    Sim::new().users(&["alice"]).contact("alice", "x@remote.org", External).check(
        vec![
            (0, Input::RemotePresence { remote: u("x@remote.org"), info: None }),
            (0, connect("alice", 1)),
            (10, look(&["x@remote.org"], as_user("alice"))),
            (20, Input::RemotePresence { remote: u("x@remote.org"), info: Some(busy) }),
            (30, look(&["x@remote.org"], as_user("alice"))),
            (40, Input::RemotePresence { remote: u("x@remote.org"), info: None }),
            (50, Input::RemotePresence { remote: u("x@remote.org"), info: None }),
        ],
        "
        @0 remote-presence x@remote.org unknown
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[x@remote.org]
        @10 look [x@remote.org] as alice
          reply views [x@remote.org remote unknown]
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        @20 remote-presence x@remote.org busy
          publish-remote x@remote.org busy since=20 -> alice
        @30 look [x@remote.org] as alice
          reply views [x@remote.org remote busy since=20]
        @40 remote-presence x@remote.org unknown
          publish-remote x@remote.org unknown since=0 -> alice
        @50 remote-presence x@remote.org unknown
        ",
    );
}

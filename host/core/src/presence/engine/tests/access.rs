//! The access-level projection: what each viewer hears and sees; privacy mode; Do Not Disturb
//! and blocking at the IM seam.

use super::harness::*;
use crate::presence::AccessLevel::*;
use crate::presence::Phone;
use crate::presence::engine::{ContactEdit, DocPatch, Viewer};

fn office() -> Sim {
    Sim::new()
        .users(&["bob", "carol", "dave", "erin", "frank"])
        .contact("bob", "carol", Workgroup)
        .contact("bob", "dave", Blocked)
        .contact("bob", "erin", FriendsAndFamily)
        .contact("carol", "bob", Colleagues)
        .contact("dave", "bob", Colleagues)
        .contact("erin", "bob", Colleagues)
        .contact("frank", "bob", Colleagues)
        .doc("bob", |d| {
            d.note = Some("in Paris".into());
            d.mobile_phone = Some("+33 1".into());
        })
}

#[test]
fn each_watcher_hears_through_their_level() {
    office().check(
        vec![
            (0, connect("carol", 3)),
            (0, connect("dave", 4)),
            (0, connect("erin", 5)),
            (0, connect("frank", 6)),
            (
                0,
                crate::presence::engine::Input::RemoteFollower { local: u("bob"), remote: u("x@remote.org"), on: true },
            ),
            (100, advance()),
            (1000, connect("bob", 1)),
            (1010, phone("bob", Some(Phone::InACall))),
            (2000, advance()),
        ],
        "
        @0 connect carol#3
          load carol
          save-doc carol
          reply connected carol own 3500 contacts=[bob]
        @0 connect dave#4
          load dave
          save-doc dave
          reply connected dave own 3500 contacts=[bob]
        @0 connect erin#5
          load erin
          save-doc erin
          reply connected erin own 3500 contacts=[bob]
        @0 connect frank#6
          load frank
          save-doc frank
          reply connected frank own 3500 contacts=[bob]
        @0 remote-follower bob +x@remote.org
        @20 tick
          publish carol 3500 since=0
            own 3500 -> carol
          publish dave 3500 since=0
            own 3500 -> dave
          publish erin 3500 since=0
            own 3500 -> erin
          publish frank 3500 since=0
            own 3500 -> frank
        @1000 connect bob#1
          load bob
          save-doc bob
          reply connected bob own 3500 note:in_Paris mobile:+33 1 contacts=[carol dave erin]
        @1010 update bob phone=Some(InACall)
          save-doc bob
          reply bob own 6500 in-a-call note:in_Paris mobile:+33 1
        @1020 tick
          publish bob 6500 in-a-call since=1010
            own 6500 in-a-call note:in_Paris mobile:+33 1 -> bob
            workgroup 6500 in-a-call note:in_Paris mobile:+33 1 -> carol
            family 6500 in-a-call note:in_Paris mobile:+33 1 -> erin
            colleagues 6500 in-a-call note:in_Paris -> frank
            external 6500 -> follower:x@remote.org
        ",
    );
}

#[test]
fn privacy_mode_hides_availability_from_strangers() {
    office().check(
        vec![
            (0, connect("bob", 1)),
            (10, look(&["bob"], as_user("frank"))),
            (10, look(&["bob"], Viewer::Anonymous)),
            (10, look(&["bob"], Viewer::App)),
            (20, update("bob", DocPatch { privacy_mode: Some(true), ..DocPatch::default() })),
            (30, look(&["bob"], as_user("frank"))),
            (30, look(&["bob"], as_user("carol"))),
            (30, look(&["bob"], as_user("y@remote.org"))),
            (30, look(&["bob"], Viewer::Anonymous)),
            (30, look(&["bob"], Viewer::App)),
        ],
        "
        @0 connect bob#1
          load bob
          save-doc bob
          reply connected bob own 3500 note:in_Paris mobile:+33 1 contacts=[carol dave erin]
        @10 look [bob] as frank
          reply views [bob colleagues 3500 note:in_Paris]
        @10 look [bob] as anonymous
          reply views [bob external 3500]
        @10 look [bob] as app
          reply views [bob colleagues 3500 note:in_Paris]
        @20 tick
          publish bob 3500 since=0
            own 3500 note:in_Paris mobile:+33 1 -> bob
        @20 update bob privacy_mode=true
          save-doc bob
          reply bob own 3500 note:in_Paris mobile:+33 1
        @30 look [bob] as frank
          reply views [bob private ?]
        @30 look [bob] as carol
          reply views [bob workgroup 3500 note:in_Paris mobile:+33 1]
        @30 look [bob] as y@remote.org
          reply views [bob private ?]
        @30 look [bob] as anonymous
          reply views [bob private ?]
        @30 look [bob] as app
          reply views [bob colleagues 3500 note:in_Paris]
        ",
    );
}

#[test]
fn do_not_disturb_lets_only_workgroup_through_and_blocked_never() {
    office().check(
        vec![
            (0, connect("bob", 1)),
            (10, reach("frank", "bob")),
            (10, reach("dave", "bob")),
            (20, manual("bob", "do-not-disturb", None)),
            (30, reach("carol", "bob")),
            (30, reach("erin", "bob")),
            (30, reach("frank", "bob")),
            (30, reach("bob", "x@remote.org")),
        ],
        "
        @0 connect bob#1
          load bob
          save-doc bob
          reply connected bob own 3500 note:in_Paris mobile:+33 1 contacts=[carol dave erin]
        @10 reach frank -> bob
          reply done
        @10 reach dave -> bob
          reply refused: bob does not accept messages from you
        @20 tick
          publish bob 3500 since=0
            own 3500 note:in_Paris mobile:+33 1 -> bob
        @20 update bob manual=9500 until=None
          save-doc bob
          reply bob own 9500 note:in_Paris mobile:+33 1
        @30 reach carol -> bob
          reply done
        @30 reach erin -> bob
          reply refused: bob is in Do Not Disturb
        @30 reach frank -> bob
          reply refused: bob is in Do Not Disturb
        @30 reach bob -> x@remote.org
          reply done
        ",
    );
}

#[test]
fn blocking_a_watcher_tells_them_offline_once() {
    office().check(
        vec![
            (0, connect("frank", 6)),
            (0, connect("bob", 1)),
            (100, advance()),
            (200, edit("bob", ContactEdit::Block { user: u("frank") })),
            (300, note("bob", "back")),
            (400, edit("bob", ContactEdit::Unblock { user: u("frank") })),
            (500, advance()),
        ],
        "
        @0 connect frank#6
          load frank
          save-doc frank
          reply connected frank own 3500 contacts=[bob]
        @0 connect bob#1
          load bob
          save-doc bob
          reply connected bob own 3500 note:in_Paris mobile:+33 1 contacts=[carol dave erin]
        @20 tick
          publish bob 3500 since=0
            own 3500 note:in_Paris mobile:+33 1 -> bob
            colleagues 3500 note:in_Paris -> frank
          publish frank 3500 since=0
            own 3500 -> frank
        @200 edit-contacts bob block frank
          save-contacts bob [carol:workgroup dave:blocked erin:family frank:blocked]
          publish frank 3500 since=0
            colleagues 3500 -> bob
          publish bob 3500 since=0
            blocked 18500 -> frank
          reply contacts [carol:workgroup dave:blocked erin:family frank:blocked]
        @220 tick
          publish bob 3500 since=0
            own 3500 note:in_Paris mobile:+33 1 -> bob
        @300 update bob note=back
          save-doc bob
          reply bob own 3500 note:back mobile:+33 1
        @320 tick
          publish bob 3500 since=0
            own 3500 note:back mobile:+33 1 -> bob
        @400 edit-contacts bob unblock frank
          save-contacts bob [carol:workgroup dave:blocked erin:family frank:colleagues]
          reply contacts [carol:workgroup dave:blocked erin:family frank:colleagues]
        @420 tick
          publish bob 3500 since=0
            own 3500 note:back mobile:+33 1 -> bob
            colleagues 3500 note:back -> frank
        ",
    );
}

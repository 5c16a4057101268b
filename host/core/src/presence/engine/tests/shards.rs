//! Several shards: facts about users of other shards cross as inputs.

use super::harness::*;
use crate::presence::AccessLevel::*;
use crate::presence::engine::{Config, shard_of};

#[test]
fn the_names_used_here_live_on_different_shards() {
    let s = |n: &str| shard_of(&u(n), 2);
    assert_ne!(s("alice"), s("bob"));
}

#[test]
fn watching_crosses_to_the_targets_shard() {
    Sim::with(Config::default(), 2).users(&["alice", "bob"]).contact("alice", "bob", Colleagues).check(
        vec![
            (0, connect("bob", 2)),
            (0, connect("alice", 1)),
            (10, look(&["bob"], as_user("alice"))),
            (100, note("bob", "heard by alice")),
            (200, advance()),
            (300, disconnect("alice", 1)),
            (400, note("bob", "unheard")),
            (500, advance()),
        ],
        "
        @0 connect bob#2 (s0)
          s0 load bob
          s0 save-doc bob
          s0 reply connected bob own 3500 contacts=[]
        @0 connect alice#1 (s1)
          s1 load alice
          s1 save-doc alice
          s1 send s0 watch bob +alice
          s1 reply connected alice own 3500 contacts=[bob]
        @10 look [bob] as alice (s0)
          s0 reply views [bob colleagues 3500]
        @20 tick s0
          s0 publish bob 3500 since=0
            own 3500 -> bob
            colleagues 3500 -> alice
        @20 tick s1
          s1 publish alice 3500 since=0
            own 3500 -> alice
        @100 update bob note=heard by alice (s0)
          s0 save-doc bob
          s0 reply bob own 3500 note:heard_by_alice
        @120 tick s0
          s0 publish bob 3500 since=0
            own 3500 note:heard_by_alice -> bob
            colleagues 3500 note:heard_by_alice -> alice
        @300 disconnect alice#1 (s1)
          s1 send s0 watch bob -alice
        @400 update bob note=unheard (s0)
          s0 save-doc bob
          s0 reply bob own 3500 note:unheard
        @420 tick s0
          s0 publish bob 3500 since=0
            own 3500 note:unheard -> bob
        ",
    );
}

#[test]
fn subscriptions_and_new_contacts_cross_shards() {
    Sim::with(Config::default(), 2).users(&["alice", "bob"]).check(
        vec![
            (0, connect("alice", 1)),
            (10, subscribe("alice", 1, &["bob"], 60_000)),
            (20, add("alice", "bob", Workgroup)),
            (30, note("bob", "hi")),
            (100, advance()),
        ],
        "
        @0 connect alice#1 (s1)
          s1 load alice
          s1 save-doc alice
          s1 reply connected alice own 3500 contacts=[]
        @10 subscribe alice#1 [bob] ttl=60000 (s1)
          s1 send s0 adhoc bob +alice#1 until=60010
          s1 reply done
        @20 tick s1
          s1 publish alice 3500 since=0
            own 3500 -> alice
        @20 edit-contacts alice add bob workgroup (s1)
          s1 save-contacts alice [bob:workgroup]
          s1 send s0 watch bob +alice
          s1 send s0 greet bob -> alice
          s1 reply contacts [bob:workgroup]
          s0 load bob
          s0 publish bob 18500 since=0
            colleagues 18500 -> alice
        @30 update bob note=hi (s0)
          s0 save-doc bob
          s0 reply bob own 18500 note:hi
        @40 tick s1
          s1 publish alice 3500 since=0
            own 3500 -> alice
        @50 tick s0
          s0 publish bob 18500 since=0
            own 18500 note:hi -> bob
            colleagues 18500 note:hi -> alice alice#1
        ",
    );
}

#[test]
fn a_shard_starting_afresh_is_told_again_who_watches_its_users() {
    // In a pool, bob's shard (his group) moved to another node and starts empty: alice's
    // shard tells it again that alice watches bob.
    let bob_shard = shard_of(&u("bob"), 2);
    Sim::with(Config::default(), 2).users(&["alice", "bob"]).contact("alice", "bob", Colleagues).check(
        vec![(0, connect("alice", 1)), (10, crate::presence::engine::Input::Rewatch { shard: bob_shard })],
        "
        @0 connect alice#1 (s1)
          s1 load alice
          s1 save-doc alice
          s1 send s0 watch bob +alice
          s1 reply connected alice own 3500 contacts=[bob]
        @10 rewatch 0
          s1 send s0 watch bob +alice
        ",
    );
}

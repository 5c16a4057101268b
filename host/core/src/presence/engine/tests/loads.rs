//! Loads: the engine asks for what it does not hold and answers once it arrives.

use super::harness::*;
use crate::presence::engine::Input;

#[test]
fn missing_and_unreadable_users() {
    Sim::new().users(&["alice"]).broken("bob").check(
        vec![
            (0, look(&["alice", "nobody"], as_user("alice"))),
            (0, connect("nobody", 1)),
            (0, look(&["bob"], as_user("alice"))),
            (0, reach("alice", "bob")),
            (0, look(&["alice"], as_user("alice"))),
        ],
        r#"
        @0 look [alice nobody] as alice
          load alice
          load nobody
          reply views [alice own 18500, nobody missing]
        @0 connect nobody#1
          load nobody
          reply refused: no user named "nobody"
        @0 look [bob] as alice
          load bob
          reply refused: presence data unavailable: disk on fire
        @0 reach alice -> bob
          load bob
          reply refused: presence data unavailable: disk on fire
        @0 look [alice] as alice
          reply views [alice own 18500]
        "#,
    );
}

#[test]
fn an_account_change_reloads_a_held_user() {
    Sim::new().users(&["alice"]).check(
        vec![
            (0, Input::AccountChanged { user: u("alice") }),
            (0, connect("alice", 1)),
            (10, Input::AccountChanged { user: u("alice") }),
            (100, advance()),
        ],
        "
        @0 account-changed alice
        @0 connect alice#1
          load alice
          save-doc alice
          reply connected alice own 3500 contacts=[]
        @10 account-changed alice
          load alice
        @20 tick
          publish alice 3500 since=0
            own 3500 -> alice
        ",
    );
}

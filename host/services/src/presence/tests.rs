//! The presence service through a recording outbox: what a change sends, to whom, and that
//! watchers at one visibility share one event.

use std::sync::Arc;

use halo_core::contacts::ContactList;
use halo_core::presence::{AccessLevel, MachineState};
use halo_core::{NewUser, Username};
use halo_store::Store;

use super::{PresenceService, PresenceSettings};
use crate::metrics::Metrics;
use crate::outbox::{Event, Recorder, Sent};

fn name(s: &str) -> Username {
    Username::parse(s).expect("name")
}

async fn service(dir: &std::path::Path) -> (PresenceService, Arc<Recorder>, Store) {
    let store = Store::open(dir).expect("store");
    for n in ["ann", "bob", "cat", "dan"] {
        let user = NewUser::default().into_user(name(n), "x".into(), 0).expect("user");
        store.users().create(&user).await.expect("create");
    }
    let outbox = Arc::new(Recorder::new(true));
    let presence =
        PresenceService::new(store.clone(), outbox.clone(), Arc::new(Metrics::new()), PresenceSettings::default());
    (presence, outbox, store)
}

async fn contacts(store: &Store, owner: &str, of: &[(&str, AccessLevel)]) {
    let mut list = ContactList::default();
    for (c, level) in of {
        list.add(&name(owner), &name(c), None, *level, 100, 0).expect("contact");
    }
    store.presence().put_contacts(&name(owner), &list).expect("contacts").commit().await.expect("durable");
}

/// What the outbox got from now until `done` says it is enough (the shards publish on their own
/// threads, a coalescing interval after a change); at most 10 s.
async fn until(outbox: &Recorder, done: impl Fn(&[Sent]) -> bool) -> Vec<Sent> {
    let mut sent = Vec::new();
    for _ in 0..2000 {
        sent.extend(outbox.take());
        if done(&sent) {
            return sent;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the outbox got only {sent:?}");
}

/// The event each user got, by recipient.
fn received(sent: &[Sent], user: &str) -> Vec<Event> {
    sent.iter()
        .filter_map(|s| match s {
            Sent::User(u, None, e) if u.as_str() == user => Some(e.clone()),
            _ => None,
        })
        .collect()
}

/// Whether `e` (shared or not) publishes `who` in `state`.
fn shows(e: &Event, who: &str, state: &str) -> bool {
    let inner = match e {
        Event::Shared(s) => s.event(),
        other => other,
    };
    matches!(inner, Event::Presence { presence } if presence.username == who && presence.state == state)
}

#[tokio::test]
async fn a_change_reaches_owner_and_watchers_with_one_shared_event_per_visibility() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (presence, outbox, store) = service(dir.path()).await;
    // Bob and Cat watch Ann at her default level for them; Dan is in Ann's Workgroup.
    contacts(&store, "ann", &[("dan", AccessLevel::Workgroup)]).await;
    for w in ["bob", "cat", "dan"] {
        contacts(&store, w, &[("ann", AccessLevel::Colleagues)]).await;
    }
    for (ep, n) in ["ann", "bob", "cat", "dan"].iter().enumerate() {
        outbox.set_online(&name(n), true);
        let snapshot = presence.connect(&name(n), ep as u64 + 1).await.expect("connect");
        assert!(matches!(snapshot.last(), Some(Event::PresenceSnapshot { last: true, .. })));
    }
    // The connects publish once each, a coalescing interval later, on each user's own shard
    // (a watcher connecting after that gets it in its snapshot): wait until everybody has seen
    // their own, so that no connect is published after the change below.
    until(&outbox, |sent| {
        ["ann", "bob", "cat", "dan"].iter().all(|u| received(sent, u).iter().any(|e| shows(e, u, "available")))
    })
    .await;

    presence.machine(&name("ann"), 1, MachineState::Away).await.expect("machine");
    let away = |sent: &[Sent], user: &str| -> Vec<Event> {
        received(sent, user).into_iter().filter(|e| shows(e, "ann", "away")).collect()
    };
    let sent = until(&outbox, |sent| ["ann", "bob", "cat", "dan"].iter().all(|u| !away(sent, u).is_empty())).await;
    let one = |user: &str| {
        let got = away(&sent, user);
        assert_eq!(got.len(), 1, "{user} got {got:?}");
        match got.into_iter().next() {
            Some(Event::Shared(s)) => s,
            other => panic!("{user} got {other:?}, not a shared event"),
        }
    };
    let (own, bob, cat, dan) = (one("ann"), one("bob"), one("cat"), one("dan"));
    assert!(Arc::ptr_eq(&bob, &cat), "watchers at one visibility share one event");
    assert!(!Arc::ptr_eq(&bob, &dan), "a Workgroup contact sees another projection");
    assert!(!Arc::ptr_eq(&own, &bob));
    for s in [&own, &bob, &dan] {
        let Event::Presence { presence } = s.event() else { panic!("{s:?} is not presence") };
        assert_eq!(presence.username, "ann");
    }
}

#[tokio::test]
async fn a_blocked_sender_is_refused_with_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (presence, _outbox, store) = service(dir.path()).await;
    contacts(&store, "ann", &[("bob", AccessLevel::Blocked)]).await;
    let err = presence.check_reach(&name("bob"), &name("ann")).await.expect_err("blocked");
    assert!(matches!(err, crate::ServiceError::Blocked(ref who) if who == "ann"), "{err:?}");
    assert!(presence.check_reach(&name("cat"), &name("ann")).await.is_ok());
}

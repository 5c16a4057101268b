//! Table tests of the projection: facts in, state out.

use super::*;
use crate::conversation::Format;
use crate::message::Body;
use crate::room::Privacy;

fn u(s: &str) -> Username {
    Username::parse(s).expect("valid")
}

fn text(id: MessageId, from: &str, key: Option<&str>) -> Message {
    Message {
        id,
        at: id * 10,
        from: u(from),
        body: Body::Text { text: format!("m{id}"), format: Format::Plain },
        key: key.map(str::to_owned),
        extras: Default::default(),
    }
}

fn post(conv: u64, msg: Message, offline: &[&str], live: &[&str]) -> Fact {
    Fact::Posted(Box::new(Posted {
        thread: Thread::Conversation(conv),
        message: msg,
        conversation: None,
        offline: offline.iter().map(|s| u(s)).collect(),
        live: live.iter().map(|s| u(s)).collect(),
        archived: None,
        outbound: Vec::new(),
    }))
}

fn started(id: u64, a: &str, others: &[&str]) -> Fact {
    let others: Vec<Username> = others.iter().map(|s| u(s)).collect();
    let conversation = Conversation::new(id, &u(a), &others, 5, 0).expect("conv");
    Fact::Started { conversation, archived: None }
}

/// Applies `facts` (seq 1, 2, …) to a fresh state.
fn run(facts: &[Fact]) -> ImState {
    let mut s = ImState::default();
    for (i, f) in facts.iter().enumerate() {
        s.apply(i as u64 + 1, f);
    }
    s
}

#[test]
fn inbox_entries_follow_messages_reads_and_hiding() {
    struct Case {
        name: &'static str,
        facts: Vec<Fact>,
        user: &'static str,
        /// (last, unread, read_upto, hidden_upto) of conversation 1.
        want: (MessageId, u32, MessageId, MessageId),
        listed: bool,
    }
    let read = |user: &str, upto| Fact::Read { user: u(user), conversation: 1, upto };
    let hide = |user: &str| Fact::Hidden { user: u(user), conversation: 1 };
    let cases = [
        Case { name: "new", facts: vec![started(1, "alice", &["bob"])], user: "bob", want: (0, 0, 0, 0), listed: true },
        Case {
            name: "two from alice",
            facts: vec![
                started(1, "alice", &["bob"]),
                post(1, text(10, "alice", None), &[], &[]),
                post(1, text(11, "alice", None), &[], &[]),
            ],
            user: "bob",
            want: (11, 2, 0, 0),
            listed: true,
        },
        Case {
            name: "sender has read its own",
            facts: vec![started(1, "alice", &["bob"]), post(1, text(10, "alice", None), &[], &[])],
            user: "alice",
            want: (10, 0, 10, 0),
            listed: true,
        },
        Case {
            name: "read half",
            facts: vec![
                started(1, "alice", &["bob"]),
                post(1, text(10, "alice", None), &[], &[]),
                post(1, text(11, "alice", None), &[], &[]),
                read("bob", 10),
            ],
            user: "bob",
            want: (11, 1, 10, 0),
            listed: true,
        },
        Case {
            name: "read past the end is clamped, back is ignored",
            facts: vec![
                started(1, "alice", &["bob"]),
                post(1, text(10, "alice", None), &[], &[]),
                read("bob", 99),
                read("bob", 3),
            ],
            user: "bob",
            want: (10, 0, 10, 0),
            listed: true,
        },
        Case {
            name: "hidden",
            facts: vec![started(1, "alice", &["bob"]), post(1, text(10, "alice", None), &[], &[]), hide("bob")],
            user: "bob",
            want: (10, 0, 10, 10),
            listed: false,
        },
        Case {
            name: "a new message brings it back",
            facts: vec![
                started(1, "alice", &["bob"]),
                post(1, text(10, "alice", None), &[], &[]),
                hide("bob"),
                post(1, text(12, "alice", None), &[], &[]),
            ],
            user: "bob",
            want: (12, 1, 10, 10),
            listed: true,
        },
    ];
    for c in cases {
        let s = run(&c.facts);
        let e = s.entry(&u(c.user), 1).unwrap_or_default();
        assert_eq!((e.last, e.unread, e.read_upto, e.hidden_upto), c.want, "{}", c.name);
        assert_eq!(s.inbox(&u(c.user), None, 10).len() == 1, c.listed, "{}: listed", c.name);
        let mut again = s.clone();
        again.derive();
        assert_eq!(again, s, "{}: the derived parts match what apply keeps", c.name);
    }
}

#[test]
fn most_recent_first_with_cursor_and_direct_pairs() {
    let s = run(&[
        started(1, "alice", &["bob"]),
        started(2, "alice", &["carol"]),
        post(1, text(10, "alice", None), &[], &[]),
        post(2, text(11, "carol", None), &[], &[]),
        post(1, text(12, "alice", None), &[], &[]),
    ]);
    let ids = |v: Vec<(u64, InboxEntry)>| v.iter().map(|(c, _)| *c).collect::<Vec<_>>();
    assert_eq!(ids(s.inbox(&u("alice"), None, 10)), [1, 2]);
    assert_eq!(ids(s.inbox(&u("alice"), Some((12, 1)), 10)), [2]);
    assert_eq!(ids(s.inbox(&u("alice"), None, 1)), [1]);
    assert_eq!(s.direct(&u("bob"), &u("alice")), Some(1));
    assert_eq!(s.direct(&u("bob"), &u("carol")), None);
}

#[test]
fn queues_keys_and_pages() {
    let mut s = run(&[
        started(1, "alice", &["bob"]),
        post(1, text(10, "alice", Some("k1")), &["bob"], &[]),
        post(1, text(12, "alice", None), &[], &["bob"]),
        post(1, text(11, "bob", None), &[], &[]),
    ]);
    assert_eq!(s.queued, 2);
    assert_eq!(s.queue(&u("bob"), 10), [(10, Thread::Conversation(1)), (12, Thread::Conversation(1))]);
    let t1 = Thread::Conversation(1);
    assert_eq!(s.queued_upto(&u("bob"), 10), [Acked { id: 10, thread: t1, live: false }]);
    s.apply(5, &Fact::Acked { user: u("bob"), upto: 10 });
    assert_eq!(s.queued_upto(&u("bob"), 99), [Acked { id: 12, thread: t1, live: true }]);
    assert_eq!(s.queued, 1);
    assert_eq!(s.by_key(&u("alice"), "k1"), Some((t1, 10)));
    assert_eq!(s.by_key(&u("bob"), "k1"), None, "keys are per sender");
    let ids = |v: Vec<Indexed>| v.iter().map(|i| i.id).collect::<Vec<_>>();
    assert_eq!(ids(s.page(t1, (0, u64::MAX), None, None, 2)), [11, 12], "a late lower id sorts in");
    assert_eq!(ids(s.page(t1, (0, u64::MAX), Some(12), None, 5)), [10, 11]);
    assert_eq!(ids(s.page(t1, (0, u64::MAX), None, Some(10), 1)), [11]);
    assert_eq!(ids(s.page(t1, (11, 11), None, None, 5)), [11], "window");
    assert_eq!(s.locate(t1, 12).map(|i| i.seq), Some(3));
    assert_eq!(s.count_unread(t1, &u("bob"), 0, 12), 2, "bob's own message does not count");
    assert_eq!(s.last(t1), 12);
}

#[test]
fn a_second_message_with_a_used_key_is_not_kept() {
    let t1 = Thread::Conversation(1);
    let s = run(&[
        started(1, "alice", &["bob"]),
        post(1, text(10, "alice", Some("k1")), &["bob"], &[]),
        // Another node took the same key at the same time: later in the log, it loses.
        post(1, text(11, "alice", Some("k1")), &["bob"], &[]),
        post(1, text(12, "bob", Some("k1")), &[], &[]),
    ]);
    assert_eq!(s.by_key(&u("alice"), "k1"), Some((t1, 10)), "the first wins");
    assert_eq!(s.locate(t1, 11), None, "the second is not in the thread");
    assert_eq!(s.queue(&u("bob"), 10), [(10, t1)], "nor queued");
    assert_eq!(s.by_key(&u("bob"), "k1"), Some((t1, 12)), "another sender's key is its own");
    let mut again = s.clone();
    again.apply(9, &post(1, text(10, "alice", Some("k1")), &["bob"], &[]));
    assert_eq!(again.locate(t1, 10).map(|i| i.seq), Some(9), "the same message again is the same message");
}

#[test]
fn rooms_names_and_marks() {
    let room = |name: &str| crate::room::Room::new(7, name, &u("alice"), Privacy::Open, "", "", 1).expect("room");
    let mut s = run(&[Fact::RoomPut { room: room("Lobby"), joined: vec![u("alice")], left: vec![] }]);
    assert_eq!(s.room_named("LOBBY"), Some(7));
    assert_eq!(s.mark(&u("alice"), 7), Some(RoomMark { read_upto: 0, follow: true }));
    s.apply(2, &Fact::RoomPut { room: room("Hall"), joined: vec![u("bob")], left: vec![] });
    assert_eq!((s.room_named("lobby"), s.room_named("hall")), (None, Some(7)), "renamed");
    let p = Posted {
        thread: Thread::Room(7),
        message: text(20, "alice", None),
        conversation: None,
        offline: vec![],
        live: vec![],
        archived: None,
        outbound: vec![],
    };
    s.apply(3, &Fact::Posted(Box::new(p)));
    assert_eq!(s.mark(&u("alice"), 7).map(|m| m.read_upto), Some(20), "a poster has read their post");
    assert_eq!(s.count_unread(Thread::Room(7), &u("bob"), 0, s.last(Thread::Room(7))), 1);
    s.apply(4, &Fact::RoomMarked { user: u("bob"), room: 7, mark: RoomMark { read_upto: 20, follow: false } });
    assert_eq!(s.marks(&u("bob")), [(7, RoomMark { read_upto: 20, follow: false })]);
    s.apply(5, &Fact::RoomPut { room: room("Hall"), joined: vec![], left: vec![u("bob")] });
    assert_eq!(s.mark(&u("bob"), 7), None);
    assert_eq!(s.seq, 5);
}

#[test]
fn amendments_mutes_and_attachments() {
    let t1 = Thread::Conversation(1);
    let change = |id: MessageId, by: &str, change: Change| {
        Fact::Amended(Box::new(Amended { thread: t1, target: 10, id, by: u(by), at: id * 10, change, archived: None }))
    };
    let react = |emoji: &str, add| Change::Reacted { emoji: emoji.into(), add };
    let mut with_file = text(10, "alice", None);
    with_file.extras.attachments.push(crate::message::Attachment {
        id: "f1".into(),
        name: "a.png".into(),
        mime: "image/png".into(),
        size: 3,
        sha256: "ab".into(),
    });
    let mut s = run(&[
        started(1, "alice", &["bob"]),
        post(1, with_file, &[], &[]),
        change(11, "alice", Change::Edited { text: "v2".into(), format: Format::Plain }),
        change(12, "bob", react("👍", true)),
        change(13, "alice", react("👍", true)),
        change(14, "bob", react("👍", true)),
        change(15, "bob", react("🎉", true)),
        change(16, "bob", react("🎉", false)),
        Fact::Muted { user: u("bob"), thread: t1, muted: true },
    ]);
    let a = s.amend(t1, 10).cloned().unwrap_or_default();
    assert_eq!(a.edited, Some((3, 110)), "the edit's log entry holds the new text");
    assert_eq!(a.deleted, None);
    let names: Vec<Vec<&str>> =
        a.reactions.values().map(|v| v.iter().map(|n| s.names[*n as usize].as_str()).collect()).collect();
    assert_eq!(a.reactions.keys().collect::<Vec<_>>(), ["👍"], "a reaction taken back by everyone is gone");
    assert_eq!(names, [vec!["bob", "alice"]], "once per user, in order");
    assert_eq!(s.attachment_refs("f1"), [(t1, 10)]);
    assert!(s.attachment_refs("f2").is_empty());
    assert!(s.muted(&u("bob"), t1) && !s.muted(&u("alice"), t1));
    assert_eq!(s.entry(&u("bob"), 1).map(|e| e.unread), Some(1), "changes are not new messages");
    s.apply(10, &change(17, "alice", Change::Deleted));
    s.apply(11, &Fact::Muted { user: u("bob"), thread: t1, muted: false });
    assert_eq!(s.amend(t1, 10).and_then(|a| a.deleted), Some(170));
    assert!(!s.muted(&u("bob"), t1));
}

//! The log through the store: appends, projection, reopen (snapshot plus tail), followers'
//! reads, busy, and the migration from schema 1.

use halo_core::Username;
use halo_core::archive::{Place, Record};
use halo_core::conversation::{Conversation, Format};
use halo_core::federation::Item;
use halo_core::im::{Acked, Fact, Outbound, Thread};
use halo_core::message::{Body, Message};

use super::EventLog;
use crate::Store;

fn u(s: &str) -> Username {
    Username::parse(s).expect("valid")
}

fn text(id: u64, from: &str, t: &str, key: Option<&str>) -> Message {
    Message {
        id,
        at: id * 10,
        from: u(from),
        body: Body::Text { text: t.into(), format: Format::Plain },
        key: key.map(str::to_owned),
        extras: Default::default(),
    }
}

#[tokio::test]
async fn inbox_unread_offline_idempotency_and_paging() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let im = store.im();
    let c1 = Conversation::new(1, &u("alice"), &[u("bob")], 0, 1).expect("conv");
    let c2 = Conversation::new(2, &u("alice"), &[u("carol")], 0, 1).expect("conv");
    im.create(&c1, None).await.expect("create");
    im.create(&c2, None).await.expect("create");
    assert_eq!(im.direct(&u("bob"), &u("alice")).expect("direct"), Some(1));

    im.append(&c1, &text(10, "alice", "one", Some("k1")), (&[u("bob")], &[]), None, &[]).await.expect("append");
    im.append(&c2, &text(11, "carol", "two", None), (&[], &[]), None, &[]).await.expect("append");
    im.append(&c1, &text(12, "alice", "three", None), (&[], &[u("bob")]), None, &[]).await.expect("append");

    let inbox = im.inbox(&u("alice"), None, 10).expect("inbox");
    assert_eq!(inbox.iter().map(|(c, _)| *c).collect::<Vec<_>>(), [1, 2], "most recent first");
    assert_eq!(inbox[1].1.unread, 1);
    let bob = im.entry(&u("bob"), 1).expect("entry").expect("exists");
    assert_eq!((bob.unread, bob.last), (2, 12));
    let (entry, moved) = im.mark_read(&u("bob"), 1, 10).await.expect("read");
    assert_eq!((entry.read_upto, entry.unread, moved), (10, 1, true));
    assert!(!im.mark_read(&u("bob"), 1, 9).await.expect("read").1, "an older id does not move it");

    let offline = im.offline(&u("bob"), 10).expect("offline");
    assert_eq!(offline.iter().map(|(_, m)| m.id).collect::<Vec<_>>(), [10, 12], "offline and live alike");
    let t1 = Thread::Conversation(1);
    assert_eq!(im.ack_offline(&u("bob"), 10).await.expect("ack"), [Acked { id: 10, thread: t1, live: false }]);
    assert_eq!(im.offline_depth(), 1);

    let (thread, m) = im.by_key(&u("alice"), "k1").expect("key").expect("found");
    assert_eq!((thread, m.id, m.text()), (t1, 10, Some("one")));
    assert!(im.by_key(&u("bob"), "k1").expect("key").is_none());
    let ids = |v: Vec<Message>| v.iter().map(|m| m.id).collect::<Vec<_>>();
    assert_eq!(ids(im.page(t1, (0, u64::MAX), None, None, 1).expect("page")), [12]);
    assert_eq!(ids(im.page(t1, (0, u64::MAX), Some(12), None, 5).expect("page")), [10]);

    im.hide(&u("alice"), 1).await.expect("hide");
    assert_eq!(im.inbox(&u("alice"), None, 10).expect("inbox").iter().map(|(c, _)| *c).collect::<Vec<_>>(), [2]);
    let log = im.log();
    assert_eq!(log.last_durable(), 8, "one entry per write: 2 starts, 3 messages, a read, an ack, a deletion");
    let facts = log.read_from(3, 2).expect("read");
    assert_eq!(facts.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [3, 4]);
    assert!(matches!(&facts[0].1, Fact::Posted(p) if p.message.id == 10));
    assert!(log.read_from(9, 5).expect("read").is_empty(), "nothing past the last durable entry");
}

#[tokio::test]
async fn a_reopen_rebuilds_the_projection_from_snapshot_and_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Conversation::new(1, &u("alice"), &[u("bob")], 0, 1).expect("conv");
    let before = {
        let store = Store::open(dir.path()).expect("open");
        let im = store.im();
        im.create(&c, None).await.expect("create");
        im.append(&c, &text(10, "alice", "one", Some("k")), (&[u("bob")], &[]), None, &[]).await.expect("append");
        assert_eq!(store.snapshot().expect("snapshot"), 2);
        // The tail after the snapshot.
        im.append(&c, &text(11, "alice", "two", None), (&[u("bob")], &[]), None, &[]).await.expect("append");
        im.mark_read(&u("bob"), 1, 10).await.expect("read");
        im.state().clone()
    };
    for with_snapshot in [true, false] {
        if !with_snapshot {
            std::fs::remove_file(dir.path().join(crate::snapshot::FILE)).expect("remove");
        }
        let store = Store::open(dir.path()).expect("reopen");
        let im = store.im();
        assert_eq!(*im.state(), before, "snapshot: {with_snapshot}");
        assert_eq!(im.entry(&u("bob"), 1).expect("entry").map(|e| (e.unread, e.read_upto)), Some((1, 10)));
        assert_eq!(im.offline(&u("bob"), 10).expect("offline").len(), 2);
        assert!(im.by_key(&u("alice"), "k").expect("key").is_some());
    }
}

#[tokio::test]
async fn archive_records_and_outbound_items_reach_their_followers_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let im = store.im();
    let bob = Username::parse_address("bob@b.example").expect("valid");
    let c = Conversation::new(1, &u("alice"), std::slice::from_ref(&bob), 0, 1).expect("conv");
    im.create(&c, None).await.expect("create");
    let first = im.reserve().expect("id");
    let m = text(first.id(), "alice", "hi", None);
    let record = Record::of_message(Place::Conversation(1), &m, c.members());
    let item = Item::Message { from: "alice".into(), to: bob.to_string(), text: "hi".into(), id: m.id.to_string() };
    let out = [Outbound { domain: "b.example".into(), item: item.clone() }];
    im.append(&c, &m, (&[], &[]), Some(&record), &out).await.expect("append");
    drop(first);
    assert_eq!(im.settled_below(), m.id, "the record is in the log, not yet in the archive");
    let entries = im.log().read_from(1, 10).expect("read");
    let records: Vec<Record> = entries.iter().filter_map(|(_, f)| f.archived().cloned()).collect();
    store.archive().store_from_log(&records, 2).expect("store");
    assert_eq!(im.settled_below(), u64::MAX);
    assert_eq!(store.archive().after(0, u64::MAX, 10).expect("after"), records);
    store.federation().enqueue_from_log(&[(crate::queue_position(2, 0), &out[0])], 2).expect("queue");
    assert_eq!(store.federation().peek("b.example", 10).expect("peek")[0].item, item);
    assert_eq!(store.log_cursor(crate::ARCHIVE_FOLLOWER).expect("cursor"), 2);
    assert_eq!(store.log_cursor(crate::FEDERATION_FOLLOWER).expect("cursor"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_commits_and_all_land_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let c = Conversation::new(1, &u("alice"), &[u("bob")], 0, 1).expect("conv");
    store.im().create(&c, None).await.expect("create");
    let tasks: Vec<_> = (0..32u64)
        .map(|t| {
            let (store, c) = (store.clone(), c.clone());
            tokio::spawn(async move {
                for i in 0..50u64 {
                    let id = store.im().reserve().expect("id").id();
                    let m = text(id, "alice", "x", Some(&format!("{t}-{i}")));
                    store.im().append(&c, &m, (&[u("bob")], &[]), None, &[]).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let im = store.im();
    assert_eq!(im.log().last_durable(), 1 + 32 * 50);
    assert_eq!(im.offline_depth(), 32 * 50);
    assert_eq!(im.entry(&u("bob"), 1).expect("entry").map(|e| e.unread), Some(32 * 50));
}

#[tokio::test]
async fn a_schema_1_data_dir_is_migrated_once() {
    use crate::codec::encode;
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Conversation::new(5, &u("alice"), &[u("bob")], 0, 1).expect("conv");
    let m1 = text(6, "alice", "old one", Some("k"));
    let m2 = text(7, "bob", "old two", None);
    {
        // The schema-1 layout, as the previous release wrote it.
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        db.open_tree("meta").expect("t").insert(b"schema_version", &1u32.to_be_bytes()).expect("w");
        db.open_tree("meta").expect("t").insert("search_cursor", &6u64.to_be_bytes()).expect("w");
        db.open_tree("conversations").expect("t").insert(5u64.to_be_bytes(), encode("c", &c).expect("e")).expect("w");
        let (msgs, journal) = (db.open_tree("messages").expect("t"), db.open_tree("journal").expect("t"));
        for m in [&m1, &m2] {
            let mut k = vec![b'c'];
            k.extend_from_slice(&5u64.to_be_bytes());
            journal.insert(m.id.to_be_bytes(), k.clone()).expect("w");
            k.extend_from_slice(&m.id.to_be_bytes());
            msgs.insert(k, encode("m", m).expect("e")).expect("w");
        }
        let entry = halo_core::im::InboxEntry { last: 7, last_at: 70, unread: 1, read_upto: 6, hidden_upto: 0 };
        let mut k = b"alice\0".to_vec();
        k.extend_from_slice(&5u64.to_be_bytes());
        db.open_tree("inbox").expect("t").insert(k, encode("i", &entry).expect("e")).expect("w");
        let mut k = b"bob\0".to_vec();
        k.extend_from_slice(&6u64.to_be_bytes());
        let mut v = vec![b'c'];
        v.extend_from_slice(&5u64.to_be_bytes());
        v.push(b'l');
        db.open_tree("offline").expect("t").insert(k, v).expect("w");
        db.flush().expect("flush");
    }
    for _ in 0..2 {
        let store = Store::open(dir.path()).expect("open migrates");
        let im = store.im();
        assert_eq!(im.conversation(5).expect("conv"), Some(c.clone()));
        let t = Thread::Conversation(5);
        assert_eq!(im.page(t, (0, u64::MAX), None, None, 10).expect("page"), [m1.clone(), m2.clone()]);
        assert_eq!(im.entry(&u("alice"), 5).expect("entry").map(|e| (e.unread, e.read_upto)), Some((1, 6)));
        assert_eq!(im.offline(&u("bob"), 10).expect("queue"), [(t, m1.clone())]);
        assert_eq!(im.by_key(&u("alice"), "k").expect("key").map(|(_, m)| m.id), Some(6));
        assert_eq!(im.direct(&u("alice"), &u("bob")).expect("direct"), Some(5));
        assert_eq!(store.log_cursor(crate::SEARCH_FOLLOWER).expect("cursor"), 2, "past message 6 (entry 2)");
        assert_eq!(store.log_cursor(crate::ARCHIVE_FOLLOWER).expect("cursor"), im.log().last_durable());
        let names = store.shared.current().db.tree_names();
        assert!(!names.iter().any(|n| n.as_ref() == b"journal"), "old trees dropped");
        assert_eq!(im.log().last_durable(), 5, "conversation, two messages, inbox entry, queue entry");
    }
}

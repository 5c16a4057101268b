//! `kill -9` under flat-out load: every message the server acknowledged is, after a restart on
//! the same data directory, exactly once in the sender's history, the recipient's history, the
//! recipient's offline queue (as delivered on reconnect) and the compliance archive (export and
//! search); retrying an unanswered send with the same idempotency key stores it at most once.
//! No timing is asserted: the load runs until enough messages are acknowledged, waits are
//! bounded waits on conditions.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Peer, TestServer, wait_until};
use halo_client::{Client, ClientError};
use serde_json::{Value, json};

/// Sends as fast as the server takes them (the default is 5 messages/s per user).
const FAST: &str = "[im]\nmessages_per_sec = 100000.0\nburst = 100000.0\n";
/// Acknowledged messages before the kill (over all senders).
const BEFORE_KILL: usize = 240;

/// Where a sender writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Conversation(u64),
    Room(u64),
}

impl Place {
    fn messages_path(self) -> String {
        match self {
            Place::Conversation(c) => format!("/api/v1/conversations/{c}/messages"),
            Place::Room(r) => format!("/api/v1/rooms/{r}/messages"),
        }
    }
}

/// One sender's record: what the server acknowledged (key → id) and the send it never
/// answered (cut off by the kill), if any.
#[derive(Default, Debug)]
struct Outcome {
    acked: BTreeMap<String, u64>,
    unanswered: Option<(String, String)>,
}

struct Sender {
    name: &'static str,
    place: Place,
    outcome: Arc<Mutex<Outcome>>,
}

fn send(c: &Client, place: Place, text: &str, key: &str) -> Result<u64, ClientError> {
    let v = c.call_json("POST", &place.messages_path(), Some(&json!({"text": text, "key": key})))?;
    Ok(v["id"].as_u64().expect("message id"))
}

/// Every message of `place` that `c` can read, oldest first, paging forward.
fn history(c: &Client, place: Place) -> Vec<Value> {
    let mut all: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page =
            c.call_json("GET", &format!("{}?after={after}&limit=200", place.messages_path()), None).expect("page");
        let msgs = page["messages"].as_array().expect("messages").clone();
        let n = msgs.len();
        if let Some(last) = msgs.last() {
            after = last["id"].as_u64().expect("id");
        }
        all.extend(msgs);
        if n < 200 {
            return all;
        }
    }
}

/// The ids of the text messages among `msgs`, each as often as it occurs.
fn text_ids(msgs: &[Value]) -> Vec<u64> {
    msgs.iter()
        .filter(|m| m["kind"] == "text" || m["text"].is_string())
        .map(|m| m["id"].as_u64().expect("id"))
        .collect()
}

/// `ids` hold every acknowledged id exactly once and nothing else.
fn assert_exactly_once(what: &str, ids: &[u64], acked: &BTreeSet<u64>) {
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for id in ids {
        *counts.entry(*id).or_default() += 1;
    }
    let dup: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "{what}: duplicated ids {dup:?}");
    let missing: Vec<_> = acked.iter().filter(|id| !counts.contains_key(id)).collect();
    assert!(missing.is_empty(), "{what}: {} acknowledged messages lost: {missing:?}", missing.len());
    let extra: Vec<_> = counts.keys().filter(|id| !acked.contains(id)).collect();
    assert!(extra.is_empty(), "{what}: messages no one acknowledged or retried: {extra:?}");
}

/// Connects `token` until its offline queue is empty, acknowledging each batch; returns the
/// text messages of `conversation` delivered from the queue, in order.
fn drain_offline(server: &TestServer, token: &str, conversation: u64) -> Vec<u64> {
    let mut ids = Vec::new();
    for round in 0.. {
        assert!(round < 1000, "the offline queue never drained");
        let mut peer = Peer::connect(server, token, &format!("drain{round}"));
        let n = peer.hello["offline"].as_u64().expect("hello.offline");
        if n == 0 {
            return ids;
        }
        let mut newest = 0;
        for _ in 0..n {
            let e = peer.event("im.message");
            assert_eq!(e["offline"], true, "{e}");
            let m = &e["message"];
            newest = newest.max(m["id"].as_u64().expect("id"));
            if m["conversation"] == conversation && m["kind"] == "text" {
                ids.push(m["id"].as_u64().expect("id"));
            }
        }
        peer.ok(json!({"type": "im.ack", "upto": newest}));
    }
    unreachable!()
}

#[test]
fn kill_9_under_flat_out_load_loses_no_acknowledged_message_and_duplicates_none() {
    let mut server = TestServer::with_config(FAST);
    let admin = server.admin();
    admin
        .call_json(
            "PUT",
            "/api/v1/admin/archive/policy",
            Some(&json!({"global": {"internal": true, "external": true}})),
        )
        .expect("archive everybody");
    let officer = {
        let body = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
        admin.call_json("POST", "/api/v1/users", Some(&body)).expect("create officer");
        "officer"
    };
    let names = ["s1", "s2", "s3", "s4", "s5", "r1", "r2", "r3", "r5"];
    let clients: BTreeMap<&str, Client> = names.iter().map(|n| (*n, server.user(n))).collect();
    let start = |by: &str, with: &[&str]| {
        let v = clients[by].call_json("POST", "/api/v1/conversations", Some(&json!({"participants": with})));
        v.expect("start")["id"].as_u64().expect("id")
    };
    // 1:1s to offline recipients, a group of three where two send, and a room.
    let d1 = start("s1", &["r1"]);
    let d2 = start("s2", &["r2"]);
    let group = start("s3", &["s4"]);
    clients["s3"]
        .call_json("POST", &format!("/api/v1/conversations/{group}/participants"), Some(&json!({"user": "r3"})))
        .expect("add r3");
    let room = clients["s5"]
        .call_json("POST", "/api/v1/rooms", Some(&json!({"name": "floor", "privacy": "open"})))
        .expect("room")["id"]
        .as_u64()
        .expect("room id");
    clients["r5"].call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");

    let senders: Vec<Sender> = [
        ("s1", Place::Conversation(d1)),
        ("s2", Place::Conversation(d2)),
        ("s3", Place::Conversation(group)),
        ("s4", Place::Conversation(group)),
        ("s5", Place::Room(room)),
    ]
    .into_iter()
    .map(|(name, place)| Sender { name, place, outcome: Arc::default() })
    .collect();

    // Flat out: each sender sends its next message as soon as the previous one is answered,
    // until a send goes unanswered (the kill).
    let acked_total = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = senders
        .iter()
        .map(|s| {
            let (client, place, name) = (clients[s.name].clone(), s.place, s.name);
            let (outcome, acked_total, refused) = (s.outcome.clone(), acked_total.clone(), refused.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    let (text, key) = (format!("load {name} number {n}"), format!("{name}-{n}"));
                    match send(&client, place, &text, &key) {
                        Ok(id) => {
                            outcome.lock().expect("lock").acked.insert(key, id);
                            acked_total.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ClientError::Api { status, code, message }) => {
                            eprintln!("{name}: refused {status} {code}: {message}");
                            refused.store(true, Ordering::SeqCst);
                            outcome.lock().expect("lock").unanswered = Some((key, text));
                            return;
                        }
                        Err(_) => {
                            outcome.lock().expect("lock").unanswered = Some((key, text));
                            return;
                        }
                    }
                }
            })
        })
        .collect();
    wait_until("messages to be acknowledged", 300, || {
        assert!(!refused.load(Ordering::SeqCst), "a send was refused under load");
        (acked_total.load(Ordering::SeqCst) >= BEFORE_KILL).then_some(())
    });
    // SIGKILL with the senders' requests in flight, then a restart on the same data dir (on a
    // new port: the old senders' connections all fail and they stop).
    server.crash_and_restart();
    for t in threads {
        t.join().expect("sender thread");
    }
    assert!(!refused.load(Ordering::SeqCst), "a send was refused under load");

    // The clients' tokens survive the restart; point them at the new port.
    let clients: BTreeMap<&str, Client> =
        names.iter().map(|n| (*n, server.client(Some(&server.login(n, &format!("{n}-password")))))).collect();
    // Retries after the restart: the unanswered send (stored or not) is stored once and
    // answered; an acknowledged one answers with its first id.
    let mut acked: BTreeMap<Place, BTreeSet<u64>> = BTreeMap::new();
    for s in &senders {
        let mut outcome = s.outcome.lock().expect("lock");
        let c = &clients[s.name];
        if let Some((key, text)) = outcome.unanswered.take() {
            let id = send(c, s.place, &text, &key).expect("retry of the unanswered send");
            assert_eq!(send(c, s.place, &text, &key).expect("retry again"), id, "a retry is answered with the same id");
            outcome.acked.insert(key, id);
        }
        for (key, id) in outcome.acked.iter().step_by(17) {
            let n = key.rsplit('-').next().expect("n");
            let text = format!("load {} number {n}", s.name);
            assert_eq!(send(c, s.place, &text, key).expect("retry"), *id, "retry of {key} after the restart");
        }
        assert!(!outcome.acked.is_empty(), "{} sent nothing before the kill", s.name);
        acked.entry(s.place).or_default().extend(outcome.acked.values());
    }
    let total: usize = acked.values().map(BTreeSet::len).sum();
    assert!(total >= BEFORE_KILL);

    // Histories: every sender's and every recipient's.
    let readers: [(&str, Place); 8] = [
        ("s1", Place::Conversation(d1)),
        ("r1", Place::Conversation(d1)),
        ("s2", Place::Conversation(d2)),
        ("r2", Place::Conversation(d2)),
        ("s3", Place::Conversation(group)),
        ("r3", Place::Conversation(group)),
        ("s5", Place::Room(room)),
        ("r5", Place::Room(room)),
    ];
    for (reader, place) in readers {
        let msgs = history(&clients[reader], place);
        assert_exactly_once(&format!("{reader}'s history of {place:?}"), &text_ids(&msgs), &acked[&place]);
    }

    // Offline queues, as delivered on reconnect (in batches, each acknowledged).
    for (user, conv) in [("r1", d1), ("r2", d2), ("r3", group)] {
        let token = server.login(user, &format!("{user}-password"));
        let delivered = drain_offline(&server, &token, conv);
        let place = Place::Conversation(conv);
        assert_exactly_once(&format!("{user}'s offline queue"), &delivered, &acked[&place]);
        let mut sorted = delivered.clone();
        sorted.sort_unstable();
        assert_eq!(delivered, sorted, "{user}'s offline messages come oldest first");
    }

    // The compliance archive: the export, and the search index (which trails the store).
    let officer = server.client(Some(&server.login(officer, "officer-password")));
    let mut out = Vec::new();
    officer.download("/api/v1/archive/export", &mut out).expect("export");
    let records: Vec<Value> =
        String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    for (place, ids) in &acked {
        let of_place: Vec<Value> = records
            .iter()
            .filter(|r| match place {
                Place::Conversation(c) => r["conversation"] == *c,
                Place::Room(rm) => r["room"] == *rm,
            })
            .cloned()
            .collect();
        assert_exactly_once(&format!("archive export of {place:?}"), &text_ids(&of_place), ids);
        let filter = match place {
            Place::Conversation(c) => format!("conversation={c}"),
            Place::Room(r) => format!("room={r}"),
        };
        wait_until("the archive index to catch up", 60, || {
            let found = officer.call_json("GET", &format!("/api/v1/archive/records?{filter}&limit=1000"), None);
            let found = found.expect("search")["records"].as_array().expect("records").clone();
            let texts = text_ids(&found);
            (texts.len() >= ids.len()).then_some(texts)
        });
        let found = officer
            .call_json("GET", &format!("/api/v1/archive/records?{filter}&limit=1000"), None)
            .expect("search")["records"]
            .as_array()
            .expect("records")
            .clone();
        assert_exactly_once(&format!("archive search of {place:?}"), &text_ids(&found), ids);
    }
}

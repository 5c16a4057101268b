//! Archive sinks in a pool, through the real binaries (three `nats-server`s, three `halo serve
//! --cluster` nodes): sinks installed through node 1 run on the holder of the `archive-sinks`
//! lease; messages sent through all three nodes reach them once; when the holder is killed
//! with `kill -9` under load, another node takes over from the pool's shared cursor and every
//! acknowledged message reaches the sinks, repeating at most the one batch in flight at the
//! kill (docs/pool.md, Once per pool). `halo pool status` shows the consumers' and the nodes'
//! lag and JetStream's streams along the way.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::ingest::Ingest;
use common::nats::{Pool, create, login};
use common::{TestServer, rust_plugin, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

/// Sends fast enough for load (the default is 5 messages/s per user).
const CONFIG: &str = "[im]\nmessages_per_sec = 100000.0\nburst = 100000.0\n";
/// Records a sink gets per batch (`BATCH` in host/services/src/archive/sinks.rs): the most a
/// kill can make it get twice.
const BATCH: usize = 2_000;
const USERS: [&str; 3] = ["alice", "bob", "carol"];

fn install(admin: &Client, name: &str, grant: &str, enabled: bool) {
    let bytes = std::fs::read(rust_plugin(name)).expect("component");
    let path = format!("/api/v1/admin/plugins?grant={grant}&enabled={enabled}");
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install");
}

/// The archive as a node's copy holds it, in id order.
fn export(officer: &Client) -> Vec<Value> {
    let mut out = Vec::new();
    officer.download("/api/v1/archive/export", &mut out).expect("export");
    String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

fn ids(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["id"].as_u64().expect("id")).collect()
}

/// The lines of the `jsonl-archive` files in `dir`, file by file (days in order); `strict`
/// fails on a line that is not a record, else skips it (a line being written, or torn by the
/// kill and not yet cut by the next holder).
fn jsonl(dir: &Path, strict: bool) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(&f).unwrap_or_default().lines() {
            match serde_json::from_str(line) {
                Ok(v) => out.push(v),
                Err(e) => assert!(!strict, "{}: a line that is not a record ({e}): {line:?}", f.display()),
            }
        }
    }
    out
}

/// `halo pool status` through `node` (its local CLI token), as text or JSON.
fn cli_status(node: &TestServer, json: bool) -> String {
    let mut c = common::halo();
    c.args(["pool", "status", "--data-dir"]).arg(node.data_dir()).env_remove("HALO_SERVER").env_remove("HALO_TOKEN");
    if json {
        c.arg("--json");
    }
    common::ok(common::run(c))
}

/// Sends `n` messages as each of [`USERS`], user `u` through node `u` first; a send that fails
/// (its node died) is sent again, with the same key, through the next node. Returns the ids
/// acknowledged; `sent` counts them as they come.
fn load(
    pool: &Pool,
    tokens: &[String],
    conv: u64,
    phase: &str,
    n: usize,
    sent: &Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<u64>>> {
    let urls: Vec<String> = pool.nodes.iter().map(|n| n.url.clone()).collect();
    (0..USERS.len())
        .map(|u| {
            let (urls, token, sent, phase) = (urls.clone(), tokens[u].clone(), sent.clone(), phase.to_owned());
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut node = u;
                let mut failures = 0;
                let mut i = 0;
                while i < n {
                    let client = Client::new(&urls[node], Some(token.clone()), None).expect("client");
                    let body = json!({"text": format!("{phase} {} {i}", USERS[u]), "key": format!("{phase}-{u}-{i}")});
                    match client.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&body)) {
                        Ok(m) => {
                            acked.push(m["id"].as_u64().expect("id"));
                            sent.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                        Err(e) => {
                            failures += 1;
                            assert!(failures < 200, "{} cannot send: {e}", USERS[u]);
                            node = (node + 1) % urls.len();
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

/// [`wait_until`] for 120 s, showing the pool's and the archive's status through node `i` if
/// `f` never yields.
fn wait_or_report<T>(what: &str, pool: &Pool, i: usize, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if std::time::Instant::now() > deadline {
            let archive = pool.nodes[i].admin().call_json("GET", "/api/v1/archive/status", None).expect("status");
            panic!("timed out waiting for {what}\narchive: {archive}\npool: {}", pool.status(i));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Counts each record id in `records`.
fn counts(records: &[Value]) -> BTreeMap<u64, usize> {
    let mut c = BTreeMap::new();
    for id in ids(records) {
        *c.entry(id).or_insert(0) += 1;
    }
    c
}

/// The consumer `name` in a pool status.
fn consumer<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["consumers"].as_array().expect("consumers").iter().find(|c| c["name"] == name).expect("consumer listed")
}

#[test]
fn archive_records_reach_the_sinks_once_and_a_killed_holder_repeats_at_most_one_batch() {
    let mut pool = Pool::start(CONFIG);
    let admin = pool.nodes[0].admin();
    for name in USERS {
        create(&pool.nodes[0], name);
    }
    let officer = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
    admin.call_json("POST", "/api/v1/users", Some(&officer)).expect("officer");
    let everything = json!({"global": {"internal": true, "external": true}});
    admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&everything)).expect("policy");

    // Two sinks, installed through node 1: jsonl-archive writing into one directory (the grant
    // is in the pool's shared plugin record, so whichever node delivers writes there), and the
    // HTTP example posting to an endpoint here that keeps every batch, repeats included.
    let out = tempfile::tempdir().expect("tempdir");
    install(&admin, "jsonl_archive", &format!("dir:{}", out.path().display()), true);
    let ingest = Ingest::start(0);
    install(&admin, "http_archive_sink", &format!("http:127.0.0.1:{}", ingest.port), false);
    let url = json!({"url": format!("http://127.0.0.1:{}/ingest", ingest.port)});
    admin.call_json("PUT", "/api/v1/admin/plugins/http-archive-sink/config", Some(&url)).expect("config");

    let tokens: Vec<String> = USERS.iter().enumerate().map(|(i, u)| login(&pool.nodes[i], u).0).collect();
    let alice = pool.nodes[0].client(Some(&tokens[0]));
    let conv = alice
        .call_json("POST", "/api/v1/conversations", Some(&json!({"participants": ["bob", "carol"]})))
        .expect("start")["id"]
        .as_u64()
        .expect("id");
    for (i, token) in tokens.iter().enumerate() {
        let c = pool.nodes[i].client(Some(token));
        wait_until("the conversation on every node", 60, || {
            c.call_json("GET", &format!("/api/v1/conversations/{conv}"), None).ok()
        });
    }

    // No node killed: every record once in the jsonl files.
    let sent = Arc::new(AtomicUsize::new(0));
    let first: Vec<u64> =
        load(&pool, &tokens, conv, "calm", 20, &sent).into_iter().flat_map(|t| t.join().expect("sender")).collect();
    assert_eq!(first.len(), 60);
    let (_, officer1) = login(&pool.nodes[1], "officer");
    let want = wait_until("node 2's archive", 60, || {
        let e = export(&officer1);
        let have: BTreeSet<u64> = ids(&e).into_iter().collect();
        first.iter().all(|id| have.contains(id)).then_some(e)
    });
    let got = wait_or_report("the jsonl sink", &pool, 1, || {
        let l = jsonl(out.path(), false);
        (l.len() >= want.len()).then_some(l)
    });
    assert_eq!(ids(&got), ids(&want), "every record once, in order");
    assert_eq!(got, want, "as the archive holds them");
    // The HTTP sink, disabled, is behind by every record, and `halo pool status` says so.
    let status = wait_until("node 3's archive and cursors", 60, || {
        let s = pool.status(2);
        let listed = s["consumers"].as_array()?.iter().any(|c| c["name"] == "http-archive-sink");
        (listed && consumer(&s, "http-archive-sink")["behind"].as_u64() == Some(want.len() as u64)).then_some(s)
    });
    let http = consumer(&status, "http-archive-sink");
    assert_eq!((http["enabled"].as_bool(), http["cursor"].as_u64()), (Some(false), Some(0)), "{http}");
    let holder = pool.task_holder(2, "archive-sinks").expect("a node runs the sinks");
    assert_eq!(http["node"].as_str(), Some(format!("node{}", holder + 1).as_str()), "{http}");
    admin.call_json("POST", "/api/v1/admin/plugins/http-archive-sink/enable", None).expect("enable");
    wait_until("the HTTP sink", 60, || (ingest.records().len() >= want.len()).then_some(()));
    assert_eq!(ingest.records(), want, "every record once, in order");
    wait_until("the consumers to be current", 60, || {
        let s = pool.status(1);
        let current = ["jsonl-archive", "http-archive-sink"].iter().all(|n| {
            let c = consumer(&s, n);
            c["behind"] == 0 && c["cursor"] == c["newest"] && c["enabled"] == true
        });
        current.then_some(())
    });

    // Under load through all three nodes, the node holding the sinks is killed.
    let holder = pool.task_holder(0, "archive-sinks").expect("a node runs the sinks");
    let sent = Arc::new(AtomicUsize::new(0));
    let senders = load(&pool, &tokens, conv, "storm", 150, &sent);
    wait_until("the load to run", 120, || (sent.load(Ordering::Relaxed) >= 90).then_some(()));
    pool.nodes[holder].kill();
    let acked: Vec<u64> = senders.into_iter().flat_map(|t| t.join().expect("sender")).collect();
    assert_eq!(acked.len(), 450);
    let live = (0..3).find(|i| *i != holder).expect("a live node");
    let (_, officer) = login(&pool.nodes[live], "officer");
    let want = wait_until("the archive to hold every acknowledged message", 120, || {
        let e = export(&officer);
        let have: BTreeSet<u64> = ids(&e).into_iter().collect();
        acked.iter().chain(&first).all(|id| have.contains(id)).then_some(e)
    });
    let want_ids: BTreeSet<u64> = ids(&want).into_iter().collect();
    let new_holder = wait_until("another node to take the sinks", 120, || {
        pool.task_holder(live, "archive-sinks").filter(|h| *h != holder)
    });
    let got = wait_or_report("the jsonl sink to catch up", &pool, live, || {
        let l = jsonl(out.path(), false);
        let have: BTreeSet<u64> = ids(&l).into_iter().collect();
        want_ids.is_subset(&have).then_some(l)
    });
    // jsonl-archive writes a batch sent again only once: its files hold each record once.
    let got_again = jsonl(out.path(), true);
    assert_eq!(got_again.len(), got.len(), "no torn line left");
    assert_eq!(ids(&got), ids(&want), "every record once, in order, in the jsonl files");
    let survivor_admin = pool.nodes[live].admin();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let delivered = loop {
        let r = ingest.records();
        let have: BTreeSet<u64> = ids(&r).into_iter().collect();
        if want_ids.is_subset(&have) {
            break r;
        }
        if std::time::Instant::now() > deadline {
            let archive = survivor_admin.call_json("GET", "/api/v1/archive/status", None).expect("status");
            panic!(
                "the HTTP sink did not catch up: {} of {} records, {} requests\narchive: {archive}\npool: {}",
                have.len(),
                want_ids.len(),
                ingest.requests.load(Ordering::SeqCst),
                pool.status(live)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The HTTP endpoint keeps repeats: at most the batch in flight at the kill, each record of
    // it once more, one run of consecutive records.
    let seen = counts(&delivered);
    let repeated: Vec<u64> = seen.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    assert!(seen.values().all(|n| *n <= 2), "a record delivered three times: {seen:?}");
    assert!(repeated.len() <= BATCH, "{} records repeated", repeated.len());
    assert!(seen.keys().all(|id| want_ids.contains(id)), "a record the archive does not have");
    let order: Vec<u64> = ids(&want);
    if let (Some(lo), Some(hi)) = (repeated.first(), repeated.last()) {
        let run: Vec<u64> = order.iter().copied().filter(|id| id >= lo && id <= hi).collect();
        assert_eq!(run, repeated, "the repeats are one batch: consecutive records");
    }
    eprintln!("after the kill: {} record(s) delivered twice to the HTTP sink", repeated.len());

    // `halo pool status` through a live node: the sinks on the new holder and current, every
    // node's log caught up with the IM stream, the streams replicated.
    let survivor = &pool.nodes[live];
    let status: Value = wait_until("the pool to be current", 120, || {
        let s: Value = serde_json::from_str(&cli_status(survivor, true)).expect("status json");
        let nodes = s["nodes"].as_array()?;
        let logs_current = nodes.len() == 2
            && nodes.iter().all(|n| n["log"]["behind"] == 0 && n["log"]["applied"] == s["im_last"])
            && nodes.iter().all(|n| n["log"]["followers"].as_object().is_some_and(|f| f.values().all(|v| v == 0)));
        let sinks_current = ["jsonl-archive", "http-archive-sink"].iter().all(|name| {
            let c = consumer(&s, name);
            c["behind"] == 0 && c["cursor"] == c["newest"] && c["node"] == format!("node{}", new_holder + 1)
        });
        (logs_current && sinks_current).then_some(s)
    });
    assert!(status["im_last"].as_u64().is_some_and(|n| n as usize >= want.len()), "{status}");
    let streams = status["streams"].as_array().expect("streams");
    let im = streams.iter().find(|s| s["name"] == "HALO_halo_IM").expect("the IM stream listed");
    assert_eq!((im["replicas"].as_u64(), im["last_seq"].clone()), (Some(3), status["im_last"].clone()), "{im}");
    assert!(im["leader"].is_string() && im["peers"].as_array().map(Vec::len) == Some(2), "{im}");
    for name in ["KV_halo_halo_attachments", "KV_halo_halo_cursors", "OBJ_halo_halo_attachments"] {
        assert!(streams.iter().any(|s| s["name"] == name), "{name} listed: {streams:?}");
    }
    let text = cli_status(survivor, false);
    for word in ["archive-sinks", "jsonl-archive", "http-archive-sink", "HALO_halo_IM", "behind"] {
        assert!(text.contains(word), "{word} in:\n{text}");
    }
}

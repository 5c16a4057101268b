//! Compliance archiving through the real server: policies, the built-in archive (search,
//! export, roles), the `jsonl-archive` sink (order, outage, kill -9), failing sinks and
//! BlockOnArchiveFailure, retention.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::ingest::Ingest;
use common::{Peer, TestServer, api_error, rust_plugin, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

/// Sends fast enough for load (the default is 5 messages/s per user).
const FAST: &str = "[im]\nmessages_per_sec = 100000.0\nburst = 100000.0\n";

fn officer(server: &TestServer) -> Client {
    let body = json!({"username": "officer", "password": "officer-password", "roles": ["compliance"]});
    server.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("create officer");
    server.client(Some(&server.login("officer", "officer-password")))
}

fn start(c: &Client, with: &[&str]) -> u64 {
    let conv = c.call_json("POST", "/api/v1/conversations", Some(&json!({"participants": with}))).expect("start");
    conv["id"].as_u64().expect("id")
}

fn send(c: &Client, conv: u64, text: &str) -> u64 {
    let m = c
        .call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": text})))
        .expect("send");
    m["id"].as_u64().expect("id")
}

fn set_policy(admin: &Client, user: Option<&str>, internal: bool, external: bool) {
    let policy = json!({"internal": internal, "external": external});
    match user {
        Some(u) => admin.call_json("PUT", &format!("/api/v1/admin/archive/policy/{u}"), Some(&policy)),
        None => admin.call_json("PUT", "/api/v1/admin/archive/policy", Some(&json!({"global": policy}))),
    }
    .expect("policy");
}

fn export(c: &Client, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    c.download(&format!("/api/v1/archive/export{query}"), &mut out).expect("export");
    String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

fn ids(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["id"].as_u64().expect("id")).collect()
}

fn search(c: &Client, query: &str) -> Vec<Value> {
    let found = c.call_json("GET", &format!("/api/v1/archive/records?{query}"), None).expect("search");
    found["records"].as_array().expect("records").clone()
}

fn status(c: &Client) -> Value {
    c.call_json("GET", "/api/v1/archive/status", None).expect("status")
}

fn sink<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["sinks"].as_array().expect("sinks").iter().find(|s| s["name"] == name).expect("sink listed")
}

/// The value of one Prometheus sample (`name{labels}`), 0 when absent.
fn metric(server: &TestServer, sample: &str) -> f64 {
    let token = server.login("admin", common::ADMIN_PASSWORD);
    let (code, text) = server.raw("GET", "/metrics", Some(&token), "text/plain", Vec::new());
    assert_eq!(code, 200);
    text.lines().find_map(|l| l.strip_prefix(sample).and_then(|v| v.trim().parse().ok())).unwrap_or(0.0)
}

fn install(admin: &Client, name: &str, grant: &str, enabled: bool) {
    let bytes = std::fs::read(rust_plugin(name)).expect("component");
    let path = format!("/api/v1/admin/plugins?grant={grant}&enabled={enabled}");
    admin.call_bytes("POST", &path, bytes, "application/wasm").expect("install");
}

fn configure(admin: &Client, name: &str, config: Value) {
    admin.call_json("PUT", &format!("/api/v1/admin/plugins/{name}/config"), Some(&config)).expect("config");
}

#[test]
fn policies_choose_who_is_archived_and_only_compliance_reads_the_archive() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, bob, carol, dave, eve] = ["alice", "bob", "carol", "dave", "eve"].map(|n| server.user(n));
    let officer = officer(&server);

    // Nothing is archived by default.
    let ab = start(&alice, &["bob"]);
    send(&alice, ab, "before any policy");
    assert_eq!(status(&officer)["records"], 0);

    // A per-user policy: alice's conversations, both ways, and nothing of carol and dave.
    set_policy(&admin, Some("alice"), true, false);
    let m1 = send(&alice, ab, "the quarterly budget");
    let m2 = send(&bob, ab, "budget approved");
    let cd = start(&carol, &["dave"]);
    send(&carol, cd, "not archived");
    // External-only for carol; global ALL, but dave's own OFF wins: carol-dave stays out.
    set_policy(&admin, Some("carol"), false, true);
    set_policy(&admin, Some("dave"), false, false);
    set_policy(&admin, None, true, true);
    send(&carol, cd, "still not archived");
    // eve falls under the global policy.
    let ed = start(&eve, &["dave"]);
    let m3 = send(&eve, ed, "eve to dave");
    // Membership changes of an archived conversation.
    alice
        .call_json("POST", &format!("/api/v1/conversations/{ab}/participants"), Some(&json!({"user": "carol"})))
        .expect("add carol");
    carol.call_json("POST", &format!("/api/v1/conversations/{ab}/leave"), None).expect("carol leaves");
    // Rooms: eve's posts and membership.
    let room =
        eve.call_json("POST", "/api/v1/rooms", Some(&json!({"name": "finance", "privacy": "open"}))).expect("room");
    let room = room["id"].as_u64().expect("id");
    bob.call_json("POST", &format!("/api/v1/rooms/{room}/join"), None).expect("join");
    let post = eve
        .call_json("POST", &format!("/api/v1/rooms/{room}/messages"), Some(&json!({"text": "room budget"})))
        .expect("post");
    let post = post["id"].as_u64().expect("id");

    let all = export(&officer, "");
    let texts: Vec<&str> = all.iter().filter_map(|r| r["text"].as_str()).collect();
    assert_eq!(texts, ["the quarterly budget", "budget approved", "eve to dave", "room budget"], "{all:#?}");
    let events: Vec<(&str, &str)> = all
        .iter()
        .filter(|r| r["event"] == "joined" || r["event"] == "left")
        .map(|r| (r["event"].as_str().unwrap_or(""), r["user"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(events, [("joined", "carol"), ("left", "carol"), ("joined", "bob")]);
    assert!(all.iter().any(|r| r["event"] == "started" && r["conversation"] == ed), "eve's conversation start");
    let first = &all[ids(&all).iter().position(|id| *id == m1).expect("m1")];
    assert_eq!(first["participants"], json!(["alice", "bob"]));
    assert_eq!((first["from"].as_str(), first["external"].as_bool()), (Some("alice"), Some(false)));
    let sorted = {
        let mut v = ids(&all);
        v.sort_unstable();
        v
    };
    assert_eq!(ids(&all), sorted, "export is in id order");

    // Search by words, user, conversation, room and dates (the index trails by under a second).
    let found = wait_until("the index", 10, || {
        let f = search(&officer, "q=budget");
        (f.len() == 3).then_some(f)
    });
    assert_eq!(ids(&found), [post, m2, m1], "newest first");
    assert_eq!(ids(&search(&officer, &format!("q=budget&conversation={ab}"))), [m2, m1]);
    assert_eq!(search(&officer, &format!("room={room}&q=budget")).len(), 1);
    assert_eq!(ids(&search(&officer, "user=dave")), [m3, ed], "dave only in eve's conversation");
    let carol_events = search(&officer, "user=carol");
    assert_eq!(carol_events.len(), 2, "carol joined and left: {carol_events:#?}");
    let at = |id: u64| all.iter().find(|r| r["id"] == id).and_then(|r| r["at"].as_u64()).expect("at");
    // The millisecond of m2: m2, and whichever other budget message was stored in the same
    // millisecond (sends can tie), newest first.
    let (since, until) = (at(m2), at(m2) + 1);
    let same_ms: Vec<u64> = ids(&found).into_iter().filter(|id| (since..until).contains(&at(*id))).collect();
    assert!(same_ms.contains(&m2));
    assert_eq!(ids(&search(&officer, &format!("q=budget&since={since}&until={until}"))), same_ms);
    assert!(search(&officer, &format!("since={}", u64::MAX / 2)).is_empty(), "nothing in the future");
    // Two texts, carol joining and leaving (the conversation started before any policy).
    assert_eq!(export(&officer, &format!("?conversation={ab}&user=bob")).len(), 4);

    assert_eq!(export(&officer, "?limit=2").len(), 2);
    assert!(export(&officer, "?limit=0").is_empty());

    // Users deleting their history leaves the archive alone.
    alice.call("DELETE", &format!("/api/v1/conversations/{ab}"), None).expect("hide");
    assert_eq!(export(&officer, "").len(), all.len());

    // Roles: users and admins without the compliance role read nothing; officers set no policy.
    for c in [&bob, &admin] {
        assert_eq!(api_error(c.call("GET", "/api/v1/archive/records?q=budget", None).expect_err("forbidden")).0, 403);
        let mut sink = Vec::new();
        assert_eq!(api_error(c.download("/api/v1/archive/export", &mut sink).expect_err("forbidden")).0, 403);
    }
    assert_eq!(api_error(bob.call("GET", "/api/v1/archive/status", None).expect_err("forbidden")).0, 403);
    assert_eq!(status(&admin)["records"], json!(all.len()));
    let refused = officer.call("PUT", "/api/v1/admin/archive/policy", Some(&json!({"global": {"internal": false}})));
    assert_eq!(api_error(refused.expect_err("officers do not set policy")).0, 403);
    assert_eq!(api_error(server.client(None).call("GET", "/api/v1/archive/status", None).expect_err("anon")).0, 401);

    // Bad input.
    let unknown = admin.call("PUT", "/api/v1/admin/archive/policy/nobody", Some(&json!({"internal": true})));
    assert_eq!(api_error(unknown.expect_err("unknown user")).0, 404);
    let bad = admin.call("PUT", "/api/v1/admin/archive/settings", Some(&json!({"keep_days": 99_999})));
    assert_eq!(api_error(bad.expect_err("invalid retention")), (400, "bad_request".to_owned()));
    let bad = admin.call("PUT", "/api/v1/admin/archive/policy/bob", Some(&json!({"internal": "yes"})));
    assert_eq!(api_error(bad.expect_err("not a bool")).0, 400);
    let bad = officer.call("GET", "/api/v1/archive/records?limit=5000", None);
    assert_eq!(api_error(bad.expect_err("limit")).0, 400);
    let policy = admin.call_json("GET", "/api/v1/admin/archive/policy", None).expect("policy");
    assert_eq!(policy["users"]["dave"], json!({"internal": false, "external": false}));
    admin.call("DELETE", "/api/v1/admin/archive/policy/dave", None).expect("clear");
    let policy = admin.call_json("GET", "/api/v1/admin/archive/policy", None).expect("policy");
    assert!(policy["users"].get("dave").is_none());
    let _ = dave;
}

fn lines_in(dir: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "jsonl")).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read_to_string(f).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
        .map(|l| serde_json::from_str(&l).expect("json line"))
        .collect()
}

#[test]
fn jsonl_archive_gets_every_record_in_order_through_an_outage_and_a_kill_9() {
    let mut server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    let officer = officer(&server);
    set_policy(&admin, None, true, true);
    let out = server.dir.path().join("archive-out");
    install(&admin, "jsonl_archive", &format!("dir:{}", out.display()), true);
    let conv = start(&alice, &["bob"]);
    for i in 0..30 {
        send(&alice, conv, &format!("message {i}"));
    }
    let want = export(&officer, "");
    assert_eq!(want.len(), 31, "the start and 30 messages");
    let got = wait_until("the sink", 20, || {
        let l = lines_in(&out);
        (l.len() >= 31).then_some(l)
    });
    assert_eq!(got, want, "the same records, in order, each once");

    // Outage: the day's file cannot be written (a directory sits at its path).
    let file = std::fs::read_dir(&out)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .expect("a file");
    let aside = out.join("aside");
    std::fs::rename(&file, &aside).expect("move aside");
    std::fs::create_dir(&file).expect("block");
    for i in 30..50 {
        send(&alice, conv, &format!("message {i}"));
    }
    let st = wait_until("the sink to report failing", 20, || {
        let st = status(&admin);
        let s = sink(&st, "jsonl-archive").clone();
        (s["failing_since"].is_u64() && s["depth"].as_u64() >= Some(20)).then_some(s)
    });
    assert!(st["last_error"].as_str().is_some_and(|e| e.contains("retry")), "{st}");
    assert!(metric(&server, "halo_archive_spool_depth{sink=\"jsonl-archive\"}") >= 20.0);
    assert!(metric(&server, "halo_archive_oldest_age_seconds{sink=\"jsonl-archive\"}") >= 0.0);
    std::fs::remove_dir(&file).expect("unblock");
    std::fs::rename(&aside, &file).expect("move back");
    let want = export(&officer, "");
    let got = wait_until("the sink to catch up", 40, || {
        let l = lines_in(&out);
        (l.len() >= want.len()).then_some(l)
    });
    assert_eq!(got, want, "no gap, order kept");
    wait_until("the sink to report healthy", 20, || {
        let st = status(&admin);
        let s = sink(&st, "jsonl-archive");
        (s["failing_since"].is_null() && s["depth"] == 0).then_some(())
    });

    // kill -9 during a send load: every acknowledged message reaches the archive and the sink.
    let url = server.url.clone();
    let token = server.login("alice", "alice-password");
    let sent = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let (url, token, sent) = (url.clone(), token.clone(), sent.clone());
            std::thread::spawn(move || {
                let c = Client::new(&url, Some(token), None).expect("client");
                let mut acked = Vec::new();
                for i in 0..100_000 {
                    let body = json!({"text": format!("load {t}-{i}")});
                    match c.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&body)) {
                        Ok(m) => acked.push(m["id"].as_u64().expect("id")),
                        Err(_) => break,
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                acked
            })
        })
        .collect();
    // Killed once the load is well under way, however fast this machine is today.
    wait_until("the load to run", 60, || (sent.load(Ordering::Relaxed) >= 200).then_some(()));
    server.crash_and_restart();
    let acked: Vec<u64> = senders.into_iter().flat_map(|s| s.join().expect("sender")).collect();
    assert!(acked.len() > 20, "the load ran ({} acknowledged)", acked.len());
    let officer = server.client(Some(&server.login("officer", "officer-password")));
    let archived: BTreeSet<u64> = ids(&export(&officer, "")).into_iter().collect();
    let missing: Vec<_> = acked.iter().filter(|id| !archived.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged but not archived: {missing:?}");
    let want = export(&officer, "");
    let got = wait_until("the sink after the restart", 60, || {
        let l = lines_in(&out);
        let seen: BTreeSet<u64> = ids(&l).into_iter().collect();
        (seen.len() >= want.len()).then_some(l)
    });
    // A kill between the sink's write and the host's (or the sink's own) bookkeeping sends a
    // batch again: the sink writes each record once all the same.
    assert_eq!(ids(&got), ids(&want), "every record, in order, each once");
    assert_eq!(got, want);
}

#[test]
fn jsonl_archive_writes_a_record_sent_again_only_once() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    let officer = officer(&server);
    set_policy(&admin, None, true, true);
    let out = server.dir.path().join("archive-out");
    let grant = format!("dir:{}", out.display());
    install(&admin, "jsonl_archive", &grant, true);
    let conv = start(&alice, &["bob"]);
    for i in 0..5 {
        send(&alice, conv, &format!("message {i}"));
    }
    let want = export(&officer, "");
    wait_until("the sink", 20, || (lines_in(&out).len() >= want.len()).then_some(()));
    assert_eq!(lines_in(&out), want);

    // The state a crash leaves between the sink writing a batch and anything recording it: the
    // lines are in the files, the sink's marker is behind, and the host sends it all again
    // (removed and installed again, the sink gets every record kept from the start).
    admin.call("DELETE", "/api/v1/admin/plugins/jsonl-archive", None).expect("remove");
    let marker = out.join(".halo-archive.last-id");
    assert!(marker.exists(), "the sink keeps a marker at {}", marker.display());
    std::fs::write(&marker, ids(&want)[1].to_string()).expect("marker behind");
    send(&alice, conv, "while no sink was installed");
    install(&admin, "jsonl_archive", &grant, true);
    send(&alice, conv, "after the sink came back");
    let want = export(&officer, "");
    assert_eq!(want.len(), 8, "the start and 7 messages");
    wait_until("the sink to catch up", 30, || {
        let st = status(&admin);
        (sink(&st, "jsonl-archive")["depth"] == 0 && lines_in(&out).len() >= want.len()).then_some(())
    });
    assert_eq!(lines_in(&out), want, "every record once, in order");
    let logs = admin.call_json("GET", "/api/v1/admin/plugins/jsonl-archive/logs", None).expect("logs");
    assert!(logs.to_string().contains("sent again were already in the files"), "{logs}");
}

#[test]
fn failing_sinks_are_isolated_and_block_on_failure_refuses_with_a_clear_error() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    set_policy(&admin, None, true, false);
    install(&admin, "hostile_sink", "", true);
    configure(&admin, "hostile-sink", json!({"mode": "retry"}));
    let conv = start(&alice, &["bob"]);

    // Fail open by default: messages flow and wait in the spool.
    send(&alice, conv, "one");
    let s = wait_until("the failure to show", 20, || {
        let st = status(&admin);
        let s = sink(&st, "hostile-sink").clone();
        s["failing_since"].is_u64().then_some(s)
    });
    assert!(s["last_error"].as_str().is_some_and(|e| e.contains("downstream unavailable")), "{s}");

    // Fail closed when the settings say so, with a clear error on REST and on the stream.
    let settings = json!({"block_on_failure": true, "block_after_secs": 1, "block_backlog": 1000});
    admin.call_json("PUT", "/api/v1/admin/archive/settings", Some(&settings)).expect("settings");
    let refused = wait_until("blocking", 20, || {
        let r = alice.call("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&json!({"text": "two"})));
        r.err()
    });
    let halo_client::ClientError::Api { status: code, code: error, message } = refused else { panic!("api error") };
    assert_eq!((code, error.as_str()), (503, "archive_unavailable"));
    assert!(message.contains("hostile-sink") && message.contains("archiving is unavailable"), "{message}");
    let mut peer = Peer::connect(&server, &server.login("alice", "alice-password"), "desk");
    assert_eq!(peer.err(json!({"type": "im.send", "conversation": conv, "text": "three"})), "archive_unavailable");
    assert!(status(&admin)["blocking"].as_str().is_some_and(|b| b.contains("hostile-sink")));

    // A trapping sink disables itself after its trap budget; a hanging one hits its deadline;
    // neither takes the server down, and the built-in archive keeps every record.
    configure(&admin, "hostile-sink", json!({"mode": "trap"}));
    let s = wait_until("the trap budget", 60, || {
        let p = admin.call_json("GET", "/api/v1/admin/plugins/hostile-sink", None).expect("plugin");
        p["status"]["disabled"].as_str().map(str::to_owned)
    });
    assert!(s.contains("traps"), "{s}");
    admin
        .call_json("PUT", "/api/v1/admin/plugins/hostile-sink/limits", Some(&json!({"batch_deadline": "100ms"})))
        .expect("limits");
    configure(&admin, "hostile-sink", json!({"mode": "hang"}));
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/enable", None).expect("enable");
    wait_until("the deadline", 30, || {
        let st = status(&admin);
        sink(&st, "hostile-sink")["last_error"].as_str().filter(|e| e.contains("deadline")).map(str::to_owned)
    });
    configure(&admin, "hostile-sink", json!({"mode": "permanent"}));
    let s = wait_until("the permanent refusal", 30, || {
        let p = admin.call_json("GET", "/api/v1/admin/plugins/hostile-sink", None).expect("plugin");
        p["status"]["disabled"].as_str().map(str::to_owned)
    });
    assert!(s.contains("refused records permanently"), "{s}");

    // An admin disabling the sink ends the blocking; a fixed sink drains everything.
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/disable", None).expect("disable");
    let m = send(&alice, conv, "four");
    configure(&admin, "hostile-sink", json!({"mode": "ok"}));
    admin.call_json("POST", "/api/v1/admin/plugins/hostile-sink/enable", None).expect("enable");
    wait_until("the drain", 40, || {
        let st = status(&admin);
        let s = sink(&st, "hostile-sink");
        (s["cursor"].as_u64() >= Some(m) && s["failing_since"].is_null()).then_some(())
    });
    assert!(metric(&server, "halo_archive_refused_total") >= 2.0);
    assert!(metric(&server, "halo_archive_sink_failures_total{sink=\"hostile-sink\"}") >= 1.0);
}

#[test]
fn retention_purges_what_every_sink_has_stored_and_holds_the_rest() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    let officer = officer(&server);
    set_policy(&admin, None, true, false);
    let conv = start(&alice, &["bob"]);
    for i in 0..5 {
        send(&alice, conv, &format!("old {i}"));
    }
    wait_until("the index", 10, || (search(&officer, "q=old").len() == 5).then_some(()));
    // A sink that stored nothing yet (installed disabled) holds everything back.
    install(&admin, "hostile_sink", "", false);
    let held =
        admin.call_json("POST", "/api/v1/admin/archive/purge", Some(&json!({"older_than_hours": 0}))).expect("purge");
    assert_eq!((held["purged"].as_u64(), held["held"].as_u64()), (Some(0), Some(6)), "{held}");
    // Once it is removed, the purge goes through; search and export forget the records.
    admin.call("DELETE", "/api/v1/admin/plugins/hostile-sink", None).expect("remove");
    let done =
        admin.call_json("POST", "/api/v1/admin/archive/purge", Some(&json!({"older_than_hours": 0}))).expect("purge");
    assert_eq!(done["purged"].as_u64(), Some(6), "{done}");
    assert_eq!(metric(&server, "halo_archive_purged_total"), 6.0);
    assert!(export(&officer, "").is_empty());
    assert!(search(&officer, "q=old").is_empty());
    // Kept for ever by default: a scheduled purge does nothing.
    send(&alice, conv, "new");
    let none = admin.call_json("POST", "/api/v1/admin/archive/purge", None).expect("purge");
    assert_eq!(none["before"], Value::Null);
    assert_eq!(export(&officer, "").len(), 1);
    let bad = admin.call("POST", "/api/v1/admin/archive/purge", Some(&json!({"older_than_hours": -1})));
    assert_eq!(api_error(bad.expect_err("negative")).0, 400);
    let forbidden = officer.call("POST", "/api/v1/admin/archive/purge", None);
    assert_eq!(api_error(forbidden.expect_err("admin only")).0, 403);
}

#[test]
fn the_cli_sets_policy_and_settings_and_a_compliance_officer_exports() {
    let server = TestServer::with_config(FAST);
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    officer(&server);
    let cli = |args: &[&str]| {
        let mut c = common::halo();
        c.arg("archive").args(args).arg("--data-dir").arg(server.data_dir()).env_remove("HALO_TOKEN");
        c.output().expect("halo ran")
    };
    assert!(common::ok(cli(&["set-policy", "internal", "--user", "alice"])).contains("alice: internal"));
    assert!(common::ok(cli(&["policy"])).contains("alice: internal"));
    assert!(common::fails(cli(&["set-policy", "all", "--user", "nobody"])).contains("nobody"));
    let settings = common::ok(cli(&["settings", "keep_days=30", "block_on_failure=true"]));
    assert!(settings.contains("\"keep_days\": 30") && settings.contains("\"block_on_failure\": true"), "{settings}");
    assert!(common::fails(cli(&["settings", "keep_days=many"])).contains("not a number"));
    common::ok(cli(&["settings", "block_on_failure=false"]));

    let conv = start(&alice, &["bob"]);
    send(&alice, conv, "for the record");
    assert!(common::ok(cli(&["status"])).contains("records kept: 2"));
    // The local admin token is not a compliance officer.
    assert!(common::fails(cli(&["export"])).contains("compliance role"));
    let token = server.login("officer", "officer-password");
    let file = server.dir.path().join("export.jsonl");
    let mut export = common::halo();
    export.args(["archive", "export", "--user", "alice", "--since", "2020-01-01", "-o"]).arg(&file).args([
        "--server",
        &server.url,
        "--token",
        &token,
    ]);
    common::ok(export.output().expect("halo ran"));
    let lines = std::fs::read_to_string(&file).expect("export file");
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.contains("for the record"));
    let mut search = common::halo();
    search.args(["archive", "search", "-q", "record", "--server", &server.url, "--token", &token]);
    wait_until("the index", 10, || {
        let out = common::ok(search.output().expect("halo ran"));
        out.contains("for the record").then_some(())
    });
    assert!(common::ok(cli(&["purge"])).contains("purged 0 records"));

    // A sink installed from the CLI with its directory grant.
    let plugin = |args: &[&str]| {
        let mut c = common::halo();
        c.arg("plugin").args(args).arg("--data-dir").arg(server.data_dir()).env_remove("HALO_TOKEN");
        c.output().expect("halo ran")
    };
    let wasm = rust_plugin("jsonl_archive");
    let wasm = wasm.to_str().expect("path");
    assert!(common::fails(plugin(&["install", wasm, "--yes"])).contains("--grant dir:VALUE"));
    assert!(common::fails(plugin(&["install", wasm, "--grant", "dir"])).contains("needs a directory"));
    let out = server.dir.path().join("cli archive");
    let grant = format!("dir:{}", out.display());
    common::ok(plugin(&["install", wasm, "--grant", &grant]));
    assert!(common::ok(plugin(&["info", "jsonl-archive"])).contains(&grant));
    wait_until("the sink's first file", 20, || {
        std::fs::read_dir(&out)
            .ok()?
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
            .then_some(())
    });
}

#[test]
fn the_http_example_sink_posts_batches_to_the_granted_host_only() {
    let server = TestServer::with_config(FAST);
    let admin = server.admin();
    let [alice, _bob] = ["alice", "bob"].map(|n| server.user(n));
    let officer = officer(&server);
    set_policy(&admin, None, true, false);
    let ingest = Ingest::start(2);
    install(&admin, "http_archive_sink", &format!("http:127.0.0.1:{}", ingest.port), false);
    configure(&admin, "http-archive-sink", json!({"url": format!("http://127.0.0.1:{}/ingest", ingest.port)}));
    admin.call_json("POST", "/api/v1/admin/plugins/http-archive-sink/enable", None).expect("enable");
    let conv = start(&alice, &["bob"]);
    for i in 0..10 {
        send(&alice, conv, &format!("over http {i}"));
    }
    // Two 503s first: retried with backoff, then everything arrives, in order.
    let want = export(&officer, "");
    let got = wait_until("the endpoint", 30, || {
        let r = ingest.records();
        (r.len() >= want.len()).then_some(r)
    });
    assert_eq!(got, want);
    assert!(ingest.requests.load(std::sync::atomic::Ordering::SeqCst) >= 3);

    // Any other host is refused by the host before a connection is made.
    let other = Ingest::start(0);
    configure(&admin, "http-archive-sink", json!({"url": format!("http://127.0.0.1:{}/ingest", other.port)}));
    send(&alice, conv, "to the wrong host");
    let err = wait_until("the denial", 30, || {
        let st = status(&admin);
        sink(&st, "http-archive-sink")["last_error"].as_str().filter(|e| e.contains("Denied")).map(str::to_owned)
    });
    assert!(err.contains("HttpRequestDenied"), "{err}");
    assert_eq!(other.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "no request reached it");
}

//! Storage failures through a real `halo serve`: a full disk under the data directory (a small
//! tmpfs, filled and freed again), an index directory that cannot be written, a plugin whose kv
//! writes cannot be stored, and the `[store]` settings.
//!
//! Mounting needs root (CI runs as root). Without it, the tests that need a mount say why they
//! are skipped and pass.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Peer, TestServer, ok, rust_plugin, wait_until};
use serde_json::{Value, json};

/// Sends as fast as the test goes: no rate limit in the way.
const NO_RATE_LIMIT: &str = "[im]\nmessages_per_sec = 10000.0\nburst = 10000.0\n";

/// A file system mounted for a test, unmounted (lazily if still busy) on drop.
struct Mount {
    path: PathBuf,
}

impl Mount {
    /// Runs `mount args… path`; `Err` with the reason when it cannot (e.g. not root).
    fn new(args: &[&str], path: &Path) -> Result<Self, String> {
        let out = Command::new("mount").args(args).arg(path).output().map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount {args:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Self { path: path.to_owned() })
    }

    /// A tmpfs of `bytes` on `path`.
    fn tmpfs(path: &Path, bytes: u64) -> Result<Self, String> {
        Self::new(&["-t", "tmpfs", "-o", &format!("size={bytes},mode=0755"), "tmpfs"], path)
    }

    /// `path` itself, bound read-only over itself: its files stay readable, nothing can be
    /// written (also not by root).
    fn read_only(path: &Path) -> Result<Self, String> {
        let s = path.to_str().ok_or("non-UTF-8 path")?;
        let bind = Command::new("mount").args(["--bind", s, s]).output().map_err(|e| format!("running mount: {e}"))?;
        if !bind.status.success() {
            return Err(format!("mount --bind failed: {}", String::from_utf8_lossy(&bind.stderr).trim()));
        }
        let mount = Self { path: path.to_owned() };
        let ro = Command::new("mount")
            .args(["-o", "remount,bind,ro", s])
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !ro.status.success() {
            return Err(format!("remount read-only failed: {}", String::from_utf8_lossy(&ro.stderr).trim()));
        }
        Ok(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the file system under `dir` with `filler` until a write fails for lack of space.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("filler");
    let mut chunk = vec![0x55u8; 1 << 20];
    loop {
        match f.write_all(&chunk) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(28) => {
                if chunk.len() <= 512 {
                    break;
                }
                let half = chunk.len() / 2;
                chunk.truncate(half);
            }
            Err(e) => panic!("filling: {e}"),
        }
    }
    let _ = f.sync_all();
    path
}

/// `(status, Retry-After, error code)` of a request.
fn http(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut req = ureq::http::Request::builder().method(method).uri(format!("{}{path}", server.url));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.header("content-type", "application/json").body(body.to_string().into_bytes()).expect("request");
    let resp = agent.run(req).expect("http");
    let status = resp.status().as_u16();
    let retry = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, retry, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The Prometheus text of `/metrics` (read with the local admin token).
fn metrics(server: &TestServer) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let req = ureq::http::Request::builder()
        .uri(format!("{}/metrics", server.url))
        .header("authorization", format!("Bearer {}", server.local_token))
        .body(())
        .expect("request");
    agent.run(req).expect("http").into_body().read_to_string().unwrap_or_default()
}

fn healthz(server: &TestServer) -> (u16, Value) {
    let (status, _, body) = http(server, "GET", "/healthz", None, &Value::Null);
    (status, body)
}

fn history(server: &TestServer, token: &str, conv: u64) -> Vec<String> {
    let path = format!("/api/v1/conversations/{conv}/messages?limit=200");
    let page = server.client(Some(token)).call_json("GET", &path, None).expect("history");
    page["messages"].as_array().expect("list").iter().filter_map(|m| m["text"].as_str().map(str::to_owned)).collect()
}

#[test]
fn a_full_disk_answers_503_and_recovers_without_restart_keeping_what_was_acknowledged() {
    let mut mount = Err(String::new());
    let mut server = TestServer::with_setup(NO_RATE_LIMIT, |data| mount = Mount::tmpfs(data, 48 << 20));
    if let Err(why) = &mount {
        eprintln!("skipped: needs a tmpfs mount on the data dir ({why})");
        return;
    }
    server.user("alice");
    server.user("bob");
    let alice = server.login("alice", "alice-password");
    let mut peer = Peer::connect(&server, &alice, "laptop");
    let conv =
        peer.ok(json!({"type": "im.start", "participants": ["bob"]}))["conversation"]["id"].as_u64().expect("id");
    let send_path = format!("/api/v1/conversations/{conv}/messages");
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let text = format!("before {i}");
        let (status, _, body) = http(&server, "POST", &send_path, Some(&alice), &json!({"text": text}));
        assert_eq!(status, 200, "{body}");
        acknowledged.push(text);
    }
    let (status, health) = healthz(&server);
    assert_eq!((status, health["status"].as_str(), health["storage"].as_str()), (200, Some("ok"), Some("ok")));

    let filler = fill(&server.data_dir());
    // sled may still place a few writes in space it holds already; every send it acknowledges
    // must survive. Within a bounded number of sends, one is refused for storage.
    let mut refused = None;
    for i in 0..2000 {
        let text = format!("during {i}");
        let (status, retry, body) = http(&server, "POST", &send_path, Some(&alice), &json!({"text": text}));
        match status {
            200 => acknowledged.push(text),
            503 => {
                refused = Some((retry, body));
                break;
            }
            other => panic!("send answered {other}: {body}"),
        }
    }
    let (retry, body) = refused.expect("a send is refused while the disk is full");
    eprintln!("{} sends acknowledged after the disk filled", acknowledged.len() - 5);
    assert_eq!(body["error"], "storage_unavailable", "{body}");
    assert!(retry.as_deref().is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)), "Retry-After: {retry:?}");

    // Everything that writes is refused the same way, on REST and on the stream.
    let (status, _, body) =
        http(&server, "POST", "/api/v1/login", None, &json!({"username": "bob", "password": "bob-password"}));
    assert_eq!((status, body["error"].as_str()), (503, Some("storage_unavailable")), "login: {body}");
    let (status, _, body) = http(&server, "PATCH", "/api/v1/me/presence", Some(&alice), &json!({"note": "disk full"}));
    assert_eq!((status, body["error"].as_str()), (503, Some("storage_unavailable")), "presence: {body}");
    assert_eq!(
        peer.err(json!({"type": "im.send", "conversation": conv, "text": "over the stream"})),
        "storage_unavailable"
    );
    let (status, health) = healthz(&server);
    assert_eq!((status, health["status"].as_str()), (503, Some("degraded")), "{health}");
    let texts = history(&server, &alice, conv);
    assert!(acknowledged.iter().all(|t| texts.contains(t)), "reads still work, with everything acknowledged");
    assert!(health["storage"].as_str().is_some_and(|s| s.starts_with("unavailable: ")), "{health}");
    let text = metrics(&server);
    assert!(text.lines().any(|l| l == "halo_storage_available 0"), "{text}");

    // Space comes back: the server recovers by itself, without a restart.
    std::fs::remove_file(filler).expect("free the space");
    wait_until("a send to succeed again", 120, || {
        let (status, _, _) = http(&server, "POST", &send_path, Some(&alice), &json!({"text": "after"}));
        (status == 200).then_some(())
    });
    acknowledged.push("after".to_owned());
    // Health follows once the reopened store has confirmed a durable write of its own.
    wait_until("/healthz to say ok", 60, || {
        let (status, health) = healthz(&server);
        (status == 200 && health["status"] == "ok").then_some(())
    });
    for i in 0..30 {
        let text = format!("after {i}");
        let (status, _, body) = http(&server, "POST", &send_path, Some(&alice), &json!({"text": text}));
        assert_eq!(status, 200, "send {i} after recovery: {body}");
        acknowledged.push(text);
    }
    server.login("bob", "bob-password");
    let (status, _, body) = http(&server, "PATCH", "/api/v1/me/presence", Some(&alice), &json!({"note": "back"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        peer.ok(json!({"type": "im.send", "conversation": conv, "text": "stream again"}))["message"]["text"],
        "stream again"
    );
    acknowledged.push("stream again".to_owned());

    let texts = history(&server, &alice, conv);
    let missing: Vec<_> = acknowledged.iter().filter(|t| !texts.contains(t)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");

    drop(peer);
    server.stop();
    server.restart();
    let alice = server.login("alice", "alice-password");
    let texts = history(&server, &alice, conv);
    let missing: Vec<_> = acknowledged.iter().filter(|t| !texts.contains(t)).collect();
    assert!(missing.is_empty(), "acknowledged but lost after a restart: {missing:?}");
}

/// `halo plugin …` against `server`, through its data dir's local admin token.
fn plugin_cli(server: &TestServer, args: &[&str]) -> String {
    let out = common::halo()
        .arg("plugin")
        .args(args)
        .arg("--data-dir")
        .arg(server.data_dir())
        .env_remove("HALO_SERVER")
        .env_remove("HALO_TOKEN")
        .output()
        .expect("halo ran");
    ok(out)
}

#[test]
fn a_plugin_kv_write_that_cannot_be_stored_fails_in_the_guest() {
    // The quota is far above the disk: only storage can refuse. A long deadline, so the plugin's
    // writes (each flushed) are not cut short on a loaded machine.
    let config = "[plugins.limits]\nkv_quota_bytes = 1073741824\ndeadline = \"60s\"\nmax_traps = 100\n";
    let mut mount = Err(String::new());
    let server = TestServer::with_setup(config, |data| mount = Mount::tmpfs(data, 24 << 20));
    if let Err(why) = &mount {
        eprintln!("skipped: needs a tmpfs mount on the data dir ({why})");
        return;
    }
    server.user("alice");
    let alice = server.login("alice", "alice-password");
    let hostile = rust_plugin("hostile");
    plugin_cli(&server, &["install", hostile.to_str().expect("path"), "--grant", "kv"]);
    // `kv`: writes 1000 values of 60 KiB (60 MB, more than the 24 MiB disk) until one is refused,
    // and logs how far it got.
    plugin_cli(&server, &["config", "hostile", "mode=kv"]);
    let admin = server.admin();
    // A device connecting runs the plugin's derive.
    let _peer = Peer::connect(&server, &alice, "laptop");
    let logs = wait_until("the plugin to see a kv write fail", 120, || {
        let logs = admin.call_json("GET", "/api/v1/admin/plugins/hostile/logs", None).ok()?.to_string();
        logs.contains("kv refused after").then_some(logs)
    });
    // The quota is far away: the refusal is the full disk's, read as `quota-exceeded` by a 0.1
    // plugin (docs/plugins.md), after the writes that fitted.
    assert!(logs.contains("QuotaExceeded"), "{logs}");
    assert!(!logs.contains("kv refused after 0 writes"), "writes were stored until the disk was full: {logs}");
}

#[test]
fn messages_sent_while_the_index_cannot_be_written_become_searchable_without_restart() {
    let server = TestServer::with_config(NO_RATE_LIMIT);
    server.user("alice");
    server.user("bob");
    let alice = server.login("alice", "alice-password");
    let mut peer = Peer::connect(&server, &alice, "laptop");
    let conv =
        peer.ok(json!({"type": "im.start", "participants": ["bob"]}))["conversation"]["id"].as_u64().expect("id");
    let search = |q: &str| -> usize {
        let v = server.client(Some(&alice)).call_json("GET", &format!("/api/v1/search?q={q}"), None).expect("search");
        v["messages"].as_array().map_or(0, Vec::len)
    };
    peer.ok(json!({"type": "im.send", "conversation": conv, "text": "warmup"}));
    wait_until("the index to work", 60, || (search("warmup") == 1).then_some(()));

    let index = server.data_dir().join("search");
    let mount = match Mount::read_only(&index) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("skipped: needs a read-only bind mount of the index dir ({why})");
            return;
        }
    };
    for i in 0..20 {
        peer.ok(json!({"type": "im.send", "conversation": conv, "text": format!("frozen{i} pineapple")}));
    }
    // The indexer has tried (and failed) meanwhile: the commit cannot land on a read-only dir.
    wait_until("an indexing failure", 60, || {
        let text = metrics(&server);
        text.lines().any(|l| l.starts_with("halo_search_index_failures_total ") && !l.ends_with(" 0")).then_some(())
    });
    assert_eq!(search("pineapple"), 0, "nothing could be committed");
    drop(mount);
    wait_until("every message to become searchable", 120, || (search("pineapple") == 20).then_some(()));
    for i in [0, 19] {
        assert_eq!(search(&format!("frozen{i}")), 1);
    }
}

#[test]
fn the_store_section_sets_the_cache_and_refuses_unknown_keys() {
    let server = TestServer::with_config("[store]\ncache_capacity = 8388608\n");
    server.user("alice");
    assert_eq!(healthz(&server).0, 200);

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("halo.toml");
    std::fs::write(&config, "[store]\ncache_size = 1\n").expect("write");
    let out = common::halo()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--listen")
        .arg("127.0.0.1:0")
        .output()
        .expect("run halo");
    let err = common::fails(out);
    assert!(err.contains("cache_size"), "{err}");
    std::fs::write(&config, "[store]\ncache_capacity = 10\n").expect("write");
    let out = common::halo()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run halo");
    assert!(common::fails(out).contains("cache_capacity"), "too small a cache is refused");
}

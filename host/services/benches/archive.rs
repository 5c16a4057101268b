//! Compliance archiving costs: `cargo bench -p halo-services --bench archive` (run `cargo
//! xtask plugins` first). Figures only, nothing fails on timing.
//!
//! 1. Durable IM writes (`Im::append`, flushed, CONCURRENCY senders) with archiving off vs on:
//!    what the archive record in the same transaction costs.
//! 2. Spool drain: the real sink delivery path (`ArchiveService` with the `jsonl-archive`
//!    plugin writing and fsyncing daily files) emptying a spool of RECORDS records.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use halo_core::Username;
use halo_core::archive::{Place, Record};
use halo_core::conversation::{Conversation, Format};
use halo_core::message::{Body, Message};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{PluginLimits, Runtime};
use halo_services::archive::ArchiveService;
use halo_services::metrics::Metrics;
use halo_store::Store;

const MESSAGES: usize = 40_000;
const CONCURRENCY: usize = 64;
const RECORDS: usize = 200_000;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let off = writes(false).await;
        let on = writes(true).await;
        let drain = drain().await;
        println!("{:<44} {:>14}", "archiving", "per second");
        println!("{:<44} {:>14.0}", "durable IM writes, archiving off", off);
        println!("{:<44} {:>14.0}", "durable IM writes, archiving on", on);
        println!("{:<44} {:>13.0}%", "ratio (on / off)", 100.0 * on / off);
        println!("{:<44} {:>14.0}", "spool drain into jsonl-archive (fsync)", drain);
    });
}

fn u(s: &str) -> Username {
    Username::parse(s).expect("name")
}

fn text(id: u64, i: usize) -> Message {
    Message {
        id,
        at: 1_795_654_631_548 + i as u64,
        from: u("alice"),
        body: Body::Text { text: format!("message number {i} about the quarterly budget"), format: Format::Plain },
        key: None,
        extras: Default::default(),
    }
}

/// Messages per second through `Im::append` from CONCURRENCY senders, each on its own conversation.
async fn writes(archived: bool) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let mut convs = Vec::new();
    for i in 0..CONCURRENCY {
        let id = store.im().reserve().expect("id").id();
        let c = Conversation::new(id, &u("alice"), &[u(&format!("bob{i}"))], 0, 1).expect("conv");
        store.im().create(&c, None).await.expect("create");
        convs.push(c);
    }
    let started = Instant::now();
    let tasks: Vec<_> = convs
        .into_iter()
        .map(|c| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..MESSAGES / CONCURRENCY {
                    let id = store.im().reserve().expect("id");
                    let msg = text(id.id(), i);
                    let record = archived.then(|| Record::of_message(Place::Conversation(c.id), &msg, c.members()));
                    store.im().append(&c, &msg, (&[], &[]), record.as_ref(), &[]).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    MESSAGES as f64 / started.elapsed().as_secs_f64()
}

/// Records per second from a full spool into `jsonl-archive`, through `ArchiveService`.
async fn drain() -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("data")).expect("store");
    let id = store.im().reserve().expect("id").id();
    let c = Conversation::new(id, &u("alice"), &[u("bob")], 0, 1).expect("conv");
    store.im().create(&c, None).await.expect("create");
    let mut last = 0;
    for i in 0..RECORDS {
        let id = store.im().reserve().expect("id");
        let msg = text(id.id(), i);
        let record = Record::of_message(Place::Conversation(c.id), &msg, c.members());
        store.im().append(&c, &msg, (&[], &[]), Some(&record), &[]).await.expect("append");
        last = msg.id;
    }
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../plugins/target/wasm32-wasip2/release/jsonl_archive.wasm");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask plugins`", path.display()));
    let runtime = Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime");
    let out = dir.path().join("out");
    let grant = format!("dir:{}", out.display());
    let plugin = runtime.load(&bytes, &[grant], &BTreeMap::new(), PluginLimits::default()).expect("plugin");
    let archive =
        ArchiveService::start(store.clone(), &dir.path().join("index"), Arc::new(Metrics::new())).expect("archive");
    let started = Instant::now();
    archive.set_sinks(vec![Arc::new(plugin)]);
    loop {
        let status = archive.status().expect("status");
        if status.sinks.first().is_some_and(|s| s.cursor >= last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    RECORDS as f64 / started.elapsed().as_secs_f64()
}

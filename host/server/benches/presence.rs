//! Presence fan-out throughput, built-in only vs with the `custom-states` plugin:
//! `cargo bench -p halo-server` (run `cargo xtask plugins` first). USERS users each watched by
//! WATCHERS contacts, all connected; every round each user's device flips between Active and
//! Inactive and the shards publish (the clock stops at the last frame delivered). Prints notifications per second and the ratio; figures
//! only, nothing fails on timing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use halo_core::contacts::ContactList;
use halo_core::presence::{AccessLevel, MachineState};
use halo_core::{NewUser, Username};
use halo_plugin_host::cap::kv::MemoryKv;
use halo_plugin_host::{PluginLimits, Runtime};
use halo_server::stream::hub::Hub;
use halo_services::metrics::Metrics;
use halo_services::presence::{PresenceService, PresenceSettings};
use halo_store::Store;

const USERS: usize = 1000;
const WATCHERS: usize = 50;
const ROUNDS: usize = 20;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let builtin = run(None).await;
        let states = r##"[{"id":"focusing","labels":{"en":"Focusing"},"availability":6500,"colour":"#8e44ad"}]"##;
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../plugins/target/wasm32-wasip2/release/custom_states.wasm");
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run `cargo xtask plugins`", path.display()));
        let with_plugin = run(Some((bytes, states))).await;
        println!("{:<32} {:>16}", "presence fan-out", "notifications/s");
        println!("{:<32} {:>16.0}", "built-in only", builtin);
        println!("{:<32} {:>16.0}", "with custom-states", with_plugin);
        println!("{:<32} {:>15.0}%", "ratio", 100.0 * with_plugin / builtin);
    });
}

async fn run(plugin: Option<(Vec<u8>, &str)>) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let names: Vec<Username> = (0..USERS).map(|i| Username::parse(&format!("u{i}")).expect("name")).collect();
    for n in &names {
        let user = NewUser::default().into_user(n.clone(), "x".into(), 0).expect("user");
        store.users().create(&user).await.expect("create");
    }
    for (i, n) in names.iter().enumerate() {
        let mut list = ContactList::default();
        for k in 1..=WATCHERS {
            list.add(n, &names[(i + k) % USERS], None, AccessLevel::Colleagues, 1000, 0).expect("contact");
        }
        store.presence().put_contacts(n, &list).expect("contacts").commit().await.expect("durable");
    }
    let metrics = Arc::new(Metrics::new());
    let hub = Arc::new(Hub::new(1 << 20, 4, metrics.clone()));
    let presence = PresenceService::new(store.clone(), hub.clone(), metrics.clone(), PresenceSettings::default());
    let _runtime;
    if let Some((bytes, states)) = plugin {
        let runtime = Runtime::new(None, Arc::new(MemoryKv::default())).expect("runtime");
        let config: BTreeMap<String, String> = [("states".to_owned(), states.to_owned())].into();
        let p = runtime.load(&bytes, &[], &config, PluginLimits::default()).expect("plugin");
        presence.set_plugins(vec![Arc::new(p)]);
        _runtime = Some(runtime);
    } else {
        _runtime = None;
    }
    let mut outboxes = Vec::new();
    for n in &names {
        let reg = hub.register(n, "bench".into(), [0; 32], 0).expect("endpoint");
        presence.connect(n, reg.info.id).await.expect("connect");
        outboxes.push((n.clone(), reg.info.id, reg.outbox, reg.close));
    }
    settle(&mut outboxes).await;
    let started = Instant::now();
    let mut delivered = 0u64;
    let mut last = started;
    for round in 0..ROUNDS {
        let state = if round % 2 == 0 { MachineState::Inactive } else { MachineState::Active };
        // All users' reports of a round at once, as devices send them: their writes (Active
        // stores the last-active time) share group commits instead of one fsync each.
        let calls = outboxes.iter().map(|(n, ep, _, _)| presence.machine(n, *ep, state));
        for r in futures_util::future::join_all(calls).await {
            r.expect("machine");
        }
        let (n, at) = settle(&mut outboxes).await;
        delivered += n;
        last = at;
    }
    delivered as f64 / last.duration_since(started).as_secs_f64()
}

type Outboxes<F, C> = Vec<(Username, u64, tokio::sync::mpsc::Receiver<F>, C)>;

/// Drains the endpoints' queues until nothing came for 200 ms; returns how many frames came
/// and when the last did.
async fn settle<F, C>(outboxes: &mut Outboxes<F, C>) -> (u64, Instant) {
    let mut n = 0u64;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let mut got = 0u64;
        for (_, _, rx, _) in outboxes.iter_mut() {
            while rx.try_recv().is_ok() {
                got += 1;
            }
        }
        if got > 0 {
            n += got;
            last = Instant::now();
        } else if last.elapsed() > std::time::Duration::from_millis(200) {
            return (n, last);
        }
    }
}

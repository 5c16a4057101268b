//! Federation from a pool, through the real binaries: three `nats-server` processes, three
//! `halo serve --cluster` nodes of domain `pool.test` (each with its own federation listener),
//! and a standalone `remote.test` federated with them Halo-to-Halo. Items made on nodes that do
//! not hold the `federation` lease reach the remote; the holder killed while messages flow
//! loses none and repeats at most its batch in flight; a domain removed on one node stops
//! delivery from every node.

mod common;

use std::collections::BTreeMap;

use common::fed::{self, Certs, add_contact, certs, im_from, overview, peer_with};
use common::nats::{NatsCluster, free_ports, halo_node};
use common::{Peer, TestServer, wait_presence, wait_until};
use halo_client::Client;
use serde_json::{Value, json};

const PRESENCE: &str = "[presence]\noffline_grace = \"200ms\"\ncoalesce = \"10ms\"\n";
/// Most items a Halo peer link carries in one request (`peer.rs`): what a holder killed
/// between carrying a batch and marking it may have carried unmarked.
const PEER_BATCH: u64 = 100;

struct Fed {
    _nats: NatsCluster,
    nodes: Vec<TestServer>,
    ports: Vec<u16>,
    remote: TestServer,
    remote_port: u16,
    certs: Certs,
}

impl Fed {
    /// The pool (formed, the `federation` task held) allowing `remote.test`, and the remote.
    fn start() -> Self {
        let certs = certs();
        let nats = NatsCluster::start(3);
        let mut ports = free_ports(4);
        let remote_port = ports.pop().expect("four ports");
        let nodes = (0..3)
            .map(|i| {
                let toml = format!("{PRESENCE}{}", fed::config("pool.test", ports[i], &certs));
                halo_node(&nats, &format!("node{}", i + 1), &toml)
            })
            .collect();
        let remote = TestServer::with_config(&format!("{PRESENCE}{}", fed::config("remote.test", remote_port, &certs)));
        let f = Self { _nats: nats, nodes, ports, remote, remote_port, certs };
        for i in 0..3 {
            wait_until("the pool to form", 120, || {
                let s = f.status(i)?;
                (s["nodes"].as_array().map_or(0, Vec::len) == 3).then_some(())
            });
        }
        // The rule is set through one node; every node must learn it.
        peer_with(&f.nodes[0], "remote.test", remote_port, &f.certs);
        f
    }

    fn status(&self, i: usize) -> Option<Value> {
        self.nodes[i].admin().call_json("GET", "/api/v1/admin/pool", None).ok()
    }

    /// The node holding the `federation` task, as node `asking` sees it.
    fn holder_seen_by(&self, asking: usize) -> usize {
        wait_until("a holder of the federation task", 120, || {
            let s = self.status(asking)?;
            let node = s["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t == "federation")))?;
            let name = node["node"].as_str()?;
            name.strip_prefix("node")?.parse::<usize>().ok().map(|n| n - 1)
        })
    }

    /// The remote sends to the pool through node `i`'s federation listener.
    fn remote_peers_with(&self, i: usize) {
        peer_with(&self.remote, "pool.test", self.ports[i], &self.certs);
    }

    /// Items waiting for `domain` in node `i`'s own queue.
    fn queued(&self, i: usize, domain: &str) -> u64 {
        overview(&self.nodes[i])["queues"][domain].as_u64().unwrap_or(0)
    }
}

fn others(h: usize) -> [usize; 2] {
    let v: Vec<usize> = (0..3).filter(|i| *i != h).collect();
    [v[0], v[1]]
}

fn create(node: &TestServer, name: &str) {
    let body = json!({"username": name, "password": format!("{name}-password")});
    node.admin().call_json("POST", "/api/v1/users", Some(&body)).expect("create user");
}

/// Logs `name` in on `node`, once the account reached that node's replica.
fn login(node: &TestServer, name: &str) -> String {
    let admin = node.admin();
    wait_until(&format!("{name}'s account on this node"), 60, || {
        admin.call_json("GET", &format!("/api/v1/users/{name}"), None).ok().map(|_| ())
    });
    node.login(name, &format!("{name}-password"))
}

/// Every text in every conversation of the user of `client`, with how often it appears.
fn texts(client: &Client) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let Ok(convs) = client.call_json("GET", "/api/v1/conversations", None) else { return out };
    for c in convs["conversations"].as_array().cloned().unwrap_or_default() {
        let mut after = 0u64;
        loop {
            let path = format!("/api/v1/conversations/{}/messages?after={after}&limit=200", c["id"]);
            let Ok(page) = client.call_json("GET", &path, None) else { return BTreeMap::new() };
            let list = page["messages"].as_array().cloned().unwrap_or_default();
            let Some(last) = list.last().and_then(|m| m["id"].as_u64()) else { break };
            for t in list.iter().filter_map(|m| m["text"].as_str()) {
                *out.entry(t.to_owned()).or_default() += 1;
            }
            after = last;
        }
    }
    out
}

#[test]
fn items_made_on_nodes_without_the_federation_lease_reach_the_remote() {
    let f = Fed::start();
    let h = f.holder_seen_by(0);
    let [a, b] = others(h);
    // The remote's traffic arrives at a node that does not carry the queues.
    f.remote_peers_with(a);
    create(&f.nodes[h], "alice");
    create(&f.nodes[h], "carol");
    let ta = login(&f.nodes[a], "alice");
    let tc = login(&f.nodes[b], "carol");
    f.remote.user("bob");
    let tb = f.remote.login("bob", "bob-password");
    let mut alice = Peer::connect(&f.nodes[a], &ta, "desk");
    let mut carol = Peer::connect(&f.nodes[b], &tc, "desk");
    let mut bob = Peer::connect(&f.remote, &tb, "desk");

    // alice asks for bob's presence: a subscription request made on node a.
    add_contact(&f.nodes[a], &ta, "bob@remote.test", "colleagues");
    wait_presence(&mut alice, "bob@remote.test", |v| v["state"] == "available");
    // bob asks for alice's: node a grants it and answers with her presence.
    add_contact(&f.remote, &tb, "alice@pool.test", "colleagues");
    wait_presence(&mut bob, "alice@pool.test", |v| v["state"] == "available");
    // alice's changes go out from wherever her presence group runs.
    alice.ok(json!({"type": "presence.set", "state": "busy"}));
    wait_presence(&mut bob, "alice@pool.test", |v| v["state"] == "busy");

    // Messages from users on both nodes without the lease.
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@remote.test"]}))["conversation"]["id"].clone();
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "from node a"}));
    assert_eq!(im_from(&mut bob, "alice@pool.test")["text"], "from node a");
    let conv = carol.ok(json!({"type": "im.start", "participants": ["bob@remote.test"]}))["conversation"]["id"].clone();
    carol.ok(json!({"type": "im.send", "conversation": conv, "text": "from node b"}));
    assert_eq!(im_from(&mut bob, "carol@pool.test")["text"], "from node b");

    // A message the remote refuses fails once, where its sender is, and shows failed on every
    // node.
    let ghost =
        alice.ok(json!({"type": "im.start", "participants": ["ghost@remote.test"]}))["conversation"]["id"].clone();
    let sent = alice.ok(json!({"type": "im.send", "conversation": ghost, "text": "anyone?"}));
    let failed = alice.event("im.failed");
    assert_eq!(failed["message"], sent["message"]["id"], "{failed}");
    assert_eq!(failed["failure"]["code"], "no_such_user", "{failed}");
    for i in 0..3 {
        let client = f.nodes[i].client(Some(&ta));
        wait_until("the failure on every node", 60, || {
            let h = client.call_json("GET", &format!("/api/v1/conversations/{ghost}/messages"), None).ok()?;
            (h["messages"][0]["failed"] == failed["failure"]).then_some(())
        });
    }

    // The holder's progress marks empty the other nodes' copies of the queue.
    for i in 0..3 {
        wait_until("every node's queue to empty", 60, || (f.queued(i, "remote.test") == 0).then_some(()));
    }
}

/// Sends `count` messages `<prefix><n>` to `conv` through `nodes[0]` (at the rate the node
/// allows), moving to `nodes[1]` (same idempotency key) when a send fails otherwise; returns
/// the texts acknowledged, and how many sends failed so.
fn sender(urls: [String; 2], token: String, conv: u64, prefix: &'static str, count: u32) -> (Vec<String>, u32) {
    let mut acked = Vec::new();
    let mut failed = 0;
    let mut node = 0;
    let mut i = 0;
    while i < count {
        let client = Client::new(&urls[node], Some(token.clone()), None).expect("client");
        let body = json!({"text": format!("{prefix}{i}"), "key": format!("{prefix}-key-{i}")});
        match client.call_json("POST", &format!("/api/v1/conversations/{conv}/messages"), Some(&body)) {
            Ok(_) => {
                acked.push(format!("{prefix}{i}"));
                i += 1;
            }
            Err(halo_client::ClientError::Api { status: 429, .. }) => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                if failed < 5 {
                    eprintln!("send {prefix}{i} through {}: {e}", urls[node]);
                }
                failed += 1;
                node = 1;
            }
        }
    }
    (acked, failed)
}

#[test]
fn the_federation_holder_killed_while_messages_flow_loses_none_and_repeats_at_most_its_batch() {
    let mut f = Fed::start();
    let h = f.holder_seen_by(0);
    let [a, b] = others(h);
    f.remote_peers_with(a);
    create(&f.nodes[a], "alice");
    create(&f.nodes[a], "carol");
    // alice writes through the holder (killed under her), carol through node b.
    let ta = login(&f.nodes[h], "alice");
    let tc = login(&f.nodes[b], "carol");
    f.remote.user("bob");
    let tb = f.remote.login("bob", "bob-password");
    let start = |node: &TestServer, token: &str| {
        let mut p = Peer::connect(node, token, "setup");
        p.ok(json!({"type": "im.start", "participants": ["bob@remote.test"]}))["conversation"]["id"]
            .as_u64()
            .expect("conversation")
    };
    let (conv_a, conv_c) = (start(&f.nodes[h], &ta), start(&f.nodes[b], &tc));

    const COUNT: u32 = 150;
    let urls = |x: usize, y: usize| [f.nodes[x].url.clone(), f.nodes[y].url.clone()];
    let alice = {
        let (urls, ta) = (urls(h, a), ta.clone());
        std::thread::spawn(move || sender(urls, ta, conv_a, "a", COUNT))
    };
    let carol = {
        let (urls, tc) = (urls(b, b), tc.clone());
        std::thread::spawn(move || sender(urls, tc, conv_c, "c", COUNT))
    };
    let bob = f.remote.client(Some(&tb));
    // More than a batch carried before the kill: a holder starting from its own copy of the
    // queue, not from the marks, would send them again.
    let carried = PEER_BATCH as usize + 30;
    wait_until("messages at the remote", 120, || (texts(&bob).len() >= carried).then_some(()));
    f.nodes[h].kill();
    let before = texts(&bob).len();
    let (mut acked, alice_failed) = alice.join().expect("alice");
    let (more, _) = carol.join().expect("carol");
    acked.extend(more);
    // The holder died while both were sending (alice through it).
    eprintln!("at the kill the remote had {before} messages; alice's sends failed {alice_failed} times");
    assert!(before < acked.len(), "killed while messages flowed");
    assert_eq!(acked.len(), 2 * COUNT as usize);

    // Another node takes the lease and carries the rest.
    let new = f.holder_seen_by(a);
    assert_ne!(new, h, "the dead node's lease moved");
    wait_until("every acknowledged message at the remote", 180, || {
        let seen = texts(&bob);
        acked.iter().all(|t| seen.contains_key(t)).then_some(())
    });
    for i in [a, b] {
        wait_until("the queues to empty", 60, || (f.queued(i, "remote.test") == 0).then_some(()));
    }
    let seen = texts(&bob);
    for t in &acked {
        assert_eq!(seen.get(t), Some(&1), "{t} once at the remote: {seen:?}");
    }
    assert_eq!(seen.len(), acked.len(), "nothing else arrived: {seen:?}");
    // What the remote saw twice (and dropped as duplicates): at most the batch the old
    // holder carried and had not marked.
    let o = overview(&f.remote);
    let dups = o["links"]["halo:pool.test"]["duplicates"].as_u64().expect("duplicates counted");
    eprintln!("the remote counted {dups} duplicates");
    assert!(dups <= PEER_BATCH, "{dups} duplicates: {o}");
}

#[test]
fn a_domain_removed_on_one_node_stops_delivery_from_every_node() {
    let mut f = Fed::start();
    let h = f.holder_seen_by(0);
    let [a, b] = others(h);
    f.remote_peers_with(a);
    create(&f.nodes[a], "alice");
    let ta = login(&f.nodes[a], "alice");
    f.remote.user("bob");
    let tb = f.remote.login("bob", "bob-password");
    let mut alice = Peer::connect(&f.nodes[a], &ta, "desk");
    let conv = alice.ok(json!({"type": "im.start", "participants": ["bob@remote.test"]}))["conversation"]["id"].clone();

    // The remote is down: what alice sends waits, in every node's copy of the queue.
    f.remote.kill();
    for n in 0..3 {
        alice.ok(json!({"type": "im.send", "conversation": conv, "text": format!("before {n}")}));
    }
    for i in 0..3 {
        wait_until("the items queued on every node", 60, || (f.queued(i, "remote.test") == 3).then_some(()));
    }

    // Removed through node b: every node forgets the domain and drops what waits for it.
    f.nodes[b].admin().call("DELETE", "/api/v1/admin/federation/domains/remote.test", None).expect("remove the rule");
    for i in 0..3 {
        wait_until("the rule gone and the queue dropped on every node", 60, || {
            let o = overview(&f.nodes[i]);
            let listed = o["domains"].as_array()?.iter().any(|d| d["domain"] == "remote.test");
            (!listed && o["queues"]["remote.test"].as_u64().unwrap_or(0) == 0).then_some(())
        });
        // A message to the domain is refused on every node.
        let send = format!("/api/v1/conversations/{conv}/messages");
        let refused = f.nodes[i].client(Some(&ta)).call_json("POST", &send, Some(&json!({"text": "refused"})));
        let (status, _) = common::api_error(refused.expect_err("refused"));
        assert_eq!(status, 403, "node {i}");
    }

    // The remote back and the domain allowed again (through node a): only what is sent now
    // arrives.
    f.remote.restart();
    let mut bob = Peer::connect(&f.remote, &tb, "desk");
    peer_with(&f.nodes[a], "remote.test", f.remote_port, &f.certs);
    alice.ok(json!({"type": "im.send", "conversation": conv, "text": "after"}));
    assert_eq!(im_from(&mut bob, "alice@pool.test")["text"], "after");
    for i in 0..3 {
        wait_until("the queues to empty", 60, || (f.queued(i, "remote.test") == 0).then_some(()));
    }
    let seen = texts(&f.remote.client(Some(&tb)));
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["after"], "{seen:?}");
}

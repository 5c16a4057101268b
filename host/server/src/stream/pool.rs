//! The hub across a pool: events for users whose sockets are on other nodes.
//!
//! [`PoolHub`] is the services' [`Outbox`] on a pool member. It hands every event to the local
//! [`Hub`] as before, and for each other node where the user has endpoints (the pool's user
//! directory, `halo_services::pool::Members`) publishes it once on that node's subject
//! (`halo.<pool>.node.<node>.ev`): the frame's JSON as payload, whom it is for in headers. A
//! shared event is encoded once for all its recipients and nodes. The receiving node queues the
//! bytes to the user's sockets as a shared frame (JSON sockets get the bytes as they came,
//! MessagePack sockets a transcoding made once). Closing a user's or a token's endpoints goes to
//! every node (`halo.<pool>.close`). Delivery between nodes is at most once, like a socket's
//! queue: a message's durable copy is its delivery queue, replayed after the next `hello`.

use std::sync::{Arc, Mutex};

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use halo_core::Username;
use halo_services::outbox::Shared;
use halo_services::pool::Pool;
use halo_services::{Disconnect, Event, Outbox};
use halo_store::TokenHash;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::hub::Hub;
use super::wire::{ServerFrame, SharedFrame};

const USER: &str = "Halo-User";
const EXCEPT: &str = "Halo-Except";
const ENDPOINT: &str = "Halo-Endpoint";

#[derive(Serialize, Deserialize)]
struct Close {
    user: Option<String>,
    keep: Option<Vec<u8>>,
    token: Option<Vec<u8>>,
    disabled: bool,
}

enum Out {
    Event { node: String, headers: HeaderMap, json: Bytes },
    Close(Bytes),
}

/// The services' outbox on a pool member: the local hub, and the other nodes over NATS.
pub struct PoolHub {
    hub: Arc<Hub>,
    pool: Arc<Pool>,
    out: mpsc::UnboundedSender<Out>,
    /// The last shared event encoded, kept alive so its address names it.
    last: Mutex<Option<(Arc<Shared>, Bytes)>>,
}

fn token_of(bytes: &[u8]) -> Option<TokenHash> {
    bytes.try_into().ok()
}

impl PoolHub {
    /// Joins `hub` to `pool`: reports its endpoints to the directory, receives other nodes'
    /// events for its users and sends them theirs (needs a runtime).
    pub async fn start(hub: Arc<Hub>, pool: Arc<Pool>) -> anyhow::Result<Arc<Self>> {
        hub.set_directory(pool.members().clone());
        let cluster = pool.cluster().clone();
        let client = cluster.client().clone();
        let mut events = client.subscribe(cluster.subject(&format!("node.{}.ev", cluster.node_id()))).await?;
        let mut closes = client.subscribe(cluster.subject("close")).await?;
        let (out, mut rx) = mpsc::unbounded_channel::<Out>();
        let this = Arc::new(Self { hub: hub.clone(), pool: pool.clone(), out, last: Mutex::new(None) });
        // One sender, so events leave in the order they were given.
        let c = cluster.clone();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let client = c.client();
                match out {
                    Out::Event { node, headers, json } => {
                        let subject = c.subject(&format!("node.{node}.ev"));
                        let _ = client.publish_with_headers(subject, headers, json).await;
                    }
                    Out::Close(bytes) => {
                        let _ = client.publish(c.subject("close"), bytes).await;
                    }
                }
            }
        });
        let h = hub.clone();
        tokio::spawn(async move {
            while let Some(msg) = events.next().await {
                deliver(&h, &msg);
            }
        });
        let h = hub;
        tokio::spawn(async move {
            while let Some(msg) = closes.next().await {
                let Ok(close) = rmp_serde::from_slice::<Close>(&msg.payload) else { continue };
                let reason = if close.disabled { Disconnect::AccountDisabled } else { Disconnect::SessionEnded };
                if let Some(user) = close.user.as_deref().and_then(|u| Username::parse(u).ok()) {
                    let keep = close.keep.as_deref().and_then(token_of);
                    Outbox::close_user(h.as_ref(), &user, keep.as_ref(), reason);
                } else if let Some(token) = close.token.as_deref().and_then(token_of) {
                    Outbox::close_token(h.as_ref(), &token, reason);
                }
            }
        });
        Ok(this)
    }

    /// The local hub.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The frame's JSON, made once per shared event.
    fn json(&self, event: &Event) -> Option<Bytes> {
        let encode = |e: &Event| serde_json::to_vec(&ServerFrame::from_event(e)).ok().map(Bytes::from);
        match event {
            Event::Shared(shared) => {
                let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((s, bytes)) = last.as_ref()
                    && Arc::ptr_eq(s, shared)
                {
                    return Some(bytes.clone());
                }
                let bytes = encode(shared.event())?;
                *last = Some((shared.clone(), bytes.clone()));
                Some(bytes)
            }
            other => encode(other),
        }
    }

    fn remote(&self, user: &Username, headers: impl Fn() -> HeaderMap, event: &Event) -> usize {
        if user.is_remote() {
            return 0;
        }
        let nodes = self.pool.members().nodes_of(user);
        if nodes.is_empty() {
            return 0;
        }
        let Some(json) = self.json(event) else { return 0 };
        for node in &nodes {
            let _ = self.out.send(Out::Event { node: node.clone(), headers: headers(), json: json.clone() });
        }
        nodes.len()
    }

    fn close(&self, close: &Close) {
        if let Ok(bytes) = rmp_serde::to_vec_named(close) {
            let _ = self.out.send(Out::Close(bytes.into()));
        }
    }
}

/// Queues an event from another node to the sockets it names.
fn deliver(hub: &Hub, msg: &async_nats::Message) {
    let Some(headers) = msg.headers.as_ref() else { return };
    let Some(user) = headers.get(USER).and_then(|u| Username::parse(u.as_str()).ok()) else { return };
    let frame = ServerFrame::Shared(SharedFrame::from_json(msg.payload.clone()));
    match headers.get(ENDPOINT).and_then(|e| e.as_str().parse::<u64>().ok()) {
        Some(endpoint) => {
            hub.send_to_endpoint(&user, endpoint, &frame);
        }
        None => {
            let except = headers.get(EXCEPT).and_then(|e| e.as_str().parse::<u64>().ok());
            hub.send_to_user(&user, except, &frame);
        }
    }
}

impl Outbox for PoolHub {
    fn to_user(&self, user: &Username, except: Option<u64>, event: &Event) -> usize {
        let local = Outbox::to_user(self.hub.as_ref(), user, except, event);
        let headers = || {
            let mut h = HeaderMap::new();
            h.insert(USER, user.as_str());
            if let Some(e) = except {
                h.insert(EXCEPT, e.to_string().as_str());
            }
            h
        };
        local + self.remote(user, headers, event)
    }

    fn to_endpoint(&self, user: &Username, endpoint: u64, event: &Event) -> bool {
        if Outbox::to_endpoint(self.hub.as_ref(), user, endpoint, event) {
            return true;
        }
        let headers = || {
            let mut h = HeaderMap::new();
            h.insert(USER, user.as_str());
            h.insert(ENDPOINT, endpoint.to_string().as_str());
            h
        };
        self.remote(user, headers, event) > 0
    }

    /// To every endpoint of this node: what goes to everyone (the state catalog) is made by
    /// every node itself.
    fn to_all(&self, event: &Event) {
        Outbox::to_all(self.hub.as_ref(), event);
    }

    fn is_online(&self, user: &Username) -> bool {
        self.hub.is_online(user) || self.pool.members().online_elsewhere(user)
    }

    fn close_user(&self, user: &Username, keep: Option<&TokenHash>, reason: Disconnect) {
        Outbox::close_user(self.hub.as_ref(), user, keep, reason);
        self.close(&Close {
            user: Some(user.to_string()),
            keep: keep.map(|k| k.to_vec()),
            token: None,
            disabled: reason == Disconnect::AccountDisabled,
        });
    }

    fn close_token(&self, token: &TokenHash, reason: Disconnect) {
        Outbox::close_token(self.hub.as_ref(), token, reason);
        self.close(&Close {
            user: None,
            keep: None,
            token: Some(token.to_vec()),
            disabled: reason == Disconnect::AccountDisabled,
        });
    }
}

//! A pool member's storage: the pool's state on NATS JetStream (see docs/pool.md, Storage).
//!
//! - `log.rs`: the IM log as a replicated stream, every node's projection folded from it;
//! - `replica.rs`: the shared trees as replicated KV buckets, each node reading a local replica;
//! - `objects.rs`: plugin components and message attachments in JetStream object stores;
//! - here: the node's slot (the low bits of the ids it hands out), claimed once in the `nodes`
//!   bucket.
//!
//! What stays local to a node (its data directory): the replicas and the copy of the log (caches,
//! rebuilt from the pool), the projection's snapshot, the search index, the compile cache, and
//! the followers' own trees (archive spool, federation queues, cursors), whose once-per-pool
//! running is the pool runtime's part.

mod log;
mod objects;
mod replica;

use async_nats::jetstream::kv;
use halo_cluster::async_nats;

pub use log::JsLog;
pub(crate) use objects::Objects;
pub(crate) use replica::Replicator;

use crate::StoreError;

/// Most nodes in one pool: the ids' slot bits.
pub const MAX_NODES: u64 = 1 << crate::im::SLOT_BITS;

/// Claims this node's slot in the pool's `nodes` bucket (`slot-N` → node name): the slot it
/// held before, else the first free one. Two nodes racing for a slot: the bucket lets one
/// create it; the other tries the next.
pub(crate) async fn claim_slot(cluster: &halo_cluster::Cluster) -> Result<u64, StoreError> {
    let config = kv::Config {
        bucket: cluster.bucket("nodes"),
        history: 1,
        storage: async_nats::jetstream::stream::StorageType::File,
        ..Default::default()
    };
    let js = cluster.jetstream();
    let nodes = cluster
        .place(|num_replicas| js.create_or_update_key_value(kv::Config { num_replicas, ..config.clone() }))
        .await
        .map_err(|e| StoreError::Unavailable(format!("JetStream, the nodes bucket: {e}")))?;
    let me = cluster.node_id().as_bytes();
    let mut free = None;
    for slot in 1..MAX_NODES {
        let held = nodes
            .get(format!("slot-{slot}"))
            .await
            .map_err(|e| StoreError::Unavailable(format!("JetStream, the nodes bucket: {e}")))?;
        match held {
            Some(name) if name.as_ref() == me => return Ok(slot),
            Some(_) => {}
            None => {
                free.get_or_insert(slot);
            }
        }
    }
    let Some(first) = free else {
        return Err(StoreError::Unavailable(format!("the pool has {} nodes already", MAX_NODES - 1)));
    };
    for slot in first..MAX_NODES {
        match nodes.create(format!("slot-{slot}"), me.to_vec().into()).await {
            Ok(_) => return Ok(slot),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => continue,
            Err(e) => return Err(StoreError::Unavailable(format!("JetStream, the nodes bucket: {e}"))),
        }
    }
    Err(StoreError::Unavailable(format!("the pool has {} nodes already", MAX_NODES - 1)))
}

//! Files in the pool's JetStream object stores: plugin components (`halo_<pool>_components`,
//! named by their SHA-256) and message attachments (`halo_<pool>_attachments`, named by their
//! id), so a file stored through one node can be read by every node.
//!
//! An object is cut into chunks of 128 KiB (the client's default, well under NATS's 1 MiB
//! message limit), each published and acknowledged by the stream (stored on a majority of its
//! replicas) before the next; the object's metadata, published last, makes it visible. So
//! [`Objects::put`] returns once the whole object is replicated.

use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use halo_cluster::async_nats;
use tokio::io::AsyncReadExt;

use crate::StoreError;

/// How long a put is tried again while JetStream refuses it (a leader election).
const RETRY_FOR: Duration = Duration::from_secs(30);

/// One of the pool's object stores.
#[derive(Clone)]
pub(crate) struct Objects {
    store: ObjectStore,
    /// What it holds, for errors (`component`, `attachment`).
    what: &'static str,
}

impl Objects {
    /// Opens (or creates) the object store `halo_<pool>_<name>` holding `what`s.
    pub(crate) async fn open(
        cluster: &halo_cluster::Cluster,
        name: &str,
        what: &'static str,
    ) -> Result<Self, StoreError> {
        let js = cluster.jetstream();
        let bucket = cluster.bucket(name);
        let store = match js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(_) => cluster
                .place(|num_replicas| {
                    js.create_object_store(object_store::Config {
                        bucket: bucket.clone(),
                        num_replicas,
                        storage: async_nats::jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                })
                .await
                .map_err(|e| unavailable(&format!("creating the {what} store"), e))?,
        };
        Ok(Self { store, what })
    }

    /// Stores object `name` unless it is there (an object's name says what it holds: it is
    /// never replaced). Returns once JetStream acknowledged every chunk and the metadata; sent
    /// again for up to [`RETRY_FOR`] while JetStream refuses (a failed attempt's chunks, with
    /// no metadata naming them, are never read).
    pub(crate) async fn put(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut pause = Duration::from_millis(100);
        loop {
            if self.store.info(name).await.is_ok() {
                return Ok(());
            }
            let mut reader = bytes;
            match self.store.put(name, &mut reader).await {
                Ok(_) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(error = %e, what = self.what, "storing an object failed; sending it again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(unavailable(&format!("storing a {}", self.what), e)),
            }
        }
    }

    /// Object `name`, if stored.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let what = format!("reading a {}", self.what);
        let mut object = match self.store.get(name).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable(&what, e)),
        };
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(|e| unavailable(&what, e))?;
        Ok(Some(bytes))
    }

    /// Removes object `name` (a component no plugin uses any more).
    pub(crate) async fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.store.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable(&format!("deleting a {}", self.what), e)),
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("JetStream, {what}: {e}"))
}

//! Plugin components in the pool's JetStream object store (`halo_<pool>_components`), named by
//! their SHA-256: a component installed through one node can be loaded by every node.

use async_nats::jetstream::object_store::{self, ObjectStore};
use halo_cluster::async_nats;
use tokio::io::AsyncReadExt;

use crate::StoreError;

/// The pool's component store.
#[derive(Clone)]
pub(crate) struct Objects {
    store: ObjectStore,
}

impl Objects {
    /// Opens (or creates) the object store.
    pub(crate) async fn open(cluster: &halo_cluster::Cluster) -> Result<Self, StoreError> {
        let js = cluster.jetstream();
        let name = cluster.bucket("components");
        let store = match js.get_object_store(&name).await {
            Ok(store) => store,
            Err(_) => cluster
                .place(|num_replicas| {
                    js.create_object_store(object_store::Config {
                        bucket: name.clone(),
                        num_replicas,
                        storage: async_nats::jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                })
                .await
                .map_err(|e| unavailable("creating the component store", e))?,
        };
        Ok(Self { store })
    }

    /// Stores component `sha` (replacing nothing: a component's name is its content's hash).
    pub(crate) async fn put(&self, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if self.store.info(sha).await.is_ok() {
            return Ok(());
        }
        let mut reader = bytes;
        self.store.put(sha, &mut reader).await.map_err(|e| unavailable("storing a component", e))?;
        Ok(())
    }

    /// Component `sha`, if stored.
    pub(crate) async fn get(&self, sha: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut object = match self.store.get(sha).await {
            Ok(o) => o,
            Err(e) if e.kind() == object_store::GetErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(unavailable("reading a component", e)),
        };
        let mut bytes = Vec::new();
        object.read_to_end(&mut bytes).await.map_err(|e| unavailable("reading a component", e))?;
        Ok(Some(bytes))
    }

    /// Removes component `sha` (when no plugin uses it any more).
    pub(crate) async fn delete(&self, sha: &str) -> Result<(), StoreError> {
        match self.store.delete(sha).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(e) => Err(unavailable("deleting a component", e)),
        }
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("JetStream, {what}: {e}"))
}

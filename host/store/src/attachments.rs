//! Files attached to messages: `attachments` (id → [`Upload`], its metadata) and the bytes in
//! files beside the database (`<db>/attachments/<id>`), written, synced and renamed into place
//! before the metadata naming them is flushed: an upload that was acknowledged survives
//! `kill -9`, and a file without metadata (a crash between the two) is never served.
//!
//! In a pool the bytes' durable home is the pool's object store (`halo_<pool>_attachments`,
//! see `pool/objects.rs`) and the metadata is a shared tree (a KV bucket, see `tree.rs`): an
//! upload stores the object (replicated) first, then the metadata, and is acknowledged once
//! both are. The files under `<db>/attachments/` are each node's cache: a node reading an
//! attachment it has no file of (uploaded through another node) fetches it from the object
//! store and keeps it. The metadata reaches other nodes only after the object is stored, so a
//! node that knows an attachment can always fetch it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use halo_core::message::Attachment;
use halo_core::{Millis, Username};

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

const TREE: &str = "attachments";
const DIR: &str = "attachments";

/// An uploaded file: what messages name, who uploaded it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// Id, name, media type, size and hash.
    pub attachment: Attachment,
    /// The uploader (the only one who may attach it to a message).
    pub owner: Username,
    /// When it was uploaded.
    pub at: Millis,
}

/// Typed access to attachments.
#[derive(Clone)]
pub struct Attachments {
    db: crate::flush::Db,
    meta: crate::tree::Tree,
    dir: Option<PathBuf>,
    /// A pool member's object store of attachments.
    objects: Option<crate::pool::Objects>,
}

/// Whether `id` is an attachment id as [`Attachments::put`] accepts them (32 lowercase hex
/// digits): ids name files, so nothing else may reach the file system.
pub fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("attachment file: {e}"))
}

/// Numbers the temporary files of this process, so two writers of one file (two first reads
/// of an attachment filling the cache at once) never share one.
static TMP: AtomicU64 = AtomicU64::new(0);

fn write_file(dir: &Path, id: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{id}.{}.tmp", TMP.fetch_add(1, Ordering::Relaxed)));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(id))?;
    std::fs::File::open(dir)?.sync_all()
}

impl Attachments {
    pub(crate) fn open(
        db: &crate::flush::Db,
        dir: Option<&Path>,
        objects: Option<crate::pool::Objects>,
    ) -> Result<Self, StoreError> {
        Ok(Self { db: db.clone(), meta: crate::tree::Tree::open(db, TREE)?, dir: dir.map(|d| d.join(DIR)), objects })
    }

    /// Writes `bytes` as the file of `id` (synced, renamed into place).
    async fn write(&self, id: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        let dir = self.dir.clone().ok_or_else(|| StoreError::Unavailable("no data directory".into()))?;
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || write_file(&dir, &id, &bytes))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .map_err(io)
    }

    /// Stores an upload: its bytes first (synced to a file; in a pool, stored in the pool's
    /// object store), then its metadata (flushed; in a pool, acknowledged by its bucket);
    /// returns once both are durable.
    pub async fn put(&self, upload: &Upload, bytes: Vec<u8>) -> Result<(), StoreError> {
        let id = upload.attachment.id.as_str();
        if !valid_id(id) {
            return Err(StoreError::Encode { tree: TREE, reason: format!("bad attachment id {id:?}") });
        }
        match &self.objects {
            None => self.write(id, bytes).await?,
            Some(objects) => {
                objects.put(id, &bytes).await?;
                // The node's cache: a file that failed here is fetched again on first read.
                if let Err(e) = self.write(id, bytes).await {
                    tracing::warn!(attachment = %id, error = %e, "caching an uploaded attachment");
                }
            }
        }
        self.meta.insert(id.as_bytes(), encode(TREE, upload)?).db()?;
        self.db.flush().await
    }

    /// An upload's metadata.
    pub fn get(&self, id: &str) -> Result<Option<Upload>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        self.meta.get(id.as_bytes()).db()?.map(|v| decode(TREE, &v)).transpose()
    }

    /// An upload's bytes (`None` when there is no such upload).
    pub async fn read(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if self.get(id)?.is_none() {
            return Ok(None);
        }
        let Some(dir) = &self.dir else { return Ok(None) };
        let path = dir.join(id);
        match tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
        {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.fetch(id).await,
            Err(e) => Err(io(e)),
        }
    }

    /// The bytes of `id` from the pool's object store, kept as this node's file of it.
    async fn fetch(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(objects) = &self.objects else {
            return Err(StoreError::Corrupt(format!("attachment {id} has metadata but no file")));
        };
        let bytes = objects.get(id).await?.ok_or_else(|| {
            StoreError::Corrupt(format!("attachment {id} has metadata but is not in the pool's object store"))
        })?;
        if let Err(e) = self.write(id, bytes.clone()).await {
            tracing::warn!(attachment = %id, error = %e, "caching an attachment from the pool");
        }
        Ok(Some(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_upload_is_stored_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let upload = Upload {
            attachment: Attachment {
                id: "0123456789abcdef0123456789abcdef".into(),
                name: "a.txt".into(),
                mime: "text/plain".into(),
                size: 5,
                sha256: "x".into(),
            },
            owner: Username::parse("ann").expect("valid"),
            at: 7,
        };
        {
            let store = crate::Store::open(dir.path()).expect("open");
            store.attachments().put(&upload, b"hello".to_vec()).await.expect("put");
            assert!(store.attachments().get("../../etc/passwd").expect("get").is_none());
        }
        let store = crate::Store::open(dir.path()).expect("open again");
        assert_eq!(store.attachments().get(&upload.attachment.id).expect("get"), Some(upload.clone()));
        assert_eq!(store.attachments().read(&upload.attachment.id).await.expect("read"), Some(b"hello".to_vec()));
        assert_eq!(store.attachments().read("ffffffffffffffffffffffffffffffff").await.expect("read"), None);
    }
}

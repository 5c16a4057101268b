//! The `blocks` tree: key = blocker, 0, blocked user → (). A blocked user cannot IM the blocker.

use halo_core::Username;

use crate::StoreError;
use crate::keys::user_key;

/// Typed access to block lists.
#[derive(Clone)]
pub struct Blocks {
    db: sled::Db,
    tree: sled::Tree,
}

impl Blocks {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self { db: db.clone(), tree: db.open_tree("blocks")? })
    }

    /// Whether `owner` blocks `other`.
    pub fn blocks(&self, owner: &Username, other: &Username) -> Result<bool, StoreError> {
        Ok(self.tree.contains_key(user_key(owner, other.as_str().as_bytes()))?)
    }

    /// Blocks or unblocks `other` for `owner`, durably.
    pub async fn set(&self, owner: &Username, other: &Username, blocked: bool) -> Result<(), StoreError> {
        let key = user_key(owner, other.as_str().as_bytes());
        if blocked {
            self.tree.insert(key, &[])?;
        } else {
            self.tree.remove(key)?;
        }
        self.db.flush_async().await?;
        Ok(())
    }

    /// Everyone `owner` blocks.
    pub fn of(&self, owner: &Username) -> Result<Vec<Username>, StoreError> {
        let prefix = user_key(owner, &[]);
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Ok(u) = Username::parse(&String::from_utf8_lossy(&k[prefix.len()..])) {
                out.push(u);
            }
        }
        Ok(out)
    }
}

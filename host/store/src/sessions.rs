//! The `sessions` tree (key = SHA-256 of the bearer token, value = [`Session`]) and its index
//! `user_sessions` (key = username, 0, token hash) used to end every session of one account.

use halo_core::{Millis, Username};

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

const TREE: &str = "sessions";
const INDEX: &str = "user_sessions";

/// SHA-256 of a bearer token: tokens themselves are never stored.
pub type TokenHash = [u8; 32];

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Whose session it is.
    pub username: Username,
    /// When the token was issued.
    pub created_at: Millis,
    /// When it stops being accepted.
    pub expires_at: Millis,
}

/// Typed access to sessions.
#[derive(Clone)]
pub struct Sessions {
    db: crate::flush::Db,
    tree: crate::tree::Tree,
    index: crate::tree::Tree,
}

fn index_key(user: &Username, hash: &TokenHash) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.as_str().len() + 1 + hash.len());
    k.extend_from_slice(user.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(hash);
    k
}

fn user_prefix(user: &Username) -> Vec<u8> {
    let mut k = user.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

impl Sessions {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            tree: crate::tree::Tree::open(db, TREE)?,
            index: crate::tree::Tree::open(db, INDEX)?,
        })
    }

    /// Stores a new session durably.
    pub async fn insert(&self, hash: &TokenHash, session: &Session) -> Result<(), StoreError> {
        self.tree.insert(hash, encode(TREE, session)?).db()?;
        self.index.insert(index_key(&session.username, hash), &[]).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// The session behind a token hash, expired or not.
    pub fn get(&self, hash: &TokenHash) -> Result<Option<Session>, StoreError> {
        self.tree.get(hash).db()?.map(|v| decode(TREE, &v)).transpose()
    }

    /// Ends one session durably; `false` if it did not exist.
    pub async fn remove(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let Some(old) = self.tree.remove(hash).db()? else { return Ok(false) };
        let session: Session = decode(TREE, &old)?;
        self.index.remove(index_key(&session.username, hash)).db()?;
        self.db.flush().await?;
        Ok(true)
    }

    /// Ends every session of `user` but `keep` durably; returns how many ended.
    pub async fn remove_all_for(&self, user: &Username, keep: Option<&TokenHash>) -> Result<usize, StoreError> {
        let n = self.remove_all_for_unflushed(user, keep)?;
        self.db.flush().await?;
        Ok(n)
    }

    pub(crate) fn remove_all_for_unflushed(
        &self,
        user: &Username,
        keep: Option<&TokenHash>,
    ) -> Result<usize, StoreError> {
        let prefix = user_prefix(user);
        let mut n = 0;
        for kv in self.index.scan_prefix(&prefix) {
            let (k, _) = kv.db()?;
            let hash = &k[prefix.len()..];
            if keep.is_some_and(|keep| keep.as_slice() == hash) {
                continue;
            }
            self.tree.remove(hash).db()?;
            self.index.remove(k).db()?;
            n += 1;
        }
        Ok(n)
    }

    /// Deletes sessions that expired before `now`; returns how many.
    pub async fn prune_expired(&self, now: Millis) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.tree.iter() {
            let (k, v) = kv.db()?;
            let s: Session = decode(TREE, &v)?;
            if s.expires_at <= now {
                self.tree.remove(&k).db()?;
                let hash: TokenHash = k.as_ref().try_into().unwrap_or([0; 32]);
                self.index.remove(index_key(&s.username, &hash)).db()?;
                n += 1;
            }
        }
        if n > 0 {
            self.db.flush().await?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    use super::*;

    fn session(user: &str, expires_at: Millis) -> Session {
        Session { username: Username::parse(user).expect("valid"), created_at: 0, expires_at }
    }

    #[tokio::test]
    async fn remove_all_for_one_user_and_prune() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let s = store.sessions();
        s.insert(&[1; 32], &session("alice", 100)).await.expect("insert");
        s.insert(&[2; 32], &session("alice", 100)).await.expect("insert");
        s.insert(&[3; 32], &session("alicia", 10)).await.expect("insert");
        let alice = Username::parse("alice").expect("valid");
        assert_eq!(s.remove_all_for(&alice, Some(&[2; 32])).await.expect("remove"), 1);
        assert!(s.get(&[1; 32]).expect("get").is_none());
        assert!(s.get(&[2; 32]).expect("get").is_some(), "the kept session stays");
        assert_eq!(s.remove_all_for(&alice, None).await.expect("remove"), 1);
        assert!(s.get(&[3; 32]).expect("get").is_some(), "a name sharing the prefix keeps its sessions");
        assert_eq!(s.prune_expired(50).await.expect("prune"), 1);
        assert!(s.get(&[3; 32]).expect("get").is_none());
        assert!(!s.remove(&[3; 32]).await.expect("remove"));
    }
}

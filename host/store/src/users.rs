//! The `users` tree: key = normalised username, value = [`User`]; and the `retired_users` tree:
//! key = the username of a deleted account, value = when it was deleted (u64 big-endian ms).
//! A retired name is never given to a new account: its conversations, history and archive
//! records stay attached to that name.

use halo_core::{User, Username};

use crate::codec::{decode, encode};
use crate::{SledResult, StoreError};

const TREE: &str = "users";
const RETIRED_TREE: &str = "retired_users";

/// Typed access to accounts.
#[derive(Clone)]
pub struct Users {
    db: crate::flush::Db,
    tree: crate::tree::Tree,
    retired: crate::tree::Tree,
}

impl Users {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            tree: crate::tree::Tree::open(db, TREE)?,
            retired: crate::tree::Tree::open(db, RETIRED_TREE)?,
        })
    }

    /// The account named `name`, if any.
    pub fn get(&self, name: &Username) -> Result<Option<User>, StoreError> {
        self.tree.get(name.as_str()).db()?.map(|v| decode(TREE, &v)).transpose()
    }

    /// Stores a new account durably; fails with [`StoreError::Exists`] if the name is taken.
    pub async fn create(&self, user: &User) -> Result<(), StoreError> {
        let value = encode(TREE, user)?;
        if !self.tree.create(user.username.as_str().as_bytes(), value).await? {
            return Err(StoreError::Exists(format!("user {}", user.username)));
        }
        self.db.flush().await?;
        Ok(())
    }

    /// Replaces an existing account durably.
    pub async fn put(&self, user: &User) -> Result<(), StoreError> {
        self.tree.insert(user.username.as_str(), encode(TREE, user)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// Retires the name, then removes the account (not flushed; the tombstone is written
    /// first, so no crash leaves the name free without its tombstone).
    pub(crate) fn remove_unflushed(&self, name: &Username, at: u64) -> Result<bool, StoreError> {
        if self.tree.get(name.as_str()).db()?.is_none() {
            return Ok(false);
        }
        self.retired.insert(name.as_str(), &at.to_be_bytes()).db()?;
        Ok(self.tree.remove(name.as_str()).db()?.is_some())
    }

    /// When the account that had `name` was deleted, if it was: the name is retired and no new
    /// account may take it.
    pub fn retired_at(&self, name: &Username) -> Result<Option<u64>, StoreError> {
        Ok(self.retired.get(name.as_str()).db()?.map(|v| crate::keys::u64_at(&v, 0)))
    }

    /// Up to `limit` accounts in name order, starting after `after`.
    pub fn list(&self, after: Option<&Username>, limit: usize) -> Result<Vec<User>, StoreError> {
        let iter = match after {
            Some(a) => self
                .tree
                .range::<&[u8], _>((std::ops::Bound::Excluded(a.as_str().as_bytes()), std::ops::Bound::Unbounded)),
            None => self.tree.iter(),
        };
        iter.take(limit).map(|kv| decode(TREE, &kv.db()?.1)).collect()
    }

    /// Every account (for small scans such as counting admins).
    pub fn all(&self) -> impl Iterator<Item = Result<User, StoreError>> + '_ {
        self.tree.iter().map(|kv| decode(TREE, &kv.db()?.1))
    }

    /// Whether no account exists.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Number of accounts (walks the tree).
    pub fn count(&self) -> usize {
        self.tree.len()
    }
}

#[cfg(test)]
mod tests {
    use halo_core::NewUser;

    use crate::Store;

    use super::*;

    fn user(name: &str) -> User {
        NewUser::default().into_user(Username::parse(name).expect("valid"), "hash".into(), 1).expect("valid")
    }

    #[tokio::test]
    async fn create_get_list_remove_and_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = Store::open(dir.path()).expect("open");
            for n in ["carol", "alice", "bob"] {
                store.users().create(&user(n)).await.expect("create");
            }
            assert!(matches!(store.users().create(&user("bob")).await, Err(StoreError::Exists(_))));
            let names: Vec<String> =
                store.users().list(None, 10).expect("list").into_iter().map(|u| u.username.to_string()).collect();
            assert_eq!(names, ["alice", "bob", "carol"]);
            let after = Username::parse("alice").expect("valid");
            let page = store.users().list(Some(&after), 1).expect("list");
            assert_eq!(page[0].username.as_str(), "bob");
            let carol = Username::parse("carol").expect("valid");
            assert_eq!(store.users().retired_at(&carol).expect("retired"), None);
            assert!(store.remove_user(&carol, 42).await.expect("remove"));
            assert!(!store.remove_user(&carol, 43).await.expect("remove again"));
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.users().count(), 2);
        assert!(store.users().get(&Username::parse("bob").expect("valid")).expect("get").is_some());
        let carol = Username::parse("carol").expect("valid");
        assert!(store.users().get(&carol).expect("get").is_none());
        assert_eq!(store.users().retired_at(&carol).expect("retired"), Some(42), "the tombstone survives a reopen");
        assert_eq!(store.users().list(None, 10).expect("list").len(), 2, "retired names are not listed");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let db = sled::open(dir.path()).expect("sled");
            db.open_tree(crate::META_TREE)
                .expect("meta")
                .insert(crate::SCHEMA_KEY, &99u32.to_be_bytes())
                .expect("insert");
            db.flush().expect("flush");
        }
        assert!(matches!(Store::open(dir.path()), Err(StoreError::SchemaTooNew { found: 99 })));
    }
}

//! The compliance archive: the spool of archived events, which is also the built-in archive.
//!
//! Trees: `archive` (record id → [`Record`]: the archive follower stores each record from the
//! IM log entry of the message it archives, with the follower's cursor in the same
//! transaction, so an acknowledged message is never missing from it), `archive_cursors` (sink name
//! → the last record id it confirmed), `archive_policies` (username → [`Policy`]) and
//! `archive_meta` (the global policy and the [`Settings`]).
//!
//! Records leave only through [`Archive::purge`] (retention). Users deleting their history
//! touch other trees, never this one.
//!
//! Record ids come from [`crate::Im::reserve`]; ids in flight (reserved, not yet written or
//! abandoned) and records in the log not yet stored here hold back readers at
//! [`crate::Im::settled_below`], so a sink reading in id order never skips a record that lands
//! late.

use halo_core::Username;
use halo_core::archive::{Policies, Policy, Record, Settings};

use sled::Transactional;

use crate::codec::{decode, encode};
use crate::log::ArchivePending;
use crate::{SledResult, StoreError};

pub(crate) const RECORDS: &str = "archive";
const CURSORS: &str = "archive_cursors";
const POLICIES: &str = "archive_policies";
const META: &str = "archive_meta";
const GLOBAL_KEY: &[u8] = b"global_policy";
const SETTINGS_KEY: &[u8] = b"settings";

/// Changes of the archive's policies and settings in a pool (see [`Archive::changes`]).
pub struct PolicyChanges {
    policies: tokio::sync::watch::Receiver<u64>,
    meta: tokio::sync::watch::Receiver<u64>,
}

impl PolicyChanges {
    /// Waits for the next change; `false` once the store is gone.
    pub async fn changed(&mut self) -> bool {
        tokio::select! {
            r = self.policies.changed() => r.is_ok(),
            r = self.meta.changed() => r.is_ok(),
        }
    }
}

/// Typed access to the archive.
#[derive(Clone)]
pub struct Archive {
    db: crate::flush::Db,
    pub(crate) records: sled::Tree,
    cursors: sled::Tree,
    policies: crate::tree::Tree,
    meta: crate::tree::Tree,
    log_cursors: sled::Tree,
    pending: ArchivePending,
}

impl Archive {
    pub(crate) fn open(
        db: &crate::flush::Db,
        log_cursors: sled::Tree,
        pending: ArchivePending,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            log_cursors,
            pending,
            db: db.clone(),
            records: db.open_tree(RECORDS).db()?,
            cursors: db.open_tree(CURSORS).db()?,
            policies: crate::tree::Tree::open(db, POLICIES)?,
            meta: crate::tree::Tree::open(db, META)?,
        })
    }

    /// Stores `records` from the IM log, and the archive follower's cursor `upto` (the log
    /// entry they came up to) in the same transaction. Not flushed: after a crash the follower
    /// stores them again (same ids, same records).
    pub fn store_from_log(&self, records: &[Record], upto: u64) -> Result<(), StoreError> {
        let values = records.iter().map(|r| Ok((r.id, encode(RECORDS, r)?))).collect::<Result<Vec<_>, StoreError>>()?;
        let r = (&self.records, &self.log_cursors).transaction(|(tree, cursors)| {
            for (id, v) in &values {
                tree.insert(&id.to_be_bytes(), v.as_slice())?;
            }
            cursors.insert(crate::ARCHIVE_FOLLOWER, &upto.to_be_bytes())?;
            Ok(())
        });
        crate::im::tx_result(r)?;
        self.pending.stored(&records.iter().map(|r| r.id).collect::<Vec<_>>());
        Ok(())
    }

    /// Records with `after < id < below`, in id order, at most `limit`.
    pub fn after(&self, after: u64, below: u64, limit: usize) -> Result<Vec<Record>, StoreError> {
        if after.saturating_add(1) >= below {
            return Ok(Vec::new());
        }
        let range = (after + 1).to_be_bytes()..below.to_be_bytes();
        self.records.range(range).take(limit).map(|kv| decode(RECORDS, &kv.db()?.1)).collect()
    }

    /// The record `id`, if kept.
    pub fn get(&self, id: u64) -> Result<Option<Record>, StoreError> {
        self.records.get(id.to_be_bytes()).db()?.map(|v| decode(RECORDS, &v)).transpose()
    }

    /// How many records have an id above `after` (counting stops at `cap`).
    pub fn count_after(&self, after: u64, cap: u64) -> Result<u64, StoreError> {
        let mut n = 0;
        for kv in self.records.range(after.saturating_add(1).to_be_bytes()..) {
            kv.db()?;
            n += 1;
            if n >= cap {
                break;
            }
        }
        Ok(n)
    }

    /// The newest record's id (0: none kept).
    pub fn last_id(&self) -> Result<u64, StoreError> {
        Ok(self.records.last().db()?.map_or(0, |(k, _)| crate::keys::u64_at(&k, 0)))
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Deletes records older than `before` (ms) with ids up to `max_id`, oldest first, at most
    /// `limit` per call; returns their ids. Ids increase with arrival, so the scan stops at the
    /// first record that is too new.
    pub async fn purge(&self, before: u64, max_id: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut gone = Vec::new();
        for kv in self.records.range(..=max_id.to_be_bytes()) {
            let (k, v) = kv.db()?;
            let r: Record = decode(RECORDS, &v)?;
            if r.at >= before || gone.len() >= limit {
                break;
            }
            self.records.remove(k).db()?;
            gone.push(r.id);
        }
        if !gone.is_empty() {
            self.db.flush().await?;
        }
        Ok(gone)
    }

    /// The last record id sink `name` confirmed (0: none yet).
    pub fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        Ok(self.cursors.get(name).db()?.map_or(0, |v| crate::keys::u64_at(&v, 0)))
    }

    /// Every sink's cursor.
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.cursors
            .iter()
            .map(|kv| {
                let (k, v) = kv.db()?;
                Ok((String::from_utf8_lossy(&k).into_owned(), crate::keys::u64_at(&v, 0)))
            })
            .collect()
    }

    /// Moves sink `name`'s cursor, durably (so a restart does not resend). A sink removed
    /// meanwhile (its cursor gone) gets none back: a delivery finishing as its sink is removed
    /// must not leave a cursor that a reinstalled sink would start from.
    pub async fn set_cursor(&self, name: &str, id: u64) -> Result<(), StoreError> {
        self.cursors.update_and_fetch(name, |old| old.map(|_| id.to_be_bytes().to_vec())).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// Registers sink `name` with a cursor at the start unless it has one: from then on it
    /// holds retention back until it stores the records, even while disabled.
    pub async fn add_cursor(&self, name: &str) -> Result<(), StoreError> {
        if self.cursors.get(name).db()?.is_none() {
            self.cursors.insert(name, &0u64.to_be_bytes()).db()?;
            self.db.flush().await?;
        }
        Ok(())
    }

    /// Forgets sink `name` (it was removed).
    pub async fn remove_cursor(&self, name: &str) -> Result<(), StoreError> {
        self.cursors.remove(name).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// The global and per-user policies.
    pub fn policies(&self) -> Result<Policies, StoreError> {
        let global = self.meta.get(GLOBAL_KEY).db()?.map(|v| decode(META, &v)).transpose()?.unwrap_or(Policy::OFF);
        let mut users = std::collections::BTreeMap::new();
        for kv in self.policies.iter() {
            let (k, v) = kv.db()?;
            if let Ok(u) = Username::parse(&String::from_utf8_lossy(&k)) {
                users.insert(u, decode(POLICIES, &v)?);
            }
        }
        Ok(Policies { global, users })
    }

    /// Sets the global policy, durably.
    pub async fn set_global(&self, policy: Policy) -> Result<(), StoreError> {
        self.meta.insert(GLOBAL_KEY, encode(META, &policy)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// Sets (or with `None` removes) `user`'s own policy, durably.
    pub async fn set_user(&self, user: &Username, policy: Option<Policy>) -> Result<(), StoreError> {
        match policy {
            Some(p) => self.policies.insert(user.as_str(), encode(POLICIES, &p)?).db()?,
            None => self.policies.remove(user.as_str()).db()?,
        };
        self.db.flush().await?;
        Ok(())
    }

    /// In a pool, the changes of the policies and settings as they reach this node (written
    /// through any node): who keeps them in memory reads them again on each. `None` alone.
    pub fn changes(&self) -> Option<PolicyChanges> {
        Some(PolicyChanges { policies: self.policies.changes()?, meta: self.meta.changes()? })
    }

    /// The archiving settings.
    pub fn settings(&self) -> Result<Settings, StoreError> {
        Ok(self.meta.get(SETTINGS_KEY).db()?.map(|v| decode(META, &v)).transpose()?.unwrap_or_default())
    }

    /// Replaces the settings, durably.
    pub async fn set_settings(&self, settings: &Settings) -> Result<(), StoreError> {
        self.meta.insert(SETTINGS_KEY, encode(META, settings)?).db()?;
        self.db.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_removed_sink_is_not_given_its_cursor_back_by_a_late_delivery() {
        let dir = tempfile::tempdir().expect("test");
        let store = crate::Store::open(dir.path()).expect("test");
        let archive = store.archive();
        archive.add_cursor("sink").await.expect("test");
        archive.set_cursor("sink", 6).await.expect("test");
        assert_eq!(archive.cursor("sink").expect("test"), 6);
        archive.remove_cursor("sink").await.expect("test");
        // A delivery that finished as its sink was removed.
        archive.set_cursor("sink", 6).await.expect("test");
        assert!(archive.cursors().expect("test").is_empty());
        // Installed again: from the start.
        archive.add_cursor("sink").await.expect("test");
        assert_eq!(archive.cursors().expect("test"), [("sink".to_string(), 0)]);
    }
}

//! Presence storage: `presence` (user → [`Document`]), `contacts` (user → [`ContactList`]),
//! `pictures` (user → image bytes), `app_tokens` (token hash → [`AppToken`]).

use halo_core::contacts::ContactList;
use halo_core::presence::Document;
use halo_core::{Millis, Username};

use crate::codec::{decode, encode};
use crate::sessions::TokenHash;
use crate::{Pending, SledResult, StoreError};

const PRESENCE: &str = "presence";
const CONTACTS: &str = "contacts";
const PICTURES: &str = "pictures";
const APP_TOKENS: &str = "app_tokens";

/// A token an admin issued to another application, with what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppToken {
    /// Name shown to admins (unique).
    pub name: String,
    /// Scopes: `presence:read`, `calendar:write`, `phone:write`.
    pub scopes: Vec<String>,
    /// Issuing admin.
    pub created_by: String,
    /// When.
    pub created_at: Millis,
}

/// Typed access to presence data.
#[derive(Clone)]
pub struct Presence {
    db: crate::flush::Db,
    documents: crate::tree::Tree,
    contacts: crate::tree::Tree,
    pictures: crate::tree::Tree,
    apps: crate::tree::Tree,
}

impl Presence {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            documents: crate::tree::Tree::open(db, PRESENCE)?,
            contacts: crate::tree::Tree::open(db, CONTACTS)?,
            pictures: crate::tree::Tree::open(db, PICTURES)?,
            apps: crate::tree::Tree::open(db, APP_TOKENS)?,
        })
    }

    /// `user`'s presence document (default when never set).
    pub fn document(&self, user: &Username) -> Result<Document, StoreError> {
        Ok(self.documents.get(user.as_str()).db()?.map(|v| decode(PRESENCE, &v)).transpose()?.unwrap_or_default())
    }

    /// Writes `user`'s document. Readers see it at once; it is durable once the returned
    /// [`Pending`] is committed, which the caller does before acknowledging (presence writes
    /// happen under the presence engine's lock, which must not wait for the disk).
    pub fn put_document(&self, user: &Username, doc: &Document) -> Result<Pending, StoreError> {
        self.documents.insert(user.as_str(), encode(PRESENCE, doc)?).db()?;
        Ok(Pending::new(&self.db))
    }

    /// `user`'s contact list.
    pub fn contacts(&self, user: &Username) -> Result<ContactList, StoreError> {
        Ok(self.contacts.get(user.as_str()).db()?.map(|v| decode(CONTACTS, &v)).transpose()?.unwrap_or_default())
    }

    /// Writes `user`'s contact list; durable once the returned [`Pending`] is committed.
    pub fn put_contacts(&self, user: &Username, list: &ContactList) -> Result<Pending, StoreError> {
        self.contacts.insert(user.as_str(), encode(CONTACTS, list)?).db()?;
        Ok(Pending::new(&self.db))
    }

    /// `user`'s picture bytes.
    pub fn picture(&self, user: &Username) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.pictures.get(user.as_str()).db()?.map(|v| v.to_vec()))
    }

    /// Writes or removes `user`'s picture bytes; durable once the returned [`Pending`] is
    /// committed (with the document naming it, so both land together).
    pub fn put_picture(&self, user: &Username, bytes: Option<&[u8]>) -> Result<Pending, StoreError> {
        match bytes {
            Some(b) => self.pictures.insert(user.as_str(), b).db()?,
            None => self.pictures.remove(user.as_str()).db()?,
        };
        Ok(Pending::new(&self.db))
    }

    /// The app token behind a hash.
    pub fn app_token(&self, hash: &TokenHash) -> Result<Option<AppToken>, StoreError> {
        self.apps.get(hash).db()?.map(|v| decode(APP_TOKENS, &v)).transpose()
    }

    /// Every app token with its hash.
    pub fn app_tokens(&self) -> Result<Vec<(TokenHash, AppToken)>, StoreError> {
        self.apps
            .iter()
            .map(|kv| {
                let (k, v) = kv.db()?;
                let hash: TokenHash = k.as_ref().try_into().unwrap_or([0; 32]);
                Ok((hash, decode(APP_TOKENS, &v)?))
            })
            .collect()
    }

    /// Stores an app token durably.
    pub async fn put_app_token(&self, hash: &TokenHash, token: &AppToken) -> Result<(), StoreError> {
        self.apps.insert(hash, encode(APP_TOKENS, token)?).db()?;
        self.db.flush().await?;
        Ok(())
    }

    /// Revokes an app token durably.
    pub async fn remove_app_token(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let existed = self.apps.remove(hash).db()?.is_some();
        self.db.flush().await?;
        Ok(existed)
    }
}

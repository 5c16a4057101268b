//! Presence storage: `presence` (user → [`Document`]), `contacts` (user → [`ContactList`]),
//! `pictures` (user → image bytes), `app_tokens` (token hash → [`AppToken`]).

use halo_core::contacts::ContactList;
use halo_core::presence::Document;
use halo_core::{Millis, Username};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::codec::{decode, encode};
use crate::sessions::TokenHash;

const PRESENCE: &str = "presence";
const CONTACTS: &str = "contacts";
const PICTURES: &str = "pictures";
const APP_TOKENS: &str = "app_tokens";

/// A token an admin issued to another application, with what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    documents: sled::Tree,
    contacts: sled::Tree,
    pictures: sled::Tree,
    apps: sled::Tree,
}

impl Presence {
    pub(crate) fn open(db: &crate::flush::Db) -> Result<Self, StoreError> {
        Ok(Self {
            db: db.clone(),
            documents: db.open_tree(PRESENCE)?,
            contacts: db.open_tree(CONTACTS)?,
            pictures: db.open_tree(PICTURES)?,
            apps: db.open_tree(APP_TOKENS)?,
        })
    }

    /// `user`'s presence document (default when never set).
    pub fn document(&self, user: &Username) -> Result<Document, StoreError> {
        Ok(self.documents.get(user.as_str())?.map(|v| decode(PRESENCE, &v)).transpose()?.unwrap_or_default())
    }

    /// Writes `user`'s document; durable after the next [`crate::Store::flush`], which the
    /// caller awaits before acknowledging (presence writes happen under the presence engine's
    /// lock, which must not wait for the disk).
    pub fn put_document(&self, user: &Username, doc: &Document) -> Result<(), StoreError> {
        self.documents.insert(user.as_str(), encode(PRESENCE, doc)?)?;
        Ok(())
    }

    /// `user`'s contact list.
    pub fn contacts(&self, user: &Username) -> Result<ContactList, StoreError> {
        Ok(self.contacts.get(user.as_str())?.map(|v| decode(CONTACTS, &v)).transpose()?.unwrap_or_default())
    }

    /// Writes `user`'s contact list; durable after the next [`crate::Store::flush`].
    pub fn put_contacts(&self, user: &Username, list: &ContactList) -> Result<(), StoreError> {
        self.contacts.insert(user.as_str(), encode(CONTACTS, list)?)?;
        Ok(())
    }

    /// `user`'s picture bytes.
    pub fn picture(&self, user: &Username) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.pictures.get(user.as_str())?.map(|v| v.to_vec()))
    }

    /// Writes or removes `user`'s picture bytes; durable after the next [`crate::Store::flush`].
    pub fn put_picture(&self, user: &Username, bytes: Option<&[u8]>) -> Result<(), StoreError> {
        match bytes {
            Some(b) => self.pictures.insert(user.as_str(), b)?,
            None => self.pictures.remove(user.as_str())?,
        };
        Ok(())
    }

    /// The app token behind a hash.
    pub fn app_token(&self, hash: &TokenHash) -> Result<Option<AppToken>, StoreError> {
        self.apps.get(hash)?.map(|v| decode(APP_TOKENS, &v)).transpose()
    }

    /// Every app token with its hash.
    pub fn app_tokens(&self) -> Result<Vec<(TokenHash, AppToken)>, StoreError> {
        self.apps
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                let hash: TokenHash = k.as_ref().try_into().unwrap_or([0; 32]);
                Ok((hash, decode(APP_TOKENS, &v)?))
            })
            .collect()
    }

    /// Stores an app token durably.
    pub async fn put_app_token(&self, hash: &TokenHash, token: &AppToken) -> Result<(), StoreError> {
        self.apps.insert(hash, encode(APP_TOKENS, token)?)?;
        self.db.flush().await?;
        Ok(())
    }

    /// Revokes an app token durably.
    pub async fn remove_app_token(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        let existed = self.apps.remove(hash)?.is_some();
        self.db.flush().await?;
        Ok(existed)
    }
}

//! One held user: their snapshot, contacts, devices and where their state derivation stands.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::effect::Snapshot;
use super::input::{Stored, Viewer};
use crate::contacts::ContactList;
use crate::presence::{AccessLevel, CustomState, Inputs, Machine, Published, Visibility};
use crate::{Millis, Username};

pub(super) struct Entry {
    /// Account, document and published state, shared with publications and answers.
    pub snap: Arc<Snapshot>,
    pub contacts: ContactList,
    /// Connected devices by endpoint.
    pub endpoints: BTreeMap<u64, Machine>,
    /// The last device and when it left, while the grace period runs.
    pub lingering: Option<(Machine, Millis)>,
    /// The last built-in result.
    pub builtin: Published,
    /// The latest derive request (answers to others are stale).
    pub derive_seq: u64,
    /// When aggregation said the state may change by itself.
    pub deadline: Option<Millis>,
}

impl Entry {
    pub fn new(stored: Stored, custom: Arc<Vec<CustomState>>) -> Self {
        let snap =
            Snapshot { user: stored.account, doc: stored.doc, published: Published::offline(), since: 0, custom };
        Self {
            snap: Arc::new(snap),
            contacts: stored.contacts,
            endpoints: BTreeMap::new(),
            lingering: None,
            builtin: Published::offline(),
            derive_seq: 0,
            deadline: None,
        }
    }

    pub fn username(&self) -> &Username {
        &self.snap.user.username
    }

    pub fn online(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// The snapshot, to change (cloned if a publication or answer still holds it).
    pub fn snap_mut(&mut self) -> &mut Snapshot {
        Arc::make_mut(&mut self.snap)
    }

    /// What aggregation reads.
    pub fn inputs(&self) -> Inputs {
        let doc = &self.snap.doc;
        Inputs {
            manual: doc.manual.clone(),
            endpoints: self.endpoints.clone(),
            lingering: self.lingering,
            calendar: doc.calendar.clone(),
            phone: doc.phone,
        }
    }

    /// How `viewer` sees this user: the owner everything; a contact through their level; others
    /// at Colleagues (users of other servers at External), or Private in privacy mode; apps as
    /// colleagues; nobody signed in as External (Private in privacy mode).
    pub fn visibility(&self, viewer: &Viewer) -> Visibility {
        let privacy = self.snap.doc.privacy_mode;
        match viewer {
            Viewer::User(v) => Visibility::resolve(
                v == self.username(),
                self.contacts.level_of(v),
                privacy,
                if v.is_remote() { AccessLevel::External } else { AccessLevel::Colleagues },
            ),
            Viewer::App => Visibility::Level(AccessLevel::Colleagues),
            Viewer::Anonymous if privacy => Visibility::Private,
            Viewer::Anonymous => Visibility::Level(AccessLevel::External),
        }
    }
}

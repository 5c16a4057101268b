//! Federated presence: remote users' presence as their servers report it, the remote users
//! who follow local users, and the outbox that carries local changes to them.
//!
//! The federation service feeds this (`remote_presence`, `set_follower`) and drains the
//! outbox; presence itself stays the one place that decides who sees what: a remote follower
//! sees a local user through the access-level table like anyone else, at External unless the
//! owner put them on another level. Each remote user's presence and watchers live on the shard
//! of their address, each local user's followers on the local user's.

use std::collections::BTreeMap;

use halo_core::Username;
use halo_core::federation::PresenceInfo;
use halo_core::presence::engine::Input;
use tokio::sync::mpsc;

use super::PresenceService;
use super::view::PresenceView;

/// A local user's presence for one remote follower.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The local user.
    pub from: Username,
    /// The remote follower.
    pub to: Username,
    /// What the follower may see.
    pub view: PresenceView,
}

impl PresenceService {
    /// Connects federation: installs the remote followers and returns the outbox of local
    /// presence changes for them.
    pub fn federate(&self, followers: BTreeMap<Username, Vec<Username>>) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        if self.world.federation.set(tx).is_err() {
            tracing::warn!("federation connected to presence twice; keeping the first");
        }
        self.world.send(Input::RemoteFollowers(followers), None);
        rx
    }

    /// Every local user's remote followers, as stored, for an engine started afresh (a pool
    /// member taking a user group keeps those of the group's users).
    pub(crate) fn remote_followers(&self) -> Input {
        Input::RemoteFollowers(self.store.federation().all_followers().unwrap_or_default())
    }

    /// Lets remote user `remote` follow `local`'s presence (`on`), or stops it.
    pub fn set_follower(&self, local: &Username, remote: &Username, on: bool) {
        self.world.send(Input::RemoteFollower { local: local.clone(), remote: remote.clone(), on }, None);
    }

    /// What `remote`'s server says of their presence: kept, and shown to every online local
    /// user with them in their contacts. Ignored unless some local user has them as a contact
    /// (`wanted`), so a remote server cannot fill the cache.
    pub fn remote_presence(&self, remote: &Username, info: PresenceInfo, wanted: bool) {
        if wanted {
            self.world.send(Input::RemotePresence { remote: remote.clone(), info: Some(info.sanitised()) }, None);
        }
    }

    /// `remote`'s server cannot be reached: their presence is unknown until it says again.
    pub fn remote_unknown(&self, remote: &Username) {
        self.world.send(Input::RemotePresence { remote: remote.clone(), info: None }, None);
    }

    /// Whether local user `owner` has `remote` in their contacts.
    pub async fn has_contact(&self, owner: &Username, remote: &Username) -> bool {
        self.contacts(owner).await.is_ok_and(|list| list.contacts.contains_key(remote))
    }
}

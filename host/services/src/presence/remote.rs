//! Federated presence: remote users' presence as their servers report it, the remote users
//! who follow local users, and the outbox that carries local changes to them.
//!
//! The federation service feeds this (`remote_presence`, `set_follower`) and drains the
//! outbox; presence itself stays the one place that decides who sees what: a remote follower
//! sees a local user through the access-level table like anyone else, at External unless the
//! owner put them on another level.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{OnceLock, RwLock};

use halo_core::Username;
use halo_core::federation::PresenceInfo;
use tokio::sync::mpsc;

use super::view::{PresenceView, remote_view};
use super::{Engine, Entry, PresenceService, Viewer};
use crate::clock::now_ms;
use crate::outbox::{Event, Shared};

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

/// Federated presence state.
#[derive(Default)]
pub(super) struct Remote {
    views: RwLock<HashMap<Username, PresenceView>>,
    followers: RwLock<HashMap<Username, HashSet<Username>>>,
    outbox: OnceLock<mpsc::UnboundedSender<Outgoing>>,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Remote {
    /// A remote user's presence (unknown until their server says).
    pub(super) fn view(&self, addr: &Username) -> PresenceView {
        read(&self.views).get(addr).cloned().unwrap_or_else(|| remote_view(addr, None, 0))
    }

    /// Queues `entry`'s presence for its remote followers, as each may see it.
    pub(super) fn fan_out(&self, entry: &mut Entry, target: &Username, custom: &[halo_core::presence::CustomState]) {
        let Some(outbox) = self.outbox.get() else { return };
        let followers = read(&self.followers);
        let Some(fs) = followers.get(target) else { return };
        for f in fs {
            let vis = entry.visibility(Viewer::User(f));
            if vis.hears_changes() {
                let _ = outbox.send(Outgoing { from: target.clone(), to: f.clone(), view: entry.view(vis, custom) });
            }
        }
    }
}

impl PresenceService {
    /// Connects federation: installs the remote followers and returns the outbox of local
    /// presence changes for them.
    pub fn federate(&self, followers: BTreeMap<Username, Vec<Username>>) -> mpsc::UnboundedReceiver<Outgoing> {
        let (tx, rx) = mpsc::unbounded_channel();
        *write(&self.remote.followers) =
            followers.into_iter().map(|(l, rs)| (l, rs.into_iter().collect::<HashSet<_>>())).collect();
        if self.remote.outbox.set(tx).is_err() {
            tracing::warn!("federation connected to presence twice; keeping the first");
        }
        rx
    }

    /// Lets remote user `remote` follow `local`'s presence (`on`), or stops it.
    pub fn set_follower(&self, local: &Username, remote: &Username, on: bool) {
        let mut f = write(&self.remote.followers);
        if on {
            f.entry(local.clone()).or_default().insert(remote.clone());
        } else if let Some(set) = f.get_mut(local) {
            set.remove(remote);
            if set.is_empty() {
                f.remove(local);
            }
        }
    }

    /// What `remote`'s server says of their presence: kept, and shown to every online local
    /// user with them in their contacts. Ignored unless some local user has them as a contact
    /// (`wanted`), so a remote server cannot fill the cache.
    pub fn remote_presence(&self, remote: &Username, info: PresenceInfo, wanted: bool) {
        if !wanted {
            return;
        }
        let view = remote_view(remote, Some(&info.sanitised()), now_ms());
        let event = Event::Shared(Shared::new(Event::Presence { presence: view.clone() }));
        write(&self.remote.views).insert(remote.clone(), view);
        let e: std::sync::MutexGuard<'_, Engine> = self.engine();
        let mut sent = 0u64;
        if let Some(ws) = e.watchers.get(remote) {
            for w in ws {
                sent += self.outbox.to_user(w, None, &event) as u64;
            }
        }
        self.metrics.presence_notifications.inc_by(sent);
    }

    /// `remote`'s server cannot be reached: their presence is unknown until it says again.
    pub fn remote_unknown(&self, remote: &Username) {
        let Some(old) = write(&self.remote.views).remove(remote) else { return };
        if old.state == "unknown" {
            return;
        }
        let event = Event::Shared(Shared::new(Event::Presence { presence: remote_view(remote, None, 0) }));
        let e: std::sync::MutexGuard<'_, Engine> = self.engine();
        if let Some(ws) = e.watchers.get(remote) {
            for w in ws {
                self.outbox.to_user(w, None, &event);
            }
        }
    }

    /// Whether local user `owner` has `remote` in their contacts.
    pub fn has_contact(&self, owner: &Username, remote: &Username) -> bool {
        let mut e = self.engine();
        self.load(&mut e, owner).is_ok_and(|entry| entry.contacts.contacts.contains_key(remote))
    }
}

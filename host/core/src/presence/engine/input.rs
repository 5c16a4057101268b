//! What goes into the engine: [`Input`] and the data it carries.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shard::shard_of;
use crate::contacts::{ContactError, ContactList};
use crate::federation::PresenceInfo;
use crate::presence::{
    AccessLevel, Calendar, CustomState, Document, MachineState, Manual, Phone, PictureMeta, Published,
};
use crate::{Millis, User, Username};

/// Identifies a caller's request; every [`Input`] that carries one is answered by exactly one
/// [`super::Effect::Reply`] with the same id (possibly after loads).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Req(pub u64);

/// Who asks to see presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Viewer {
    /// A signed-in user (local, or a remote user of a federated server).
    User(Username),
    /// An application with an app token (sees what colleagues see).
    App,
    /// Nobody signed in (sees what External sees; nothing of availability in privacy mode).
    Anonymous,
}

/// A change to a presence document; each `Some` field replaces the stored one. Values are
/// validated by the caller (`check_text`, `check_idle_minutes`); a manual state ending in the
/// past is refused by the engine, which knows the time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocPatch {
    /// Manual state.
    #[serde(default, with = "crate::serde_util::patch")]
    pub manual: Option<Option<Manual>>,
    /// Calendar input.
    #[serde(default, with = "crate::serde_util::patch")]
    pub calendar: Option<Option<Calendar>>,
    /// Phone input.
    #[serde(default, with = "crate::serde_util::patch")]
    pub phone: Option<Option<Phone>>,
    /// Personal note.
    #[serde(default, with = "crate::serde_util::patch")]
    pub note: Option<Option<String>>,
    /// Out-of-office note.
    #[serde(default, with = "crate::serde_util::patch")]
    pub ooo_note: Option<Option<String>>,
    /// Location.
    #[serde(default, with = "crate::serde_util::patch")]
    pub location: Option<Option<String>>,
    /// Mobile phone.
    #[serde(default, with = "crate::serde_util::patch")]
    pub mobile_phone: Option<Option<String>>,
    /// Home phone.
    #[serde(default, with = "crate::serde_util::patch")]
    pub home_phone: Option<Option<String>>,
    /// Only contacts see the availability.
    pub privacy_mode: Option<bool>,
    /// Hide the last-active time.
    pub hide_last_active: Option<bool>,
    /// Idle timeout, minutes.
    pub idle_minutes: Option<u32>,
    /// The picture's metadata (the bytes are stored by the caller first).
    #[serde(default, with = "crate::serde_util::patch")]
    pub picture: Option<Option<PictureMeta>>,
}

impl DocPatch {
    /// Writes the set fields into `doc`.
    pub fn apply(self, doc: &mut Document) {
        fn set<T>(slot: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *slot = v;
            }
        }
        set(&mut doc.manual, self.manual);
        set(&mut doc.calendar, self.calendar);
        set(&mut doc.phone, self.phone);
        set(&mut doc.note, self.note);
        set(&mut doc.ooo_note, self.ooo_note);
        set(&mut doc.location, self.location);
        set(&mut doc.mobile_phone, self.mobile_phone);
        set(&mut doc.home_phone, self.home_phone);
        set(&mut doc.privacy_mode, self.privacy_mode);
        set(&mut doc.hide_last_active, self.hide_last_active);
        set(&mut doc.idle_minutes, self.idle_minutes);
        set(&mut doc.picture, self.picture);
    }
}

/// A change to a contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContactEdit {
    /// Adds a contact (default group unless given).
    Add {
        /// Who.
        user: Username,
        /// Group id.
        group: Option<u32>,
        /// Access level.
        level: AccessLevel,
    },
    /// Moves a contact and/or changes its level.
    Update {
        /// Who.
        user: Username,
        /// New group.
        group: Option<u32>,
        /// New level.
        level: Option<AccessLevel>,
    },
    /// Removes a contact.
    Remove {
        /// Who.
        user: Username,
    },
    /// Adds a group at the end, or at `position`.
    AddGroup {
        /// Name.
        name: String,
        /// Position.
        position: Option<usize>,
    },
    /// Renames and/or moves a group.
    EditGroup {
        /// Group id.
        id: u32,
        /// New name.
        name: Option<String>,
        /// New position.
        position: Option<usize>,
    },
    /// Deletes a group; its contacts move to the default group.
    RemoveGroup {
        /// Group id.
        id: u32,
    },
    /// Puts `user` at the Blocked level (adding them if needed).
    Block {
        /// Who.
        user: Username,
    },
    /// Puts a Blocked `user` back at Colleagues (nothing otherwise).
    Unblock {
        /// Who.
        user: Username,
    },
}

impl ContactEdit {
    /// Applies the edit to `owner`'s `list`.
    pub fn apply(&self, owner: &Username, list: &mut ContactList, max: usize, now: Millis) -> Result<(), ContactError> {
        match self {
            ContactEdit::Add { user, group, level } => list.add(owner, user, *group, *level, max, now),
            ContactEdit::Update { user, group, level } => list.update(user, *group, *level),
            ContactEdit::Remove { user } => list.remove(user),
            ContactEdit::AddGroup { name, position } => {
                let id = list.add_group(name)?;
                if position.is_some() {
                    list.edit_group(id, None, *position)?;
                }
                Ok(())
            }
            ContactEdit::EditGroup { id, name, position } => list.edit_group(*id, name.as_deref(), *position),
            ContactEdit::RemoveGroup { id } => list.remove_group(*id),
            ContactEdit::Block { user } if list.contacts.contains_key(user) => {
                list.update(user, None, Some(AccessLevel::Blocked))
            }
            ContactEdit::Block { user } => list.add(owner, user, None, AccessLevel::Blocked, max, now),
            ContactEdit::Unblock { user } => match list.level_of(user) {
                Some(AccessLevel::Blocked) => list.update(user, None, Some(AccessLevel::Colleagues)),
                _ => Ok(()),
            },
        }
    }
}

/// A user's stored data, as the engine asked for it with [`super::Effect::Load`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The account (contact-card fields).
    pub account: User,
    /// The presence document.
    pub doc: Document,
    /// The contact list.
    pub contacts: ContactList,
}

/// Something that happened, handed to the shard that owns the user it concerns
/// ([`Input::key`]); `None` keys go to every shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A device of `user` connected: it counts as Active; on the first device the user starts
    /// watching their contacts. Answered with [`super::Answer::Connected`].
    Connect {
        /// Whose device.
        user: Username,
        /// Its endpoint id (unique across the server).
        endpoint: u64,
        /// The caller's request.
        req: Req,
    },
    /// A device of `user` disconnected (its ad-hoc subscriptions end with it).
    Disconnect {
        /// Whose device.
        user: Username,
        /// Its endpoint id.
        endpoint: u64,
    },
    /// A device reports its machine state. Answered with the owner's view.
    Machine {
        /// Whose device.
        user: Username,
        /// Its endpoint id.
        endpoint: u64,
        /// The state.
        state: MachineState,
        /// The caller's request.
        req: Req,
    },
    /// Changes `user`'s presence document. Answered with the owner's view.
    Update {
        /// Whose document.
        user: Username,
        /// The change.
        patch: DocPatch,
        /// The caller's request.
        req: Req,
    },
    /// Changes `owner`'s contact list. Answered with the new list.
    EditContacts {
        /// Whose list.
        owner: Username,
        /// The change.
        edit: ContactEdit,
        /// The caller's request.
        req: Req,
    },
    /// `user`'s account (contact card) changed in the store: reloaded if held.
    AccountChanged {
        /// Whose.
        user: Username,
    },
    /// Subscribes endpoint `endpoint` of `user` to `targets` for `ttl_ms` (capped by the
    /// configured subscription lifetime). Answered with [`super::Answer::Done`]; the caller
    /// reads the targets' views with [`Input::Look`] (on their shards) afterwards.
    Subscribe {
        /// The subscribing user.
        user: Username,
        /// Their endpoint.
        endpoint: u64,
        /// Whom to follow.
        targets: Vec<Username>,
        /// For how long, ms.
        ttl_ms: u64,
        /// The caller's request.
        req: Req,
    },
    /// Ends subscriptions of an endpoint.
    Unsubscribe {
        /// The subscribing user.
        user: Username,
        /// Their endpoint.
        endpoint: u64,
        /// Whom to stop following.
        targets: Vec<Username>,
    },
    /// How `targets` (all of one shard) look to `viewer`. Answered with
    /// [`super::Answer::Views`] in the same order.
    Look {
        /// Whose presence.
        targets: Vec<Username>,
        /// Who asks.
        viewer: Viewer,
        /// The caller's request.
        req: Req,
    },
    /// `owner`'s contact list. Answered with [`super::Answer::Contacts`].
    Contacts {
        /// Whose.
        owner: Username,
        /// The caller's request.
        req: Req,
    },
    /// May a message from `from` reach `to`? Blocked contacts are refused; in Do Not Disturb
    /// only Workgroup contacts get through. Answered with Done or a refusal.
    Reach {
        /// Sender.
        from: Username,
        /// Recipient.
        to: Username,
        /// The caller's request.
        req: Req,
    },
    /// Every remote follower of local users (sent to every shard; each keeps its own users').
    RemoteFollowers(BTreeMap<Username, Vec<Username>>),
    /// Remote user `remote` follows `local`'s presence (`on`) or stops.
    RemoteFollower {
        /// The local user.
        local: Username,
        /// The remote follower.
        remote: Username,
        /// Follows or not.
        on: bool,
    },
    /// What `remote`'s server says of their presence (sanitised by the caller), or `None`:
    /// unknown, their server cannot be reached.
    RemotePresence {
        /// The remote user.
        remote: Username,
        /// Their presence.
        info: Option<PresenceInfo>,
    },
    /// The state catalog and the presence plugins changed (sent to every shard): every held
    /// user is republished and, with `derive`, asked of the plugins again.
    Plugins {
        /// Configured states, then those of enabled plugins.
        #[serde(with = "crate::serde_util::arc")]
        catalog: Arc<Vec<CustomState>>,
        /// Whether some plugin derives states.
        derive: bool,
        /// How often online users are derived again by themselves, ms.
        tick_ms: Option<u64>,
    },
    /// The plugins' answer to [`super::Effect::Derive`] `seq`: `None` keeps the built-in state.
    /// An answer to anything but the latest request for the user is stale and ignored.
    Derived {
        /// Whose state.
        user: Username,
        /// The request's number.
        seq: u64,
        /// The derived state.
        result: Option<Published>,
    },
    /// The answer to [`super::Effect::Load`]: the data, `None` for no such account, or why
    /// the store could not read it.
    Loaded {
        /// Whose data.
        user: Username,
        /// The data.
        result: Result<Option<Box<Stored>>, String>,
    },
    /// Online local user `watcher` has `target` in their contacts (`on`) or no longer.
    Watch {
        /// The watched user (this input's shard).
        target: Username,
        /// The watcher.
        watcher: Username,
        /// Watches or not.
        on: bool,
    },
    /// Sends `target`'s current presence to `watcher` alone (a contact was just added).
    Greet {
        /// The watched user (this input's shard).
        target: Username,
        /// The watcher.
        watcher: Username,
    },
    /// Endpoint `endpoint` of `subscriber` follows `target` until `expires`, or no longer
    /// (`None`).
    Adhoc {
        /// The followed user (this input's shard).
        target: Username,
        /// The endpoint.
        endpoint: u64,
        /// Its user.
        subscriber: Username,
        /// Until when.
        expires: Option<Millis>,
    },
    /// The shard `shard` starts afresh (in a pool, its group moved to another node): every
    /// online user held here who has contacts there tells that shard again that they watch
    /// them (sent to every shard).
    Rewatch {
        /// The shard starting afresh.
        shard: usize,
    },
    /// The time the engine asked for with [`super::Effect::Wake`] has come (sent to every
    /// shard by a driver of one timer, or to the one that asked).
    Tick,
}

impl Input {
    /// The user whose shard handles this input; `None` for every shard.
    pub fn key(&self) -> Option<&Username> {
        match self {
            Input::Connect { user, .. }
            | Input::Disconnect { user, .. }
            | Input::Machine { user, .. }
            | Input::Update { user, .. }
            | Input::AccountChanged { user }
            | Input::Subscribe { user, .. }
            | Input::Unsubscribe { user, .. }
            | Input::Derived { user, .. }
            | Input::Loaded { user, .. } => Some(user),
            Input::EditContacts { owner, .. } | Input::Contacts { owner, .. } => Some(owner),
            Input::Look { targets, .. } => targets.first(),
            Input::Reach { to, .. } => Some(to),
            Input::RemoteFollower { local, .. } => Some(local),
            Input::RemotePresence { remote, .. } => Some(remote),
            Input::Watch { target, .. } | Input::Greet { target, .. } | Input::Adhoc { target, .. } => Some(target),
            Input::RemoteFollowers(_) | Input::Plugins { .. } | Input::Rewatch { .. } | Input::Tick => None,
        }
    }

    /// The shard of `shards` that handles this input; `None` for every shard.
    pub fn shard(&self, shards: usize) -> Option<usize> {
        self.key().map(|k| shard_of(k, shards))
    }

    /// The request this input answers, if any.
    pub fn req(&self) -> Option<Req> {
        match self {
            Input::Connect { req, .. }
            | Input::Machine { req, .. }
            | Input::Update { req, .. }
            | Input::EditContacts { req, .. }
            | Input::Subscribe { req, .. }
            | Input::Look { req, .. }
            | Input::Contacts { req, .. }
            | Input::Reach { req, .. } => Some(*req),
            _ => None,
        }
    }

    /// The request this input answers, to renumber it (a pool node forwarding an input to the
    /// node owning its user's group gives it a number of that node's).
    pub fn req_mut(&mut self) -> Option<&mut Req> {
        match self {
            Input::Connect { req, .. }
            | Input::Machine { req, .. }
            | Input::Update { req, .. }
            | Input::EditContacts { req, .. }
            | Input::Subscribe { req, .. }
            | Input::Look { req, .. }
            | Input::Contacts { req, .. }
            | Input::Reach { req, .. } => Some(req),
            _ => None,
        }
    }

    /// The local users whose stored data this input needs.
    pub(super) fn needs(&self) -> Vec<&Username> {
        match self {
            Input::Connect { user, .. }
            | Input::Machine { user, .. }
            | Input::Update { user, .. }
            | Input::EditContacts { owner: user, .. }
            | Input::Contacts { owner: user, .. } => vec![user],
            Input::Reach { to, .. } if !to.is_remote() => vec![to],
            Input::Greet { target, .. } if !target.is_remote() => vec![target],
            Input::Look { targets, .. } => targets.iter().filter(|t| !t.is_remote()).collect(),
            _ => Vec::new(),
        }
    }
}

//! Groups and rooms for federation adapters (`halo:plugin@0.1.4`): a group is a conversation
//! or a room hosted by this Halo server, named `#c<id>` or `#r<id>` (see `docs/federation.md`,
//! "Groups"). The host carries each post to each remote member ([`GroupMessage`]), tells a
//! remote user they were added ([`GroupInvite`]), answers a join ([`GroupState`] or
//! [`GroupRefused`]) and lists the rooms remote users may find ([`RoomInfo`]); the adapter
//! delivers remote users' posts ([`GroupPost`]), joins and leaves ([`GroupJoin`]) and
//! invitations ([`GroupAdd`]).

/// One post of a group's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLine {
    /// Who wrote it: a local name, or a remote address.
    pub author: String,
    /// The text.
    pub text: String,
    /// When, ms since the Unix epoch.
    pub at: u64,
}

/// A post in a group, for one remote member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The group, e.g. `#r5`.
    pub group: String,
    /// The remote member.
    pub to: String,
    /// Who wrote it: a local name, or a remote address.
    pub author: String,
    /// The text.
    pub text: String,
    /// The host's message id.
    pub id: String,
}

/// A remote user was added to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInvite {
    /// The group.
    pub group: String,
    /// The remote user.
    pub to: String,
    /// Who added them: a local name, or a remote address.
    pub by: String,
    /// The group's name (a room's; empty for a conversation).
    pub name: String,
}

/// What a group is, answering a remote user's join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupState {
    /// The group.
    pub group: String,
    /// The remote user who joined.
    pub to: String,
    /// The group's name.
    pub name: String,
    /// Its subject (a room's topic).
    pub subject: String,
    /// Its members: local names and remote addresses.
    pub members: Vec<String>,
    /// Its latest posts, oldest first.
    pub history: Vec<GroupLine>,
}

/// A group refused what a remote user asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRefused {
    /// The group.
    pub group: String,
    /// The remote user.
    pub to: String,
    /// An XMPP stanza error condition: `forbidden`, `registration-required`,
    /// `item-not-found`, `not-acceptable`, `resource-constraint`, ...
    pub condition: String,
    /// Why, in words.
    pub text: String,
}

/// A room remote users may find (open and closed rooms; secret ones are not listed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    /// The group, e.g. `#r5`.
    pub group: String,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub subject: String,
    /// Only members may enter (a closed room).
    pub members_only: bool,
    /// How many members it has.
    pub members: u32,
}

/// A remote user's post to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPost {
    /// The remote user.
    pub from: String,
    /// The group.
    pub group: String,
    /// The text.
    pub text: String,
    /// An id unique for the sender, if the protocol carries one.
    pub id: Option<String>,
}

/// A remote user enters or leaves a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupJoin {
    /// The remote user.
    pub from: String,
    /// The group.
    pub group: String,
}

/// A remote member invites someone into a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAdd {
    /// The remote member.
    pub from: String,
    /// The group.
    pub group: String,
    /// Whom: a local name, or a remote address.
    pub user: String,
}

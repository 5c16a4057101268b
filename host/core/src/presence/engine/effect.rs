//! What comes out of the engine: [`Effect`] and the data it carries.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::input::{Input, Req};
use crate::contacts::{ContactError, ContactList};
use crate::federation::PresenceInfo;
use crate::presence::{CustomState, Document, Inputs, Published, Visibility};
use crate::{Millis, User, Username};

/// Everything a projection of one user's presence reads, shared by every audience of a
/// publication and every answer until it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The account (card fields).
    pub user: User,
    /// The stored presence document.
    pub doc: Document,
    /// The published state.
    pub published: Published,
    /// Since when it holds, ms (0: not since this process started).
    pub since: Millis,
    /// The custom states (labels and colours of `published.custom`).
    #[serde(with = "crate::serde_util::arc")]
    pub custom: Arc<Vec<CustomState>>,
}

/// One user's presence as one viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Seen {
    /// A local user, through `visibility`.
    Local {
        /// The user's presence.
        #[serde(with = "crate::serde_util::arc")]
        snapshot: Arc<Snapshot>,
        /// What the viewer may see of it.
        visibility: Visibility,
    },
    /// A user of another server, as their server last said (`None`: unknown).
    Remote {
        /// The remote user.
        user: Username,
        /// What their server said, sanitised.
        info: Option<PresenceInfo>,
        /// When it said so.
        since: Millis,
    },
    /// No such account.
    Missing(Username),
}

/// Who receives a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// Every connected device of a local user (the owner's own, or a watcher's).
    Devices(Username),
    /// One endpoint with an ad-hoc subscription.
    Endpoint {
        /// Its user.
        user: Username,
        /// The endpoint.
        endpoint: u64,
    },
    /// A remote follower, through federation.
    Follower(Username),
}

/// Recipients who all see the target through one visibility: the edge projects and encodes
/// once per audience.
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    /// What they see.
    pub visibility: Visibility,
    /// Who they are.
    pub to: Vec<Recipient>,
}

/// A local user's changed presence, for everyone who hears of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Whose presence.
    pub target: Username,
    /// It.
    pub snapshot: Arc<Snapshot>,
    /// Who hears it, grouped by visibility (the owner's devices first).
    pub audiences: Vec<Audience>,
}

/// A request to run the presence plugins' `derive` over the built-in state. The answer comes
/// back as [`Input::Derived`] with the same `seq`; meanwhile the built-in state stands.
#[derive(Debug, Clone, PartialEq)]
pub struct DeriveRequest {
    /// Whose state.
    pub user: Username,
    /// The request's number (later requests for the user make it stale).
    pub seq: u64,
    /// The sources.
    pub inputs: Inputs,
    /// When.
    pub now: Millis,
    /// The built-in result.
    pub builtin: Published,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Refusal {
    /// No such account.
    #[error("no user named {:?}", .0.as_str())]
    NoSuchUser(Username),
    /// The store could not read the user's data.
    #[error("presence data unavailable: {0}")]
    Unavailable(String),
    /// A contact-list change was refused.
    #[error(transparent)]
    Contact(#[from] ContactError),
    /// A manual state that ends before now.
    #[error("until is in the past")]
    UntilInPast,
    /// Too many ad-hoc subscriptions on one endpoint.
    #[error("at most {max} subscriptions per endpoint (this one has {has})")]
    TooManySubscriptions {
        /// The limit.
        max: usize,
        /// How many the endpoint holds.
        has: usize,
    },
    /// The recipient blocks the sender.
    #[error("{} does not accept messages from you", .0.as_str())]
    Blocked(Username),
    /// The recipient is in Do Not Disturb.
    #[error("{} is in Do Not Disturb", .0.as_str())]
    DoNotDisturb(Username),
}

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Answer {
    /// Done, nothing to say.
    Done,
    /// A device connected: the owner's view and their contacts (whose views the caller reads
    /// with [`Input::Look`] on their shards).
    Connected {
        /// The owner's own view.
        me: Seen,
        /// The contacts, in list order.
        contacts: Vec<Username>,
    },
    /// One view (the owner's own after a change).
    Seen(Seen),
    /// Views, in the order asked.
    Views(Vec<Seen>),
    /// A contact list.
    Contacts(ContactList),
    /// Refused.
    Refused(Refusal),
}

/// What the engine asks of the world.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Read `user`'s account, document and contacts, and answer with [`Input::Loaded`].
    Load {
        /// Whose.
        user: Username,
    },
    /// Store `user`'s document (before any [`Effect::Reply`] that follows is delivered).
    SaveDocument {
        /// Whose.
        user: Username,
        /// It.
        doc: Document,
    },
    /// Store `user`'s contact list (before any [`Effect::Reply`] that follows is delivered).
    SaveContacts {
        /// Whose.
        user: Username,
        /// It.
        list: ContactList,
    },
    /// Tell everyone who hears of `target`.
    Publish(Publication),
    /// A remote user's presence (`None`: unknown) for local watchers' devices.
    PublishRemote {
        /// The remote user.
        remote: Username,
        /// What their server said.
        info: Option<PresenceInfo>,
        /// Since when.
        since: Millis,
        /// Local users with them in their contacts, online.
        to: Vec<Username>,
    },
    /// Run the presence plugins; answer with [`Input::Derived`].
    Derive(DeriveRequest),
    /// Hand an input to the shard that owns its user ([`Input::shard`]).
    Send(Input),
    /// Deliver [`Input::Tick`] at this time (replacing any earlier wish; `None`: no need).
    Wake(Option<Millis>),
    /// The answer to a request.
    Reply {
        /// The request.
        req: Req,
        /// The answer.
        answer: Answer,
    },
}

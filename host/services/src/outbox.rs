//! Domain events and the [`Outbox`] they leave the services through.
//!
//! A service that changes something others must hear of (a message, a receipt, a presence
//! change) hands an [`Event`] to the outbox, addressed to a user's endpoints, one endpoint or
//! everyone. The transport implements [`Outbox`]: the server's hub turns events into stream
//! frames and queues them to sockets. The services know nothing of frames, encodings or
//! sockets; they only name endpoints by the ids the transport gave them.

use std::any::Any;
use std::sync::{Arc, Mutex, OnceLock};

use halo_core::Username;
use halo_core::presence::CustomState;
use halo_store::TokenHash;

use crate::presence::PresenceView;
use crate::views::{ConversationView, MessageView, RoomView};

/// Something that happened, for the users it concerns.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A conversation started, or its participants changed (as the recipient sees it).
    ImConversation {
        /// The conversation as the recipient sees it.
        conversation: ConversationView,
    },
    /// A message in one of the user's conversations.
    ImMessage {
        /// The message.
        message: MessageView,
        /// Delivered from the queue on connect rather than pushed live.
        offline: bool,
    },
    /// A participant's device received a message (to the sender).
    ImDelivered {
        /// Conversation id.
        conversation: u64,
        /// Message id.
        message: u64,
        /// Who received it.
        user: String,
    },
    /// A remote server refused a message (to the sender).
    ImFailed {
        /// Conversation id.
        conversation: u64,
        /// Message id.
        message: u64,
        /// Why, and for whom.
        failure: halo_core::federation::DeliveryFailure,
    },
    /// A participant started or stopped typing.
    ImTyping {
        /// Conversation id.
        conversation: u64,
        /// Who.
        user: String,
        /// Typing or not.
        typing: bool,
    },
    /// A participant's read marker moved.
    ImRead {
        /// Conversation id.
        conversation: u64,
        /// Who read.
        user: String,
        /// Up to this message.
        upto: u64,
        /// The reader's remaining unread count (the reader's own devices only).
        unread: Option<u32>,
    },
    /// A post in a room the user follows.
    RoomMessage {
        /// The post.
        message: MessageView,
    },
    /// A message was edited, deleted or reacted to (in a conversation of the user, or a room
    /// they follow): the message as it is now shown.
    MessageChanged {
        /// The message as now shown.
        message: MessageView,
    },
    /// The user was mentioned in a message (whether or not they follow the room).
    Mention {
        /// The message.
        message: MessageView,
    },
    /// A room the user belongs to changed, or they joined it.
    RoomUpdated {
        /// The room as the recipient sees it.
        room: RoomView,
    },
    /// A watched user's presence changed (or the user's own).
    Presence {
        /// The presence as the recipient may see it.
        presence: PresenceView,
    },
    /// One chunk of the presence of a user's contacts, sent when a device connects.
    PresenceSnapshot {
        /// Contacts' presence.
        contacts: Vec<PresenceView>,
        /// The user's own presence (in the first chunk).
        me: Option<PresenceView>,
        /// The last chunk.
        last: bool,
    },
    /// The user's contact list changed (a contact or group added, changed or removed, someone
    /// blocked or unblocked), on any of their devices.
    ContactsChanged,
    /// The catalog of custom states changed.
    PresenceStates {
        /// The custom states users may now pick and see.
        states: Vec<CustomState>,
    },
    /// An event sent to many endpoints alike, which the transport encodes once for all.
    Shared(Arc<Shared>),
}

impl Event {
    /// This event, wrapped for sharing among many recipients.
    pub fn shared(self) -> Self {
        Event::Shared(Shared::new(self))
    }
}

/// An event shared by many recipients, with a slot the transport fills once with whatever it
/// makes of the event (its frame and encodings) and reuses for every recipient.
pub struct Shared {
    event: Event,
    transport: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl Shared {
    /// Wraps `event` for sharing.
    pub fn new(event: Event) -> Arc<Self> {
        Arc::new(Self { event, transport: OnceLock::new() })
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The transport's form of the event, made by `make` on first use and kept; `None` if the
    /// slot holds another type (only one transport fills it).
    pub fn transport<T: Any + Send + Sync>(&self, make: impl FnOnce(&Event) -> T) -> Option<&T> {
        self.transport.get_or_init(|| Box::new(make(&self.event))).downcast_ref()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.event.fmt(f)
    }
}

impl PartialEq for Shared {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

/// Why the services end a user's or a token's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The session was logged out or its password changed.
    SessionEnded,
    /// The account was disabled or deleted.
    AccountDisabled,
}

/// Where the services deliver events: the connected endpoints of users. Implemented by the
/// transport (the server's hub); delivery never blocks (an endpoint that cannot keep up is
/// the transport's business).
pub trait Outbox: Send + Sync {
    /// Delivers `event` to every endpoint of `user` but `except`; how many took it.
    fn to_user(&self, user: &Username, except: Option<u64>, event: &Event) -> usize;
    /// Delivers `event` to endpoint `endpoint` of `user`; whether it took it.
    fn to_endpoint(&self, user: &Username, endpoint: u64, event: &Event) -> bool;
    /// Delivers `event` to every connected endpoint.
    fn to_all(&self, event: &Event);
    /// Whether `user` has a connected endpoint.
    fn is_online(&self, user: &Username) -> bool;
    /// Closes every endpoint of `user` except those opened with the token `keep`.
    fn close_user(&self, user: &Username, keep: Option<&TokenHash>, reason: Disconnect);
    /// Closes every endpoint opened with `token`.
    fn close_token(&self, token: &TokenHash, reason: Disconnect);
}

/// Where an event went, as [`Recorder`] keeps it.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    /// To a user's endpoints but one.
    User(Username, Option<u64>, Event),
    /// To one endpoint.
    Endpoint(Username, u64, Event),
    /// To everyone.
    All(Event),
    /// A user's endpoints closed.
    CloseUser(Username, Disconnect),
    /// A token's endpoints closed.
    CloseToken(Disconnect),
}

/// An outbox that records what it is given, with a fixed set of users online (every one of
/// them with a single endpoint): for tests, benchmarks and tools without a transport.
#[derive(Default)]
pub struct Recorder {
    online: Mutex<Vec<Username>>,
    sent: Mutex<Vec<Sent>>,
    record: bool,
}

impl Recorder {
    /// A recorder keeping what it is sent (`record`) or only counting deliveries.
    pub fn new(record: bool) -> Self {
        Self { record, ..Self::default() }
    }

    /// Marks `user` online (or not).
    pub fn set_online(&self, user: &Username, online: bool) {
        let mut users = self.online.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|u| u != user);
        if online {
            users.push(user.clone());
        }
    }

    /// Everything sent so far, emptying the record.
    pub fn take(&self) -> Vec<Sent> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push(&self, sent: Sent) {
        if self.record {
            self.sent.lock().unwrap_or_else(|p| p.into_inner()).push(sent);
        }
    }
}

impl Outbox for Recorder {
    fn to_user(&self, user: &Username, except: Option<u64>, event: &Event) -> usize {
        self.push(Sent::User(user.clone(), except, event.clone()));
        usize::from(self.is_online(user))
    }

    fn to_endpoint(&self, user: &Username, endpoint: u64, event: &Event) -> bool {
        self.push(Sent::Endpoint(user.clone(), endpoint, event.clone()));
        self.is_online(user)
    }

    fn to_all(&self, event: &Event) {
        self.push(Sent::All(event.clone()));
    }

    fn is_online(&self, user: &Username) -> bool {
        self.online.lock().unwrap_or_else(|p| p.into_inner()).contains(user)
    }

    fn close_user(&self, user: &Username, _keep: Option<&TokenHash>, reason: Disconnect) {
        self.push(Sent::CloseUser(user.clone(), reason));
    }

    fn close_token(&self, _token: &TokenHash, reason: Disconnect) {
        self.push(Sent::CloseToken(reason));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn a_shared_event_is_made_into_the_transports_form_once() {
        let shared = Shared::new(Event::ImTyping { conversation: 1, user: "ann".into(), typing: true });
        let made = AtomicUsize::new(0);
        let make = |e: &Event| {
            made.fetch_add(1, Ordering::Relaxed);
            format!("{e:?}")
        };
        let first = shared.transport(make).cloned();
        let again = shared.transport(make).cloned();
        assert_eq!(made.load(Ordering::Relaxed), 1);
        assert!(first.is_some() && first == again);
        assert!(shared.transport(|_| 7u32).is_none(), "the slot keeps the first transport's type");
    }
}

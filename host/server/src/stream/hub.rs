//! The hub: every connected endpoint (one WebSocket each) by user, with its bounded send queue.
//! Later features deliver to users through here; a full queue drops that endpoint as a slow
//! consumer instead of blocking the sender.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use halo_core::{Millis, Username};
use halo_store::TokenHash;
use tokio::sync::{mpsc, watch};

use super::wire::{EndpointInfo, ServerFrame, SharedFrame};
use halo_services::metrics::Metrics;
use halo_services::{Disconnect, Event, Outbox};

/// Why the server closes a socket; each maps to a WebSocket close code and reason text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client could not keep up with its send queue (4001).
    SlowConsumer,
    /// No frame (not even a pong) within two heartbeats (4002).
    IdleTimeout,
    /// The session was logged out or its password changed (4003).
    SessionEnded,
    /// The account was disabled or deleted (4004).
    AccountDisabled,
    /// The user has too many endpoints open (4005).
    TooManyEndpoints,
    /// A message beyond the hard size limit (1009).
    MessageTooBig,
    /// A text frame that is not UTF-8 (1007).
    InvalidUtf8,
    /// The server is stopping (1001).
    ShuttingDown,
    /// The token the socket was opened with expired (4003, as other ends of a session).
    TokenExpired,
    /// The client broke the WebSocket protocol (a reserved opcode or bit, an unmasked frame, a
    /// bad fragment) (1002).
    ProtocolError,
}

impl CloseReason {
    /// The WebSocket close code.
    pub fn code(self) -> u16 {
        match self {
            Self::SlowConsumer => 4001,
            Self::IdleTimeout => 4002,
            Self::SessionEnded => 4003,
            Self::AccountDisabled => 4004,
            Self::TooManyEndpoints => 4005,
            Self::MessageTooBig => 1009,
            Self::InvalidUtf8 => 1007,
            Self::ShuttingDown => 1001,
            Self::TokenExpired => 4003,
            Self::ProtocolError => 1002,
        }
    }

    /// The close reason text (also the metrics label).
    pub fn text(self) -> &'static str {
        match self {
            Self::SlowConsumer => "slow_consumer",
            Self::IdleTimeout => "idle_timeout",
            Self::SessionEnded => "session_ended",
            Self::AccountDisabled => "account_disabled",
            Self::TooManyEndpoints => "too_many_endpoints",
            Self::MessageTooBig => "message_too_big",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::ShuttingDown => "shutting_down",
            Self::TokenExpired => "token_expired",
            Self::ProtocolError => "protocol_error",
        }
    }
}

struct Slot {
    info: EndpointInfo,
    token: TokenHash,
    sender: EndpointSender,
}

/// A frame waiting in an endpoint's queue: a shared frame as its `Arc`, any other boxed. tokio
/// allocates a block of 32 queue slots per endpoint up front; with 16-byte slots rather than
/// whole `ServerFrame`s (512 bytes) that block is 0.5 KiB instead of 16 KiB per idle endpoint,
/// and the hot path (shared presence and message frames) allocates nothing.
pub enum Queued {
    /// Encoded once, shared by every recipient.
    Shared(Arc<SharedFrame>),
    /// Any other frame.
    Own(Box<ServerFrame>),
}

impl From<ServerFrame> for Queued {
    fn from(frame: ServerFrame) -> Self {
        match frame {
            ServerFrame::Shared(s) => Queued::Shared(s),
            other => Queued::Own(Box::new(other)),
        }
    }
}

impl Queued {
    /// The frame.
    pub fn into_frame(self) -> ServerFrame {
        match self {
            Queued::Shared(s) => ServerFrame::Shared(s),
            Queued::Own(f) => *f,
        }
    }
}

/// What a session gets back from [`Hub::register`].
pub struct Registration {
    /// The endpoint as others see it.
    pub info: EndpointInfo,
    /// Frames to write to the socket.
    pub outbox: mpsc::Receiver<Queued>,
    /// Set when the server wants the socket closed.
    pub close: watch::Receiver<Option<CloseReason>>,
    /// Queue into this endpoint (for replies), with the slow-consumer rule.
    pub sender: EndpointSender,
}

/// A handle that queues frames to one endpoint, closing it as a slow consumer when full.
#[derive(Clone)]
pub struct EndpointSender {
    tx: mpsc::Sender<Queued>,
    close: watch::Sender<Option<CloseReason>>,
    metrics: Arc<Metrics>,
}

impl EndpointSender {
    /// Queues `frame`; `false` (and the endpoint is closed) if its queue is full or it is gone.
    pub fn send(&self, frame: ServerFrame) -> bool {
        match self.tx.try_send(Queued::from(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.ws_slow_consumers.inc();
                self.close.send_replace(Some(CloseReason::SlowConsumer));
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the session to close with `reason`.
    pub fn close(&self, reason: CloseReason) {
        self.close.send_replace(Some(reason));
    }
}

/// Connected endpoints by user.
pub struct Hub {
    by_user: Mutex<HashMap<Username, Vec<Slot>>>,
    next_id: AtomicU64,
    queue: usize,
    max_per_user: usize,
    metrics: Arc<Metrics>,
    /// A pool member's user directory, told of each user's first and last endpoint here.
    directory: std::sync::OnceLock<Arc<halo_services::pool::Members>>,
}

impl Hub {
    /// An empty hub whose endpoints queue up to `queue` frames, at most `max_per_user` per user.
    pub fn new(queue: usize, max_per_user: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            by_user: Mutex::default(),
            next_id: AtomicU64::new(1),
            queue: queue.max(1),
            max_per_user,
            metrics,
            directory: std::sync::OnceLock::new(),
        }
    }

    /// Makes this hub a pool member's: endpoint ids are drawn from a range of their own (so
    /// they are unique across the pool, and stay below 2^53 for JavaScript clients), and the
    /// pool's directory hears of each endpoint opened and closed.
    pub fn set_directory(&self, directory: Arc<halo_services::pool::Members>) {
        let base = (u64::from(rand::random::<u32>()) & 0x1F_FFFF) << 32;
        self.next_id.store(base | 1, Ordering::Relaxed);
        let _ = self.directory.set(directory);
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Username, Vec<Slot>>> {
        self.by_user.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an endpoint of `user` opened with `token`; `None` when the user has too many.
    pub fn register(&self, user: &Username, name: String, token: TokenHash, now: Millis) -> Option<Registration> {
        let mut map = self.map();
        let slots = map.entry(user.clone()).or_default();
        if slots.len() >= self.max_per_user {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, outbox) = mpsc::channel(self.queue);
        let (close, close_rx) = watch::channel(None);
        let info = EndpointInfo { id, name, connected_at: now };
        let sender = EndpointSender { tx, close, metrics: self.metrics.clone() };
        slots.push(Slot { info: info.clone(), token, sender: sender.clone() });
        self.metrics.ws_connections.inc();
        if let Some(d) = self.directory.get() {
            d.endpoint_opened(user);
        }
        Some(Registration { info, outbox, close: close_rx, sender })
    }

    /// Removes an endpoint (when its socket ends).
    pub fn unregister(&self, user: &Username, id: u64) {
        let mut map = self.map();
        if let Some(slots) = map.get_mut(user) {
            let before = slots.len();
            slots.retain(|s| s.info.id != id);
            if slots.len() < before {
                self.metrics.ws_connections.dec();
                if let Some(d) = self.directory.get() {
                    d.endpoint_closed(user);
                }
            }
            if slots.is_empty() {
                map.remove(user);
            }
        }
    }

    /// The connected endpoints of `user`.
    pub fn endpoints(&self, user: &Username) -> Vec<EndpointInfo> {
        self.map().get(user).map(|s| s.iter().map(|s| s.info.clone()).collect()).unwrap_or_default()
    }

    /// Queues `frame` to every endpoint of `user` but `except`; returns how many took it.
    pub fn send_to_user(&self, user: &Username, except: Option<u64>, frame: &ServerFrame) -> usize {
        let map = self.map();
        let Some(slots) = map.get(user) else { return 0 };
        slots.iter().filter(|s| Some(s.info.id) != except && s.sender.send(frame.clone())).count()
    }

    /// Queues `frame` to endpoint `id` of `user`; whether it took it.
    pub fn send_to_endpoint(&self, user: &Username, id: u64, frame: &ServerFrame) -> bool {
        let map = self.map();
        map.get(user)
            .and_then(|slots| slots.iter().find(|s| s.info.id == id))
            .is_some_and(|s| s.sender.send(frame.clone()))
    }

    /// Queues `frame` to every connected endpoint.
    pub fn send_to_all(&self, frame: &ServerFrame) {
        for s in self.map().values().flatten() {
            s.sender.send(frame.clone());
        }
    }

    /// Whether `user` has a connected endpoint.
    pub fn is_online(&self, user: &Username) -> bool {
        self.map().get(user).is_some_and(|s| !s.is_empty())
    }

    /// Closes every endpoint of `user`, except those opened with the token `keep`.
    pub fn close_user(&self, user: &Username, keep: Option<&TokenHash>, reason: CloseReason) {
        if let Some(slots) = self.map().get(user) {
            for s in slots.iter().filter(|s| keep != Some(&s.token)) {
                s.sender.close(reason);
            }
        }
    }

    /// Closes every endpoint opened with the token `token`.
    pub fn close_token(&self, token: &TokenHash, reason: CloseReason) {
        for s in self.map().values().flatten().filter(|s| &s.token == token) {
            s.sender.close(reason);
        }
    }

    /// Closes everything (server shutdown).
    pub fn close_all(&self, reason: CloseReason) {
        for s in self.map().values().flatten() {
            s.sender.close(reason);
        }
    }

    /// Number of connected endpoints.
    pub fn len(&self) -> usize {
        self.map().values().map(Vec::len).sum()
    }

    /// Whether nothing is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Disconnect> for CloseReason {
    fn from(d: Disconnect) -> Self {
        match d {
            Disconnect::SessionEnded => CloseReason::SessionEnded,
            Disconnect::AccountDisabled => CloseReason::AccountDisabled,
        }
    }
}

/// The services' events reach sockets through the hub, as frames.
impl Outbox for Hub {
    // The frame is made before the hub's lock is taken, so the lock is held only to queue.
    fn to_user(&self, user: &Username, except: Option<u64>, event: &Event) -> usize {
        self.send_to_user(user, except, &ServerFrame::from_event(event))
    }

    fn to_endpoint(&self, user: &Username, endpoint: u64, event: &Event) -> bool {
        self.send_to_endpoint(user, endpoint, &ServerFrame::from_event(event))
    }

    fn to_all(&self, event: &Event) {
        self.send_to_all(&ServerFrame::from_event(event));
    }

    fn is_online(&self, user: &Username) -> bool {
        Hub::is_online(self, user)
    }

    fn close_user(&self, user: &Username, keep: Option<&TokenHash>, reason: Disconnect) {
        Hub::close_user(self, user, keep, reason.into());
    }

    fn close_token(&self, token: &TokenHash, reason: Disconnect) {
        Hub::close_token(self, token, reason.into());
    }
}

#[cfg(test)]
mod tests {
    use halo_services::outbox::Shared;

    use super::*;

    #[test]
    fn a_shared_event_becomes_one_shared_frame_for_every_endpoint() {
        let hub = Hub::new(8, 4, Arc::new(Metrics::new()));
        let ann = Username::parse("ann").expect("name");
        let bob = Username::parse("bob").expect("name");
        let mut a1 = hub.register(&ann, "a1".into(), [1; 32], 0).expect("a1");
        let mut a2 = hub.register(&ann, "a2".into(), [1; 32], 0).expect("a2");
        let mut b = hub.register(&bob, "b".into(), [2; 32], 0).expect("b");
        let event = Event::Shared(Shared::new(Event::ImTyping { conversation: 1, user: "cat".into(), typing: true }));
        assert_eq!(Outbox::to_user(&hub, &ann, Some(a2.info.id), &event), 1);
        assert_eq!(Outbox::to_user(&hub, &bob, None, &event), 1);
        assert!(a2.outbox.try_recv().is_err(), "the excepted endpoint gets nothing");
        let shared = |q: Option<Queued>| match q {
            Some(Queued::Shared(s)) => s,
            _ => panic!("not a shared frame"),
        };
        let (x, y) = (shared(a1.outbox.try_recv().ok()), shared(b.outbox.try_recv().ok()));
        assert!(Arc::ptr_eq(&x, &y), "one frame, encoded once, for all recipients");
        assert!(matches!(x.frame(), Some(ServerFrame::ImTyping { conversation: 1, typing: true, .. })));

        Outbox::close_token(&hub, &[1; 32], Disconnect::SessionEnded);
        assert_eq!(*a1.close.borrow_and_update(), Some(CloseReason::SessionEnded));
        assert_eq!(*b.close.borrow_and_update(), None);
        assert!(Outbox::is_online(&hub, &bob) && !Outbox::is_online(&hub, &Username::parse("cat").expect("name")));
    }
}

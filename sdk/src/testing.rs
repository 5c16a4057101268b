//! A simulated host for unit-testing plugin logic natively (`cargo test`), with the same
//! rules as the server: config values, a kv store that needs the grant, captured logs; and
//! [`AdapterHarness`], which drives a federation adapter the way the server does.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;

use crate::federation::{
    Action, FederationAdapter, Input, LinkId, LinkSpec, Message, Presence, PresenceInfo, Refusal, Rejection, Subscribe,
    Subscription,
};
use crate::{Host, KvError, Level, MachineState, PresenceInput, Published};

/// An in-memory host.
#[derive(Debug, Default)]
pub struct TestHost {
    config: BTreeMap<String, String>,
    kv: RefCell<BTreeMap<String, Vec<u8>>>,
    kv_granted: bool,
    logs: RefCell<Vec<(Level, String)>>,
}

impl TestHost {
    /// A host with no config and no grants.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a config value.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.config.insert(key.to_owned(), value.to_owned());
        self
    }

    /// Grants `kv`.
    pub fn with_kv(mut self) -> Self {
        self.kv_granted = true;
        self
    }

    /// The lines logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.logs.borrow().clone()
    }
}

impl Host for TestHost {
    fn config(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }
    fn config_all(&self) -> Vec<(String, String)> {
        self.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.to_owned()));
    }
    fn kv_get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        Ok(self.kv.borrow().get(key).cloned())
    }
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        if key.len() > 256 || value.len() > 64 * 1024 {
            return Err(KvError::TooLarge);
        }
        self.kv.borrow_mut().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    fn kv_delete(&self, key: &str) -> Result<(), KvError> {
        if !self.kv_granted {
            return Err(KvError::AccessDenied);
        }
        self.kv.borrow_mut().remove(key);
        Ok(())
    }
}

/// A presence input for one active device at `now_ms` (built-in: Available).
pub fn input(user: &str, now_ms: u64) -> PresenceInput {
    PresenceInput {
        user: user.to_owned(),
        manual: None,
        endpoints: vec![crate::Endpoint { id: 1, state: MachineState::Active, since_ms: now_ms }],
        calendar: None,
        calendar_event: None,
        phone: None,
        now_ms,
        builtin: Published { availability: 3500, activity: None, custom: None },
    }
}

/// [`input`] with the user in a meeting titled `title` (built-in: Busy 6500, `in-a-meeting`),
/// as the host hands it to a plugin built with the `calendar` feature.
pub fn in_meeting(user: &str, now_ms: u64, title: &str) -> PresenceInput {
    PresenceInput {
        calendar: Some("in-a-meeting".to_owned()),
        calendar_event: Some(crate::CalendarEvent {
            activity: "in-a-meeting".to_owned(),
            title: Some(title.to_owned()),
            end_ms: None,
        }),
        builtin: Published { availability: 6500, activity: Some("in-a-meeting".to_owned()), custom: None },
        ..input(user, now_ms)
    }
}

/// The most bytes the host hands an adapter in one [`Input::Data`].
pub const MAX_DATA_INPUT: usize = 64 * 1024;

/// Drives a [`FederationAdapter`] natively, the way the server does, and keeps what it asked
/// for: bytes sent per link, deliveries, rejections, timers, open links, the routing flag.
///
/// Like the host, it hands local users' messages, presence and subscriptions to the adapter
/// only while it is routing: given while it is not, they wait in a queue and go in (in order)
/// right after an input whose actions turned routing on. Data longer than
/// [`MAX_DATA_INPUT`] is split into several inputs, as the host reads it. Nothing touches a
/// network: the test plays the remote side with [`connected`](Self::connected),
/// [`data`](Self::data) and [`closed`](Self::closed), and reads the adapter's side with
/// [`sent`](Self::sent).
///
/// ```ignore
/// let mut h = AdapterHarness::<MyAdapter>::new(TestHost::new().with_config("secret", "s"));
/// h.start();
/// assert_eq!(h.links()[0].port, 5347);
/// h.connected(1);
/// assert!(h.sent_text(1).starts_with("<?xml"));
/// h.data(1, b"...");
/// assert!(h.routing());
/// ```
///
/// The harness cannot reset the adapter's statics; [`start`](Self::start) must (see
/// [`FederationAdapter`]).
pub struct AdapterHarness<A: FederationAdapter> {
    host: TestHost,
    actions: Vec<Action>,
    sent: BTreeMap<LinkId, Vec<u8>>,
    messages: Vec<Message>,
    presence: Vec<Presence>,
    subscriptions: Vec<Subscribe>,
    rejections: Vec<Rejection>,
    bounces: Vec<Refusal>,
    link_failures: Vec<(LinkId, String)>,
    timers: BTreeMap<u32, u32>,
    links: BTreeMap<LinkId, LinkSpec>,
    closed_by_adapter: Vec<LinkId>,
    routing: bool,
    queue: VecDeque<Input>,
    adapter: PhantomData<fn() -> A>,
}

impl<A: FederationAdapter> AdapterHarness<A> {
    /// A harness around `host` (its config is the adapter's config). Call
    /// [`start`](Self::start) next.
    pub fn new(host: TestHost) -> Self {
        Self {
            host,
            actions: Vec::new(),
            sent: BTreeMap::new(),
            messages: Vec::new(),
            presence: Vec::new(),
            subscriptions: Vec::new(),
            rejections: Vec::new(),
            bounces: Vec::new(),
            link_failures: Vec::new(),
            timers: BTreeMap::new(),
            links: BTreeMap::new(),
            closed_by_adapter: Vec::new(),
            routing: false,
            queue: VecDeque::new(),
            adapter: PhantomData,
        }
    }

    /// The host (its logs: `host().logs()`).
    pub fn host(&self) -> &TestHost {
        &self.host
    }

    /// Calls the adapter's `start` and applies its actions.
    pub fn start(&mut self) -> Vec<Action> {
        let actions = A::start(&self.host);
        self.apply(&actions);
        let mut all = actions;
        all.extend(self.drain_queue());
        all
    }

    /// Hands the adapter one input (as the host would: outbound traffic waits while the adapter
    /// is not routing, data is split into inputs of at most [`MAX_DATA_INPUT`] bytes, a timer
    /// input disarms its timer) and returns every action it produced, in order.
    pub fn input(&mut self, input: Input) -> Vec<Action> {
        match input {
            Input::Message(_) | Input::Presence(_) | Input::Subscribe(_) if !self.routing => {
                self.queue.push_back(input);
                Vec::new()
            }
            Input::Data(link, bytes) if bytes.len() > MAX_DATA_INPUT => {
                let mut all = Vec::new();
                for chunk in bytes.chunks(MAX_DATA_INPUT) {
                    all.extend(self.input(Input::Data(link, chunk.to_vec())));
                }
                all
            }
            input => {
                if let Input::Timer(token) = input {
                    self.timers.remove(&token);
                }
                let actions = A::handle(&self.host, input);
                self.apply(&actions);
                let mut all = actions;
                all.extend(self.drain_queue());
                all
            }
        }
    }

    /// Link `link` connected.
    pub fn connected(&mut self, link: LinkId) -> Vec<Action> {
        self.input(Input::Connected(link))
    }

    /// `bytes` arrived on `link`.
    pub fn data(&mut self, link: LinkId, bytes: &[u8]) -> Vec<Action> {
        self.input(Input::Data(link, bytes.to_vec()))
    }

    /// Link `link` closed (or failed to connect) because of `why`.
    pub fn closed(&mut self, link: LinkId, why: &str) -> Vec<Action> {
        self.input(Input::Closed(link, why.to_owned()))
    }

    /// Timer `token` fired (whether or not it was armed).
    pub fn timer(&mut self, token: u32) -> Vec<Action> {
        self.input(Input::Timer(token))
    }

    /// Local user `from` sends remote user `to` a message (no id).
    pub fn message(&mut self, from: &str, to: &str, text: &str) -> Vec<Action> {
        self.input(Input::Message(Message {
            from: from.to_owned(),
            to: to.to_owned(),
            text: text.to_owned(),
            id: None,
        }))
    }

    /// Local user `from`'s presence for remote subscriber `to`.
    pub fn presence(&mut self, from: &str, to: &str, info: PresenceInfo) -> Vec<Action> {
        self.input(Input::Presence(Presence { from: from.to_owned(), to: to.to_owned(), info }))
    }

    /// Local user `from`'s subscription stanza for remote user `to`.
    pub fn subscribe(&mut self, from: &str, to: &str, kind: Subscription) -> Vec<Action> {
        self.input(Input::Subscribe(Subscribe { from: from.to_owned(), to: to.to_owned(), kind }))
    }

    /// The bytes sent on `link` since the last call (concatenated).
    pub fn sent(&mut self, link: LinkId) -> Vec<u8> {
        self.sent.remove(&link).unwrap_or_default()
    }

    /// [`sent`](Self::sent) as text (invalid UTF-8 replaced).
    pub fn sent_text(&mut self, link: LinkId) -> String {
        String::from_utf8_lossy(&self.sent(link)).into_owned()
    }

    /// The messages delivered to local users since the last call.
    pub fn delivered_messages(&mut self) -> Vec<Message> {
        std::mem::take(&mut self.messages)
    }

    /// The presence delivered to local users since the last call.
    pub fn delivered_presence(&mut self) -> Vec<Presence> {
        std::mem::take(&mut self.presence)
    }

    /// The subscription stanzas delivered to local users since the last call.
    pub fn delivered_subscriptions(&mut self) -> Vec<Subscribe> {
        std::mem::take(&mut self.subscriptions)
    }

    /// The rejections since the last call.
    pub fn rejections(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejections)
    }

    /// The remote refusals the adapter reported ([`Action::Bounced`]) since the last call.
    pub fn bounces(&mut self) -> Vec<Refusal> {
        std::mem::take(&mut self.bounces)
    }

    /// The link failures the adapter reported ([`Action::LinkFailed`]) since the last call.
    pub fn link_failures(&mut self) -> Vec<(LinkId, String)> {
        std::mem::take(&mut self.link_failures)
    }

    /// The armed timers as `(token, ms)`, by token.
    pub fn timers(&self) -> Vec<(u32, u32)> {
        self.timers.iter().map(|(t, ms)| (*t, *ms)).collect()
    }

    /// The delay timer `token` was last armed with, if it is armed.
    pub fn timer_ms(&self, token: u32) -> Option<u32> {
        self.timers.get(&token).copied()
    }

    /// Whether the adapter is routing (its last `Routing` action; `false` before any).
    pub fn routing(&self) -> bool {
        self.routing
    }

    /// The links the adapter keeps open (opened and not closed by it), by id.
    pub fn links(&self) -> Vec<LinkSpec> {
        self.links.values().cloned().collect()
    }

    /// Whether the adapter keeps `link` open.
    pub fn is_open(&self, link: LinkId) -> bool {
        self.links.contains_key(&link)
    }

    /// The links the adapter closed (with [`Action::Close`]) since the last call.
    pub fn closed_links(&mut self) -> Vec<LinkId> {
        std::mem::take(&mut self.closed_by_adapter)
    }

    /// Outbound inputs waiting for the adapter to route.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Every action so far, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    fn apply(&mut self, actions: &[Action]) {
        for action in actions {
            match action {
                Action::Open(spec) => {
                    self.links.insert(spec.id, spec.clone());
                }
                Action::Send(link, bytes) => self.sent.entry(*link).or_default().extend_from_slice(bytes),
                Action::Close(link) => {
                    self.links.remove(link);
                    self.closed_by_adapter.push(*link);
                }
                Action::Routing(on) => self.routing = *on,
                Action::SetTimer { token, ms } => {
                    self.timers.insert(*token, *ms);
                }
                Action::DeliverMessage(m) => self.messages.push(m.clone()),
                Action::DeliverPresence(p) => self.presence.push(p.clone()),
                Action::DeliverSubscribe(s) => self.subscriptions.push(s.clone()),
                Action::Reject(r) => self.rejections.push(r.clone()),
                // Group requests: read them from `actions()`.
                Action::DeliverGroupPost(_)
                | Action::DeliverGroupJoin(_)
                | Action::DeliverGroupLeave(_)
                | Action::DeliverGroupAdd(_) => {}
                Action::Bounced(r) => self.bounces.push(r.clone()),
                Action::LinkFailed(link, why) => self.link_failures.push((*link, why.clone())),
                // s2s (0.1.4): recorded in `actions()` only.
                Action::Listen { .. } | Action::Unlisten(_) | Action::StartTls(..) | Action::Resolve { .. } | Action::DrainQueued => {}
                Action::Fail(link, _) => {
                    self.closed_by_adapter.push(*link);
                }
            }
        }
        self.actions.extend_from_slice(actions);
    }

    fn drain_queue(&mut self) -> Vec<Action> {
        let mut all = Vec::new();
        while self.routing {
            let Some(input) = self.queue.pop_front() else { break };
            all.extend(self.input(input));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes data back, delivers each data input as a message from `peer@remote` to `alice`,
    /// routes while connected, writes outbound messages as `to:text`.
    struct Echo;

    impl FederationAdapter for Echo {
        fn start(_host: &dyn Host) -> Vec<Action> {
            let spec = LinkSpec { id: 1, host: "127.0.0.1".into(), port: 5347, tls_name: None };
            vec![Action::Open(spec), Action::Routing(false)]
        }
        fn handle(host: &dyn Host, input: Input) -> Vec<Action> {
            match input {
                Input::Connected(_) => vec![Action::Routing(true), Action::SetTimer { token: 7, ms: 1000 }],
                Input::Closed(..) => vec![Action::Routing(false)],
                Input::Data(link, bytes) => vec![
                    Action::Send(link, bytes.clone()),
                    Action::DeliverMessage(Message {
                        from: "peer@remote".into(),
                        to: "alice".into(),
                        text: String::from_utf8_lossy(&bytes).into_owned(),
                        id: None,
                    }),
                ],
                Input::Timer(token) => {
                    host.log(Level::Info, "tick");
                    vec![Action::SetTimer { token, ms: 1000 }]
                }
                Input::Message(m) => vec![Action::Send(1, format!("{}:{}", m.to, m.text).into_bytes())],
                Input::Presence(_) | Input::Subscribe(_) => {
                    vec![Action::Reject(Rejection { domain: None, reason: "no".into() }), Action::Close(1)]
                }
                _ => Vec::new(),
            }
        }
    }

    #[test]
    fn the_harness_keeps_what_the_adapter_asked_for() {
        let mut h = AdapterHarness::<Echo>::new(TestHost::new());
        h.start();
        assert_eq!(h.links()[0].port, 5347);
        assert!(!h.routing());
        // Outbound traffic waits until the adapter routes, then goes in order.
        assert!(h.message("alice", "bob@remote", "one").is_empty());
        h.message("alice", "bob@remote", "two");
        assert_eq!(h.queued(), 2);
        h.connected(1);
        assert!(h.routing());
        assert_eq!(h.queued(), 0);
        assert_eq!(h.sent_text(1), "bob@remote:onebob@remote:two");
        assert_eq!(h.sent(1), b"");
        assert_eq!(h.timer_ms(7), Some(1000));
        h.timer(7);
        assert_eq!(h.timers(), vec![(7, 1000)]);
        assert_eq!(h.host().logs(), vec![(Level::Info, "tick".to_owned())]);
        // Data over 64 KiB arrives as several inputs.
        h.data(1, &vec![b'x'; MAX_DATA_INPUT + 1]);
        assert_eq!(h.sent(1).len(), MAX_DATA_INPUT + 1);
        assert_eq!(h.delivered_messages().len(), 2);
        assert!(h.delivered_messages().is_empty());
        h.presence("alice", "bob@remote", PresenceInfo::new("away", "Away"));
        assert_eq!(h.rejections().len(), 1);
        assert_eq!(h.closed_links(), vec![1]);
        assert!(!h.is_open(1));
        h.closed(1, "reset");
        assert!(!h.routing());
        assert!(h.subscribe("alice", "bob@remote", Subscription::Request).is_empty());
        assert_eq!(h.queued(), 1);
    }
}

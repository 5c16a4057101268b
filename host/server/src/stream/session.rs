//! One WebSocket session: a writer task drains the endpoint's bounded queue and sends pings; the
//! reader decodes requests and queues replies. Either side ending ends both.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use halo_core::User;
use halo_store::TokenHash;
use tokio::time::{Instant, MissedTickBehavior};

use super::hub::{CloseReason, EndpointSender, Registration};
use super::wire::{Codec, FrameError, Incoming, Outgoing, Reply, Request, ServerFrame};
use crate::error::ApiError;
use crate::state::AppState;
use halo_services::clock::now_ms;
use halo_services::im::Actor;

/// Most queued frames one write takes.
const BATCH: u64 = 64;

/// Runs one socket until either side ends it; `expires_at` (ms) is when its token expires, and
/// the socket with it (4003 `token_expired`).
pub(super) async fn run(
    socket: WebSocket,
    state: AppState,
    user: User,
    token: TokenHash,
    expires_at: Option<u64>,
    name: String,
    codec: Codec,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(reg) = state.hub.register(&user.username, name, token, now_ms()) else {
        let reason = CloseReason::TooManyEndpoints;
        let _ = sink.send(close_message(reason)).await;
        return;
    };
    let Registration { info, mut outbox, mut close, sender } = reg;
    state.metrics.ws_accepted.inc();
    tracing::info!(username = %user.username, endpoint = info.id, name = %info.name, ?codec, "endpoint connected");

    let limits = state.settings.limits.clone();
    // Offline messages follow the hello, oldest first, up to half the queue; the rest come on
    // the next connect after these are acknowledged.
    let pending = state.im.pending(&user.username, limits.send_queue / 2).unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading offline messages");
        Vec::new()
    });
    // The hello goes straight to the socket, before the writer starts on the queue: the
    // endpoint is in the hub already, so a presence change or message may be queued for it
    // meanwhile, and it must come after the hello.
    let hello = ServerFrame::Hello {
        endpoint: info.clone(),
        username: user.username.to_string(),
        server_version: env!("CARGO_PKG_VERSION"),
        heartbeat_ms: limits.heartbeat.as_millis() as u64,
        max_frame_bytes: limits.max_frame_bytes,
        offline: pending.len(),
    };
    if let Some(msg) = to_message(codec, &hello)
        && sink.send(msg).await.is_err()
    {
        state.hub.unregister(&user.username, info.id);
        return;
    }
    state.metrics.ws_frames_sent.inc();
    match state.presence.connect(&user.username, info.id).await {
        Ok(events) => events.iter().for_each(|e| _ = sender.send(ServerFrame::from_event(e))),
        Err(e) => tracing::error!(error = %e, "presence snapshot"),
    }
    for event in &pending {
        sender.send(ServerFrame::from_event(event));
    }

    let metrics = state.metrics.clone();
    let heartbeat = limits.heartbeat;
    let mut close_w = close.clone();
    let mut writer = tokio::spawn(async move {
        let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = close_w.changed() => {
                    let reason = (*close_w.borrow()).unwrap_or(CloseReason::SessionEnded);
                    let _ = sink.send(close_message(reason)).await;
                    return reason;
                }
                frame = outbox.recv() => {
                    let Some(first) = frame else { return CloseReason::SessionEnded };
                    // This frame and whatever else is queued now (up to BATCH) leave together:
                    // one flush, so a burst costs one write, not one per frame.
                    let write = async {
                        let mut sent = 0u64;
                        let mut next = Some(first);
                        while let Some(q) = next.take() {
                            if let Some(msg) = to_message(codec, &q.into_frame()) {
                                sink.feed(msg).await?;
                                sent += 1;
                            }
                            if sent < BATCH {
                                next = outbox.try_recv().ok();
                            }
                        }
                        sink.flush().await.map(|()| sent)
                    };
                    // A client that does not read for a whole heartbeat is not keeping up.
                    match tokio::time::timeout(heartbeat, write).await {
                        Ok(Ok(n)) => metrics.ws_frames_sent.inc_by(n),
                        Ok(Err(_)) => return CloseReason::SessionEnded,
                        Err(_) => { metrics.ws_slow_consumers.inc(); return CloseReason::SlowConsumer }
                    };
                }
                _ = ping.tick() => {
                    if sink.send(Message::Ping(Default::default())).await.is_err() { return CloseReason::SessionEnded }
                }
            }
        }
    });

    let ctx = Ctx { state: &state, user: &user, endpoint: &info, sender: &sender, codec };
    let idle = heartbeat * 2 + Duration::from_secs(1);
    let expiry = async {
        match expires_at {
            Some(at) => tokio::time::sleep(Duration::from_millis(at.saturating_sub(now_ms()))).await,
            None => std::future::pending().await,
        }
    };
    let reader = async {
        tokio::pin!(expiry);
        loop {
            let next = tokio::select! {
                biased;
                _ = close.changed() => return,
                () = &mut expiry => return sender.close(CloseReason::TokenExpired),
                next = tokio::time::timeout(idle, stream.next()) => next,
            };
            match next {
                Err(_) => return sender.close(CloseReason::IdleTimeout),
                Ok(None) => return,
                Ok(Some(Err(e))) => {
                    tracing::info!(username = %user.username, endpoint = info.id, error = %e, "socket read failed");
                    if let Some(r) = read_error_reason(e) {
                        sender.close(r)
                    }
                    return;
                }
                Ok(Some(Ok(msg))) => match msg {
                    Message::Text(t) => ctx.handle(Incoming::Text(t.as_str())).await,
                    Message::Binary(b) => ctx.handle(Incoming::Binary(&b)).await,
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => {}
                },
            }
        }
    };
    tokio::select! {
        _ = reader => {
            // Give the writer a moment to send a pending close frame.
            let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
            writer.abort();
        }
        _ = &mut writer => {}
    }
    state.hub.unregister(&user.username, info.id);
    state.presence.disconnect(&user.username, info.id);
    let reason = (*close.borrow()).map_or("client", CloseReason::text);
    state.metrics.ws_closed(reason);
    tracing::info!(username = %user.username, endpoint = info.id, reason, "endpoint disconnected");
}

fn close_message(reason: CloseReason) -> Message {
    Message::Close(Some(CloseFrame { code: reason.code(), reason: reason.text().into() }))
}

/// Maps a read failure to the close the client should see (`None`: the socket is gone already).
fn read_error_reason(e: axum::Error) -> Option<CloseReason> {
    let inner = e.into_inner();
    match inner.downcast_ref::<tungstenite::Error>()? {
        tungstenite::Error::Capacity(_) => Some(CloseReason::MessageTooBig),
        tungstenite::Error::Utf8(_) => Some(CloseReason::InvalidUtf8),
        tungstenite::Error::Protocol(_) => Some(CloseReason::ProtocolError),
        _ => None,
    }
}

struct Ctx<'a> {
    state: &'a AppState,
    user: &'a User,
    endpoint: &'a super::wire::EndpointInfo,
    sender: &'a EndpointSender,
    codec: Codec,
}

impl Ctx<'_> {
    async fn handle(&self, frame: Incoming<'_>) {
        let metrics = &self.state.metrics;
        metrics.ws_frames_received.inc();
        let reply = match self.codec.decode(frame, self.state.settings.limits.max_frame_bytes) {
            Ok((id, req)) => match self.answer(req).await {
                Ok(result) => ServerFrame::Reply { id, result },
                Err(e) => {
                    let (_, code) = e.status_and_code();
                    let error = FrameError::new(id, code, e.client_message()).retry_after(e.retry_after());
                    ServerFrame::Error { error }
                }
            },
            Err(error) => {
                metrics.ws_frame_error(error.code);
                tracing::info!(username = %self.user.username, endpoint = self.endpoint.id, code = error.code, message = %error.message, "bad frame");
                ServerFrame::Error { error }
            }
        };
        self.sender.send(reply);
    }

    async fn answer(&self, req: Request) -> Result<Reply, ApiError> {
        let me = &self.user.username;
        let actor = Actor { user: me, endpoint: Some(self.endpoint.id) };
        let im = &self.state.im;
        let presence = &self.state.presence;
        Ok(match req {
            Request::Ping { data } => Reply::Pong { data, server_time: now_ms() },
            Request::Whoami {} => Reply::Whoami {
                username: me.to_string(),
                display_name: self.user.profile.display_name.clone().unwrap_or_else(|| me.to_string()),
                roles: self.user.all_roles(),
                endpoint: self.endpoint.clone(),
            },
            Request::Endpoints {} => Reply::Endpoints { endpoints: self.state.hub.endpoints(me) },
            Request::ImStart { participants } => {
                Reply::Conversation { conversation: im.start(actor, &participants).await? }
            }
            Request::ImSend { conversation, text, format, key } => {
                Reply::Message { message: im.send(actor, conversation, &text, format, key).await? }
            }
            Request::ImAdd { conversation, user } => {
                Reply::Conversation { conversation: im.add(actor, conversation, &user).await? }
            }
            Request::ImLeave { conversation } => {
                Reply::Conversation { conversation: im.leave(actor, conversation).await? }
            }
            Request::ImTyping { conversation, typing } => {
                im.typing(actor, conversation, typing)?;
                Reply::Ok {}
            }
            Request::ImRead { conversation, upto } => Reply::Read { unread: im.read(actor, conversation, upto).await? },
            Request::ImAck { upto } => Reply::Acked { acked: im.ack(me, upto).await? },
            Request::PresenceSet { state, availability, activity, until } => {
                let manual = presence.manual(state.as_deref(), availability, activity.as_deref(), until)?;
                let view = presence.set_manual(me, Some(manual)).await?;
                Reply::Presence { presence: view }
            }
            Request::PresenceReset {} => {
                let view = presence.set_manual(me, None).await?;
                Reply::Presence { presence: view }
            }
            Request::PresenceMachine { state } => {
                Reply::Presence { presence: presence.machine(me, self.endpoint.id, state).await? }
            }
            Request::PresenceSubscribe { users, ttl_secs } => {
                let targets = presence.users(&users)?;
                let ttl = ttl_secs.map_or(presence.settings().subscription_ttl, Duration::from_secs);
                Reply::Presences { presence: presence.subscribe(me, self.endpoint.id, &targets, ttl).await? }
            }
            Request::PresenceUnsubscribe { users } => {
                presence.unsubscribe(me, self.endpoint.id, &presence.users(&users)?);
                Reply::Ok {}
            }
            Request::RoomPost { room, text, format, key } => Reply::Message {
                message: self.state.rooms.post(room, me, Some(self.endpoint.id), &text, format, key).await?,
            },
        })
    }
}

/// A frame as a WebSocket message (`None`, logged, if it cannot be encoded).
fn to_message(codec: Codec, frame: &ServerFrame) -> Option<Message> {
    match codec.encode(frame) {
        Ok(Outgoing::Text(t)) => Some(Message::Text(t)),
        Ok(Outgoing::Binary(b)) => Some(Message::Binary(b)),
        Err(e) => {
            tracing::error!(error = %e, "encoding a frame");
            None
        }
    }
}

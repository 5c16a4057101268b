//! One WebSocket session, one task: it reads and handles the client's frames, writes what the
//! endpoint's queue holds (everything queued at once, one vectored write), pings, and closes.
//! Between frames it holds no buffer ([`super::ws`]).

use std::future::poll_fn;
use std::io;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use halo_core::User;
use halo_store::TokenHash;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tungstenite::protocol::frame::coding::{Control, OpCode};

use super::hub::{CloseReason, EndpointSender, Registration};
use super::wire::{Codec, FrameError, Incoming, Reply, Request, ServerFrame};
use super::ws::{self, Frame, Io, Parsed, Reader, Writer};
use crate::cap::Slot;
use crate::error::ApiError;
use crate::state::AppState;
use halo_services::changes::Draft;
use halo_services::clock::now_ms;
use halo_services::im::Actor;

/// Most queued frames one write takes.
const BATCH: usize = 64;
/// How long a close may take: writing the close frame, then reading to the client's answer.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// The most bytes read and thrown away while closing (the rest of an oversize message, frames
/// in flight), as a multiple of the hard frame limit; past it the socket is just dropped.
const DRAIN_FACTOR: u64 = 16;

/// An upgraded socket.
pub struct Conn {
    /// The socket.
    pub io: Io,
    /// Bytes the client sent right behind its upgrade request.
    pub pre: Bytes,
    /// Its place under the connection cap (`None`: held by the socket itself).
    pub slot: Option<Slot>,
}

/// How a session ended.
enum End {
    /// The client sent a close frame (with this code).
    Client(Option<u16>),
    /// The socket ended or failed.
    Gone,
    /// The server closes with this reason; `skip` bytes of an oversize frame are still to come.
    Server(CloseReason, u64),
}

/// Runs one socket until either side ends it; `expires_at` (ms) is when its token expires, and
/// the socket with it (4003 `token_expired`).
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    conn: Conn,
    state: AppState,
    user: User,
    token: TokenHash,
    expires_at: Option<u64>,
    name: String,
    codec: Codec,
) {
    let Conn { mut io, pre, slot } = conn;
    let mut reader = Reader::new(&pre);
    drop(pre);
    let mut out = Writer::default();
    let hard = state.settings.limits.hard_frame_bytes();
    let Some(reg) = state.hub.register(&user.username, name, token, now_ms()) else {
        finish(&mut io, &mut reader, &mut out, End::Server(CloseReason::TooManyEndpoints, 0), hard).await;
        drop(slot);
        return;
    };
    let Registration { info, mut outbox, mut close, sender } = reg;
    state.metrics.ws_accepted.inc();
    tracing::info!(username = %user.username, endpoint = info.id, name = %info.name, ?codec, "endpoint connected");
    let limits = state.settings.limits.clone();
    let heartbeat = limits.heartbeat;

    // The hello goes straight to the socket, before anything queued: the endpoint is in the
    // hub already, so a presence change or message may be queued for it meanwhile, and it must
    // come after the hello. Offline messages follow it, oldest first, up to half the queue;
    // the rest come on the next connect after these are acknowledged. (Boxed: the task keeps
    // only what an idle socket needs.)
    let started = Box::pin(async {
        let pending = state.im.pending(&user.username, limits.send_queue / 2).unwrap_or_else(|e| {
            tracing::error!(error = %e, "reading offline messages");
            Vec::new()
        });
        let hello = ServerFrame::Hello {
            endpoint: info.clone(),
            username: user.username.to_string(),
            server_version: env!("CARGO_PKG_VERSION"),
            heartbeat_ms: heartbeat.as_millis() as u64,
            max_frame_bytes: limits.max_frame_bytes,
            offline: pending.len(),
        };
        if let Some(frame) = encode(codec, &hello) {
            out.push(frame);
        }
        match tokio::time::timeout(heartbeat, poll_fn(|cx| out.poll_write(&mut io, cx))).await {
            Ok(Ok(())) => _ = state.metrics.ws_frames_sent.inc(),
            _ => return false,
        }
        match state.presence.connect(&user.username, info.id).await {
            Ok(events) => events.iter().for_each(|e| _ = sender.send(ServerFrame::from_event(e))),
            Err(e) => tracing::error!(error = %e, "presence snapshot"),
        }
        for event in &pending {
            sender.send(ServerFrame::from_event(event));
        }
        true
    })
    .await;

    let end = if started {
        let ctx = Ctx { state: &state, user: &user, endpoint: &info, sender: &sender, codec };
        let session = Session { io: &mut io, reader: &mut reader, out: &mut out, hard, heartbeat, expires_at };
        session.run(&ctx, &mut outbox, &mut close).await
    } else {
        End::Gone
    };
    state.hub.unregister(&user.username, info.id);
    state.presence.disconnect(&user.username, info.id);
    drop(outbox);
    let reason = match &end {
        End::Server(r, _) => r.text(),
        End::Client(_) | End::Gone => (*close.borrow()).map_or("client", CloseReason::text),
    };
    state.metrics.ws_closed(reason);
    tracing::info!(username = %user.username, endpoint = info.id, reason, "endpoint disconnected");
    finish(&mut io, &mut reader, &mut out, end, hard).await;
    drop(slot);
}

/// The socket's state while it runs.
struct Session<'a> {
    io: &'a mut Io,
    reader: &'a mut Reader,
    out: &'a mut Writer,
    hard: usize,
    heartbeat: Duration,
    expires_at: Option<u64>,
}

/// What woke the session.
enum Step {
    Read(io::Result<usize>),
    Wrote(io::Result<()>),
}

impl Session<'_> {
    async fn run(
        self,
        ctx: &Ctx<'_>,
        outbox: &mut tokio::sync::mpsc::Receiver<super::hub::Queued>,
        close: &mut tokio::sync::watch::Receiver<Option<CloseReason>>,
    ) -> End {
        let Session { io, reader, out, hard, heartbeat, expires_at } = self;
        let metrics = &ctx.state.metrics;
        let idle = heartbeat * 2 + Duration::from_secs(1);
        let expiry = expires_at.map(|at| Instant::now() + Duration::from_millis(at.saturating_sub(now_ms())));
        let mut last_rx = Instant::now();
        let mut next_ping = last_rx + heartbeat;
        // Since when the frames in `out` have waited for the client to read.
        let mut stalled: Option<Instant> = None;
        let timer = tokio::time::sleep_until(expiry.map_or(next_ping, |e| e.min(next_ping)));
        tokio::pin!(timer);
        loop {
            // Everything complete in what was read, in order.
            loop {
                match reader.next_frame(hard) {
                    Parsed::NeedMore => break,
                    Parsed::Protocol(why) => {
                        tracing::info!(username = %ctx.user.username, endpoint = ctx.endpoint.id, why, "protocol error");
                        return End::Server(CloseReason::ProtocolError, 0);
                    }
                    Parsed::TooBig { skip } => return End::Server(CloseReason::MessageTooBig, skip),
                    Parsed::Frame(frame) => match frame {
                        Frame::Text => match std::str::from_utf8(reader.payload()) {
                            Ok(text) => Box::pin(ctx.handle(Incoming::Text(text))).await,
                            Err(_) => return End::Server(CloseReason::InvalidUtf8, 0),
                        },
                        Frame::Binary => Box::pin(ctx.handle(Incoming::Binary(reader.payload()))).await,
                        Frame::Ping(data) => out.push(ws::frame(OpCode::Control(Control::Pong), &data)),
                        Frame::Pong | Frame::Fragment => {}
                        Frame::Close(code) => return End::Client(code),
                    },
                }
            }
            reader.release();
            if out.is_empty() {
                stalled = None;
            } else {
                stalled.get_or_insert_with(Instant::now);
            }
            let step = tokio::select! {
                biased;
                _ = close.changed() => {
                    return End::Server((*close.borrow_and_update()).unwrap_or(CloseReason::SessionEnded), 0);
                }
                step = poll_fn(|cx| {
                    if !out.is_empty() && let Poll::Ready(r) = out.poll_write(io, cx) {
                        return Poll::Ready(Step::Wrote(r));
                    }
                    reader.poll_fill(io, cx).map(Step::Read)
                }) => step,
                first = outbox.recv(), if out.is_empty() => {
                    let Some(first) = first else { return End::Server(CloseReason::SessionEnded, 0) };
                    // This frame and whatever else is queued now leave in one write. When it
                    // came alone, the other tasks ready to run go first: under load more frames
                    // arrive meanwhile and share the write; when idle the yield costs nothing.
                    if outbox.is_empty() {
                        tokio::task::yield_now().await;
                    }
                    let mut next = Some(first);
                    let mut n = 0;
                    while let Some(q) = next.take() {
                        if let Some(frame) = encode(ctx.codec, &q.into_frame()) {
                            out.push(frame);
                            n += 1;
                        }
                        if out.len() < BATCH {
                            next = outbox.try_recv().ok();
                        }
                    }
                    metrics.ws_frames_sent.inc_by(n);
                    continue;
                }
                () = &mut timer => {
                    let now = Instant::now();
                    if expiry.is_some_and(|at| now >= at) {
                        return End::Server(CloseReason::TokenExpired, 0);
                    }
                    if now >= last_rx + idle {
                        return End::Server(CloseReason::IdleTimeout, 0);
                    }
                    // A client that does not read for a whole heartbeat is not keeping up.
                    if stalled.is_some_and(|since| now >= since + heartbeat) {
                        metrics.ws_slow_consumers.inc();
                        return End::Server(CloseReason::SlowConsumer, 0);
                    }
                    if now >= next_ping {
                        out.push(ws::ping_frame());
                        next_ping = now + heartbeat;
                    }
                    let mut at = next_ping.min(last_rx + idle);
                    if let Some(e) = expiry {
                        at = at.min(e);
                    }
                    if let Some(since) = stalled {
                        at = at.min(since + heartbeat);
                    }
                    timer.as_mut().reset(at);
                    continue;
                }
            };
            match step {
                Step::Read(Ok(0)) | Step::Read(Err(_)) | Step::Wrote(Err(_)) => return End::Gone,
                Step::Read(Ok(_)) => last_rx = Instant::now(),
                Step::Wrote(Ok(())) => stalled = None,
            }
        }
    }
}

/// Ends the socket: answers a client's close, or sends the server's close and reads (bounded)
/// until the client's answer, past the rest of an oversize frame, so that the client reads the
/// close code instead of a reset.
async fn finish(io: &mut Io, reader: &mut Reader, out: &mut Writer, end: End, hard: usize) {
    let (frame, mut skip) = match end {
        End::Gone => return,
        End::Client(code) => {
            // Echo the client's code (RFC 6455 5.5.1); frames not yet written are dropped.
            out.clear();
            let code = code.filter(|c| *c >= 1000 && *c != 1005 && *c != 1006).unwrap_or(1000);
            let frame = ws::close_frame(code, "");
            out.push(frame);
            let write = async {
                poll_fn(|cx| out.poll_write(io, cx)).await?;
                io.shutdown().await
            };
            let _ = tokio::time::timeout(CLOSE_WAIT, write).await;
            return;
        }
        End::Server(reason, skip) => {
            if reason == CloseReason::SlowConsumer {
                // What is queued would only delay the close.
                out.clear();
            }
            (ws::close_frame(reason.code(), reason.text()), skip)
        }
    };
    let limit = (hard as u64).saturating_mul(DRAIN_FACTOR);
    out.push(frame);
    let close = async {
        poll_fn(|cx| out.poll_write(io, cx)).await?;
        if skip > limit {
            return Ok(());
        }
        // Read to the client's close (or the end), throwing frames away.
        let mut drained = 0u64;
        loop {
            skip -= reader.discard(skip);
            if skip == 0 {
                loop {
                    match reader.next_frame(usize::MAX) {
                        Parsed::Frame(Frame::Close(_)) => return io.shutdown().await,
                        Parsed::Frame(_) => {}
                        Parsed::NeedMore => break,
                        Parsed::Protocol(_) | Parsed::TooBig { .. } => return Ok(()),
                    }
                }
            }
            let n = poll_fn(|cx| reader.poll_fill(io, cx)).await?;
            drained += n as u64;
            if n == 0 || drained > limit {
                return Ok(());
            }
        }
    };
    let _: Result<io::Result<()>, _> = tokio::time::timeout(CLOSE_WAIT, close).await;
}

/// A frame encoded for the socket (`None`, logged, if it cannot be encoded).
fn encode(codec: Codec, frame: &ServerFrame) -> Option<Bytes> {
    codec.encode(frame).map_err(|e| tracing::error!(error = %e, "encoding a frame")).ok()
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
            Request::ImSend { conversation, text, format, key, reply_to, attachments } => {
                let draft = Draft { reply_to, attachments };
                Reply::Message { message: im.send_draft(actor, conversation, (&text, format), key, &draft).await? }
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
            Request::RoomPost { room, text, format, key, reply_to, attachments } => {
                let draft = Draft { reply_to, attachments };
                let by = (me, Some(self.endpoint.id));
                Reply::Message { message: self.state.rooms.post_draft(room, by, (&text, format), key, &draft).await? }
            }
            Request::MessageEdit { conversation, room, message, text, format } => {
                let thread = thread_of(conversation, room)?;
                Reply::Message { message: self.state.changes.edit(actor, thread, message, &text, format).await? }
            }
            Request::MessageDelete { conversation, room, message } => {
                let thread = thread_of(conversation, room)?;
                Reply::Message { message: self.state.changes.delete(actor, thread, message).await? }
            }
            Request::MessageReact { conversation, room, message, emoji, add } => {
                let thread = thread_of(conversation, room)?;
                Reply::Message { message: self.state.changes.react(actor, thread, message, &emoji, add).await? }
            }
        })
    }
}

/// The thread a request names: exactly one of `conversation` and `room`.
pub(crate) fn thread_of(conversation: Option<u64>, room: Option<u64>) -> Result<halo_store::Thread, ApiError> {
    match (conversation, room) {
        (Some(c), None) => Ok(halo_store::Thread::Conversation(c)),
        (None, Some(r)) => Ok(halo_store::Thread::Room(r)),
        _ => Err(ApiError::bad_request("name exactly one of conversation and room")),
    }
}

//! HTTP connection timeouts ([`crate::settings::HttpSettings`]), which hyper does not give:
//! hyper's own `header_read_timeout` also runs while a kept-alive connection waits for its next
//! request, so it cannot tell a slow head from an idle connection.
//!
//! [`Acceptor`] wraps axum-server's acceptor (plain or TLS). Each connection gets a [`Watch`]
//! shared by its IO ([`Watched`], which fails a read past the deadline so hyper drops the
//! connection) and its service ([`Tracked`], which moves the connection through its phases as
//! requests start and their responses end):
//!
//! - accepted: TLS handshake and first request head within `header_timeout`;
//! - idle (no request in flight): closed after `idle_timeout` without a byte; the first byte of a
//!   request starts `header_timeout` for the rest of its head (HTTP/1: a slowloris trickling
//!   header lines is closed; HTTP/2 multiplexes, so its connections only have the idle timeout);
//! - busy (requests in flight): no connection deadline; a body that arrives too slowly is cut by
//!   [`body_deadline`] with 408 `timeout`;
//! - upgraded (a WebSocket): no deadline ever again; the stream's heartbeat finds silent sockets.
//!
//! Until upgraded, a write that waits `idle_timeout` for the client to read fails too (a client
//! that stops reading its answers; nginx's `send_timeout`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::accept::{Accept, DefaultAcceptor};
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use futures_util::future::BoxFuture;
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::cap::{Admission, Cap, Slot};
use crate::error::{ApiError, ErrorBody};
use crate::settings::HttpSettings;

/// axum-server's acceptor `A` with the connection timeouts, `TCP_NODELAY` and the connection
/// cap ([`crate::cap`]).
#[derive(Debug, Clone)]
pub struct Acceptor<A> {
    inner: A,
    header: Duration,
    idle: Duration,
    cap: Arc<Cap>,
}

impl Acceptor<DefaultAcceptor> {
    /// Plain HTTP.
    pub fn plain(http: &HttpSettings, cap: Arc<Cap>) -> Self {
        Self { inner: DefaultAcceptor, header: http.header_timeout, idle: http.idle_timeout, cap }
    }
}

impl Acceptor<RustlsAcceptor> {
    /// HTTPS: the TLS handshake too must end within `header_timeout`.
    pub fn tls(config: RustlsConfig, http: &HttpSettings, cap: Arc<Cap>) -> Self {
        let inner = RustlsAcceptor::new(config).handshake_timeout(http.header_timeout);
        Self { inner, header: http.header_timeout, idle: http.idle_timeout, cap }
    }
}

impl<A, S> Accept<TcpStream, S> for Acceptor<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Watched<A::Stream>;
    type Service = Tracked<A::Service>;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        // Nagle's algorithm off: small frames (a message, a presence change, a reply) leave at
        // once instead of waiting for the peer's delayed ACK (~40 ms).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
        let (slot, refuse) = match self.cap.admit() {
            Admission::Serve(slot) => (slot, false),
            Admission::Refuse(slot) => (slot, true),
            Admission::Drop => {
                drop(stream);
                return Box::pin(async { Err(io::Error::other("past the connection hard limit")) });
            }
        };
        let watch = Arc::new(Watch::new(self.header, self.idle));
        let accepted = self.inner.accept(stream, service);
        Box::pin(async move {
            let (io, inner) = accepted.await?;
            Ok((Watched::new(io, watch.clone(), slot), Tracked { inner, watch, refuse }))
        })
    }
}

/// Request extension on every request of a connection accepted past the cap.
#[derive(Debug, Clone, Copy)]
pub struct OverCap;

/// Middleware: a request on a connection past the cap is answered 503 `busy` (`Retry-After`,
/// `Connection: close`) before anything else, a WebSocket upgrade included.
pub async fn refuse_over_cap(req: Request, next: Next) -> Response {
    if req.extensions().get::<OverCap>().is_none() {
        return next.run(req).await;
    }
    let error = ApiError::from(halo_services::ServiceError::Busy { retry_after: std::time::Duration::from_secs(1) });
    let mut response = error.into_response();
    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// One connection's phase, shared by its IO and its service.
#[derive(Debug)]
struct Watch {
    header: Duration,
    idle: Duration,
    state: Mutex<WatchState>,
}

#[derive(Debug)]
struct WatchState {
    phase: Phase,
    /// HTTP/2: reads while idle are frames (pings, window updates), not the start of a head.
    h2: bool,
    /// The task reading the connection, woken when the deadline moves out from under it.
    reader: Option<Waker>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// A request head is due (since accepted, or since its first byte).
    Head(Instant),
    /// Waiting for the next request since then.
    Idle(Instant),
    /// This many requests in flight.
    Busy(usize),
    /// Handed over to another protocol (WebSocket).
    Upgraded,
}

enum Deadline {
    At(Instant),
    NotNow,
    Never,
}

impl Watch {
    fn new(header: Duration, idle: Duration) -> Self {
        let state = WatchState { phase: Phase::Head(Instant::now()), h2: false, reader: None };
        Self { header, idle, state: Mutex::new(state) }
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current deadline; `reader` is woken when it changes while busy.
    fn deadline(&self, reader: &Waker) -> Deadline {
        let mut s = self.lock();
        if !s.reader.as_ref().is_some_and(|w| w.will_wake(reader)) {
            s.reader = Some(reader.clone());
        }
        match s.phase {
            Phase::Head(since) => Deadline::At(since + self.header),
            Phase::Idle(since) => Deadline::At(since + self.idle),
            Phase::Busy(_) => Deadline::NotNow,
            Phase::Upgraded => Deadline::Never,
        }
    }

    /// Bytes arrived: on an idle HTTP/1 connection, a request head has begun.
    fn received(&self) {
        let mut s = self.lock();
        if matches!(s.phase, Phase::Idle(_)) && !s.h2 {
            s.phase = Phase::Head(Instant::now());
        }
    }

    fn request_started(self: &Arc<Self>, version: Version) -> InFlight {
        let mut s = self.lock();
        s.h2 |= version == Version::HTTP_2;
        s.phase = match s.phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Upgraded => Phase::Upgraded,
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        };
        InFlight(self.clone())
    }

    fn upgraded(&self) {
        let mut s = self.lock();
        s.phase = Phase::Upgraded;
        s.reader = None;
    }
}

/// A request in flight, until its response has been sent (or dropped).
#[derive(Debug)]
struct InFlight(Arc<Watch>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let reader = {
            let mut s = self.0.lock();
            match s.phase {
                Phase::Busy(1) => {
                    s.phase = Phase::Idle(Instant::now());
                    s.reader.take()
                }
                Phase::Busy(n) => {
                    s.phase = Phase::Busy(n - 1);
                    None
                }
                _ => None,
            }
        };
        if let Some(reader) = reader {
            reader.wake();
        }
    }
}

/// A connection's IO: a read past the deadline fails with `TimedOut`, and so does a write that
/// makes no progress for `idle_timeout` (a client that stops reading its answers); hyper then
/// drops the connection.
#[derive(Debug)]
pub struct Watched<T> {
    io: T,
    watch: Arc<Watch>,
    timer: Pin<Box<Sleep>>,
    /// Since when writes have been waiting for the client to read.
    stalled: Option<Instant>,
    stall_timer: Pin<Box<Sleep>>,
    /// False once upgraded: reads and writes pass straight through.
    armed: bool,
    /// The connection's place under the cap.
    slot: Slot,
}

impl<T> Watched<T> {
    fn new(io: T, watch: Arc<Watch>, slot: Slot) -> Self {
        let sleep = || Box::pin(tokio::time::sleep(Duration::ZERO));
        Self { io, watch, timer: sleep(), stalled: None, stall_timer: sleep(), armed: true, slot }
    }

    /// The connection and its place under the cap, without the timers (an upgraded socket has
    /// no connection deadline).
    pub fn into_parts(self) -> (T, Slot) {
        (self.io, self.slot)
    }

    fn timed_out<R>(why: &str) -> Poll<io::Result<R>> {
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, format!("HTTP connection timeout: {why}"))))
    }

    /// Passes a write's outcome on, failing it once writes have waited `idle_timeout`.
    fn write_progress<R>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if poll.is_ready() || !self.armed {
            self.stalled = None;
            return poll;
        }
        if matches!(self.watch.lock().phase, Phase::Upgraded) {
            self.armed = false;
            return poll;
        }
        let at = *self.stalled.get_or_insert_with(Instant::now) + self.watch.idle;
        if self.stall_timer.deadline() != at {
            self.stall_timer.as_mut().reset(at);
        }
        match self.stall_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Self::timed_out("the client stopped reading"),
            Poll::Pending => poll,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.armed {
            match this.watch.deadline(cx.waker()) {
                Deadline::At(at) => {
                    if this.timer.deadline() != at {
                        this.timer.as_mut().reset(at);
                    }
                    if this.timer.as_mut().poll(cx).is_ready() {
                        return Self::timed_out("no request in time");
                    }
                }
                Deadline::NotNow => {}
                Deadline::Never => this.armed = false,
            }
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.io).poll_read(cx, buf);
        if this.armed && matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.watch.received();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.write_progress(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.write_progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.write_progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A connection's service: marks each request in flight until its response body is done, and
/// disarms the connection's deadline when it switches protocols (101).
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    watch: Arc<Watch>,
    /// Accepted past the cap: every request is marked [`OverCap`].
    refuse: bool,
}

impl<S, B, R> tower_service::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower_service::Service<axum::http::Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
    R: HttpBody + Unpin,
{
    type Response = Response<Sent<R>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: axum::http::Request<B>) -> Self::Future {
        if self.refuse {
            req.extensions_mut().insert(OverCap);
        }
        let in_flight = self.watch.request_started(req.version());
        let response = self.inner.call(req);
        Box::pin(async move {
            let response = response.await?;
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                in_flight.0.upgraded();
            }
            Ok(response.map(|body| Sent { body, _in_flight: in_flight }))
        })
    }
}

/// A response body that ends its request's time in flight when dropped.
#[derive(Debug)]
pub struct Sent<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: HttpBody + Unpin> HttpBody for Sent<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Middleware: a request body must arrive within `body_timeout`, plus one second for every
/// `body_min_rate` bytes received; a handler that reads past that deadline is answered 408
/// `timeout` instead, and the connection closes.
pub async fn body_deadline(State(http): State<HttpSettings>, req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|body| Body::new(BodyDeadline::new(body, &http, expired.clone())));
    let response = next.run(req).await;
    if !expired.load(Ordering::Relaxed) {
        return response;
    }
    let message = format!(
        "the request body arrived too slowly (allowed: {:?} plus 1 s per {} bytes)",
        http.body_timeout, http.body_min_rate
    );
    let body = ErrorBody { error: "timeout", message, retry_after_ms: None };
    (StatusCode::REQUEST_TIMEOUT, [(header::CONNECTION, "close")], Json(body)).into_response()
}

/// A request body that fails once its deadline has passed.
struct BodyDeadline {
    body: Body,
    start: Instant,
    allowed: Duration,
    min_rate: u64,
    received: u64,
    timer: Pin<Box<Sleep>>,
    expired: Arc<AtomicBool>,
}

impl BodyDeadline {
    fn new(body: Body, http: &HttpSettings, expired: Arc<AtomicBool>) -> Self {
        let start = Instant::now();
        let timer = Box::pin(tokio::time::sleep_until(start + http.body_timeout));
        Self { body, start, allowed: http.body_timeout, min_rate: http.body_min_rate, received: 0, timer, expired }
    }

    fn deadline(&self) -> Instant {
        let earned = self.received.saturating_mul(1000).checked_div(self.min_rate).unwrap_or(0);
        self.start + self.allowed.saturating_add(Duration::from_millis(earned))
    }
}

impl HttpBody for BodyDeadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, Bytes::len);
                this.received = this.received.saturating_add(len as u64);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                let at = this.deadline();
                if this.timer.deadline() != at {
                    this.timer.as_mut().reset(at);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.expired.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(axum::Error::new("the request body arrived too slowly"))))
            }
            done => done,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

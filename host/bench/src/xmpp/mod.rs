//! A minimal async XMPP client-to-server client (tokio), good enough to load a server such as
//! Prosody on loopback: plain TCP (no TLS), SASL PLAIN, stream restart, resource binding,
//! session establishment when the server requires it, initial presence, chat messages and
//! presence in and out, and an optional roster get.
//!
//! It is not a general XMPP library. Incoming data goes through a small incremental splitter
//! that finds the top-level elements of the stream (`<message/>`, `<presence/>`, `<iq/>`, …)
//! without building a tree; [`Stanza`] then reads the root's attributes and the text of a named
//! child (`body`, `show`, `status`) by scanning. That is enough for well-formed server output,
//! which is all this is pointed at.
//!
//! Every network await has a timeout: the handshake and writes use
//! [`ConnectOptions::timeout`], reads take the caller's. A timed-out read returns `Ok(None)`;
//! a closed stream, a stream error or an I/O error is an `Err`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use std::time::Duration;
//! use halo_bench::xmpp::XmppClient;
//! let addr = "127.0.0.1:5222".parse()?;
//! let local = "127.0.0.2".parse()?;
//! let mut a = XmppClient::connect(addr, local, "u0@localhost", "secret").await?;
//! a.send_message("u1@localhost", "hello").await?;
//! if let Some(m) = a.next_message(Duration::from_secs(5)).await? {
//!     println!("{} says {}", m.from, m.body);
//! }
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::{Instant, timeout, timeout_at};

mod xml;

use xml::{Item, Splitter, attr_of, escape_into, start_tag};
pub use xml::{escape, unescape};

/// Largest amount of unparsed input held for one element before the stream is given up.
const MAX_BUFFER: usize = 1 << 20;
/// Non-matching stanzas kept aside by the filtered reads ([`XmppReader::next_message`] …);
/// older ones are dropped past this, so an unread kind cannot grow memory without bound.
const MAX_PENDING: usize = 4096;

/// Resources handed out to JIDs given without one: `bench0`, `bench1`, … (unique per process,
/// so two sessions of one user never replace each other).
static NEXT_RESOURCE: AtomicU64 = AtomicU64::new(0);

/// Options of [`XmppClient::connect_with`].
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Limit for each step of the connection and login, and for each later write.
    pub timeout: Duration,
    /// Send `<presence/>` once bound, so the session is available (messages to the bare JID are
    /// then delivered to it, and contacts see it online). Default: true.
    pub initial_presence: bool,
    /// Fetch the roster before the initial presence (as a typical client does). Default: false.
    pub roster_get: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions { timeout: Duration::from_secs(10), initial_presence: true, roster_get: false }
    }
}

/// One top-level element received on the stream, as its raw XML text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    raw: String,
}

impl Stanza {
    /// The element's raw XML, as received.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The element's (qualified) name: `message`, `presence`, `iq`, `stream:error`, ….
    pub fn name(&self) -> &str {
        let rest = self.raw.strip_prefix('<').unwrap_or(&self.raw);
        let end = rest.find(|c: char| c.is_whitespace() || c == '/' || c == '>').unwrap_or(rest.len());
        &rest[..end]
    }

    /// The value of the root element's attribute `name`, unescaped.
    pub fn attr(&self, name: &str) -> Option<String> {
        attr_of(start_tag(&self.raw), name)
    }

    /// The unescaped text of the first descendant element named `name` (e.g. `body`); `Some("")`
    /// for an empty one, `None` when there is none.
    pub fn child_text(&self, name: &str) -> Option<String> {
        let tag = start_tag(&self.raw);
        let inner = &self.raw[tag.len()..];
        let open = format!("<{name}");
        let mut from = 0;
        while let Some(i) = inner[from..].find(&open) {
            let at = from + i;
            let after = &inner[at + open.len()..];
            match after.chars().next() {
                Some(c) if c == '>' || c == '/' || c.is_whitespace() => {
                    let t = start_tag(&inner[at..]);
                    if t.ends_with("/>") {
                        return Some(String::new());
                    }
                    let body = &inner[at + t.len()..];
                    let close = format!("</{name}>");
                    let end = body.find(&close)?;
                    return Some(unescape(&body[..end]));
                }
                _ => from = at + open.len(),
            }
        }
        None
    }

    /// This stanza as a chat message: `Some` for a `<message>` with a `<body>`.
    pub fn as_message(&self) -> Option<Message> {
        if self.name() != "message" {
            return None;
        }
        let body = self.child_text("body")?;
        Some(Message { from: self.attr("from").unwrap_or_default(), kind: self.attr("type"), body })
    }

    /// This stanza as a presence: `Some` for a `<presence>`.
    pub fn as_presence(&self) -> Option<Presence> {
        if self.name() != "presence" {
            return None;
        }
        Some(Presence {
            from: self.attr("from").unwrap_or_default(),
            kind: self.attr("type"),
            show: self.child_text("show"),
            status: self.child_text("status"),
        })
    }
}

/// A received message with a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's JID as the server stamped it (usually full: `user@domain/resource`).
    pub from: String,
    /// The `type` attribute (`chat`, `normal`, …), if any.
    pub kind: Option<String>,
    /// The body text, unescaped.
    pub body: String,
}

/// A received presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// The JID it is from (full for a resource's presence).
    pub from: String,
    /// The `type` attribute: `None` for available, else `unavailable`, `subscribe`, ….
    pub kind: Option<String>,
    /// `<show/>` (`away`, `dnd`, `xa`, `chat`), if any.
    pub show: Option<String>,
    /// `<status/>` text, if any.
    pub status: Option<String>,
}

/// A logged-in XMPP session: both directions. Split it with [`XmppClient::into_split`] to read
/// and write from different tasks.
#[derive(Debug)]
pub struct XmppClient {
    reader: XmppReader,
    writer: XmppWriter,
    jid: String,
}

/// The receiving half of a session.
#[derive(Debug)]
pub struct XmppReader {
    rd: OwnedReadHalf,
    splitter: Splitter,
    pending: VecDeque<Stanza>,
}

/// The sending half of a session.
#[derive(Debug)]
pub struct XmppWriter {
    wr: OwnedWriteHalf,
    timeout: Duration,
    out: String,
}

impl XmppClient {
    /// Connects from `local_ip` (bound with port 0 before connecting, so load can be spread
    /// over 127.0.0.x source addresses) to the server's c2s `addr`, logs in as `jid`
    /// (`user@domain`, optionally `/resource`) with SASL PLAIN, binds a resource and sends
    /// initial presence; each step within 10 s. See [`XmppClient::connect_with`].
    pub async fn connect(addr: SocketAddr, local_ip: IpAddr, jid: &str, password: &str) -> Result<XmppClient> {
        Self::connect_with(addr, local_ip, jid, password, &ConnectOptions::default()).await
    }

    /// [`XmppClient::connect`] with options.
    pub async fn connect_with(
        addr: SocketAddr,
        local_ip: IpAddr,
        jid: &str,
        password: &str,
        opts: &ConnectOptions,
    ) -> Result<XmppClient> {
        let (local, domain, resource) = split_jid(jid)?;
        let resource = match resource {
            Some(r) => r.to_string(),
            None => format!("bench{}", NEXT_RESOURCE.fetch_add(1, Ordering::Relaxed)),
        };
        let t = opts.timeout;

        let socket = if local_ip.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        socket.bind(SocketAddr::new(local_ip, 0)).with_context(|| format!("bind {local_ip}:0"))?;
        let stream = timeout(t, socket.connect(addr))
            .await
            .map_err(|_| anyhow!("connect to {addr} timed out"))?
            .with_context(|| format!("connect to {addr} from {local_ip}"))?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let mut reader = XmppReader { rd, splitter: Splitter::default(), pending: VecDeque::new() };
        let mut writer = XmppWriter { wr, timeout: t, out: String::new() };

        // Stream, features, SASL PLAIN.
        writer.send_raw(&stream_header(domain)).await?;
        let features = reader.expect_stream_and_features(t).await?;
        if !features.raw.contains("<mechanism>PLAIN</mechanism>") {
            bail!("server does not offer SASL PLAIN: {}", features.raw);
        }
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{local}\0{password}"));
        writer
            .send_raw(&format!("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{token}</auth>"))
            .await?;
        let answer = reader.expect_stanza(t, "SASL answer").await?;
        if answer.name() != "success" {
            bail!("SASL PLAIN for {local}@{domain} failed: {}", answer.raw);
        }

        // Restarted stream (the splitter keeps no stream state: nothing to reset), bind,
        // session when required.
        writer.send_raw(&stream_header(domain)).await?;
        let features = reader.expect_stream_and_features(t).await?;
        writer
            .send_raw(&format!(
                "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{}</resource></bind></iq>",
                escape(&resource)
            ))
            .await?;
        let bound = reader.expect_iq_result(t, "bind1").await?;
        let full = bound.child_text("jid").ok_or_else(|| anyhow!("bind result without a JID: {}", bound.raw))?;
        // RFC 3921 session establishment, only when offered and not marked optional.
        if features.child_text("session").is_some_and(|inner| !inner.contains("optional")) {
            writer
                .send_raw("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
                .await?;
            reader.expect_iq_result(t, "sess1").await?;
        }

        let mut client = XmppClient { reader, writer, jid: full };
        if opts.roster_get {
            client.roster_get().await?;
        }
        if opts.initial_presence {
            client.set_presence(None, None).await?;
        }
        Ok(client)
    }

    /// The full JID the server bound (`user@domain/resource`).
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Sends `<message type='chat' to='…'><body>…</body></message>` (both escaped).
    pub async fn send_message(&mut self, to: &str, body: &str) -> Result<()> {
        self.writer.send_message(to, body).await
    }

    /// Sends a broadcast presence: available with optional `<show/>` and `<status/>`.
    pub async fn set_presence(&mut self, show: Option<&str>, status: Option<&str>) -> Result<()> {
        self.writer.set_presence(show, status).await
    }

    /// Sends raw XML as is (the caller keeps it well-formed).
    pub async fn send_raw(&mut self, xml: &str) -> Result<()> {
        self.writer.send_raw(xml).await
    }

    /// The next stanza of any kind (stanzas set aside by filtered reads first); `Ok(None)` when
    /// none arrives within `wait`.
    pub async fn next_stanza(&mut self, wait: Duration) -> Result<Option<Stanza>> {
        self.reader.next_stanza(wait).await
    }

    /// The next chat message with a body within `wait` (`Ok(None)` if none); other stanzas that
    /// arrive meanwhile are set aside for [`XmppClient::next_presence`] and
    /// [`XmppClient::next_stanza`].
    pub async fn next_message(&mut self, wait: Duration) -> Result<Option<Message>> {
        self.reader.next_message(wait).await
    }

    /// The next presence within `wait` (`Ok(None)` if none); other stanzas are set aside.
    pub async fn next_presence(&mut self, wait: Duration) -> Result<Option<Presence>> {
        self.reader.next_presence(wait).await
    }

    /// Fetches the roster; returns the contacts' JIDs. Other stanzas are set aside.
    pub async fn roster_get(&mut self) -> Result<Vec<String>> {
        self.writer.send_raw("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>").await?;
        let t = self.writer.timeout;
        let result = self.reader.expect_iq_result(t, "roster1").await?;
        let mut jids = Vec::new();
        let mut rest = result.raw.as_str();
        while let Some(i) = rest.find("<item") {
            rest = &rest[i..];
            let tag = start_tag(rest);
            if let Some(j) = attr_of(tag, "jid") {
                jids.push(j);
            }
            rest = &rest[tag.len().max(1)..];
        }
        Ok(jids)
    }

    /// Splits the session into halves that can live in different tasks.
    pub fn into_split(self) -> (XmppReader, XmppWriter) {
        (self.reader, self.writer)
    }

    /// Closes the stream (`</stream:stream>`) and the connection's sending side.
    pub async fn close(self) -> Result<()> {
        self.writer.close().await
    }
}

impl XmppWriter {
    /// Sends `<message type='chat' to='…'><body>…</body></message>` (both escaped).
    pub async fn send_message(&mut self, to: &str, body: &str) -> Result<()> {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        out.push_str("<message type='chat' to='");
        escape_into(&mut out, to);
        out.push_str("'><body>");
        escape_into(&mut out, body);
        out.push_str("</body></message>");
        let r = self.send_raw(&out).await;
        self.out = out;
        r
    }

    /// Sends a broadcast presence: available with optional `<show/>` and `<status/>`.
    pub async fn set_presence(&mut self, show: Option<&str>, status: Option<&str>) -> Result<()> {
        if show.is_none() && status.is_none() {
            return self.send_raw("<presence/>").await;
        }
        let mut out = String::from("<presence>");
        if let Some(s) = show {
            let _ = write!(out, "<show>{}</show>", escape(s));
        }
        if let Some(s) = status {
            let _ = write!(out, "<status>{}</status>", escape(s));
        }
        out.push_str("</presence>");
        self.send_raw(&out).await
    }

    /// Sends raw XML as is, within the write timeout.
    pub async fn send_raw(&mut self, xml: &str) -> Result<()> {
        timeout(self.timeout, self.wr.write_all(xml.as_bytes()))
            .await
            .map_err(|_| anyhow!("XMPP write timed out after {:?}", self.timeout))?
            .context("XMPP write")
    }

    /// Closes the stream (`</stream:stream>`) and the connection's sending side.
    pub async fn close(mut self) -> Result<()> {
        self.send_raw("</stream:stream>").await?;
        let _ = timeout(self.timeout, self.wr.shutdown()).await;
        Ok(())
    }
}

impl XmppReader {
    /// The next stanza of any kind (set-aside ones first); `Ok(None)` after `wait`.
    pub async fn next_stanza(&mut self, wait: Duration) -> Result<Option<Stanza>> {
        if let Some(s) = self.pending.pop_front() {
            return Ok(Some(s));
        }
        self.read_stanza(Instant::now() + wait).await
    }

    /// The next chat message with a body within `wait`; other stanzas are set aside.
    pub async fn next_message(&mut self, wait: Duration) -> Result<Option<Message>> {
        self.next_matching(wait, |s| s.as_message()).await
    }

    /// The next presence within `wait`; other stanzas are set aside.
    pub async fn next_presence(&mut self, wait: Duration) -> Result<Option<Presence>> {
        self.next_matching(wait, |s| s.as_presence()).await
    }

    /// The first set-aside or new stanza that `pick` accepts, within `wait`.
    async fn next_matching<T>(&mut self, wait: Duration, pick: impl Fn(&Stanza) -> Option<T>) -> Result<Option<T>> {
        if let Some(i) = self.pending.iter().position(|s| pick(s).is_some())
            && let Some(s) = self.pending.remove(i)
        {
            return Ok(pick(&s));
        }
        let deadline = Instant::now() + wait;
        loop {
            let Some(s) = self.read_stanza(deadline).await? else { return Ok(None) };
            if let Some(v) = pick(&s) {
                return Ok(Some(v));
            }
            self.set_aside(s);
        }
    }

    fn set_aside(&mut self, s: Stanza) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(s);
    }

    /// Reads from the socket until a whole top-level element is there (or the deadline).
    async fn read_item(&mut self, deadline: Instant) -> Result<Option<Item>> {
        loop {
            if let Some(item) = self.splitter.next_item()? {
                return Ok(Some(item));
            }
            if self.splitter.buf.capacity() - self.splitter.buf.len() < 4096 {
                self.splitter.buf.reserve(8192);
            }
            let read = match timeout_at(deadline, self.rd.read_buf(&mut self.splitter.buf)).await {
                Err(_) => return Ok(None),
                Ok(r) => r.context("XMPP read")?,
            };
            if read == 0 {
                bail!("XMPP connection closed by the server");
            }
            if self.splitter.buf.len() - self.splitter.pos > MAX_BUFFER {
                bail!("XMPP element larger than {MAX_BUFFER} bytes");
            }
        }
    }

    /// The next top-level stanza from the socket; stream errors and stream ends are errors.
    async fn read_stanza(&mut self, deadline: Instant) -> Result<Option<Stanza>> {
        match self.read_item(deadline).await? {
            None => Ok(None),
            Some(Item::Element(s)) if s.name() == "stream:error" => bail!("XMPP stream error: {}", s.raw),
            Some(Item::Element(s)) => Ok(Some(s)),
            Some(Item::StreamOpen(h)) => bail!("unexpected stream header: {h}"),
            Some(Item::StreamClose) => bail!("XMPP stream closed by the server"),
        }
    }

    /// A stanza during the handshake, or an error naming `what` on timeout.
    async fn expect_stanza(&mut self, t: Duration, what: &str) -> Result<Stanza> {
        self.read_stanza(Instant::now() + t).await?.ok_or_else(|| anyhow!("timed out after {t:?} waiting for {what}"))
    }

    /// The server's stream header, then its `<stream:features/>`.
    async fn expect_stream_and_features(&mut self, t: Duration) -> Result<Stanza> {
        let deadline = Instant::now() + t;
        match self.read_item(deadline).await? {
            Some(Item::StreamOpen(_)) => {}
            Some(Item::Element(s)) if s.name() == "stream:error" => bail!("XMPP stream error: {}", s.raw),
            Some(other) => bail!("expected a stream header, got {other:?}"),
            None => bail!("timed out after {t:?} waiting for the stream header"),
        }
        let features = self.expect_stanza(t, "stream features").await?;
        if features.name() != "stream:features" {
            bail!("expected stream features, got {}", features.raw);
        }
        Ok(features)
    }

    /// The `<iq type='result' id='…'>` answering `id`; other stanzas are set aside.
    async fn expect_iq_result(&mut self, t: Duration, id: &str) -> Result<Stanza> {
        let deadline = Instant::now() + t;
        loop {
            let s = self
                .read_stanza(deadline)
                .await?
                .ok_or_else(|| anyhow!("timed out after {t:?} waiting for iq {id}"))?;
            if s.name() == "iq" && s.attr("id").as_deref() == Some(id) {
                if s.attr("type").as_deref() == Some("result") {
                    return Ok(s);
                }
                bail!("iq {id} failed: {}", s.raw);
            }
            self.set_aside(s);
        }
    }
}

/// Splits `user@domain[/resource]`.
fn split_jid(jid: &str) -> Result<(&str, &str, Option<&str>)> {
    let (bare, resource) = match jid.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (jid, None),
    };
    let (local, domain) = bare.split_once('@').ok_or_else(|| anyhow!("JID {jid:?} has no local part"))?;
    if local.is_empty() || domain.is_empty() {
        bail!("bad JID {jid:?}");
    }
    Ok((local, domain, resource))
}

fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        escape(domain)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jids_split() {
        assert_eq!(split_jid("u@d/r").expect("jid"), ("u", "d", Some("r")));
        assert_eq!(split_jid("u@d").expect("jid"), ("u", "d", None));
        assert!(split_jid("d").is_err());
    }
}

//! WebSocket framing (RFC 6455, server side) straight on the socket, for [`super::session`].
//!
//! tungstenite parses frame headers ([`FrameHeader`]); this module owns the buffers, so an idle
//! socket holds none:
//!
//! - Reading: bytes are read into a per-thread scratch buffer when the socket is readable and
//!   only what is left of a partial frame is kept with the socket, in a buffer that is freed
//!   once the frames in it are handled.
//! - Writing: every outgoing frame is one [`Bytes`] holding its header and payload (a frame sent
//!   to many sockets is encoded and framed once, [`super::wire::SharedFrame`]); the frames
//!   queued for a socket leave in one vectored write.

use std::cell::RefCell;
use std::io::{self, Cursor, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// Bytes read per readiness (the per-thread scratch buffer).
const SCRATCH: usize = 16 * 1024;
/// Most slices one vectored write takes (Linux's `IOV_MAX` is 1024).
const MAX_SLICES: usize = 256;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// The socket under a WebSocket: the TCP stream itself when the connection is plain HTTP,
/// hyper's upgraded connection otherwise (TLS).
pub enum Io {
    /// Plain TCP.
    Tcp(TcpStream),
    /// Anything else hyper upgraded.
    Upgraded(TokioIo<Upgraded>),
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Upgraded(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, b),
            Io::Upgraded(s) => Pin::new(s).poll_write_vectored(cx, b),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Upgraded(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Upgraded(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Upgraded(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// A frame for the wire: header and payload, unmasked (server to client).
pub fn frame(opcode: OpCode, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + 10);
    put_header(&mut out, opcode, payload.len());
    out.put_slice(payload);
    out.freeze()
}

/// A frame whose payload `encode` appends (serialized in place, framed without a copy).
pub fn framed<E>(opcode: OpCode, encode: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Bytes, E> {
    const ROOM: usize = 10;
    let mut buf = Vec::with_capacity(128);
    buf.resize(ROOM, 0);
    encode(&mut buf)?;
    let mut head = BytesMut::with_capacity(ROOM);
    put_header(&mut head, opcode, buf.len() - ROOM);
    let start = ROOM - head.len();
    buf[start..ROOM].copy_from_slice(&head);
    Ok(Bytes::from(buf).slice(start..))
}

/// The frame header for a payload of `len` bytes, written ahead of it.
fn put_header(out: &mut BytesMut, opcode: OpCode, len: usize) {
    out.put_u8(0x80 | u8::from(opcode));
    if len < 126 {
        out.put_u8(len as u8);
    } else if let Ok(len) = u16::try_from(len) {
        out.put_u8(126);
        out.put_u16(len);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
}

/// A close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    frame(OpCode::Control(Control::Close), &payload)
}

/// A ping frame without payload.
pub fn ping_frame() -> Bytes {
    Bytes::from_static(&[0x89, 0x00])
}

/// What [`Reader::next_frame`] found.
#[derive(Debug)]
pub enum Parsed {
    /// A complete message, control frame, or a fragment was taken in.
    Frame(Frame),
    /// More bytes are needed.
    NeedMore,
    /// The client broke the protocol (1002).
    Protocol(&'static str),
    /// A message larger than the hard limit (1009); `skip` bytes of it are still to come.
    TooBig {
        /// Bytes of the oversize frame not read yet.
        skip: u64,
    },
}

/// A complete unit from the client.
#[derive(Debug)]
pub enum Frame {
    /// A text message (payload in [`Reader::payload`]).
    Text,
    /// A binary message.
    Binary,
    /// A ping with its payload.
    Ping(Bytes),
    /// A pong.
    Pong,
    /// A close, with the client's code if any.
    Close(Option<u16>),
    /// A fragment of a message that continues.
    Fragment,
}

/// The read side: the unread part of the last reads, and a message being reassembled.
#[derive(Default)]
pub struct Reader {
    /// Bytes read and not yet parsed, from `pos`. Empty (no allocation) between messages.
    buf: Vec<u8>,
    pos: usize,
    /// The fragments of a message so far, and its kind (text or not).
    message: Option<(bool, Vec<u8>)>,
    /// The payload of the last message returned.
    payload: Vec<u8>,
    /// Where the last frame's payload is in `buf` (when it was not fragmented).
    last: Option<(usize, usize)>,
}

impl Reader {
    /// A reader starting with bytes read ahead of the upgrade.
    pub fn new(pre: &[u8]) -> Self {
        Self { buf: pre.to_vec(), ..Self::default() }
    }

    /// Reads what the socket has (into the thread's scratch buffer), keeping it. `Ok(0)`: the
    /// client closed its side.
    pub fn poll_fill(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        SCRATCH_BUF.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(scratch);
            match Pin::new(io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let n = rb.filled().len();
                    self.compact();
                    self.buf.extend_from_slice(rb.filled());
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }

    /// Drops parsed bytes; frees the buffer when nothing is left.
    fn compact(&mut self) {
        self.last = None;
        if self.pos == 0 {
            return;
        }
        if self.pos >= self.buf.len() {
            self.buf = Vec::new();
        } else {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
    }

    /// Frees what the last frame left (called when the socket goes idle).
    pub fn release(&mut self) {
        self.compact();
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        if self.message.is_none() {
            self.payload = Vec::new();
        }
    }

    /// Discards up to `n` unparsed bytes (of an oversize frame); how many.
    pub fn discard(&mut self, n: u64) -> u64 {
        let have = (self.buf.len() - self.pos) as u64;
        let take = have.min(n);
        self.pos += take as usize;
        self.compact();
        take
    }

    /// The payload of the last [`Frame::Text`] or [`Frame::Binary`].
    pub fn payload(&self) -> &[u8] {
        match self.last {
            Some((start, end)) => &self.buf[start..end],
            None => &self.payload,
        }
    }

    /// The next frame in what was read; `hard` is the largest message allowed.
    pub fn next_frame(&mut self, hard: usize) -> Parsed {
        let available = &self.buf[self.pos..];
        let mut cursor = Cursor::new(available);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(h)) => h,
            Ok(None) => return Parsed::NeedMore,
            Err(_) => return Parsed::Protocol("bad frame header"),
        };
        let head = cursor.position() as usize;
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Parsed::Protocol("reserved bits set");
        }
        let Some(mask) = header.mask else { return Parsed::Protocol("unmasked client frame") };
        let control = matches!(header.opcode, OpCode::Control(_));
        if control && (!header.is_final || len > 125) {
            return Parsed::Protocol("fragmented or long control frame");
        }
        let so_far = self.message.as_ref().map_or(0, |(_, m)| m.len()) as u64;
        if !control && so_far.saturating_add(len) > hard as u64 {
            let in_buf = (available.len() - head) as u64;
            // Past the frame's header, then past as much of its payload as was read.
            self.pos += head + usize::try_from(len.min(in_buf)).unwrap_or(usize::MAX);
            self.compact();
            return Parsed::TooBig { skip: len.saturating_sub(in_buf) };
        }
        let Ok(len) = usize::try_from(len) else { return Parsed::Protocol("frame too long") };
        if available.len() < head + len {
            // Room for the whole frame, so its remaining bytes are not copied again and again.
            self.buf.reserve(head + len - available.len());
            return Parsed::NeedMore;
        }
        let start = self.pos + head;
        let end = start + len;
        self.pos = end;
        unmask(&mut self.buf[start..end], mask);
        let fin = header.is_final;
        match header.opcode {
            OpCode::Control(Control::Ping) => Parsed::Frame(Frame::Ping(Bytes::copy_from_slice(&self.buf[start..end]))),
            OpCode::Control(Control::Pong) => Parsed::Frame(Frame::Pong),
            OpCode::Control(Control::Close) => {
                let code = self.buf.get(start..start + 2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                Parsed::Frame(Frame::Close(code))
            }
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Parsed::Protocol("reserved opcode")
            }
            OpCode::Data(Data::Continue) => {
                let Some((text, mut message)) = self.message.take() else {
                    return Parsed::Protocol("continuation without a message");
                };
                message.extend_from_slice(&self.buf[start..end]);
                if !fin {
                    self.message = Some((text, message));
                    return Parsed::Frame(Frame::Fragment);
                }
                self.payload = message;
                self.last = None;
                Parsed::Frame(if text { Frame::Text } else { Frame::Binary })
            }
            OpCode::Data(kind) => {
                if self.message.is_some() {
                    return Parsed::Protocol("a new message inside a fragmented one");
                }
                let text = matches!(kind, Data::Text);
                if !fin {
                    self.message = Some((text, self.buf[start..end].to_vec()));
                    return Parsed::Frame(Frame::Fragment);
                }
                self.last = Some((start, end));
                Parsed::Frame(if text { Frame::Text } else { Frame::Binary })
            }
        }
    }
}

fn unmask(buf: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = buf.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// Frames waiting to be written: written from their shared bytes, several per vectored write.
#[derive(Default)]
pub struct Writer {
    frames: std::collections::VecDeque<Bytes>,
    /// Bytes of the first frame already written.
    offset: usize,
}

impl Writer {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Queues a frame.
    pub fn push(&mut self, frame: Bytes) {
        self.frames.push_back(frame);
    }

    /// Drops what has not been written (and frees the queue).
    pub fn clear(&mut self) {
        self.frames = Default::default();
        self.offset = 0;
    }

    /// Writes as much as the socket takes; `Ready(Ok)` once everything is written.
    pub fn poll_write(&mut self, io: &mut Io, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.frames.is_empty() {
            let mut slices: [IoSlice<'_>; 64] = [IoSlice::new(&[]); 64];
            let mut n = 0;
            for (i, f) in self.frames.iter().take(64.min(MAX_SLICES)).enumerate() {
                slices[n] = IoSlice::new(if i == 0 { &f[self.offset..] } else { f });
                n += 1;
            }
            let written = match Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(w)) => w,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            self.advance(written);
        }
        self.frames = Default::default();
        Poll::Ready(Ok(()))
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(first) = self.frames.front() else { return };
            let left = first.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.frames.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![opcode | if fin { 0x80 } else { 0 }];
        assert!(payload.len() < 126);
        out.push(0x80 | payload.len() as u8);
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn frames_are_parsed_across_reads_and_fragments() {
        let mut bytes = client_frame(0x1, true, b"hello");
        bytes.extend(client_frame(0x2, false, b"ab"));
        bytes.extend(client_frame(0x9, true, b"p"));
        bytes.extend(client_frame(0x0, true, b"cd"));
        let mut r = Reader::new(&bytes[..3]);
        assert!(matches!(r.next_frame(100), Parsed::NeedMore));
        r.buf.extend_from_slice(&bytes[3..]);
        assert!(matches!(r.next_frame(100), Parsed::Frame(Frame::Text)));
        assert_eq!(r.payload(), b"hello");
        assert!(matches!(r.next_frame(100), Parsed::Frame(Frame::Fragment)));
        assert!(matches!(r.next_frame(100), Parsed::Frame(Frame::Ping(p)) if &p[..] == b"p"));
        assert!(matches!(r.next_frame(100), Parsed::Frame(Frame::Binary)));
        assert_eq!(r.payload(), b"abcd");
        assert!(matches!(r.next_frame(100), Parsed::NeedMore));
        r.release();
        assert_eq!(r.buf.capacity(), 0, "nothing held between messages");
    }

    #[test]
    fn protocol_errors_and_oversize_frames() {
        let unmasked = [0x81, 0x01, b'x'];
        assert!(matches!(Reader::new(&unmasked).next_frame(100), Parsed::Protocol(_)));
        assert!(matches!(Reader::new(&client_frame(0x3, true, b"")).next_frame(100), Parsed::Protocol(_)));
        assert!(matches!(Reader::new(&client_frame(0x0, true, b"x")).next_frame(100), Parsed::Protocol(_)));
        let big = client_frame(0x1, true, &[b'a'; 100]);
        assert!(matches!(Reader::new(&big[..50]).next_frame(10), Parsed::TooBig { skip: 56 }));
    }

    #[test]
    fn server_frames_have_the_right_length_encoding() {
        assert_eq!(&frame(OpCode::Data(Data::Text), b"hi")[..], &[0x81, 2, b'h', b'i']);
        let f = frame(OpCode::Data(Data::Binary), &[0; 300]);
        assert_eq!(&f[..4], &[0x82, 126, 1, 44]);
        let f = frame(OpCode::Data(Data::Binary), &vec![0; 70_000]);
        assert_eq!(&f[..2], &[0x82, 127]);
        assert_eq!(f.len(), 70_010);
        assert_eq!(&close_frame(1009, "message_too_big")[..4], &[0x88, 17, 0x03, 0xf1]);
        let f = framed::<()>(OpCode::Data(Data::Text), |b| {
            b.extend_from_slice(&[b'x'; 200]);
            Ok(())
        });
        assert_eq!(f.ok(), Some(frame(OpCode::Data(Data::Text), &[b'x'; 200])));
    }
}

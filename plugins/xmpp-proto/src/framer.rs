//! Splits the server's byte stream into units: its stream header, each complete top-level
//! stanza, the end of the stream. Incremental (each byte is looked at once, whatever the
//! chunking), bounded (at most `max` bytes held), and strict about what XMPP forbids:
//! DOCTYPE, entity declarations, comments and processing instructions (RFC 6120 §11.1).
//! The stanzas it returns still need a full parse (`stanza::parse`).
//!
//! A stanza bigger than `max` does not end the stream: the framer stops keeping its bytes,
//! reads on to its end tag and returns [`Unit::Oversize`] with the stanza's start tag, so the
//! adapter can refuse that one stanza with an error to its sender. Only a single tag (or the
//! stream header) bigger than `max`, or elements nested deeper than [`MAX_DEPTH`], end it.

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// The server's `<stream:stream ...>` start tag.
    Header(Vec<u8>),
    /// One complete top-level element.
    Stanza(Vec<u8>),
    /// `</stream:stream>`.
    End,
    /// A top-level element bigger than allowed, skipped: its start tag (`None` if the start
    /// tag alone is over [`MAX_HEAD`] bytes).
    Oversize(Option<Vec<u8>>),
}

/// Longest start tag kept for an [`Unit::Oversize`] answer.
pub const MAX_HEAD: usize = 8 * 1024;
/// Deepest nesting of elements accepted (the stream counts as one).
pub const MAX_DEPTH: u32 = 256;

/// Why the stream must be closed, as an XMPP stream error condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFault {
    /// `restricted-xml`: DOCTYPE, entities, comments, processing instructions.
    Restricted(String),
    /// `policy-violation`: a single tag (or the stream header) bigger than allowed, or
    /// elements nested too deep.
    TooBig(usize),
    /// `not-well-formed`.
    Malformed(String),
}

impl StreamFault {
    /// The stream error condition element's name.
    pub fn condition(&self) -> &'static str {
        match self {
            StreamFault::Restricted(_) => "restricted-xml",
            StreamFault::TooBig(_) => "policy-violation",
            StreamFault::Malformed(_) => "not-well-formed",
        }
    }

    /// Why, for logs and rejections.
    pub fn reason(&self) -> String {
        match self {
            StreamFault::Restricted(why) => format!("restricted XML: {why}"),
            StreamFault::TooBig(max) => format!("a tag exceeded max_stanza_bytes ({max}) or nested too deep"),
            StreamFault::Malformed(why) => format!("XML not well-formed: {why}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data.
    Text,
    /// Just after `<`.
    Lt,
    /// After `<!`, having matched this many bytes of `[CDATA[`.
    Bang(usize),
    /// Inside a CDATA section, after this many `]` in a row (at most 2).
    CData(u8),
    /// Inside a processing instruction; whether the last byte was `?`.
    Pi(bool),
    /// Inside an end tag.
    EndTag,
    /// Inside a start tag: the open quote (0 for none), whether the last byte was `/`.
    StartTag(u8, bool),
}

const CDATA: &[u8] = b"[CDATA[";

/// The incremental splitter.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Next byte to look at.
    pos: usize,
    /// Where the current unit (or the markup being read at stream level) starts.
    start: usize,
    /// Where the `<` of the markup being read is.
    lt: usize,
    /// Open elements: 0 before the header, 1 inside the stream, 2 and more inside a stanza.
    depth: u32,
    lex: Lex,
    /// The names of the open elements, outermost first (end tags must match).
    open: Vec<Vec<u8>>,
    /// Whether anything but whitespace came before (the XML declaration must be first).
    started: bool,
    max: usize,
    /// The start tag of the stanza being read (when short enough).
    head: Option<Vec<u8>>,
    /// The stanza being read passed `max`: its bytes are not kept.
    skipping: bool,
}

impl Framer {
    /// A framer for a new stream holding at most `max` bytes of one unit.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            start: 0,
            lt: 0,
            depth: 0,
            lex: Lex::Text,
            open: Vec::new(),
            started: false,
            max,
            head: None,
            skipping: false,
        }
    }

    /// Bytes held now (for tests: bounded by `max` plus one input).
    pub fn held(&self) -> usize {
        self.buf.len()
    }

    /// Takes the next bytes and returns the units they complete. After an error the framer
    /// must be replaced.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Unit>, StreamFault> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        while self.pos < self.buf.len() {
            let i = self.pos;
            let b = self.buf[i];
            self.pos += 1;
            self.step(i, b, &mut out)?;
        }
        self.trim();
        if self.buf.len() > self.max && self.depth >= 2 && !self.skipping {
            // Too big: read on to its end without keeping it.
            self.skipping = true;
            self.trim();
        }
        if self.buf.len() > self.max {
            return Err(StreamFault::TooBig(self.max));
        }
        Ok(out)
    }

    /// Drops what no unit needs: everything when at stream level between markup; while
    /// skipping, everything but the markup being read.
    fn trim(&mut self) {
        let keep = if self.lex == Lex::Text && (self.depth <= 1 || self.skipping) {
            self.buf.len()
        } else if self.skipping {
            self.lt
        } else {
            self.start
        };
        if keep > 0 {
            self.buf.drain(..keep);
            self.pos -= keep;
            self.start -= keep.min(self.start);
            self.lt -= keep.min(self.lt);
        }
    }

    fn step(&mut self, i: usize, b: u8, out: &mut Vec<Unit>) -> Result<(), StreamFault> {
        match self.lex {
            Lex::Text => {
                if b == b'<' {
                    self.lt = i;
                    if self.depth <= 1 {
                        self.start = i;
                    }
                    self.lex = Lex::Lt;
                } else if self.depth == 0 && !b.is_ascii_whitespace() {
                    return Err(StreamFault::Malformed("text before the stream header".into()));
                }
            }
            Lex::Lt => {
                self.lex = match b {
                    b'?' => Lex::Pi(false),
                    b'!' => Lex::Bang(0),
                    b'/' => Lex::EndTag,
                    b'>' | b'<' | b'=' | b'"' | b'\'' => {
                        return Err(StreamFault::Malformed("`<` not opening a tag".into()));
                    }
                    _ if b.is_ascii_whitespace() => {
                        return Err(StreamFault::Malformed("`<` not opening a tag".into()));
                    }
                    _ => Lex::StartTag(0, false),
                };
                if b != b'?' {
                    self.started = true;
                }
            }
            Lex::Bang(k) => {
                if b != CDATA[k] {
                    return Err(StreamFault::Restricted(
                        "DOCTYPE, entity declarations and comments are not allowed".into(),
                    ));
                }
                self.lex = if k + 1 == CDATA.len() { Lex::CData(0) } else { Lex::Bang(k + 1) };
            }
            Lex::CData(n) => {
                self.lex = match b {
                    b']' => Lex::CData((n + 1).min(2)),
                    b'>' if n == 2 => self.after_markup(),
                    _ => Lex::CData(0),
                };
            }
            Lex::Pi(question) => {
                if b == b'>' && question {
                    let pi = &self.buf[self.lt..=i];
                    let is_decl = pi.len() > 6 && pi.starts_with(b"<?xml") && pi[5].is_ascii_whitespace();
                    if !is_decl || self.started {
                        return Err(StreamFault::Restricted("processing instructions are not allowed".into()));
                    }
                    self.started = true;
                    self.lex = self.after_markup();
                } else {
                    self.lex = Lex::Pi(b == b'?');
                }
            }
            Lex::EndTag => {
                if b == b'>' {
                    let name = self.buf[self.lt + 2..i].trim_ascii_end();
                    if self.open.last().map(Vec::as_slice) != Some(name) {
                        return Err(StreamFault::Malformed("an end tag does not match its start tag".into()));
                    }
                    self.open.pop();
                    match self.depth {
                        0 => return Err(StreamFault::Malformed("an end tag before the stream header".into())),
                        1 => {
                            self.depth = 0;
                            out.push(Unit::End);
                        }
                        2 => {
                            self.depth = 1;
                            let stanza = &self.buf[self.start..=i];
                            if std::mem::take(&mut self.skipping) || stanza.len() > self.max {
                                out.push(Unit::Oversize(self.head.take()));
                            } else {
                                self.head = None;
                                out.push(Unit::Stanza(stanza.to_vec()));
                            }
                        }
                        _ => self.depth -= 1,
                    }
                    self.lex = self.after_markup();
                } else if b == b'<' {
                    return Err(StreamFault::Malformed("`<` inside an end tag".into()));
                }
            }
            Lex::StartTag(quote, slash) => {
                self.lex = match b {
                    _ if quote != 0 => {
                        if b == b'<' {
                            return Err(StreamFault::Malformed("`<` in an attribute value".into()));
                        }
                        Lex::StartTag(if b == quote { 0 } else { quote }, false)
                    }
                    b'"' | b'\'' => Lex::StartTag(b, false),
                    b'<' => return Err(StreamFault::Malformed("`<` inside a tag".into())),
                    b'>' => {
                        if !slash {
                            let tag = &self.buf[self.lt + 1..i];
                            let end =
                                tag.iter().position(|c| c.is_ascii_whitespace() || *c == b'/').unwrap_or(tag.len());
                            self.open.push(tag[..end].to_vec());
                        }
                        let unit = &self.buf[self.start..=i];
                        match (self.depth, slash) {
                            (0, true) => return Err(StreamFault::Malformed("an empty stream header".into())),
                            (0, false) => {
                                self.depth = 1;
                                out.push(Unit::Header(unit.to_vec()));
                            }
                            (1, true) => out.push(Unit::Stanza(unit.to_vec())),
                            (_, true) => {}
                            (1, false) => {
                                self.head = (unit.len() <= MAX_HEAD).then(|| unit.to_vec());
                                self.depth = 2;
                            }
                            (_, false) if self.depth >= MAX_DEPTH => return Err(StreamFault::TooBig(self.max)),
                            (_, false) => self.depth += 1,
                        }
                        self.after_markup()
                    }
                    b'/' => Lex::StartTag(0, true),
                    _ => Lex::StartTag(0, false),
                };
            }
        }
        if let Some(Unit::Stanza(s) | Unit::Header(s)) = out.last()
            && s.len() > self.max
        {
            return Err(StreamFault::TooBig(self.max));
        }
        Ok(())
    }

    /// Back to text after a piece of markup; at stream level the next unit starts after it.
    fn after_markup(&mut self) -> Lex {
        if self.depth <= 1 {
            self.start = self.pos;
        }
        Lex::Text
    }
}

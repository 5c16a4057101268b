//! The XML side of the bench's XMPP client: an incremental splitter finding the top-level
//! elements of a stream without building a tree, tag and attribute scanning, escaping.

use anyhow::Result;

use super::Stanza;

/// What the splitter finds at the top level of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    /// `<stream:stream …>` (the start tag only).
    StreamOpen(String),
    /// A complete child of the stream.
    Element(Stanza),
    /// `</stream:stream>`.
    StreamClose,
}

/// Incremental splitter of an XMPP stream into top-level elements. It tracks element depth
/// only (quotes in tags, comments, CDATA and processing instructions are skipped properly);
/// well-formedness is the server's business.
#[derive(Debug, Default)]
pub(super) struct Splitter {
    pub(super) buf: Vec<u8>,
    /// Start of the unconsumed input in `buf`.
    pub(super) pos: usize,
}

impl Splitter {
    /// The next complete top-level item, if the buffer holds one; consumes it.
    pub(super) fn next_item(&mut self) -> Result<Option<Item>> {
        let buf = &self.buf[..];
        let mut i = self.pos;
        let mut start: Option<usize> = None; // '<' of the element being scanned
        let mut depth = 0usize;
        let mut found = None;
        while let Some(off) = memchr(b'<', &buf[i..]) {
            let lt = i + off;
            let Some(&next) = buf.get(lt + 1) else { break };
            match next {
                b'?' => {
                    let Some(e) = find(&buf[lt..], b"?>") else { break };
                    i = lt + e + 2;
                }
                b'!' => {
                    let end = if buf[lt..].starts_with(b"<!--") {
                        find(&buf[lt..], b"-->").map(|e| e + 3)
                    } else if buf[lt..].starts_with(b"<![CDATA[") {
                        find(&buf[lt..], b"]]>").map(|e| e + 3)
                    } else if buf.len() - lt < 9 {
                        None // could still become a comment or CDATA
                    } else {
                        tag_end(&buf[lt..]).map(|e| e + 1)
                    };
                    let Some(e) = end else { break };
                    i = lt + e;
                }
                b'/' => {
                    let Some(e) = tag_end(&buf[lt..]) else { break };
                    i = lt + e + 1;
                    if depth == 0 {
                        found = Some((Item::StreamClose, i));
                        break;
                    }
                    depth -= 1;
                    if depth == 0 {
                        let s = start.unwrap_or(lt);
                        let raw = String::from_utf8_lossy(&buf[s..i]).into_owned();
                        found = Some((Item::Element(Stanza { raw }), i));
                        break;
                    }
                }
                _ => {
                    let Some(e) = tag_end(&buf[lt..]) else { break };
                    i = lt + e + 1;
                    let self_closing = buf[i - 2] == b'/';
                    if depth == 0 {
                        let tag = &buf[lt + 1..i - 1];
                        let name_len =
                            tag.iter().position(|c| c.is_ascii_whitespace() || *c == b'/').unwrap_or(tag.len());
                        let name = &tag[..name_len];
                        if name == b"stream:stream" || name == b"stream" {
                            let raw = String::from_utf8_lossy(&buf[lt..i]).into_owned();
                            found = Some((Item::StreamOpen(raw), i));
                            break;
                        }
                        if self_closing {
                            let raw = String::from_utf8_lossy(&buf[lt..i]).into_owned();
                            found = Some((Item::Element(Stanza { raw }), i));
                            break;
                        }
                        start = Some(lt);
                    }
                    if !self_closing {
                        depth += 1;
                    }
                }
            }
        }
        let Some((item, end)) = found else {
            // Skip whitespace and processing instructions already passed at the top level.
            if start.is_none() && depth == 0 {
                self.pos = i.min(self.buf.len());
                self.compact();
            }
            return Ok(None);
        };
        self.pos = end;
        self.compact();
        Ok(Some(item))
    }

    /// Drops consumed bytes once they are most of the buffer.
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 4096 && self.pos * 2 > self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }
}

/// Index of the `>` closing the tag that starts at `b[0] == '<'`, skipping quoted values.
pub(super) fn tag_end(b: &[u8]) -> Option<usize> {
    let mut quote = 0u8;
    for (k, &c) in b.iter().enumerate().skip(1) {
        if quote != 0 {
            if c == quote {
                quote = 0;
            }
        } else if c == b'\'' || c == b'"' {
            quote = c;
        } else if c == b'>' {
            return Some(k);
        }
    }
    None
}

pub(super) fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

pub(super) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The start tag at the beginning of `xml` (through its `>`), or all of `xml`.
pub(super) fn start_tag(xml: &str) -> &str {
    match tag_end(xml.as_bytes()) {
        Some(e) => &xml[..=e],
        None => xml,
    }
}

/// Attribute `name` of a start tag, unescaped.
pub(super) fn attr_of(tag: &str, name: &str) -> Option<String> {
    let b = tag.as_bytes();
    let mut i = tag.find(|c: char| c.is_whitespace())?;
    loop {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let eq = i + tag[i..].find('=')?;
        let key = tag[i..eq].trim();
        let mut q = eq + 1;
        while q < b.len() && b[q].is_ascii_whitespace() {
            q += 1;
        }
        let quote = *b.get(q)?;
        if quote != b'\'' && quote != b'"' {
            return None;
        }
        let end = q + 1 + tag[q + 1..].find(quote as char)?;
        if key == name {
            return Some(unescape(&tag[q + 1..end]));
        }
        i = end + 1;
    }
}

/// XML-escapes text for element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s);
    out
}

pub(super) fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
}

/// Resolves the five predefined entities and character references.
pub fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let c = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            "quot" => Some('"'),
            _ => ent
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut Splitter, bytes: &str) -> Vec<Item> {
        s.buf.extend_from_slice(bytes.as_bytes());
        let mut out = Vec::new();
        while let Some(item) = s.next_item().expect("split") {
            out.push(item);
        }
        out
    }

    #[test]
    fn splits_a_stream_fed_byte_by_byte() {
        let input = "<?xml version='1.0'?><stream:stream from='localhost' id='x' xmlns='jabber:client'>\
            <stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind></stream:features>\
            <presence from='a@b/c'/>\n<message from='a@b/c' type='chat'><body>x &lt;y&gt; &amp; &#x263A; 'q' a>b</body><!-- c <x> --></message>\
            <iq id='1' type='result' note='a>b'/></stream:stream>";
        let mut s = Splitter::default();
        let mut items = Vec::new();
        for ch in input.chars() {
            items.extend(feed(&mut s, &ch.to_string()));
        }
        assert_eq!(items.len(), 6, "{items:?}");
        assert!(matches!(items[0], Item::StreamOpen(_)));
        let Item::Element(f) = &items[1] else { panic!("{:?}", items[1]) };
        assert_eq!(f.name(), "stream:features");
        assert_eq!(f.child_text("required").as_deref(), Some(""));
        let Item::Element(p) = &items[2] else { panic!() };
        assert_eq!(p.as_presence().map(|p| p.from), Some("a@b/c".to_string()));
        let Item::Element(m) = &items[3] else { panic!() };
        let m = m.as_message().expect("message");
        assert_eq!(m.body, "x <y> & \u{263A} 'q' a>b");
        assert_eq!(m.kind.as_deref(), Some("chat"));
        let Item::Element(iq) = &items[4] else { panic!() };
        assert_eq!(iq.attr("note").as_deref(), Some("a>b"));
        assert_eq!(items[5], Item::StreamClose);
        assert!(s.buf.is_empty());
    }

    #[test]
    fn splits_many_stanzas_in_one_read() {
        let mut s = Splitter::default();
        assert_eq!(feed(&mut s, "<stream:stream>").len(), 1);
        let many: String = (0..100).map(|i| format!("<message from=\"u{i}@d\"><body>{i}</body></message>")).collect();
        let items = feed(&mut s, &format!("{many}<message><bo"));
        assert_eq!(items.len(), 100);
        let Item::Element(last) = &items[99] else { panic!() };
        assert_eq!(last.attr("from").as_deref(), Some("u99@d"));
        assert_eq!(feed(&mut s, "dy>z</body></message>").len(), 1);
    }

    #[test]
    fn escapes_round_trip() {
        let s = "a&b<c>d'e\"f";
        assert_eq!(unescape(&escape(s)), s);
        assert_eq!(unescape("&bogus; &"), "&bogus; &");
    }
}

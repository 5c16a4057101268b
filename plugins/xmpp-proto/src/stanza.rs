//! Parses one complete stanza (from the framer) with quick-xml into what the adapter reads:
//! the top element's name and attributes, and its direct children (name, `xmlns`, text, the
//! name of their first child element). No recursion; entities other than XML's five and
//! character references are refused.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::errors::Error;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};

use crate::framer::StreamFault;

/// A direct child of the stanza.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Child {
    /// Local name (prefix dropped).
    pub name: String,
    /// Its `xmlns` attribute, if any.
    pub xmlns: Option<String>,
    /// Its own text (not its children's).
    pub text: String,
    /// The local name of its first child element, e.g. an error condition.
    pub first_child: Option<String>,
}

/// A parsed stanza.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    /// Qualified name, e.g. `message`, `stream:error`.
    pub name: String,
    /// Attributes as `(qualified name, value)`.
    pub attrs: Vec<(String, String)>,
    /// Direct children, in order.
    pub children: Vec<Child>,
}

impl Stanza {
    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first direct child named `name`.
    pub fn child(&self, name: &str) -> Option<&Child> {
        self.children.iter().find(|c| c.name == name)
    }
}

fn fault(e: Error) -> StreamFault {
    match e {
        Error::Escape(EscapeError::UnrecognizedEntity(..)) => {
            StreamFault::Restricted("entities other than XML's predefined ones are not allowed".into())
        }
        e => StreamFault::Malformed(e.to_string()),
    }
}

/// Whether `c` may appear in an XML 1.0 document.
pub fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn attributes(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, StreamFault> {
    let mut out = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|e| StreamFault::Malformed(e.to_string()))?;
        let value = a.normalized_value(XmlVersion::Implicit1_0).map_err(fault)?;
        out.push((a.key.as_ref().to_owned(), value.into_owned()));
    }
    Ok(out)
}

fn local(e: &BytesStart<'_>) -> String {
    e.local_name().as_ref().to_owned()
}

/// Parses the stream header's start tag: its qualified name and attributes.
pub fn header(bytes: &[u8]) -> Result<Stanza, StreamFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| StreamFault::Malformed("invalid UTF-8".into()))?;
    let mut reader = Reader::from_str(text);
    match reader.read_event().map_err(fault)? {
        Event::Start(e) => {
            Ok(Stanza { name: e.name().as_ref().to_owned(), attrs: attributes(&e)?, children: Vec::new() })
        }
        _ => Err(StreamFault::Malformed("not a stream header".into())),
    }
}

/// Parses one stanza.
pub fn parse(bytes: &[u8]) -> Result<Stanza, StreamFault> {
    let text = std::str::from_utf8(bytes).map_err(|_| StreamFault::Malformed("invalid UTF-8".into()))?;
    if let Some(c) = text.chars().find(|c| !xml_char(*c)) {
        return Err(StreamFault::Malformed(format!("character U+{:04X} is not allowed in XML", u32::from(c))));
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut stanza = Stanza::default();
    let mut depth = 0u32;
    loop {
        let event = reader.read_event().map_err(fault)?;
        match event {
            Event::Start(e) => {
                depth += 1;
                match depth {
                    1 => {
                        stanza.name = e.name().as_ref().to_owned();
                        stanza.attrs = attributes(&e)?;
                    }
                    2 => {
                        let attrs = attributes(&e)?;
                        let xmlns = attrs.into_iter().find(|(k, _)| k == "xmlns").map(|(_, v)| v);
                        stanza.children.push(Child { name: local(&e), xmlns, ..Child::default() });
                    }
                    3 => {
                        if let Some(c) = stanza.children.last_mut()
                            && c.first_child.is_none()
                        {
                            c.first_child = Some(local(&e));
                        }
                    }
                    _ => {}
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            Event::Text(t) if depth == 2 => push_text(&mut stanza, &t.xml10_content()),
            Event::CData(t) if depth == 2 => push_text(&mut stanza, &t.xml10_content()),
            Event::GeneralRef(r) => {
                let c = match r.resolve_char_ref().map_err(fault)? {
                    Some(c) => c,
                    None => match r.as_ref() {
                        "lt" => '<',
                        "gt" => '>',
                        "amp" => '&',
                        "apos" => '\'',
                        "quot" => '"',
                        _ => {
                            return Err(StreamFault::Restricted(
                                "entities other than XML's predefined ones are not allowed".into(),
                            ));
                        }
                    },
                };
                if !xml_char(c) {
                    return Err(StreamFault::Malformed(format!(
                        "character U+{:04X} is not allowed in XML",
                        u32::from(c)
                    )));
                }
                if depth == 2 {
                    push_text(&mut stanza, c.encode_utf8(&mut [0; 4]));
                }
            }
            Event::Text(_) | Event::CData(_) => {}
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {
                return Err(StreamFault::Restricted(
                    "comments, processing instructions and DOCTYPE are not allowed".into(),
                ));
            }
            Event::Decl(_) => return Err(StreamFault::Malformed("an XML declaration inside the stream".into())),
            Event::Empty(_) | Event::Eof => break,
        }
    }
    if depth != 0 {
        return Err(StreamFault::Malformed("unclosed element".into()));
    }
    Ok(stanza)
}

fn push_text(stanza: &mut Stanza, text: &str) {
    if let Some(c) = stanza.children.last_mut() {
        c.text.push_str(text);
    }
}

//! Writing XML: escaping, and replacing characters XML 1.0 cannot carry (a control character
//! in a Halo message must not break the stream).

use crate::stanza::xml_char;

fn escape(s: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' if quotes => out.push_str("&apos;"),
            '"' if quotes => out.push_str("&quot;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// Escapes character data.
pub fn text(s: &str) -> String {
    escape(s, false)
}

/// Escapes an attribute value (quoted with `'` or `"`).
pub fn attr(s: &str) -> String {
    escape(s, true)
}

//! XMPP wire code shared by Halo's XMPP federation adapters (`xmpp`, the external component,
//! and `xmpp-s2s`, server-to-server): everything that reads or writes the untrusted stream
//! without knowing which kind of stream it is, and the mapping of Halo items to stanzas.
//!
//! - [`framer`]: splits the byte stream into its header, top-level stanzas and end, bounded
//!   and strict (no DOCTYPE, entities, comments or processing instructions);
//! - [`stanza`]: parses one stanza into its name, attributes and direct children;
//! - [`jid`]: strict JIDs and the mapping to Halo addresses;
//! - [`map`]: Halo messages, presence and subscriptions as stanzas and back;
//! - [`xml`]: escaping for text and attributes.

pub mod framer;
pub mod jid;
pub mod map;
pub mod stanza;
pub mod xml;

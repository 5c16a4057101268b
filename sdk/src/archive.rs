//! Archive sinks: plain types for the `archive-sink` world.

use crate::Host;

/// Where the directory the admin granted (`dir:/host/path`) appears inside the plugin.
pub const DATA_DIR: &str = "/data";

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveEvent {
    /// A conversation was started.
    Started,
    /// A message or room post.
    Message,
    /// `user` joined.
    Joined,
    /// `user` left.
    Left,
}

/// One archived event (see `docs/archiving.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveRecord {
    /// Stable, increasing with arrival: drop a record whose id you have stored already.
    pub id: u64,
    /// Server time, ms since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub event: ArchiveEvent,
    /// The conversation, for conversation events.
    pub conversation: Option<u64>,
    /// The room, for room events.
    pub room: Option<u64>,
    /// Who did it.
    pub from: String,
    /// Who joined or left.
    pub user: Option<String>,
    /// Who was there after the event.
    pub participants: Vec<String>,
    /// Whether a participant was federated.
    pub external: bool,
    /// Message text.
    pub text: Option<String>,
    /// `plain` or `markdown`.
    pub format: Option<String>,
    /// The record as one JSON line, as Halo's export writes it.
    pub json: String,
}

/// Why a batch was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Try again later (the host backs off and resends the same records).
    Retry(String),
    /// Misconfigured: the host disables the sink until an admin acts; nothing is skipped.
    Permanent(String),
}

/// An archive sink.
pub trait ArchiveSink {
    /// Stores `batch` (in id order) durably, or says why not.
    fn deliver(host: &dyn Host, batch: &[ArchiveRecord]) -> Result<(), SinkError>;
}

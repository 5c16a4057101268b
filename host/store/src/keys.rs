//! Key encodings shared by the IM trees. Integers are big-endian so byte order is numeric order.

use halo_core::Username;

/// Where messages live: a conversation or a room, as a 9-byte key prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Thread {
    /// A conversation.
    Conversation(u64),
    /// A persistent chat room.
    Room(u64),
}

impl Thread {
    /// The 9-byte prefix.
    pub fn key(self) -> [u8; 9] {
        let (tag, id) = match self {
            Thread::Conversation(id) => (b'c', id),
            Thread::Room(id) => (b'r', id),
        };
        let mut k = [0u8; 9];
        k[0] = tag;
        k[1..].copy_from_slice(&id.to_be_bytes());
        k
    }

    /// Decodes [`Thread::key`].
    pub fn from_key(k: &[u8]) -> Option<Self> {
        let id = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
        match k.first()? {
            b'c' => Some(Thread::Conversation(id)),
            b'r' => Some(Thread::Room(id)),
            _ => None,
        }
    }

    /// Key of message `id` in this thread.
    pub fn message_key(self, id: u64) -> [u8; 17] {
        let mut k = [0u8; 17];
        k[..9].copy_from_slice(&self.key());
        k[9..].copy_from_slice(&id.to_be_bytes());
        k
    }
}

/// `user`, 0, then `rest`.
pub fn user_key(user: &Username, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.as_str().len() + 1 + rest.len());
    k.extend_from_slice(user.as_str().as_bytes());
    k.push(0);
    k.extend_from_slice(rest);
    k
}

/// The big-endian u64 at `k[at..at + 8]`.
pub fn u64_at(k: &[u8], at: usize) -> u64 {
    k.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

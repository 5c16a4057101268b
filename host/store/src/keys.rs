//! Key encodings. Integers are big-endian so byte order is numeric order.

use halo_core::Username;

pub use halo_core::im::Thread;

/// A thread as the 9-byte key prefix of the old layout (`c` or `r`, then the id).
pub(crate) fn thread_from_key(k: &[u8]) -> Option<Thread> {
    let id = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    match k.first()? {
        b'c' => Some(Thread::Conversation(id)),
        b'r' => Some(Thread::Room(id)),
        _ => None,
    }
}

/// The user before the first 0 of `k`, and the rest.
pub(crate) fn split_user_key(k: &[u8]) -> Option<(Username, &[u8])> {
    let end = k.iter().position(|b| *b == 0)?;
    let name = std::str::from_utf8(&k[..end]).ok()?;
    let user = Username::parse_address(name).ok()?;
    Some((user, &k[end + 1..]))
}

/// The big-endian u64 at `k[at..at + 8]`.
pub fn u64_at(k: &[u8], at: usize) -> u64 {
    k.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_be_bytes)
}

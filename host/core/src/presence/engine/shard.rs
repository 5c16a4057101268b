//! Which shard owns a user.

use crate::Username;

/// The shard of `count` that owns `user`: FNV-1a of the name modulo `count`, the same on every
/// run and machine (`count` 0 counts as 1).
pub fn shard_of(user: &Username, count: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.as_str().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_in_range() {
        let u = |s: &str| Username::parse(s).expect("name");
        assert_eq!(shard_of(&u("alice"), 1), 0);
        assert_eq!(shard_of(&u("alice"), 4), shard_of(&u("alice"), 4));
        let spread: std::collections::BTreeSet<usize> = (0..64).map(|i| shard_of(&u(&format!("user{i}")), 4)).collect();
        assert_eq!(spread.len(), 4, "64 names use every one of 4 shards");
    }
}

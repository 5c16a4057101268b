//! Bounds on what the host accepts from a plugin's answers (the checks themselves sit where
//! each answer is converted: `bindings`, `plugin`).
//!
//! wasmtime lifts a whole answer out of the guest's memory before the host sees it (and runs
//! the guest's post-return inside the call, so a string cannot be read lazily from guest
//! memory afterwards): one answer is therefore bounded by the plugin's memory limit
//! (`memory_bytes`, 64 MiB), the host holds one at a time and drops an invalid one at once, and
//! every invalid answer counts as a strike towards disabling the plugin, like a trap.

/// The first availability of the Offline band: a plugin's answer stays below it (a plugin can
/// change presence, never take it away).
pub(crate) const OFFLINE: u32 = 18_000;

/// The most available Offline is (Appear Offline).
const MAX: u32 = 18_500;

/// Whether a plugin may answer `answer` for a user the built-in rules show at `builtin`:
/// below Offline always; Offline only for a user who is Offline already.
pub(crate) fn availability_ok(answer: u32, builtin: u32) -> bool {
    answer < OFFLINE || (builtin >= OFFLINE && answer <= MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plugin_never_takes_presence_away() {
        assert!(availability_ok(17_999, 3500));
        assert!(!availability_ok(18_000, 3500));
        assert!(!availability_ok(18_500, 17_999));
        assert!(availability_ok(18_500, 18_500), "keeping an offline user offline");
        assert!(!availability_ok(18_501, 18_500));
    }
}

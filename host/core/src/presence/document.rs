//! The presence document: what a user publishes besides the aggregated state, and the inputs
//! that outlive a restart (manual state, calendar, phone).

use serde::{Deserialize, Serialize};

use super::aggregate::{Calendar, Manual, Phone};
use super::state::PresenceError;
use crate::Millis;

/// Longest note or out-of-office note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest location, in characters.
pub const MAX_LOCATION_CHARS: usize = 100;
/// Longest phone number, in characters.
pub const MAX_PHONE_CHARS: usize = 32;

/// The stored part of a user's presence.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Document {
    /// Manual state.
    pub manual: Option<Manual>,
    /// Calendar input.
    pub calendar: Option<Calendar>,
    /// Phone input.
    pub phone: Option<Phone>,
    /// Personal note.
    pub note: Option<String>,
    /// Out-of-office note.
    pub ooo_note: Option<String>,
    /// Where the user is.
    pub location: Option<String>,
    /// Mobile phone (Workgroup and Friends and Family see it).
    pub mobile_phone: Option<String>,
    /// Home phone (Friends and Family see it).
    pub home_phone: Option<String>,
    /// Hide the last-active time from everyone.
    pub hide_last_active: bool,
    /// Only contacts see the availability.
    pub privacy_mode: bool,
    /// Minutes without input before a device reports Inactive (5-360; clients read it).
    pub idle_minutes: u32,
    /// Last time a device reported the user active.
    pub last_active: Option<Millis>,
    /// The picture's content hash and type, if one was uploaded.
    pub picture: Option<PictureMeta>,
}

/// What is known of a stored picture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PictureMeta {
    /// Hex SHA-256 prefix of the bytes (the ETag and URL version).
    pub etag: String,
    /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
    pub content_type: String,
}

/// Checks an optional text field: trimmed, `None` when empty, bounded, no control characters
/// (newlines allowed in notes).
pub fn check_text(
    v: Option<String>,
    max: usize,
    what: &'static str,
    newlines: bool,
) -> Result<Option<String>, PresenceError> {
    let Some(v) = v else { return Ok(None) };
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.chars().count() > max || v.chars().any(|c| c.is_control() && !(newlines && c == '\n')) {
        return Err(PresenceError::InvalidField(what));
    }
    Ok(Some(v.to_owned()))
}

/// Checks the idle timeout.
pub fn check_idle_minutes(m: u32) -> Result<u32, PresenceError> {
    if (5..=360).contains(&m) { Ok(m) } else { Err(PresenceError::InvalidField("idle_minutes must be 5-360")) }
}

/// The picture's content type from its first bytes, if it is an accepted image.
pub fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, ..] => Some("image/png"),
        [0xff, 0xd8, 0xff, ..] => Some("image/jpeg"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some("image/webp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_images() {
        assert_eq!(check_text(Some("  hi ".into()), 10, "note", false), Ok(Some("hi".into())));
        assert_eq!(check_text(Some(" ".into()), 10, "note", false), Ok(None));
        assert!(check_text(Some("x".repeat(11)), 10, "note", false).is_err());
        assert!(check_text(Some("a\nb".into()), 10, "location", false).is_err());
        assert!(check_text(Some("a\nb".into()), 10, "note", true).is_ok());
        assert!(check_idle_minutes(4).is_err() && check_idle_minutes(361).is_err() && check_idle_minutes(5).is_ok());
        assert_eq!(sniff_image(b"\x89PNG\r\n\x1a\nrest"), Some("image/png"));
        assert_eq!(sniff_image(b"\xff\xd8\xff\xe0"), Some("image/jpeg"));
        assert_eq!(sniff_image(b"<svg"), None);
    }
}

//! The on-disk records: what each tree's values are, version by version, apart from the
//! domain types of `halo-core` (and this crate's own API types).
//!
//! A stored value is the MessagePack encoding (named fields, rmp-serde) of its record type, never
//! of the domain type itself: a field renamed or an enum variant added in `halo-core` fails to
//! compile in the conversions here instead of silently changing what is written. Each record's
//! field names mirror what earlier releases wrote, byte for byte, and the tests below pin the
//! exact bytes of every record type (golden files in `records/golden/`).
//!
//! Changing the layout means a new record version (`UserV2`), a conversion from the old one,
//! and a [`crate::SCHEMA_VERSION`] bump with its migration on open; the `V1` goldens stay.
//!
//! | tree | record |
//! |---|---|
//! | `users` | [`UserV1`](accounts::UserV1) |
//! | `sessions` | [`SessionV1`](accounts::SessionV1) |
//! | `conversations` | [`ConversationV1`](im::ConversationV1) |
//! | `messages` | [`MessageV1`](im::MessageV1) |
//! | `inbox` | [`InboxEntryV1`](im::InboxEntryV1) |
//! | `rooms` | [`RoomV1`](rooms::RoomV1) |
//! | `room_marks` | [`RoomMarkV1`](rooms::RoomMarkV1) |
//! | `presence` | [`DocumentV1`](presence::DocumentV1) |
//! | `contacts` | [`ContactListV1`](presence::ContactListV1) |
//! | `app_tokens` | [`AppTokenV1`](presence::AppTokenV1) |
//! | `archive` | [`RecordV1`](archive::RecordV1) |
//! | `archive_policies`, `archive_meta` (global policy) | [`PolicyV1`](archive::PolicyV1) |
//! | `archive_meta` (settings) | [`SettingsV1`](archive::SettingsV1) |
//! | `fed_rules` | [`RuleV1`](federation::RuleV1) |
//! | `fed_queue` | [`ItemV1`](federation::ItemV1) |
//! | `plugins` | [`PluginRecordV1`](plugins::PluginRecordV1) |
//! | `attachments` | [`UploadV1`](im::UploadV1) (the bytes are files beside the database) |
//! | `log` | [`FactV1`](log::FactV1) |
//! | `im-snapshot.v1` (a file) | [`SnapshotV1`](log::SnapshotV1) |
//!
//! Trees not listed hold raw bytes (keys, ids, big-endian integers, picture bytes, plugin kv
//! values) described in their modules.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) mod accounts;
pub(crate) mod archive;
pub(crate) mod federation;
pub(crate) mod im;
pub(crate) mod log;
pub(crate) mod plugins;
pub(crate) mod presence;
pub(crate) mod rooms;

/// A value stored in a tree, and the record it is written as.
pub(crate) trait Stored: Sized {
    /// The current on-disk record of this value.
    type Record: Serialize + DeserializeOwned + for<'a> From<&'a Self> + Into<Self>;
}

/// A unit-only enum mirrored as a record, with its conversions both ways (`match`es without a
/// wildcard: a variant added in the domain fails to compile here).
macro_rules! unit_enum {
    ($(#[$meta:meta])* $name:ident <=> $domain:ident, $rename:literal { $($(#[$vmeta:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = $rename)]
        pub(crate) enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl From<&$domain> for $name {
            fn from(v: &$domain) -> Self {
                match v {
                    $($domain::$variant => Self::$variant),+
                }
            }
        }

        impl From<$name> for $domain {
            fn from(v: $name) -> Self {
                match v {
                    $($name::$variant => Self::$variant),+
                }
            }
        }
    };
}
pub(crate) use unit_enum;

/// Declares `T` stored as `R`.
macro_rules! stored {
    ($($domain:ty => $record:ty),+ $(,)?) => {
        $(impl crate::records::Stored for $domain {
            type Record = $record;
        })+
    };
}
pub(crate) use stored;

#[cfg(test)]
pub(crate) mod golden {
    //! Pins encodings: every sample must encode to its line of the golden file, and that line
    //! must decode back to the sample.

    use std::fmt::Debug;

    use super::Stored;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16).expect("golden files hold hex"))
            .collect()
    }

    /// Checks `samples` against `golden` (one hex line per sample, `#` lines are comments).
    pub(crate) fn pin<T: Stored + PartialEq + Debug>(name: &'static str, golden: &str, samples: &[T]) {
        let lines: Vec<&str> = golden.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
        assert_eq!(lines.len(), samples.len(), "{name}: one golden line per sample");
        for (i, (line, sample)) in lines.iter().zip(samples).enumerate() {
            let bytes = crate::codec::encode(name, sample).expect("encodes");
            assert_eq!(
                hex(&bytes),
                *line,
                "{name} sample {i}: the on-disk encoding changed; existing data dirs would not read \
                 the same. Add a new record version instead of changing this one."
            );
            let back: T = crate::codec::decode(name, &unhex(line)).expect("the golden bytes decode");
            assert_eq!(&back, sample, "{name} sample {i}: decoding the golden bytes");
        }
    }
}

//! Archive records, policies and settings.

use halo_core::Millis;
use halo_core::archive::{Event, Place, Policy, Record, Settings};
use serde::{Deserialize, Serialize};

use super::im::{AttachmentV1, FormatV1};
use super::{stored, unit_enum};

stored!(Record => RecordV1, Policy => PolicyV1, Settings => SettingsV1);

unit_enum! {
    /// What happened.
    EventV1 <=> Event, "snake_case" { Started, Message, Joined, Left, Edited, Deleted, Reacted, Unreacted }
}

/// Where it happened (flattened into the record: `conversation: id` or `room: id`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PlaceV1 {
    /// A conversation.
    Conversation(u64),
    /// A room.
    Room(u64),
}

/// `archive`: one archived event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RecordV1 {
    pub(crate) id: u64,
    pub(crate) at: Millis,
    pub(crate) event: EventV1,
    #[serde(flatten)]
    pub(crate) place: PlaceV1,
    pub(crate) from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    pub(crate) participants: Vec<String>,
    pub(crate) external: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) format: Option<FormatV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) of: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) reply_to: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attachments: Vec<AttachmentV1>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) emoji: Option<String>,
}

impl From<&Record> for RecordV1 {
    fn from(r: &Record) -> Self {
        let Record {
            id,
            at,
            event,
            place,
            from,
            user,
            participants,
            external,
            text,
            format,
            of,
            reply_to,
            attachments,
            emoji,
        } = r;
        Self {
            id: *id,
            at: *at,
            event: event.into(),
            place: match *place {
                Place::Conversation(id) => PlaceV1::Conversation(id),
                Place::Room(id) => PlaceV1::Room(id),
            },
            from: from.clone(),
            user: user.clone(),
            participants: participants.clone(),
            external: *external,
            text: text.clone(),
            format: format.as_ref().map(FormatV1::from),
            of: *of,
            reply_to: *reply_to,
            attachments: attachments.iter().map(Into::into).collect(),
            emoji: emoji.clone(),
        }
    }
}

impl From<RecordV1> for Record {
    fn from(r: RecordV1) -> Self {
        let RecordV1 {
            id,
            at,
            event,
            place,
            from,
            user,
            participants,
            external,
            text,
            format,
            of,
            reply_to,
            attachments,
            emoji,
        } = r;
        Self {
            id,
            at,
            event: event.into(),
            place: match place {
                PlaceV1::Conversation(id) => Place::Conversation(id),
                PlaceV1::Room(id) => Place::Room(id),
            },
            from,
            user,
            participants,
            external,
            text,
            format: format.map(Into::into),
            of,
            reply_to,
            attachments: attachments.into_iter().map(Into::into).collect(),
            emoji,
        }
    }
}

/// `archive_policies` and the global policy in `archive_meta`: what is archived.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyV1 {
    #[serde(default)]
    pub(crate) internal: bool,
    #[serde(default)]
    pub(crate) external: bool,
}

impl From<&Policy> for PolicyV1 {
    fn from(p: &Policy) -> Self {
        let Policy { internal, external } = *p;
        Self { internal, external }
    }
}

impl From<PolicyV1> for Policy {
    fn from(p: PolicyV1) -> Self {
        let PolicyV1 { internal, external } = p;
        Self { internal, external }
    }
}

/// The settings in `archive_meta`. Missing fields read as the defaults of [`Settings`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct SettingsV1 {
    pub(crate) block_on_failure: bool,
    pub(crate) block_after_secs: u64,
    pub(crate) block_backlog: u64,
    pub(crate) keep_days: u32,
}

impl Default for SettingsV1 {
    fn default() -> Self {
        (&Settings::default()).into()
    }
}

impl From<&Settings> for SettingsV1 {
    fn from(s: &Settings) -> Self {
        let Settings { block_on_failure, block_after_secs, block_backlog, keep_days } = *s;
        Self { block_on_failure, block_after_secs, block_backlog, keep_days }
    }
}

impl From<SettingsV1> for Settings {
    fn from(s: SettingsV1) -> Self {
        let SettingsV1 { block_on_failure, block_after_secs, block_backlog, keep_days } = s;
        Self { block_on_failure, block_after_secs, block_backlog, keep_days }
    }
}

#[cfg(test)]
mod tests {
    use halo_core::conversation::Format;

    use super::*;
    use crate::records::golden::pin;

    #[test]
    fn record_v1_is_pinned() {
        let message = Record {
            id: 42,
            at: 1_700_000_000_000,
            event: Event::Message,
            place: Place::Conversation(7),
            from: "alice".into(),
            user: None,
            participants: vec!["alice".into(), "bob@b.example".into()],
            external: true,
            text: Some("hello".into()),
            format: Some(Format::Markdown),
            of: None,
            reply_to: None,
            attachments: Vec::new(),
            emoji: None,
        };
        let joined = Record {
            id: 43,
            at: 1_700_000_000_001,
            event: Event::Joined,
            place: Place::Room(9),
            from: "alice".into(),
            user: Some("carol".into()),
            participants: vec!["alice".into(), "carol".into()],
            external: false,
            text: None,
            format: None,
            of: None,
            reply_to: None,
            attachments: Vec::new(),
            emoji: None,
        };
        let started = Record { id: 7, event: Event::Started, place: Place::Conversation(7), ..joined.clone() };
        let left = Record { id: 44, event: Event::Left, format: Some(Format::Plain), ..joined.clone() };
        pin("archive", include_str!("golden/record_v1.hex"), &[message.clone(), joined, started, left]);
        // Fields added later, each absent when empty, so the records above read the same.
        let edited = Record { id: 45, event: Event::Edited, of: Some(42), ..message.clone() };
        let reacted = Record {
            id: 46,
            event: Event::Reacted,
            of: Some(42),
            emoji: Some("👍".into()),
            text: None,
            ..message.clone()
        };
        let with_file = Record {
            id: 47,
            reply_to: Some(42),
            attachments: vec![halo_core::message::Attachment {
                id: "0123456789abcdef0123456789abcdef".into(),
                name: "plan.pdf".into(),
                mime: "application/pdf".into(),
                size: 1234,
                sha256: "ab12".into(),
            }],
            ..message
        };
        pin("archive", include_str!("golden/record_v1_later.hex"), &[edited, reacted, with_file]);
    }

    #[test]
    fn policy_v1_is_pinned() {
        let samples = [Policy::ALL, Policy::OFF, Policy { internal: true, external: false }];
        pin("archive_policies", include_str!("golden/policy_v1.hex"), &samples);
    }

    #[test]
    fn settings_v1_is_pinned() {
        let custom = Settings { block_on_failure: true, block_after_secs: 30, block_backlog: 500, keep_days: 365 };
        pin("archive_meta", include_str!("golden/settings_v1.hex"), &[custom, Settings::default()]);
    }
}

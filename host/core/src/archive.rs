//! Compliance archiving as plain rules: who is archived ([`Policies`]), what an archive keeps
//! ([`Record`]), and when archiving failures refuse new messages ([`Settings`]).
//!
//! The model is Lync's: a global policy and per-user policies (the user's wins), each saying
//! whether internal conversations (everyone on this server) and external ones (a federated
//! participant) are archived. An event is archived when any of its participants' effective
//! policy covers it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::conversation::Format;
use crate::message::{Attachment, Body, Message};
use crate::{Millis, Username};

/// What is archived for one user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Conversations and rooms with only this server's users.
    #[serde(default)]
    pub internal: bool,
    /// Conversations with a federated participant.
    #[serde(default)]
    pub external: bool,
}

impl Policy {
    /// Archive nothing.
    pub const OFF: Policy = Policy { internal: false, external: false };
    /// Archive everything.
    pub const ALL: Policy = Policy { internal: true, external: true };

    /// Whether an event of that kind is archived.
    pub fn covers(&self, external: bool) -> bool {
        if external { self.external } else { self.internal }
    }
}

/// The global policy and the per-user ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Applies to users without a policy of their own.
    pub global: Policy,
    /// Per-user policies; they win over the global one.
    pub users: BTreeMap<Username, Policy>,
}

impl Policies {
    /// The policy in force for `user`.
    pub fn effective(&self, user: &Username) -> Policy {
        self.users.get(user).copied().unwrap_or(self.global)
    }

    /// Whether an event among `participants` is archived: any participant's policy covers it.
    pub fn archives<'a>(&self, participants: impl IntoIterator<Item = &'a Username>, external: bool) -> bool {
        participants.into_iter().any(|u| self.effective(u).covers(external))
    }
}

/// Whether an address belongs to another server (`name@domain`): a federated participant.
pub fn is_external(user: &str) -> bool {
    user.contains('@')
}

/// Server-wide archiving settings (Lync's archiving configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Refuse messages from and to archived users while archiving is failing (fail closed).
    /// Off by default: messages flow and wait in the spool (fail open).
    pub block_on_failure: bool,
    /// A sink failing for longer than this many seconds counts as failing.
    pub block_after_secs: u64,
    /// A sink further behind than this many records counts as failing.
    pub block_backlog: u64,
    /// Records older than this many days are purged (0: kept for ever).
    pub keep_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self { block_on_failure: false, block_after_secs: 60, block_backlog: 100_000, keep_days: 0 }
    }
}

/// Settings problems.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Retention beyond a hundred years is a typo.
    #[error("keep_days must be 0 (keep for ever) to 36500")]
    KeepDays,
    /// A zero threshold would block on the first hiccup.
    #[error("block_after_secs and block_backlog must be at least 1")]
    Threshold,
}

impl Settings {
    /// Checks the values.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.keep_days > 36_500 {
            return Err(SettingsError::KeepDays);
        }
        if self.block_after_secs == 0 || self.block_backlog == 0 {
            return Err(SettingsError::Threshold);
        }
        Ok(())
    }

    /// Records at or before this time are due for purging at `now` (none when kept for ever).
    pub fn purge_before(&self, now: Millis) -> Option<Millis> {
        (self.keep_days > 0).then(|| now.saturating_sub(u64::from(self.keep_days) * 86_400_000))
    }
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// A conversation was started (by `from`, with `participants`).
    Started,
    /// A message or room post.
    Message,
    /// `user` joined (added by `from`, or by themselves in a room).
    Joined,
    /// `user` left (or was removed by `from`).
    Left,
    /// `from` edited message `of`: `text` is the new version (the old ones are earlier records).
    Edited,
    /// `from` deleted message `of` (its text stays in the archive).
    Deleted,
    /// `from` reacted to message `of` with `emoji`.
    Reacted,
    /// `from` took back their `emoji` reaction to message `of`.
    Unreacted,
}

/// Where it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// A conversation (1:1 or multiparty).
    Conversation(u64),
    /// A persistent chat room.
    Room(u64),
}

/// One archived event, as sinks receive it and exports write it (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Stable id, increasing with arrival: the message id (or conversation id for `started`).
    /// A sink that sees an id twice drops the copy.
    pub id: u64,
    /// Server time, ms since the Unix epoch.
    pub at: Millis,
    /// What happened.
    pub event: Event,
    /// Where.
    #[serde(flatten)]
    pub place: Place,
    /// Who did it.
    pub from: String,
    /// Who joined or left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Who was in the conversation or room after the event.
    pub participants: Vec<String>,
    /// Whether a participant was on another server.
    pub external: bool,
    /// The text of a message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Its format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// The message an edit, deletion or reaction is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<u64>,
    /// The message a message replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<u64>,
    /// Files attached to a message, with their SHA-256 and size (the export can include them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// A reaction's emoji.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

impl Record {
    /// The record of `msg` in `place` among `participants`.
    pub fn of_message<'a>(place: Place, msg: &Message, participants: impl IntoIterator<Item = &'a Username>) -> Self {
        let participants: Vec<String> = participants.into_iter().map(|u| u.to_string()).collect();
        let external = participants.iter().any(|p| is_external(p));
        let (event, user, text, format) = match &msg.body {
            Body::Text { text, format } => (Event::Message, None, Some(text.clone()), Some(*format)),
            Body::Joined { user } => (Event::Joined, Some(user.to_string()), None, None),
            Body::Left { user } => (Event::Left, Some(user.to_string()), None, None),
        };
        Self {
            id: msg.id,
            at: msg.at,
            event,
            place,
            from: msg.from.to_string(),
            user,
            participants,
            external,
            text,
            format,
            of: None,
            reply_to: msg.extras.reply_to,
            attachments: msg.extras.attachments.clone(),
            emoji: None,
        }
    }

    /// The record of change `id` (at `at`, by `by`) to message `of` in `place`.
    pub fn of_change<'a>(
        place: Place,
        (id, at, by): (u64, Millis, &Username),
        of: u64,
        change: &crate::im::Change,
        participants: impl IntoIterator<Item = &'a Username>,
    ) -> Self {
        use crate::im::Change;
        let participants: Vec<String> = participants.into_iter().map(|u| u.to_string()).collect();
        let external = participants.iter().any(|p| is_external(p));
        let (event, text, format, emoji) = match change {
            Change::Edited { text, format } => (Event::Edited, Some(text.clone()), Some(*format), None),
            Change::Deleted => (Event::Deleted, None, None, None),
            Change::Reacted { emoji, add: true } => (Event::Reacted, None, None, Some(emoji.clone())),
            Change::Reacted { emoji, add: false } => (Event::Unreacted, None, None, Some(emoji.clone())),
        };
        Self {
            id,
            at,
            event,
            place,
            from: by.to_string(),
            user: None,
            participants,
            external,
            text,
            format,
            of: Some(of),
            reply_to: None,
            attachments: Vec::new(),
            emoji,
        }
    }

    /// The record of a conversation being started.
    pub fn started<'a>(
        id: u64,
        at: Millis,
        from: &Username,
        participants: impl IntoIterator<Item = &'a Username>,
    ) -> Self {
        let participants: Vec<String> = participants.into_iter().map(|u| u.to_string()).collect();
        let external = participants.iter().any(|p| is_external(p));
        Self {
            id,
            at,
            event: Event::Started,
            place: Place::Conversation(id),
            from: from.to_string(),
            user: None,
            participants,
            external,
            text: None,
            format: None,
            of: None,
            reply_to: None,
            attachments: Vec::new(),
            emoji: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).expect("username")
    }

    #[test]
    fn per_user_policy_wins_and_any_participant_archives() {
        let mut p = Policies::default();
        assert!(!p.archives([&u("alice"), &u("bob")], false), "off by default");
        p.users.insert(u("alice"), Policy { internal: true, external: false });
        assert!(p.archives([&u("alice"), &u("bob")], false), "alice is archived, so her conversation is");
        assert!(!p.archives([&u("alice"), &u("bob")], true), "but not external ones");
        assert!(!p.archives([&u("carol"), &u("bob")], false));
        p.global = Policy::ALL;
        assert!(p.archives([&u("carol")], true), "global covers everyone else");
        p.users.insert(u("carol"), Policy::OFF);
        assert!(!p.archives([&u("carol")], false), "carol's own policy wins over the global one");
        assert!(p.archives([&u("carol"), &u("dave")], false), "dave still falls under the global policy");
    }

    #[test]
    fn settings_are_checked_and_retention_computes_a_cutoff() {
        assert_eq!(Settings::default().check(), Ok(()));
        assert_eq!(Settings { keep_days: 40_000, ..Default::default() }.check(), Err(SettingsError::KeepDays));
        assert_eq!(Settings { block_backlog: 0, ..Default::default() }.check(), Err(SettingsError::Threshold));
        assert_eq!(Settings::default().purge_before(10 * 86_400_000), None, "kept for ever");
        let s = Settings { keep_days: 7, ..Default::default() };
        assert_eq!(s.purge_before(10 * 86_400_000), Some(3 * 86_400_000));
    }

    #[test]
    fn records_carry_the_event_and_serialize_flat() {
        let msg = Message {
            id: 9,
            at: 100,
            from: u("alice"),
            body: Body::Text { text: "hi".into(), format: Format::Plain },
            key: None,
            extras: Default::default(),
        };
        let r = Record::of_message(Place::Conversation(3), &msg, [&u("alice"), &u("bob")]);
        let json = serde_json::to_value(&r).expect("json");
        assert_eq!(json["conversation"], 3);
        assert_eq!(json["event"], "message");
        assert_eq!(json["text"], "hi");
        assert_eq!(json["external"], false);
        assert!(json.get("user").is_none());
        let back: Record = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, r);

        let joined = Message { body: Body::Joined { user: u("carol") }, ..msg };
        let r = Record::of_message(Place::Room(4), &joined, [&u("alice"), &u("carol")]);
        assert_eq!((r.event, r.user.as_deref(), r.text.as_deref()), (Event::Joined, Some("carol"), None));
        assert!(is_external("bob@example.org") && !is_external("bob"));
    }
}

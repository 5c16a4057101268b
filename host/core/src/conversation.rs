//! Conversations: two-party and multiparty, escalation by adding a participant, leaving, and
//! who may read which messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Millis, Username};

/// Conversation id (server-assigned, increasing).
pub type ConversationId = u64;
/// Message id: server-assigned and increasing, so ids order messages by arrival.
pub type MessageId = u64;

/// Most participants in one conversation (100): beyond that, use a persistent chat room.
pub const MAX_PARTICIPANTS: usize = 100;
/// Longest message text, in bytes (16 KiB): well under the 64 KiB frame limit with its envelope.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// Why an IM or room operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImError {
    /// The caller is not a participant (or member).
    #[error("you are not a participant of this conversation")]
    NotParticipant,
    /// The user to add is a participant already.
    #[error("{0} is a participant already")]
    AlreadyParticipant(String),
    /// Too many participants.
    #[error("a conversation has at most {MAX_PARTICIPANTS} participants; use a room for more")]
    TooManyParticipants,
    /// A conversation needs someone besides its creator.
    #[error("a conversation needs at least one other participant")]
    NoOtherParticipant,
    /// The message is empty or only whitespace.
    #[error("empty message")]
    EmptyMessage,
    /// The message is over [`MAX_MESSAGE_BYTES`].
    #[error("message longer than {MAX_MESSAGE_BYTES} bytes")]
    MessageTooLarge,
    /// The message holds control characters other than newline and tab.
    #[error("message contains control characters")]
    ControlCharacters,
    /// The idempotency key is empty or too long.
    #[error("idempotency key must be 1-{MAX_KEY_BYTES} bytes")]
    BadKey,
    /// The conversation has ended (everyone left).
    #[error("this conversation has ended")]
    Closed,
    /// The conversation mirrors a group hosted on another server: its participants are
    /// managed there.
    #[error("this group is hosted on another server: add people there")]
    HostedElsewhere,
}

/// How a message's text is to be shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Plain text.
    #[default]
    Plain,
    /// A simple Markdown subset (emphasis, code, links, lists), rendered by clients.
    Markdown,
}

/// Two people, or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Two participants.
    Direct,
    /// Three or more (or a direct conversation someone was added to).
    Group,
}

/// A participant's window on the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// When they joined.
    pub joined_at: Millis,
    /// The first message they may read: a newcomer sees messages from the moment they joined.
    pub visible_from: MessageId,
    /// The last message they may read, once they have left.
    pub visible_until: Option<MessageId>,
}

/// A conversation and its participants, present and past.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// Its id.
    pub id: ConversationId,
    /// Direct or group.
    pub kind: Kind,
    /// Present participants (`visible_until` is `None`) and past ones.
    pub participants: BTreeMap<Username, Participant>,
    /// Who started it.
    pub created_by: Username,
    /// When.
    pub created_at: Millis,
    /// Everyone left.
    pub closed: bool,
}

impl Conversation {
    /// A new conversation of `creator` with `others`; messages from `first_message` on are
    /// visible to all of them.
    pub fn new(
        id: ConversationId,
        creator: &Username,
        others: &[Username],
        now: Millis,
        first_message: MessageId,
    ) -> Result<Self, ImError> {
        let mut participants = BTreeMap::new();
        let entry = || Participant { joined_at: now, visible_from: first_message, visible_until: None };
        participants.insert(creator.clone(), entry());
        for u in others {
            participants.insert(u.clone(), entry());
        }
        match participants.len() {
            1 => return Err(ImError::NoOtherParticipant),
            n if n > MAX_PARTICIPANTS => return Err(ImError::TooManyParticipants),
            _ => {}
        }
        let kind = if participants.len() == 2 { Kind::Direct } else { Kind::Group };
        Ok(Self { id, kind, participants, created_by: creator.clone(), created_at: now, closed: false })
    }

    /// A conversation standing here for a group hosted on another server (its *mirror*): the
    /// group's address (`#c17@a.example`), which started it and is its other participant.
    pub fn hosted_by(&self) -> Option<&Username> {
        Some(&self.created_by).filter(|c| crate::federation::is_group(c.as_str()))
    }

    /// Present participants.
    pub fn members(&self) -> impl Iterator<Item = &Username> {
        self.participants.iter().filter(|(_, p)| p.visible_until.is_none()).map(|(u, _)| u)
    }

    /// Whether `user` is a present participant.
    pub fn is_member(&self, user: &Username) -> bool {
        self.participants.get(user).is_some_and(|p| p.visible_until.is_none())
    }

    /// The range of message ids `user` may read, if any.
    pub fn window(&self, user: &Username) -> Option<(MessageId, MessageId)> {
        self.participants.get(user).map(|p| (p.visible_from, p.visible_until.unwrap_or(MessageId::MAX)))
    }

    /// Whether `user` may read message `id`.
    pub fn can_read(&self, user: &Username, id: MessageId) -> bool {
        self.window(user).is_some_and(|(from, until)| (from..=until).contains(&id))
    }

    /// Checks that `user` may send (a present participant of an open conversation).
    pub fn check_send(&self, user: &Username) -> Result<(), ImError> {
        if self.closed {
            return Err(ImError::Closed);
        }
        if !self.is_member(user) {
            return Err(ImError::NotParticipant);
        }
        Ok(())
    }

    /// `by` adds `user`, who sees messages from `from` on. A direct conversation becomes a group.
    pub fn add(&mut self, by: &Username, user: &Username, now: Millis, from: MessageId) -> Result<(), ImError> {
        self.check_send(by)?;
        if self.is_member(user) {
            return Err(ImError::AlreadyParticipant(user.to_string()));
        }
        if self.members().count() >= MAX_PARTICIPANTS {
            return Err(ImError::TooManyParticipants);
        }
        if self.hosted_by().is_some() || crate::federation::is_group(user.as_str()) {
            return Err(ImError::HostedElsewhere);
        }
        self.participants.insert(user.clone(), Participant { joined_at: now, visible_from: from, visible_until: None });
        self.kind = Kind::Group;
        Ok(())
    }

    /// `user` leaves; they keep reading up to `last` (the last message before they left). The
    /// conversation closes when nobody is left.
    pub fn leave(&mut self, user: &Username, last: MessageId) -> Result<(), ImError> {
        if !self.is_member(user) {
            return Err(ImError::NotParticipant);
        }
        if let Some(p) = self.participants.get_mut(user) {
            p.visible_until = Some(last);
        }
        if self.members().next().is_none() {
            self.closed = true;
        }
        Ok(())
    }
}

/// Checks and normalises a message text: not blank, at most [`MAX_MESSAGE_BYTES`], no control
/// characters but newline and tab. Trailing whitespace is trimmed.
pub fn check_text(text: &str) -> Result<String, ImError> {
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Err(ImError::EmptyMessage);
    }
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ImError::MessageTooLarge);
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(ImError::ControlCharacters);
    }
    Ok(text.to_owned())
}

/// Checks an idempotency key.
pub fn check_key(key: &str) -> Result<(), ImError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ImError::BadKey);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_users_join_groups_but_mirrors_are_managed_by_their_host() {
        let remote = Username::parse_address("bob@example.org").expect("valid");
        let mut c = Conversation::new(1, &u("alice"), std::slice::from_ref(&remote), 0, 0).expect("1:1");
        assert_eq!(c.kind, Kind::Direct);
        c.add(&u("alice"), &u("carol"), 0, 1).expect("escalated with a remote participant");
        assert_eq!(c.kind, Kind::Group);
        let mut local = Conversation::new(2, &u("alice"), &[u("carol")], 0, 0).expect("1:1");
        local.add(&u("alice"), &remote, 0, 1).expect("a remote third person");
        assert!(Conversation::new(3, &u("alice"), &[u("carol"), remote.clone()], 0, 0).is_ok());
        assert_eq!(c.hosted_by(), None);
        // A mirror of a group hosted elsewhere: its host adds people, not this server.
        let group = Username::parse_address("#c9@example.org").expect("valid");
        let mut mirror = Conversation::new(4, &group, &[u("alice")], 0, 0).expect("mirror");
        assert_eq!(mirror.hosted_by(), Some(&group));
        assert_eq!(mirror.add(&u("alice"), &u("carol"), 0, 1), Err(ImError::HostedElsewhere));
        assert_eq!(local.add(&u("alice"), &group, 0, 2), Err(ImError::HostedElsewhere));
    }

    fn u(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    #[test]
    fn direct_becomes_group_and_newcomers_see_from_their_join() {
        let mut c = Conversation::new(1, &u("alice"), &[u("bob")], 0, 10).expect("new");
        assert_eq!(c.kind, Kind::Direct);
        assert!(c.can_read(&u("bob"), 10));
        c.add(&u("bob"), &u("carol"), 5, 20).expect("add");
        assert_eq!(c.kind, Kind::Group);
        assert!(!c.can_read(&u("carol"), 19), "earlier messages stay hidden from the newcomer");
        assert!(c.can_read(&u("carol"), 20));
        assert!(c.can_read(&u("alice"), 11), "the others keep the whole thread");
        assert_eq!(c.add(&u("alice"), &u("carol"), 6, 21), Err(ImError::AlreadyParticipant("carol".into())));
        assert_eq!(c.add(&u("dave"), &u("erin"), 6, 21), Err(ImError::NotParticipant));
    }

    #[test]
    fn leaving_keeps_history_and_the_last_one_out_closes() {
        let mut c = Conversation::new(1, &u("alice"), &[u("bob")], 0, 1).expect("new");
        c.leave(&u("bob"), 5).expect("leave");
        assert!(c.can_read(&u("bob"), 5) && !c.can_read(&u("bob"), 6));
        assert_eq!(c.check_send(&u("bob")), Err(ImError::NotParticipant));
        assert_eq!(c.leave(&u("bob"), 6), Err(ImError::NotParticipant));
        assert!(!c.closed);
        c.leave(&u("alice"), 7).expect("leave");
        assert!(c.closed);
        assert_eq!(c.check_send(&u("alice")), Err(ImError::Closed));
    }

    #[test]
    fn participant_rules() {
        assert_eq!(Conversation::new(1, &u("alice"), &[], 0, 1), Err(ImError::NoOtherParticipant));
        assert_eq!(Conversation::new(1, &u("alice"), &[u("alice")], 0, 1), Err(ImError::NoOtherParticipant));
        let many: Vec<Username> = (0..MAX_PARTICIPANTS).map(|i| u(&format!("u{i}"))).collect();
        assert_eq!(Conversation::new(1, &u("alice"), &many, 0, 1), Err(ImError::TooManyParticipants));
        assert!(Conversation::new(1, &u("alice"), &many[1..], 0, 1).is_ok());
    }

    #[test]
    fn texts_are_checked() {
        assert_eq!(check_text("hi  \n"), Ok("hi".into()));
        assert_eq!(check_text(" \n\t"), Err(ImError::EmptyMessage));
        assert_eq!(check_text(&"x".repeat(MAX_MESSAGE_BYTES + 1)), Err(ImError::MessageTooLarge));
        assert_eq!(check_text("a\u{0}b"), Err(ImError::ControlCharacters));
        assert_eq!(check_text("line\n\tindented"), Ok("line\n\tindented".into()));
        assert!(check_key("").is_err() && check_key(&"k".repeat(129)).is_err() && check_key("k1").is_ok());
    }
}

//! Persistent chat rooms: topic-based, multiparty conversations that persist over time, with
//! privacy (open, closed, secret) and roles (manager, member).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Millis, Username};

/// Room id (server-assigned).
pub type RoomId = u64;

/// Longest room name, in characters.
pub const MAX_ROOM_NAME_CHARS: usize = 64;
/// Longest topic or description, in characters.
pub const MAX_ROOM_TEXT_CHARS: usize = 1024;

/// Who may find, read and join a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Privacy {
    /// Anyone finds it, reads it and joins it.
    Open,
    /// Anyone finds it and sees its members; only members read and post; a manager adds members.
    Closed,
    /// Only members know it exists.
    Secret,
}

/// A member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomRole {
    /// Reads and posts.
    Member,
    /// Also edits the room and manages its members.
    Manager,
}

/// Why a room operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// Not visible to the caller (answered like a missing room).
    #[error("no such room")]
    NotFound,
    /// The caller may see the room but not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Name, topic or description out of bounds.
    #[error("{0}")]
    Invalid(&'static str),
    /// The operation would leave the room without a manager.
    #[error("a room needs at least one manager; make another member a manager first")]
    LastManager,
}

/// A room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Room {
    /// Its id.
    pub id: RoomId,
    /// Unique (case-insensitively) name.
    pub name: String,
    /// What is discussed now.
    pub topic: String,
    /// What the room is for.
    pub description: String,
    /// Who may find, read and join.
    pub privacy: Privacy,
    /// Members and their roles.
    pub members: BTreeMap<Username, RoomRole>,
    /// Who created it.
    pub created_by: Username,
    /// When.
    pub created_at: Millis,
}

fn check_len(s: &str, max: usize, what: &'static str) -> Result<String, RoomError> {
    let s = s.trim();
    if s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(RoomError::Invalid(what));
    }
    Ok(s.to_owned())
}

/// Checks and trims a room name.
pub fn check_name(name: &str) -> Result<String, RoomError> {
    let name = check_len(name, MAX_ROOM_NAME_CHARS, "room name must be 1-64 printable characters")?;
    if name.is_empty() {
        return Err(RoomError::Invalid("room name must be 1-64 printable characters"));
    }
    Ok(name)
}

/// Checks and trims a topic or description.
pub fn check_text(text: &str) -> Result<String, RoomError> {
    check_len(text, MAX_ROOM_TEXT_CHARS, "topic and description are at most 1024 printable characters")
}

impl Room {
    /// A room whose creator is its manager.
    pub fn new(
        id: RoomId,
        name: &str,
        creator: &Username,
        privacy: Privacy,
        topic: &str,
        description: &str,
        now: Millis,
    ) -> Result<Self, RoomError> {
        Ok(Self {
            id,
            name: check_name(name)?,
            topic: check_text(topic)?,
            description: check_text(description)?,
            privacy,
            members: [(creator.clone(), RoomRole::Manager)].into(),
            created_by: creator.clone(),
            created_at: now,
        })
    }

    /// Whether `user` knows the room exists.
    pub fn can_see(&self, user: &Username) -> bool {
        self.privacy != Privacy::Secret || self.members.contains_key(user)
    }

    /// Whether `user` may read its posts and members.
    pub fn can_read(&self, user: &Username) -> bool {
        self.privacy == Privacy::Open || self.members.contains_key(user)
    }

    /// Visible, readable, or the error to give.
    pub fn check_read(&self, user: &Username) -> Result<(), RoomError> {
        if !self.can_see(user) {
            return Err(RoomError::NotFound);
        }
        if !self.can_read(user) {
            return Err(RoomError::Forbidden("this room is closed: only its members read it"));
        }
        Ok(())
    }

    /// Checks that `user` may post.
    pub fn check_post(&self, user: &Username) -> Result<(), RoomError> {
        self.check_read(user)?;
        if !self.members.contains_key(user) {
            return Err(RoomError::Forbidden("join the room to post"));
        }
        Ok(())
    }

    /// Checks that `user` manages the room.
    pub fn check_manage(&self, user: &Username) -> Result<(), RoomError> {
        self.check_read(user)?;
        if self.members.get(user) != Some(&RoomRole::Manager) {
            return Err(RoomError::Forbidden("only a manager of the room may do this"));
        }
        Ok(())
    }

    /// `user` joins by themselves: only open rooms; returns whether they were new.
    pub fn join(&mut self, user: &Username) -> Result<bool, RoomError> {
        if !self.can_see(user) {
            return Err(RoomError::NotFound);
        }
        if self.members.contains_key(user) {
            return Ok(false);
        }
        if self.privacy != Privacy::Open {
            return Err(RoomError::Forbidden("this room is closed: ask a manager to add you"));
        }
        self.members.insert(user.clone(), RoomRole::Member);
        Ok(true)
    }

    /// `by` (a manager) adds `user` or changes their role.
    pub fn set_member(&mut self, by: &Username, user: &Username, role: RoomRole) -> Result<(), RoomError> {
        self.check_manage(by)?;
        if role == RoomRole::Member && self.members.get(user) == Some(&RoomRole::Manager) {
            self.ensure_other_manager(user)?;
        }
        self.members.insert(user.clone(), role);
        Ok(())
    }

    /// `by` removes `user`: a manager removes anyone, a member only themselves (leaving).
    pub fn remove_member(&mut self, by: &Username, user: &Username) -> Result<(), RoomError> {
        if by != user {
            self.check_manage(by)?;
        }
        match self.members.get(user) {
            None => return Err(RoomError::Forbidden("not a member of this room")),
            Some(RoomRole::Manager) => self.ensure_other_manager(user)?,
            Some(RoomRole::Member) => {}
        }
        self.members.remove(user);
        Ok(())
    }

    fn ensure_other_manager(&self, user: &Username) -> Result<(), RoomError> {
        let others = self.members.iter().any(|(u, r)| u != user && *r == RoomRole::Manager);
        if others { Ok(()) } else { Err(RoomError::LastManager) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    fn room(privacy: Privacy) -> Room {
        Room::new(1, " Design ", &u("alice"), privacy, "colours", "", 0).expect("room")
    }

    #[test]
    fn privacy_decides_who_sees_reads_and_joins() {
        // (privacy, outsider sees, outsider reads, outsider may join)
        for (privacy, sees, reads, joins) in [
            (Privacy::Open, true, true, true),
            (Privacy::Closed, true, false, false),
            (Privacy::Secret, false, false, false),
        ] {
            let mut r = room(privacy);
            assert_eq!(r.name, "Design");
            assert_eq!(r.can_see(&u("bob")), sees, "{privacy:?}");
            assert_eq!(r.can_read(&u("bob")), reads, "{privacy:?}");
            assert_eq!(r.join(&u("bob")).is_ok(), joins, "{privacy:?}");
            assert!(r.check_post(&u("alice")).is_ok());
        }
        let r = room(Privacy::Secret);
        assert_eq!(r.check_read(&u("bob")), Err(RoomError::NotFound));
    }

    #[test]
    fn managers_manage_and_one_always_remains() {
        let mut r = room(Privacy::Closed);
        assert!(r.set_member(&u("bob"), &u("carol"), RoomRole::Member).is_err());
        r.set_member(&u("alice"), &u("bob"), RoomRole::Member).expect("invite");
        assert!(r.check_post(&u("bob")).is_ok());
        assert!(r.check_manage(&u("bob")).is_err());
        assert_eq!(r.remove_member(&u("alice"), &u("alice")), Err(RoomError::LastManager));
        assert_eq!(r.set_member(&u("alice"), &u("alice"), RoomRole::Member), Err(RoomError::LastManager));
        r.set_member(&u("alice"), &u("bob"), RoomRole::Manager).expect("promote");
        r.remove_member(&u("alice"), &u("alice")).expect("now alice may leave");
        assert!(r.remove_member(&u("carol"), &u("bob")).is_err());
    }

    #[test]
    fn names_and_texts_are_bounded() {
        assert!(check_name("  ").is_err());
        assert!(check_name(&"n".repeat(65)).is_err());
        assert!(check_text(&"t".repeat(1025)).is_err());
        assert!(check_text("a\u{7}").is_err());
    }
}

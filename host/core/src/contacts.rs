//! Contact lists: groups in the owner's order, contacts each in one group with the access level
//! the owner grants them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::presence::AccessLevel;
use crate::{Millis, Username};

/// Id of the group every list starts with; it cannot be deleted.
pub const DEFAULT_GROUP: u32 = 0;

/// Why a contact-list change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ContactError {
    /// The list is full.
    #[error("a contact list holds at most {0} contacts")]
    TooMany(usize),
    /// Not on the list.
    #[error("{0} is not in your contacts")]
    NotAContact(String),
    /// On the list already.
    #[error("{0} is in your contacts already")]
    AlreadyAContact(String),
    /// No such group.
    #[error("no contact group {0}")]
    NoGroup(u32),
    /// The default group stays.
    #[error("the default group cannot be deleted")]
    DefaultGroup,
    /// A group name is empty or too long.
    #[error("group names are 1-64 printable characters")]
    BadGroupName,
    /// Oneself.
    #[error("you cannot add yourself")]
    Oneself,
}

/// A group of contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Id, stable across renames.
    pub id: u32,
    /// Name.
    pub name: String,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Its group.
    pub group: u32,
    /// What the owner lets this contact see.
    pub level: AccessLevel,
    /// When it was added.
    pub added_at: Millis,
}

/// A user's contact list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactList {
    /// Groups, in display order.
    pub groups: Vec<Group>,
    /// Contacts by username.
    pub contacts: BTreeMap<Username, Contact>,
    next_group: u32,
}

impl Default for ContactList {
    fn default() -> Self {
        Self {
            groups: vec![Group { id: DEFAULT_GROUP, name: "Contacts".into() }],
            contacts: BTreeMap::new(),
            next_group: 1,
        }
    }
}

fn check_group_name(name: &str) -> Result<String, ContactError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ContactError::BadGroupName);
    }
    Ok(name.to_owned())
}

impl ContactList {
    /// A list from its parts (as storage keeps them); `next_group` is the id the next new group
    /// gets.
    pub fn from_parts(groups: Vec<Group>, contacts: BTreeMap<Username, Contact>, next_group: u32) -> Self {
        Self { groups, contacts, next_group }
    }

    /// The id the next new group gets.
    pub fn next_group(&self) -> u32 {
        self.next_group
    }

    fn check_group(&self, id: u32) -> Result<(), ContactError> {
        if self.groups.iter().any(|g| g.id == id) { Ok(()) } else { Err(ContactError::NoGroup(id)) }
    }

    /// The level `user` has, if a contact.
    pub fn level_of(&self, user: &Username) -> Option<AccessLevel> {
        self.contacts.get(user).map(|c| c.level)
    }

    /// Adds `user` (default group and `default_level` unless given). `owner` is the list's owner.
    pub fn add(
        &mut self,
        owner: &Username,
        user: &Username,
        group: Option<u32>,
        level: AccessLevel,
        max: usize,
        now: Millis,
    ) -> Result<(), ContactError> {
        if user == owner {
            return Err(ContactError::Oneself);
        }
        if self.contacts.contains_key(user) {
            return Err(ContactError::AlreadyAContact(user.to_string()));
        }
        if self.contacts.len() >= max {
            return Err(ContactError::TooMany(max));
        }
        let group = group.unwrap_or(DEFAULT_GROUP);
        self.check_group(group)?;
        self.contacts.insert(user.clone(), Contact { group, level, added_at: now });
        Ok(())
    }

    /// Moves a contact to another group and/or changes its level.
    pub fn update(
        &mut self,
        user: &Username,
        group: Option<u32>,
        level: Option<AccessLevel>,
    ) -> Result<(), ContactError> {
        if let Some(g) = group {
            self.check_group(g)?;
        }
        let c = self.contacts.get_mut(user).ok_or_else(|| ContactError::NotAContact(user.to_string()))?;
        if let Some(g) = group {
            c.group = g;
        }
        if let Some(l) = level {
            c.level = l;
        }
        Ok(())
    }

    /// Removes a contact.
    pub fn remove(&mut self, user: &Username) -> Result<(), ContactError> {
        self.contacts.remove(user).map(|_| ()).ok_or_else(|| ContactError::NotAContact(user.to_string()))
    }

    /// Adds a group at the end; returns its id.
    pub fn add_group(&mut self, name: &str) -> Result<u32, ContactError> {
        let name = check_group_name(name)?;
        let id = self.next_group;
        self.next_group += 1;
        self.groups.push(Group { id, name });
        Ok(id)
    }

    /// Renames a group and/or moves it to `position` (0 = first).
    pub fn edit_group(&mut self, id: u32, name: Option<&str>, position: Option<usize>) -> Result<(), ContactError> {
        let at = self.groups.iter().position(|g| g.id == id).ok_or(ContactError::NoGroup(id))?;
        if let Some(n) = name {
            self.groups[at].name = check_group_name(n)?;
        }
        if let Some(p) = position {
            let g = self.groups.remove(at);
            self.groups.insert(p.min(self.groups.len()), g);
        }
        Ok(())
    }

    /// Deletes a group; its contacts move to the default group.
    pub fn remove_group(&mut self, id: u32) -> Result<(), ContactError> {
        if id == DEFAULT_GROUP {
            return Err(ContactError::DefaultGroup);
        }
        self.check_group(id)?;
        self.groups.retain(|g| g.id != id);
        for c in self.contacts.values_mut().filter(|c| c.group == id) {
            c.group = DEFAULT_GROUP;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    #[test]
    fn groups_and_contacts() {
        let me = u("alice");
        let mut l = ContactList::default();
        let team = l.add_group("Team").expect("group");
        l.add(&me, &u("bob"), Some(team), AccessLevel::Workgroup, 2, 0).expect("add");
        l.add(&me, &u("carol"), None, AccessLevel::Colleagues, 2, 0).expect("add");
        assert_eq!(l.add(&me, &u("dave"), None, AccessLevel::Colleagues, 2, 0), Err(ContactError::TooMany(2)));
        assert_eq!(
            l.add(&me, &u("bob"), None, AccessLevel::Colleagues, 9, 0),
            Err(ContactError::AlreadyAContact("bob".into()))
        );
        assert_eq!(l.add(&me, &me, None, AccessLevel::Colleagues, 9, 0), Err(ContactError::Oneself));
        assert_eq!(l.add(&me, &u("erin"), Some(42), AccessLevel::Colleagues, 9, 0), Err(ContactError::NoGroup(42)));
        assert_eq!(l.level_of(&u("bob")), Some(AccessLevel::Workgroup));

        l.edit_group(team, Some("Core team"), Some(0)).expect("edit");
        assert_eq!(l.groups.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(), ["Core team", "Contacts"]);
        l.update(&u("carol"), Some(team), Some(AccessLevel::Blocked)).expect("update");
        l.remove_group(team).expect("remove group");
        assert!(l.contacts.values().all(|c| c.group == DEFAULT_GROUP), "contacts fall back to the default group");
        assert_eq!(l.remove_group(DEFAULT_GROUP), Err(ContactError::DefaultGroup));
        l.remove(&u("bob")).expect("remove");
        assert!(l.remove(&u("bob")).is_err());
        assert!(l.add_group(" ").is_err());
    }
}

//! Rooms and members' marks.

use std::collections::BTreeMap;

use halo_core::conversation::MessageId;
use halo_core::room::{Privacy, Room, RoomRole};
use halo_core::{Millis, Username};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};
use crate::rooms::RoomMark;

stored!(Room => RoomV1, RoomMark => RoomMarkV1);

unit_enum! {
    /// Who may find, read and join a room.
    PrivacyV1 <=> Privacy, "snake_case" { Open, Closed, Secret }
}

unit_enum! {
    /// A member's role.
    RoomRoleV1 <=> RoomRole, "snake_case" { Member, Manager }
}

/// `rooms`: a room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomV1 {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) topic: String,
    pub(crate) description: String,
    pub(crate) privacy: PrivacyV1,
    pub(crate) members: BTreeMap<Username, RoomRoleV1>,
    pub(crate) created_by: Username,
    pub(crate) created_at: Millis,
}

impl From<&Room> for RoomV1 {
    fn from(r: &Room) -> Self {
        let Room { id, name, topic, description, privacy, members, created_by, created_at } = r;
        Self {
            id: *id,
            name: name.clone(),
            topic: topic.clone(),
            description: description.clone(),
            privacy: privacy.into(),
            members: members.iter().map(|(u, role)| (u.clone(), role.into())).collect(),
            created_by: created_by.clone(),
            created_at: *created_at,
        }
    }
}

impl From<RoomV1> for Room {
    fn from(r: RoomV1) -> Self {
        let RoomV1 { id, name, topic, description, privacy, members, created_by, created_at } = r;
        Self {
            id,
            name,
            topic,
            description,
            privacy: privacy.into(),
            members: members.into_iter().map(|(u, role)| (u, role.into())).collect(),
            created_by,
            created_at,
        }
    }
}

/// `room_marks`: a member's read marker and follow flag.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomMarkV1 {
    pub(crate) read_upto: MessageId,
    pub(crate) follow: bool,
}

impl From<&RoomMark> for RoomMarkV1 {
    fn from(m: &RoomMark) -> Self {
        let RoomMark { read_upto, follow } = *m;
        Self { read_upto, follow }
    }
}

impl From<RoomMarkV1> for RoomMark {
    fn from(m: RoomMarkV1) -> Self {
        let RoomMarkV1 { read_upto, follow } = m;
        Self { read_upto, follow }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::golden::pin;

    fn name(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    #[test]
    fn room_v1_is_pinned() {
        let room = |id, privacy| Room {
            id,
            name: "Ops".into(),
            topic: "Incidents".into(),
            description: "Where on-call talks".into(),
            privacy,
            members: [(name("alice"), RoomRole::Manager), (name("bob"), RoomRole::Member)].into(),
            created_by: name("alice"),
            created_at: 1_700_000_000_000,
        };
        let samples = [room(5, Privacy::Open), room(6, Privacy::Closed), room(7, Privacy::Secret)];
        pin("rooms", include_str!("golden/room_v1.hex"), &samples);
    }

    #[test]
    fn room_mark_v1_is_pinned() {
        let samples = [RoomMark { read_upto: 17, follow: true }, RoomMark { read_upto: 0, follow: false }];
        pin("room_marks", include_str!("golden/room_mark_v1.hex"), &samples);
    }
}

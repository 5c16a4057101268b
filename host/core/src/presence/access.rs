//! Access levels: which presence and contact-card fields a viewer sees. The one table of the
//! system is [`AccessLevel::sees`]; everything that shows presence goes through [`Visibility`].
//!
//! | field | Blocked | External | Colleagues | Workgroup | Friends and Family |
//! |---|---|---|---|---|---|
//! | display name, e-mail | yes | yes | yes | yes | yes |
//! | title, department, picture | – | yes | yes | yes | yes |
//! | availability | always Offline | band only | yes | yes | yes |
//! | activity, custom state | – | – | yes | yes | yes |
//! | note, out-of-office note, location, work phone, last active | – | – | yes | yes | yes |
//! | mobile phone | – | – | – | yes | yes |
//! | home phone | – | – | – | – | yes |
//! | meeting details (subject, end) | – | – | – | yes | – |
//!
//! Only Workgroup contacts may interrupt Do Not Disturb. In privacy mode, people not in the
//! owner's contacts see what External sees, with the availability unknown.

use serde::{Deserialize, Serialize};

use super::state::{Availability, Band};

/// What the owner of a presence lets a contact see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// Name and e-mail only; always Offline; cannot reach the owner.
    Blocked,
    /// Federated and outside contacts: card basics and availability.
    External,
    /// The default for people of the organisation.
    Colleagues,
    /// The close team: everything but the home phone; may interrupt Do Not Disturb.
    Workgroup,
    /// Everything but meeting details.
    FriendsAndFamily,
}

/// A field of the presence document or contact card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Display name.
    DisplayName,
    /// E-mail address.
    Email,
    /// Job title.
    Title,
    /// Department (company).
    Department,
    /// Picture.
    Picture,
    /// Activity and custom state.
    Activity,
    /// Personal note.
    Note,
    /// Out-of-office note.
    OutOfOfficeNote,
    /// Location.
    Location,
    /// Work phone.
    WorkPhone,
    /// Mobile phone.
    MobilePhone,
    /// Home phone.
    HomePhone,
    /// Last active time.
    LastActive,
    /// Meeting subject and end.
    MeetingDetails,
}

impl AccessLevel {
    /// Every level.
    pub const ALL: [AccessLevel; 5] = [
        AccessLevel::Blocked,
        AccessLevel::External,
        AccessLevel::Colleagues,
        AccessLevel::Workgroup,
        AccessLevel::FriendsAndFamily,
    ];

    /// The table above.
    pub fn sees(self, f: Field) -> bool {
        use AccessLevel::*;
        match f {
            Field::DisplayName | Field::Email => true,
            Field::Title | Field::Department | Field::Picture => self != Blocked,
            Field::Activity
            | Field::Note
            | Field::OutOfOfficeNote
            | Field::Location
            | Field::WorkPhone
            | Field::LastActive => self >= Colleagues,
            Field::MobilePhone => self >= Workgroup,
            Field::HomePhone => self == FriendsAndFamily,
            Field::MeetingDetails => self == Workgroup,
        }
    }

    /// Whether a message from someone at this level gets through Do Not Disturb.
    pub fn interrupts_dnd(self) -> bool {
        self == AccessLevel::Workgroup
    }
}

/// How one viewer sees one owner's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Visibility {
    /// The owner themselves: everything.
    Own,
    /// Through an access level.
    Level(AccessLevel),
    /// Privacy mode and not in the owner's contacts.
    Private,
}

impl Visibility {
    /// Resolves the viewer's visibility: `level` is the owner's contact entry for the viewer.
    pub fn resolve(is_owner: bool, level: Option<AccessLevel>, privacy_mode: bool, default: AccessLevel) -> Self {
        match (is_owner, level) {
            (true, _) => Visibility::Own,
            (false, Some(l)) => Visibility::Level(l),
            (false, None) if privacy_mode => Visibility::Private,
            (false, None) => Visibility::Level(default),
        }
    }

    /// Whether the viewer sees `f`.
    pub fn sees(self, f: Field) -> bool {
        match self {
            Visibility::Own => true,
            Visibility::Level(l) => l.sees(f),
            Visibility::Private => AccessLevel::External.sees(f),
        }
    }

    /// The availability the viewer sees: `None` is unknown.
    pub fn availability(self, a: Availability) -> Option<Availability> {
        match self {
            Visibility::Own
            | Visibility::Level(AccessLevel::Colleagues | AccessLevel::Workgroup | AccessLevel::FriendsAndFamily) => {
                Some(a)
            }
            Visibility::Level(AccessLevel::External) => Some(Band::of(a).canonical()),
            Visibility::Level(AccessLevel::Blocked) => Some(Band::Offline.canonical()),
            Visibility::Private => None,
        }
    }

    /// Whether changes need telling this viewer at all (Blocked always sees the same Offline).
    pub fn hears_changes(self) -> bool {
        self != Visibility::Level(AccessLevel::Blocked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_table() {
        use AccessLevel::*;
        // Row per field: Blocked, External, Colleagues, Workgroup, FriendsAndFamily.
        let rows: [(Field, [bool; 5]); 14] = [
            (Field::DisplayName, [true, true, true, true, true]),
            (Field::Email, [true, true, true, true, true]),
            (Field::Title, [false, true, true, true, true]),
            (Field::Department, [false, true, true, true, true]),
            (Field::Picture, [false, true, true, true, true]),
            (Field::Activity, [false, false, true, true, true]),
            (Field::Note, [false, false, true, true, true]),
            (Field::OutOfOfficeNote, [false, false, true, true, true]),
            (Field::Location, [false, false, true, true, true]),
            (Field::WorkPhone, [false, false, true, true, true]),
            (Field::LastActive, [false, false, true, true, true]),
            (Field::MobilePhone, [false, false, false, true, true]),
            (Field::HomePhone, [false, false, false, false, true]),
            (Field::MeetingDetails, [false, false, false, true, false]),
        ];
        for (field, expect) in rows {
            let got = [Blocked, External, Colleagues, Workgroup, FriendsAndFamily].map(|l| l.sees(field));
            assert_eq!(got, expect, "{field:?}");
        }
    }

    #[test]
    fn availability_by_visibility() {
        use AccessLevel::*;
        assert_eq!(Visibility::Level(Blocked).availability(3500), Some(18500));
        assert_eq!(Visibility::Level(External).availability(6789), Some(6500));
        assert_eq!(Visibility::Level(Colleagues).availability(6789), Some(6789));
        assert_eq!(Visibility::Private.availability(3500), None);
        assert_eq!(Visibility::resolve(false, None, true, Colleagues), Visibility::Private);
        assert_eq!(Visibility::resolve(false, Some(Workgroup), true, Colleagues), Visibility::Level(Workgroup));
        assert_eq!(Visibility::resolve(false, None, false, Colleagues), Visibility::Level(Colleagues));
        assert_eq!(Visibility::resolve(true, Some(Blocked), false, Colleagues), Visibility::Own);
        assert!(Workgroup.interrupts_dnd() && !FriendsAndFamily.interrupts_dnd() && !Colleagues.interrupts_dnd());
    }
}

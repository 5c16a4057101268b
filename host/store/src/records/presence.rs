//! Presence documents, contact lists and app tokens.

use std::collections::BTreeMap;

use halo_core::contacts::{Contact, ContactList, Group};
use halo_core::presence::{
    AccessLevel, Activity, Availability, Calendar, CalendarActivity, Document, Manual, Phone, PictureMeta, StateChoice,
};
use halo_core::{Millis, Username};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};
use crate::presence::AppToken;

stored!(Document => DocumentV1, ContactList => ContactListV1, AppToken => AppTokenV1);

unit_enum! {
    /// An activity token.
    ActivityV1 <=> Activity, "kebab-case" { OffWork, InAMeeting, InACall, InAConference, OutOfOffice }
}

unit_enum! {
    /// What the calendar says.
    CalendarActivityV1 <=> CalendarActivity, "kebab-case" { InAMeeting, OutOfOffice }
}

unit_enum! {
    /// Phone input.
    PhoneV1 <=> Phone, "kebab-case" { InACall, InAConference }
}

unit_enum! {
    /// What a contact may see.
    AccessLevelV1 <=> AccessLevel, "snake_case" { Blocked, External, Colleagues, Workgroup, FriendsAndFamily }
}

/// A state chosen by hand.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StateChoiceV1 {
    pub(crate) availability: Availability,
    pub(crate) activity: Option<ActivityV1>,
    pub(crate) custom: Option<String>,
}

/// A manual state, possibly until a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ManualV1 {
    pub(crate) choice: StateChoiceV1,
    pub(crate) until: Option<Millis>,
}

/// Calendar input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CalendarV1 {
    pub(crate) activity: CalendarActivityV1,
    pub(crate) until: Option<Millis>,
    pub(crate) subject: Option<String>,
}

/// A stored picture's hash and type.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PictureMetaV1 {
    pub(crate) etag: String,
    pub(crate) content_type: String,
}

/// `presence`: the stored part of a user's presence. Missing fields read as their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct DocumentV1 {
    pub(crate) manual: Option<ManualV1>,
    pub(crate) calendar: Option<CalendarV1>,
    pub(crate) phone: Option<PhoneV1>,
    pub(crate) note: Option<String>,
    pub(crate) ooo_note: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) mobile_phone: Option<String>,
    pub(crate) home_phone: Option<String>,
    pub(crate) hide_last_active: bool,
    pub(crate) privacy_mode: bool,
    pub(crate) idle_minutes: u32,
    pub(crate) last_active: Option<Millis>,
    pub(crate) picture: Option<PictureMetaV1>,
}

impl From<&Manual> for ManualV1 {
    fn from(m: &Manual) -> Self {
        let Manual { choice: StateChoice { availability, activity, custom }, until } = m;
        Self {
            choice: StateChoiceV1 {
                availability: *availability,
                activity: activity.as_ref().map(ActivityV1::from),
                custom: custom.clone(),
            },
            until: *until,
        }
    }
}

impl From<ManualV1> for Manual {
    fn from(m: ManualV1) -> Self {
        let ManualV1 { choice: StateChoiceV1 { availability, activity, custom }, until } = m;
        Self { choice: StateChoice { availability, activity: activity.map(Activity::from), custom }, until }
    }
}

impl From<&Calendar> for CalendarV1 {
    fn from(c: &Calendar) -> Self {
        let Calendar { activity, until, subject } = c;
        Self { activity: activity.into(), until: *until, subject: subject.clone() }
    }
}

impl From<CalendarV1> for Calendar {
    fn from(c: CalendarV1) -> Self {
        let CalendarV1 { activity, until, subject } = c;
        Self { activity: activity.into(), until, subject }
    }
}

impl From<&Document> for DocumentV1 {
    fn from(d: &Document) -> Self {
        let Document {
            manual,
            calendar,
            phone,
            note,
            ooo_note,
            location,
            mobile_phone,
            home_phone,
            hide_last_active,
            privacy_mode,
            idle_minutes,
            last_active,
            picture,
        } = d;
        Self {
            manual: manual.as_ref().map(ManualV1::from),
            calendar: calendar.as_ref().map(CalendarV1::from),
            phone: phone.as_ref().map(PhoneV1::from),
            note: note.clone(),
            ooo_note: ooo_note.clone(),
            location: location.clone(),
            mobile_phone: mobile_phone.clone(),
            home_phone: home_phone.clone(),
            hide_last_active: *hide_last_active,
            privacy_mode: *privacy_mode,
            idle_minutes: *idle_minutes,
            last_active: *last_active,
            picture: picture.as_ref().map(|PictureMeta { etag, content_type }| PictureMetaV1 {
                etag: etag.clone(),
                content_type: content_type.clone(),
            }),
        }
    }
}

impl From<DocumentV1> for Document {
    fn from(d: DocumentV1) -> Self {
        let DocumentV1 {
            manual,
            calendar,
            phone,
            note,
            ooo_note,
            location,
            mobile_phone,
            home_phone,
            hide_last_active,
            privacy_mode,
            idle_minutes,
            last_active,
            picture,
        } = d;
        Self {
            manual: manual.map(Manual::from),
            calendar: calendar.map(Calendar::from),
            phone: phone.map(Phone::from),
            note,
            ooo_note,
            location,
            mobile_phone,
            home_phone,
            hide_last_active,
            privacy_mode,
            idle_minutes,
            last_active,
            picture: picture.map(|PictureMetaV1 { etag, content_type }| PictureMeta { etag, content_type }),
        }
    }
}

/// A contact group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupV1 {
    pub(crate) id: u32,
    pub(crate) name: String,
}

/// A contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContactV1 {
    pub(crate) group: u32,
    pub(crate) level: AccessLevelV1,
    pub(crate) added_at: Millis,
}

/// `contacts`: a user's contact list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContactListV1 {
    pub(crate) groups: Vec<GroupV1>,
    pub(crate) contacts: BTreeMap<Username, ContactV1>,
    pub(crate) next_group: u32,
}

impl From<&ContactList> for ContactListV1 {
    fn from(l: &ContactList) -> Self {
        Self {
            groups: l.groups.iter().map(|Group { id, name }| GroupV1 { id: *id, name: name.clone() }).collect(),
            contacts: l
                .contacts
                .iter()
                .map(|(u, Contact { group, level, added_at })| {
                    (u.clone(), ContactV1 { group: *group, level: level.into(), added_at: *added_at })
                })
                .collect(),
            next_group: l.next_group(),
        }
    }
}

impl From<ContactListV1> for ContactList {
    fn from(l: ContactListV1) -> Self {
        let ContactListV1 { groups, contacts, next_group } = l;
        ContactList::from_parts(
            groups.into_iter().map(|GroupV1 { id, name }| Group { id, name }).collect(),
            contacts
                .into_iter()
                .map(|(u, ContactV1 { group, level, added_at })| (u, Contact { group, level: level.into(), added_at }))
                .collect(),
            next_group,
        )
    }
}

/// `app_tokens`: a token issued to another application (keyed by its hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AppTokenV1 {
    pub(crate) name: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) created_by: String,
    pub(crate) created_at: Millis,
}

impl From<&AppToken> for AppTokenV1 {
    fn from(t: &AppToken) -> Self {
        let AppToken { name, scopes, created_by, created_at } = t;
        Self { name: name.clone(), scopes: scopes.clone(), created_by: created_by.clone(), created_at: *created_at }
    }
}

impl From<AppTokenV1> for AppToken {
    fn from(t: AppTokenV1) -> Self {
        let AppTokenV1 { name, scopes, created_by, created_at } = t;
        Self { name, scopes, created_by, created_at }
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
    fn document_v1_is_pinned() {
        let full = Document {
            manual: Some(Manual {
                choice: StateChoice {
                    availability: 6500,
                    activity: Some(Activity::InAMeeting),
                    custom: Some("focus".into()),
                },
                until: Some(1_700_000_900_000),
            }),
            calendar: Some(Calendar {
                activity: CalendarActivity::OutOfOffice,
                until: Some(1_700_100_000_000),
                subject: Some("Planning".into()),
            }),
            phone: Some(Phone::InAConference),
            note: Some("Back at 3".into()),
            ooo_note: Some("On leave".into()),
            location: Some("Berlin".into()),
            mobile_phone: Some("+49 1".into()),
            home_phone: Some("+49 2".into()),
            hide_last_active: true,
            privacy_mode: true,
            idle_minutes: 15,
            last_active: Some(1_700_000_000_000),
            picture: Some(PictureMeta { etag: "ab12".into(), content_type: "image/png".into() }),
        };
        let other = Document {
            manual: Some(Manual {
                choice: StateChoice { availability: 15500, activity: Some(Activity::OffWork), custom: None },
                until: None,
            }),
            calendar: Some(Calendar { activity: CalendarActivity::InAMeeting, until: None, subject: None }),
            phone: Some(Phone::InACall),
            ..Document::default()
        };
        let more = Document {
            manual: Some(Manual {
                choice: StateChoice { availability: 6000, activity: Some(Activity::InACall), custom: None },
                until: None,
            }),
            ..Document::default()
        };
        let rest = [Activity::InAConference, Activity::OutOfOffice].map(|a| Document {
            manual: Some(Manual {
                choice: StateChoice { availability: 1, activity: Some(a), custom: None },
                until: None,
            }),
            ..Document::default()
        });
        let [a, b] = rest;
        pin("presence", include_str!("golden/document_v1.hex"), &[full, other, more, a, b, Document::default()]);
    }

    #[test]
    fn document_v1_reads_missing_fields_as_defaults() {
        // An empty map: a document written before any field existed.
        let doc: Document = crate::codec::decode("presence", &[0x80]).expect("decodes");
        assert_eq!(doc, Document::default());
    }

    #[test]
    fn contact_list_v1_is_pinned() {
        let owner = name("alice");
        let mut list = ContactList::default();
        let g = list.add_group("Team").expect("group");
        let levels = [
            ("bob", AccessLevel::Blocked),
            ("carol", AccessLevel::External),
            ("dave", AccessLevel::Colleagues),
            ("erin", AccessLevel::Workgroup),
            ("frank", AccessLevel::FriendsAndFamily),
        ];
        for (i, (u, level)) in levels.into_iter().enumerate() {
            list.add(&owner, &name(u), Some(if i % 2 == 0 { g } else { 0 }), level, 100, 1_000 + i as u64)
                .expect("add");
        }
        pin("contacts", include_str!("golden/contact_list_v1.hex"), &[list, ContactList::default()]);
    }

    #[test]
    fn app_token_v1_is_pinned() {
        let t = AppToken {
            name: "calendar-bridge".into(),
            scopes: vec!["presence:read".into(), "calendar:write".into()],
            created_by: "admin".into(),
            created_at: 1_700_000_000_000,
        };
        pin("app_tokens", include_str!("golden/app_token_v1.hex"), &[t]);
    }
}

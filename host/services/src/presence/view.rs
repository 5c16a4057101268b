//! How one user's presence looks to one viewer: [`PresenceView`], projected through the
//! access-level table of `halo_core::presence` and nowhere else.

use halo_core::User;
use halo_core::presence::{Band, Calendar, CalendarActivity, CustomState, Document, Field, Published, Visibility};
use serde::Serialize;
use utoipa::ToSchema;

/// Meeting details (Workgroup contacts and the owner).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct MeetingView {
    /// Subject.
    pub subject: Option<String>,
    /// End, ms since the Unix epoch.
    pub until: Option<u64>,
}

/// A user's presence and contact card as one viewer may see it. Absent fields are hidden from
/// this viewer or unset.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PresenceView {
    /// Username.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// E-mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Job title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Department.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    /// Work phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work_phone: Option<String>,
    /// Mobile phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile_phone: Option<String>,
    /// Home phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home_phone: Option<String>,
    /// Picture URL (versioned, cacheable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// Availability number; absent when unknown to this viewer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<u32>,
    /// Band token: `available`, `available_idle`, `busy`, `busy_idle`, `do_not_disturb`,
    /// `be_right_back`, `away`, `offline`, or `unknown`.
    pub state: &'static str,
    /// What to show: the custom state's or activity's label, else the band's (English).
    pub label: String,
    /// Dot colour, `#rrggbb`.
    pub colour: String,
    /// Activity token (`in-a-meeting`, `in-a-call`, `in-a-conference`, `off-work`, `out-of-office`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// Custom state id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_state: Option<String>,
    /// Personal note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Out-of-office note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ooo_note: Option<String>,
    /// Location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Last time a device reported the user active, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_active: Option<u64>,
    /// Meeting details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting: Option<MeetingView>,
    /// Since when the state holds, ms (absent when the availability is hidden).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// Everything a projection reads.
pub struct Source<'a> {
    /// The account (card fields).
    pub user: &'a User,
    /// The stored presence document.
    pub doc: &'a Document,
    /// The aggregated state.
    pub published: &'a Published,
    /// Since when.
    pub since: u64,
    /// Configured custom states.
    pub custom: &'a [CustomState],
}

fn band_token(b: Band) -> &'static str {
    match b {
        Band::Available => "available",
        Band::AvailableIdle => "available_idle",
        Band::Busy => "busy",
        Band::BusyIdle => "busy_idle",
        Band::DoNotDisturb => "do_not_disturb",
        Band::BeRightBack => "be_right_back",
        Band::Away => "away",
        Band::Offline => "offline",
    }
}

/// Projects `src` for a viewer with visibility `vis`.
pub fn project(src: &Source<'_>, vis: Visibility) -> PresenceView {
    let sees = |f| vis.sees(f);
    let pick = |f, v: &Option<String>| if sees(f) { v.clone() } else { None };
    let p = &src.user.profile;
    let availability = vis.availability(src.published.availability);
    let band = availability.map(Band::of);
    let offline = band == Some(Band::Offline);
    let custom = src
        .published
        .custom
        .as_ref()
        .filter(|_| sees(Field::Activity) && !offline)
        .and_then(|id| src.custom.iter().find(|c| &c.id == id));
    let activity = src.published.activity.filter(|_| sees(Field::Activity) && !offline);
    let (label, colour) = match (custom, activity, band) {
        (Some(c), _, _) => (c.labels.get("en").cloned().unwrap_or_else(|| c.id.clone()), c.colour.clone()),
        (None, Some(a), Some(b)) => (a.label().to_owned(), b.colour().to_owned()),
        (None, _, Some(b)) => (b.label().to_owned(), b.colour().to_owned()),
        (None, _, None) => ("Presence unknown".to_owned(), "#c8c6c4".to_owned()),
    };
    let meeting =
        src.doc.calendar.as_ref().filter(|_| sees(Field::MeetingDetails) && !offline).and_then(|c: &Calendar| {
            (c.activity == CalendarActivity::InAMeeting)
                .then(|| MeetingView { subject: c.subject.clone(), until: c.until })
        });
    let last_active = src
        .doc
        .last_active
        .filter(|_| sees(Field::LastActive) && (!src.doc.hide_last_active || vis == Visibility::Own));
    PresenceView {
        username: src.user.username.to_string(),
        display_name: p.display_name.clone().unwrap_or_else(|| src.user.username.to_string()),
        email: pick(Field::Email, &p.email),
        title: pick(Field::Title, &p.title),
        department: pick(Field::Department, &p.department),
        work_phone: pick(Field::WorkPhone, &p.phone),
        mobile_phone: pick(Field::MobilePhone, &src.doc.mobile_phone),
        home_phone: pick(Field::HomePhone, &src.doc.home_phone),
        picture: src
            .doc
            .picture
            .as_ref()
            .filter(|_| sees(Field::Picture))
            .map(|pic| format!("/api/v1/users/{}/picture?v={}", src.user.username, pic.etag)),
        availability,
        state: band.map_or("unknown", band_token),
        label,
        colour,
        activity: activity
            .map(|a| serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()),
        custom_state: custom.map(|c| c.id.clone()),
        note: pick(Field::Note, &src.doc.note),
        ooo_note: pick(Field::OutOfOfficeNote, &src.doc.ooo_note),
        location: pick(Field::Location, &src.doc.location),
        last_active,
        meeting,
        since: availability.map(|_| src.since),
    }
}

/// The presence of a remote (federated) user as a local viewer sees it: what their server
/// said (already sanitised), or "Presence unknown" before it said anything.
pub fn remote_view(
    addr: &halo_core::Username,
    info: Option<&halo_core::federation::PresenceInfo>,
    since: u64,
) -> PresenceView {
    let band = info.map(|i| match i.state.as_str() {
        "available" => Band::Available,
        "busy" => Band::Busy,
        "do_not_disturb" => Band::DoNotDisturb,
        "be_right_back" => Band::BeRightBack,
        "away" => Band::Away,
        _ => Band::Offline,
    });
    PresenceView {
        username: addr.to_string(),
        display_name: addr.to_string(),
        email: None,
        title: None,
        department: None,
        work_phone: None,
        mobile_phone: None,
        home_phone: None,
        picture: None,
        availability: band.map(Band::canonical),
        state: band.map_or("unknown", band_token),
        label: info.map_or_else(|| "Presence unknown".to_owned(), |i| i.label.clone()),
        colour: band.map_or("#c8c6c4", Band::colour).to_owned(),
        activity: info.and_then(|i| i.activity.clone()),
        custom_state: None,
        note: info.and_then(|i| i.note.clone()),
        ooo_note: None,
        location: None,
        last_active: None,
        meeting: None,
        since: band.map(|_| since),
    }
}

/// What a view shows, as presence crossing to another server.
pub fn presence_info(view: &PresenceView) -> halo_core::federation::PresenceInfo {
    let state = match view.state {
        "unknown" => "offline",
        s => s.trim_end_matches("_idle"),
    };
    halo_core::federation::PresenceInfo {
        state: state.to_owned(),
        activity: view.activity.clone(),
        label: view.label.clone(),
        note: view.note.clone(),
    }
}

//! A user's own presence document beyond the state: notes, location, phones, privacy settings
//! and the picture.

use halo_core::Username;
use halo_core::presence::engine::{DocPatch, Seen};
use halo_core::presence::{
    self, Calendar, CalendarActivity, Field, MAX_LOCATION_CHARS, MAX_NOTE_CHARS, MAX_PHONE_CHARS, PictureMeta,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{PresenceService, PresenceView, Viewer};
use crate::error::ServiceError;

/// A user's own presence with their presence settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MyPresence {
    /// As the owner sees it.
    pub presence: PresenceView,
    /// Everyone but Workgroup contacts sees a plain Available / Offline.
    pub privacy_mode: bool,
    /// Hide "last active" from everyone.
    pub hide_last_active: bool,
    /// Minutes without input before the client reports Inactive (default 5).
    pub idle_minutes: u32,
}

/// Changes to the document: absent fields are left alone; `""` clears a text.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PresencePatch {
    /// Personal note (at most 500 characters).
    pub note: Option<String>,
    /// Out-of-office note (at most 500 characters).
    pub ooo_note: Option<String>,
    /// Location (at most 100 characters).
    pub location: Option<String>,
    /// Mobile phone (at most 32 characters).
    pub mobile_phone: Option<String>,
    /// Home phone (at most 32 characters).
    pub home_phone: Option<String>,
    /// Privacy mode.
    pub privacy_mode: Option<bool>,
    /// Hide "last active".
    pub hide_last_active: Option<bool>,
    /// Idle detection, minutes (1-240).
    pub idle_minutes: Option<u32>,
}

/// A picture: its bytes, content type and version.
#[derive(Debug, Clone)]
pub struct Picture {
    /// The image.
    pub bytes: Vec<u8>,
    /// Its MIME type.
    pub content_type: String,
    /// Its version (changes with the image).
    pub etag: String,
}

fn bad(e: presence::PresenceError) -> ServiceError {
    ServiceError::Invalid(e.to_string())
}

impl PresenceService {
    /// `user`'s own presence and settings.
    pub async fn mine(&self, user: &Username) -> Result<MyPresence, ServiceError> {
        let seen = self.own_seen(user).await?;
        with_settings(&seen)
    }

    /// Applies `p` to `user`'s document (every field checked before any is kept); durable
    /// when this returns.
    pub async fn patch(&self, user: &Username, p: PresencePatch) -> Result<MyPresence, ServiceError> {
        let text = |v: Option<String>, max, what, newlines| {
            v.map(|v| presence::check_text(Some(v), max, what, newlines).map_err(bad)).transpose()
        };
        let patch = DocPatch {
            note: text(p.note, MAX_NOTE_CHARS, "note is at most 500 characters", true)?,
            ooo_note: text(p.ooo_note, MAX_NOTE_CHARS, "ooo_note is at most 500 characters", true)?,
            location: text(p.location, MAX_LOCATION_CHARS, "location is at most 100 characters", false)?,
            mobile_phone: text(p.mobile_phone, MAX_PHONE_CHARS, "mobile_phone is at most 32 characters", false)?,
            home_phone: text(p.home_phone, MAX_PHONE_CHARS, "home_phone is at most 32 characters", false)?,
            privacy_mode: p.privacy_mode,
            hide_last_active: p.hide_last_active,
            idle_minutes: p.idle_minutes.map(|v| presence::check_idle_minutes(v).map_err(bad)).transpose()?,
            ..DocPatch::default()
        };
        let seen = self.update_seen(user, patch).await?;
        with_settings(&seen)
    }

    /// Sets `user`'s picture (PNG, JPEG, GIF or WebP, at most `max_picture_bytes`, else
    /// [`ServiceError::TooLarge`]); durable when this returns.
    pub async fn set_picture(&self, user: &Username, bytes: &[u8]) -> Result<PresenceView, ServiceError> {
        let max = self.settings.max_picture_bytes;
        if bytes.len() > max {
            return Err(ServiceError::TooLarge(format!("pictures are at most {max} bytes")));
        }
        let content_type =
            presence::sniff_image(bytes).ok_or_else(|| ServiceError::invalid("not a PNG, JPEG, GIF or WebP image"))?;
        let etag: String = Sha256::digest(bytes).iter().take(8).map(|b| format!("{b:02x}")).collect();
        let picture = self.store.presence().put_picture(user, Some(bytes))?;
        let meta = PictureMeta { etag, content_type: content_type.into() };
        let view = self.update(user, DocPatch { picture: Some(Some(meta)), ..DocPatch::default() }).await?;
        picture.commit().await?;
        Ok(view)
    }

    /// Removes `user`'s picture; durable when this returns.
    pub async fn remove_picture(&self, user: &Username) -> Result<PresenceView, ServiceError> {
        let picture = self.store.presence().put_picture(user, None)?;
        let view = self.update(user, DocPatch { picture: Some(None), ..DocPatch::default() }).await?;
        picture.commit().await?;
        Ok(view)
    }

    /// Sets `user`'s calendar state from an integration: `activity` (none clears it) until
    /// `until`, with an optional `subject` (at most 200 characters); durable when this returns.
    pub async fn set_calendar_input(
        &self,
        user: &Username,
        activity: Option<CalendarActivity>,
        until: Option<u64>,
        subject: Option<String>,
    ) -> Result<PresenceView, ServiceError> {
        let subject = presence::check_text(subject, 200, "subject is at most 200 characters", false).map_err(bad)?;
        self.set_calendar(user, activity.map(|activity| Calendar { activity, until, subject })).await
    }

    /// `user`'s picture if `viewer` may see it (not found otherwise).
    pub async fn picture(&self, user: &Username, viewer: Viewer<'_>) -> Result<Picture, ServiceError> {
        let seen = self.seen(user, viewer).await?;
        let meta = match &seen {
            Seen::Local { snapshot, visibility } if visibility.sees(Field::Picture) => snapshot.doc.picture.clone(),
            _ => None,
        };
        let Some(meta) = meta else {
            return Err(ServiceError::NotFound(format!("{user} has no picture you can see")));
        };
        let bytes = self.store.presence().picture(user)?.ok_or_else(|| ServiceError::NotFound("no picture".into()))?;
        Ok(Picture { bytes, content_type: meta.content_type, etag: meta.etag })
    }
}

/// The owner's view with the settings of their document.
fn with_settings(seen: &Seen) -> Result<MyPresence, ServiceError> {
    let (Seen::Local { snapshot, .. }, Some(view)) = (seen, super::seen_view(seen)) else {
        return Err(ServiceError::Internal("no own presence".into()));
    };
    let doc = &snapshot.doc;
    Ok(MyPresence {
        presence: view,
        privacy_mode: doc.privacy_mode,
        hide_last_active: doc.hide_last_active,
        idle_minutes: if doc.idle_minutes == 0 { 5 } else { doc.idle_minutes },
    })
}

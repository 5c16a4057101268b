//! A user's own presence document beyond the state: notes, location, phones, privacy settings
//! and the picture.

use halo_core::Username;
use halo_core::presence::{
    self, Calendar, CalendarActivity, MAX_LOCATION_CHARS, MAX_NOTE_CHARS, MAX_PHONE_CHARS, PictureMeta,
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
    pub fn mine(&self, user: &Username) -> Result<MyPresence, ServiceError> {
        let view = self.view(user, Viewer::User(user))?;
        self.with_settings(user, view)
    }

    fn with_settings(&self, user: &Username, view: PresenceView) -> Result<MyPresence, ServiceError> {
        let doc = self.store.presence().document(user)?;
        Ok(MyPresence {
            presence: view,
            privacy_mode: doc.privacy_mode,
            hide_last_active: doc.hide_last_active,
            idle_minutes: if doc.idle_minutes == 0 { 5 } else { doc.idle_minutes },
        })
    }

    /// Applies `p` to `user`'s document (every field checked before any is kept); durable
    /// when this returns.
    pub async fn patch(&self, user: &Username, p: PresencePatch) -> Result<MyPresence, ServiceError> {
        let ((), view) = self
            .update(user, |d| {
                if let Some(v) = p.note {
                    d.note = presence::check_text(Some(v), MAX_NOTE_CHARS, "note is at most 500 characters", true)
                        .map_err(bad)?;
                }
                if let Some(v) = p.ooo_note {
                    d.ooo_note =
                        presence::check_text(Some(v), MAX_NOTE_CHARS, "ooo_note is at most 500 characters", true)
                            .map_err(bad)?;
                }
                if let Some(v) = p.location {
                    d.location =
                        presence::check_text(Some(v), MAX_LOCATION_CHARS, "location is at most 100 characters", false)
                            .map_err(bad)?;
                }
                if let Some(v) = p.mobile_phone {
                    d.mobile_phone =
                        presence::check_text(Some(v), MAX_PHONE_CHARS, "mobile_phone is at most 32 characters", false)
                            .map_err(bad)?;
                }
                if let Some(v) = p.home_phone {
                    d.home_phone =
                        presence::check_text(Some(v), MAX_PHONE_CHARS, "home_phone is at most 32 characters", false)
                            .map_err(bad)?;
                }
                if let Some(v) = p.privacy_mode {
                    d.privacy_mode = v;
                }
                if let Some(v) = p.hide_last_active {
                    d.hide_last_active = v;
                }
                if let Some(v) = p.idle_minutes {
                    d.idle_minutes = presence::check_idle_minutes(v).map_err(bad)?;
                }
                Ok(())
            })
            .await?;
        self.with_settings(user, view)
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
        let ((), view) = self
            .update(user, |d| {
                d.picture = Some(PictureMeta { etag, content_type: content_type.into() });
                Ok(())
            })
            .await?;
        picture.commit().await?;
        Ok(view)
    }

    /// Removes `user`'s picture; durable when this returns.
    pub async fn remove_picture(&self, user: &Username) -> Result<PresenceView, ServiceError> {
        let picture = self.store.presence().put_picture(user, None)?;
        let ((), view) = self
            .update(user, |d| {
                d.picture = None;
                Ok(())
            })
            .await?;
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
    pub fn picture(&self, user: &Username, viewer: Viewer<'_>) -> Result<Picture, ServiceError> {
        let view = self.view(user, viewer)?;
        let doc = self.store.presence().document(user)?;
        let (Some(_), Some(meta)) = (view.picture, doc.picture) else {
            return Err(ServiceError::NotFound(format!("{user} has no picture you can see")));
        };
        let bytes = self.store.presence().picture(user)?.ok_or_else(|| ServiceError::NotFound("no picture".into()))?;
        Ok(Picture { bytes, content_type: meta.content_type, etag: meta.etag })
    }
}

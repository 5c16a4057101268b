//! Files shared in conversations and rooms: uploaded first (size-limited, their type sniffed
//! from the content, never taken from the client), then named by the messages that carry
//! them. Only the uploader, and whoever may read a message carrying the file, may download it.

use std::sync::Arc;

use halo_core::Username;
use halo_core::message::Attachment;
use halo_store::{Store, Upload};
use sha2::Digest;

use crate::changes::ChangeService;
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::im::SendLimiter;
use crate::views::AttachmentView;

/// The default `[im] max_attachment_bytes`: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The default `[im] attachment_bytes_per_hour`: 500 MiB per user.
pub const DEFAULT_BYTES_PER_HOUR: u64 = 500 * 1024 * 1024;
/// Longest file name kept, in bytes.
const MAX_NAME_BYTES: usize = 200;

/// Media types shown in the browser (images only, never SVG or HTML): the others are served
/// as downloads.
pub const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

/// Types served under their own name; anything else is `application/octet-stream`.
const KNOWN_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/bmp",
    "image/heif",
    "image/avif",
    "application/pdf",
    "application/zip",
    "application/gzip",
    "audio/mpeg",
    "audio/ogg",
    "audio/x-wav",
    "video/mp4",
    "video/webm",
    "text/plain",
];

/// Sniffs the media type of `bytes`: by magic numbers, else `text/plain` for UTF-8 text
/// without NULs, else `application/octet-stream`. Types outside a known list (HTML, SVG,
/// scripts, executables) become `application/octet-stream`.
pub fn sniff(bytes: &[u8]) -> String {
    let found = match infer::get(bytes) {
        Some(t) => t.mime_type(),
        None if std::str::from_utf8(bytes).is_ok_and(|s| !s.contains('\0')) => "text/plain",
        None => "application/octet-stream",
    };
    if KNOWN_TYPES.contains(&found) { found.to_owned() } else { "application/octet-stream".to_owned() }
}

/// A client's file name made safe to store and show: its last path component, without control
/// characters, quotes or backslashes, at most [`MAX_NAME_BYTES`]; `file` when nothing is left.
pub fn clean_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::new();
    for c in base.chars().filter(|c| !c.is_control() && !matches!(c, '"' | '\\')) {
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    let out = out.trim().trim_start_matches('.').to_owned();
    if out.is_empty() { "file".to_owned() } else { out }
}

/// Uploads and downloads of attachments.
pub struct AttachmentService {
    store: Store,
    changes: Arc<ChangeService>,
    limiter: Arc<SendLimiter>,
    max_bytes: u64,
    /// Bytes each user may upload: a bucket of `[im] attachment_bytes_per_hour` refilled over
    /// the hour (none when 0).
    budget: Option<std::sync::Mutex<halo_core::rate::Limiter<Username>>>,
}

impl AttachmentService {
    /// The service: uploads up to `max_bytes`, each drawing on the sender's message allowance
    /// and on their `per_hour` bytes (0: no byte budget).
    pub fn new(
        store: Store,
        changes: Arc<ChangeService>,
        limiter: Arc<SendLimiter>,
        max_bytes: u64,
        per_hour: u64,
    ) -> Self {
        let budget = (per_hour > 0).then(|| {
            let rate = halo_core::rate::Rate { per_sec: per_hour as f64 / 3600.0, burst: per_hour as f64 };
            std::sync::Mutex::new(halo_core::rate::Limiter::new(rate, 100_000))
        });
        Self { store, changes, limiter, max_bytes, budget }
    }

    /// The largest upload taken, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores a file `owner` uploads under `name`; durable on return. A message names it by
    /// its id afterwards.
    pub async fn upload(&self, owner: &Username, name: &str, bytes: Vec<u8>) -> Result<AttachmentView, ServiceError> {
        if bytes.is_empty() {
            return Err(ServiceError::Invalid("empty file".into()));
        }
        if bytes.len() as u64 > self.max_bytes {
            return Err(ServiceError::TooLarge(format!("an attachment is at most {} bytes", self.max_bytes)));
        }
        if let Some(budget) = &self.budget {
            let mut b = budget.lock().unwrap_or_else(|p| p.into_inner());
            if !b.take_n(owner, now_ms(), bytes.len() as f64) {
                return Err(ServiceError::TooFast);
            }
        }
        self.limiter.check(owner)?;
        let id: String = rand::random::<[u8; 16]>().iter().map(|b| format!("{b:02x}")).collect();
        let sha256 = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
        let attachment =
            Attachment { id, name: clean_name(name), mime: sniff(&bytes), size: bytes.len() as u64, sha256 };
        let upload = Upload { attachment, owner: owner.clone(), at: now_ms() };
        self.store.attachments().put(&upload, bytes).await?;
        Ok(AttachmentView::from(&upload.attachment))
    }

    /// Attachment `id` and its bytes, for `user` if they may see it (else not found, hiding
    /// its existence).
    pub async fn download(&self, user: &Username, id: &str) -> Result<(AttachmentView, Vec<u8>), ServiceError> {
        let missing = || ServiceError::NotFound(format!("no attachment {id}"));
        let upload = self.store.attachments().get(id)?.ok_or_else(missing)?;
        if !self.changes.may_download(user, id)? {
            return Err(ServiceError::forbidden("you may not read a message carrying this file"));
        }
        let bytes = self.store.attachments().read(id).await?.ok_or_else(missing)?;
        Ok((AttachmentView::from(&upload.attachment), bytes))
    }
}

impl AttachmentService {
    /// Attachment `id` and its bytes whoever may read it: for compliance officers, who read
    /// what the archive names (the caller checks the role).
    pub async fn download_for_compliance(&self, id: &str) -> Result<(AttachmentView, Vec<u8>), ServiceError> {
        let missing = || ServiceError::NotFound(format!("no attachment {id}"));
        let upload = self.store.attachments().get(id)?.ok_or_else(missing)?;
        let bytes = self.store.attachments().read(id).await?.ok_or_else(missing)?;
        Ok((AttachmentView::from(&upload.attachment), bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_content_and_risky_ones_are_downloads() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.4 ..."), "application/pdf");
        assert_eq!(sniff(b"just words"), "text/plain");
        assert_eq!(sniff(b"<svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>"), "text/plain");
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), "application/octet-stream");
        assert_eq!(sniff(&[0xff, 0x00, 0xfe]), "application/octet-stream");
    }

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\a\\plan \"v2\".pdf"), "plan v2.pdf");
        assert_eq!(clean_name("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_name(".."), "file");
        assert_eq!(clean_name(""), "file");
        assert!(clean_name(&"é".repeat(300)).len() <= MAX_NAME_BYTES);
    }
}

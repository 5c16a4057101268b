//! What happens to messages after they are sent, in conversations and rooms alike: edits and
//! deletions by their sender, reactions, replies, mentions and attachments named by a new
//! message, muting, and how a stored message is shown with all of that applied.
//!
//! Every change is one IM log fact ([`Fact::Amended`](halo_core::im::Fact)) with its own id and,
//! when a participant is archived, its own archive record: the compliance archive keeps every
//! version of a text and the text of a deleted message. Changes reach the participants (or the
//! room's following members) as `message.changed` events carrying the message as now shown.

use std::sync::Arc;

use halo_core::Username;
use halo_core::archive::Place;
use halo_core::conversation::{self, Format, MessageId};
use halo_core::im::{Amended, Change};
use halo_core::message::{self, Body, Extras, Message};
use halo_store::{Store, Thread};

use crate::archive::ArchiveService;
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::im::{Actor, SendLimiter};
use crate::outbox::{Event, Outbox, Shared};
use crate::views::{MessageView, QuoteView};

/// Longest quote shown of a replied-to message, in characters.
const QUOTE_CHARS: usize = 200;

/// What a new text carries besides its text, as the client asked for it.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    /// The message of the same thread it replies to.
    pub reply_to: Option<MessageId>,
    /// Ids of attachments the sender uploaded.
    pub attachments: Vec<String>,
}

impl Draft {
    /// The checked text of a new message and its idempotency `key`: a message with attachments
    /// may have no text.
    pub fn checked(&self, text: &str, key: Option<&str>) -> Result<String, ServiceError> {
        let text = if text.trim().is_empty() && !self.attachments.is_empty() {
            String::new()
        } else {
            conversation::check_text(text)?
        };
        if let Some(k) = key {
            conversation::check_key(k)?;
        }
        Ok(text)
    }
}

/// Who a thread's changes concern: its members (for the archive) and who gets its events.
struct Audience {
    place: Place,
    members: Vec<Username>,
    /// Who gets events: present participants, or room members following it.
    pushed: Vec<Username>,
}

/// Edits, deletions, reactions, mutes, and messages as shown.
pub struct ChangeService {
    store: Store,
    outbox: Arc<dyn Outbox>,
    archive: Arc<ArchiveService>,
    limiter: Arc<SendLimiter>,
}

impl ChangeService {
    /// The service; changes draw on `limiter`, the same per-user allowance as messages.
    pub fn new(store: Store, outbox: Arc<dyn Outbox>, archive: Arc<ArchiveService>, limiter: Arc<SendLimiter>) -> Self {
        Self { store, outbox, archive, limiter }
    }

    fn not_found(thread: Thread) -> ServiceError {
        match thread {
            Thread::Conversation(c) => ServiceError::NotFound(format!("no conversation {c}")),
            Thread::Room(r) => ServiceError::NotFound(format!("no room {r}")),
        }
    }

    /// Checks that `user` may write in `thread` (a present participant, a room member who may
    /// post) and says who the thread's changes concern.
    fn audience(&self, user: &Username, thread: Thread) -> Result<Audience, ServiceError> {
        match thread {
            Thread::Conversation(c) => {
                let conv = match self.store.im().conversation(c)? {
                    Some(conv) if conv.participants.contains_key(user) => conv,
                    _ => return Err(Self::not_found(thread)),
                };
                conv.check_send(user)?;
                let members: Vec<Username> = conv.members().cloned().collect();
                Ok(Audience { place: Place::Conversation(c), pushed: members.clone(), members })
            }
            Thread::Room(r) => {
                let room = match self.store.rooms().get(r)? {
                    Some(room) if room.can_see(user) => room,
                    _ => return Err(Self::not_found(thread)),
                };
                room.check_post(user)?;
                let members: Vec<Username> = room.members.keys().cloned().collect();
                let pushed = members
                    .iter()
                    .filter(|m| self.store.rooms().mark(m, r).ok().flatten().is_some_and(|mk| mk.follow))
                    .cloned()
                    .collect();
                Ok(Audience { place: Place::Room(r), members, pushed })
            }
        }
    }

    /// Whether `user` may read message `id` of `thread`.
    fn readable(&self, user: &Username, thread: Thread, id: MessageId) -> Result<bool, ServiceError> {
        Ok(match thread {
            Thread::Conversation(c) => {
                let hidden = self.store.im().entry(user, c)?.map_or(0, |e| e.hidden_upto);
                self.store.im().conversation(c)?.is_some_and(|conv| conv.can_read(user, id)) && id > hidden
            }
            Thread::Room(r) => self.store.rooms().get(r)?.is_some_and(|room| room.can_read(user)),
        })
    }

    /// Message `id` of `thread`, if `user` may read it.
    fn target(&self, user: &Username, thread: Thread, id: MessageId) -> Result<Message, ServiceError> {
        let missing = || ServiceError::NotFound(format!("no message {id}"));
        if !self.readable(user, thread, id)? {
            return Err(missing());
        }
        let msg = self.store.im().message(thread, id)?.ok_or_else(missing)?;
        if !matches!(msg.body, Body::Text { .. }) {
            return Err(ServiceError::Invalid("only text messages can be changed".into()));
        }
        Ok(msg)
    }

    /// `msg` of `thread` as shown now: edits, deletion, reactions and quote applied; with
    /// `viewer`, `mentions_me` set for them. The quote is shown when everyone in `readers`
    /// may read the quoted message.
    pub fn show(
        &self,
        thread: Thread,
        msg: &Message,
        viewer: Option<&Username>,
        readers: &[&Username],
    ) -> Result<MessageView, ServiceError> {
        let mut view = MessageView::new(thread, msg).changed(self.store.im().changes(thread, msg.id)?);
        if let Some(to) = view.reply_to {
            let mut ok = true;
            for r in readers {
                ok &= self.readable(r, thread, to)?;
            }
            if ok && let Some(quoted) = self.store.im().message(thread, to)? {
                let q = MessageView::new(thread, &quoted).changed(self.store.im().changes(thread, to)?);
                let text = q.text.map(|t| t.chars().take(QUOTE_CHARS).collect());
                view.quote = Some(QuoteView { id: to, from: q.from, text });
            }
        }
        Ok(match viewer {
            Some(v) => view.for_viewer(v),
            None => view,
        })
    }

    /// The extras of a new text from `from` in `thread` whose members are `members`: the
    /// reply (a message of the same thread the sender may read), the mentions (members named
    /// with `@name`) and the attachments (uploaded by the sender).
    pub fn extras(
        &self,
        from: &Username,
        thread: Thread,
        text: &str,
        members: &[&Username],
        draft: &Draft,
    ) -> Result<Extras, ServiceError> {
        let mut extras = Extras::default();
        if let Some(to) = draft.reply_to {
            if !self.readable(from, thread, to)? || self.store.im().message(thread, to)?.is_none() {
                return Err(ServiceError::Invalid(format!("reply_to: no message {to} here")));
            }
            extras.reply_to = Some(to);
        }
        for name in message::mentioned(text) {
            if let Some(m) = members.iter().find(|m| m.as_str() == name) {
                extras.mentions.push((*m).clone());
            }
        }
        if draft.attachments.len() > message::MAX_ATTACHMENTS {
            return Err(ServiceError::Invalid(format!(
                "a message carries at most {} attachments",
                message::MAX_ATTACHMENTS
            )));
        }
        for id in &draft.attachments {
            let upload = self.store.attachments().get(id)?;
            match upload {
                Some(u) if &u.owner == from => {
                    if !extras.attachments.iter().any(|a| a.id == u.attachment.id) {
                        extras.attachments.push(u.attachment);
                    }
                }
                _ => return Err(ServiceError::Invalid(format!("attachments: no upload {id} of yours"))),
            }
        }
        Ok(extras)
    }

    /// Tells the users mentioned in `view` (but its sender) that they were.
    pub fn notify_mentions(&self, msg: &Message, view: &MessageView) {
        if msg.extras.mentions.is_empty() {
            return;
        }
        let event = Event::Shared(Shared::new(Event::Mention { message: view.clone() }));
        for m in msg.extras.mentions.iter().filter(|m| **m != msg.from) {
            self.outbox.to_user(m, None, &event);
        }
    }

    /// The sender replaces the text of their message `id`.
    pub async fn edit(
        &self,
        actor: Actor<'_>,
        thread: Thread,
        id: MessageId,
        text: &str,
        format: Format,
    ) -> Result<MessageView, ServiceError> {
        let text = conversation::check_text(text)?;
        let (msg, _) = self.own(actor.user, thread, id)?;
        self.apply(actor, thread, &msg, Change::Edited { text, format }).await
    }

    /// The sender deletes their message `id` (a tombstone stays; the archive keeps the text).
    pub async fn delete(&self, actor: Actor<'_>, thread: Thread, id: MessageId) -> Result<MessageView, ServiceError> {
        let (msg, _) = self.own(actor.user, thread, id)?;
        self.apply(actor, thread, &msg, Change::Deleted).await
    }

    /// `actor` adds (or takes back) their `emoji` reaction to message `id`; doing what is done
    /// already changes nothing.
    pub async fn react(
        &self,
        actor: Actor<'_>,
        thread: Thread,
        id: MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<MessageView, ServiceError> {
        message::check_emoji(emoji).map_err(|e| ServiceError::Invalid(e.into()))?;
        let audience = self.audience(actor.user, thread)?;
        let msg = self.target(actor.user, thread, id)?;
        let changes = self.store.im().changes(thread, id)?.unwrap_or_default();
        if changes.deleted.is_some() {
            return Err(ServiceError::Conflict(format!("message {id} was deleted")));
        }
        let mine = changes.reactions.iter().any(|(e, users)| e == emoji && users.contains(actor.user));
        if mine == add {
            let readers: Vec<&Username> = audience.pushed.iter().collect();
            return self.show(thread, &msg, None, &readers);
        }
        if add
            && !changes.reactions.iter().any(|(e, _)| e == emoji)
            && changes.reactions.len() >= message::MAX_REACTIONS
        {
            return Err(ServiceError::Invalid(format!("a message has at most {} reactions", message::MAX_REACTIONS)));
        }
        self.apply(actor, thread, &msg, Change::Reacted { emoji: emoji.to_owned(), add }).await
    }

    /// `user`'s own, not deleted, text message `id` of `thread`.
    fn own(&self, user: &Username, thread: Thread, id: MessageId) -> Result<(Message, Audience), ServiceError> {
        let audience = self.audience(user, thread)?;
        let msg = self.target(user, thread, id)?;
        if &msg.from != user {
            return Err(ServiceError::forbidden("only its sender can change a message"));
        }
        if self.store.im().changes(thread, id)?.is_some_and(|c| c.deleted.is_some()) {
            return Err(ServiceError::Conflict(format!("message {id} was deleted")));
        }
        Ok((msg, audience))
    }

    /// Stores `change` to `msg` (with its archive record) and tells the thread.
    async fn apply(
        &self,
        actor: Actor<'_>,
        thread: Thread,
        msg: &Message,
        change: Change,
    ) -> Result<MessageView, ServiceError> {
        let audience = self.audience(actor.user, thread)?;
        self.limiter.check(actor.user)?;
        let reserved = self.store.im().reserve()?;
        let at = now_ms();
        let members: Vec<&Username> = audience.members.iter().collect();
        let archived =
            self.archive.record_change(audience.place, (reserved.id(), at, actor.user), msg.id, &change, &members)?;
        let amended =
            Amended { thread, target: msg.id, id: reserved.id(), by: actor.user.clone(), at, change, archived };
        self.store.im().amend(amended).await?;
        drop(reserved);
        let readers: Vec<&Username> = audience.pushed.iter().collect();
        let view = self.show(thread, msg, None, &readers)?;
        let event = Event::Shared(Shared::new(Event::MessageChanged { message: view.clone() }));
        for m in &audience.pushed {
            self.outbox.to_user(m, if m == actor.user { actor.endpoint } else { None }, &event);
        }
        Ok(view)
    }

    /// Mutes or unmutes a conversation or room for `user` (a participant or member).
    pub async fn mute(&self, user: &Username, thread: Thread, muted: bool) -> Result<(), ServiceError> {
        match thread {
            Thread::Conversation(c) => {
                if !self.store.im().conversation(c)?.is_some_and(|conv| conv.participants.contains_key(user)) {
                    return Err(Self::not_found(thread));
                }
            }
            Thread::Room(r) => {
                let room =
                    self.store.rooms().get(r)?.filter(|room| room.can_see(user)).ok_or(Self::not_found(thread))?;
                if !room.members.contains_key(user) {
                    return Err(ServiceError::forbidden("not a member of this room"));
                }
            }
        }
        Ok(self.store.im().set_muted(user, thread, muted).await?)
    }

    /// Whether `user` muted `thread`.
    pub fn muted(&self, user: &Username, thread: Thread) -> bool {
        self.store.im().muted(user, thread)
    }

    /// Whether `user` may download attachment `id`: they uploaded it, or may read a message
    /// (not deleted) that carries it.
    pub fn may_download(&self, user: &Username, id: &str) -> Result<bool, ServiceError> {
        if self.store.attachments().get(id)?.is_some_and(|u| &u.owner == user) {
            return Ok(true);
        }
        for (thread, msg) in self.store.im().attachment_refs(id) {
            if self.readable(user, thread, msg)?
                && self.store.im().changes(thread, msg)?.is_none_or(|c| c.deleted.is_none())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

//! IM with users of other servers: what remote participants get of a message, and what
//! arrives from them (1:1 messages, posts to groups hosted here, groups hosted elsewhere).

use halo_core::Username;
use halo_core::conversation::{self, Conversation, ConversationId, Format};
use halo_core::federation::{Group, GroupLine, Item, MAX_GROUP_HISTORY, MAX_GROUP_MEMBERS};
use halo_core::message::{Body, Message};
use halo_store::Thread;

use super::{Actor, ImService};
use crate::clock::now_ms;
use crate::error::ServiceError;
use crate::outbox::Event;

impl ImService {
    /// What remote participants get of `msg`, written by `author` (see `docs/federation.md`,
    /// "Groups"): in a 1:1 a `message`; in a group hosted here a `group_message` per remote
    /// member; in a mirror of a group hosted elsewhere a `group_post` to that group. Only a
    /// participant's texts travel: a post that arrived from a group's host is not sent back.
    pub(super) fn items_for_remotes(&self, author: &Username, conv: &Conversation, msg: &Message) -> Vec<Item> {
        // Only text crosses to other servers (a message of files alone sends nothing there).
        let Body::Text { text, .. } = &msg.body else { return Vec::new() };
        if text.is_empty() || !conv.is_member(author) {
            return Vec::new();
        }
        if let Some(host) = conv.hosted_by() {
            let post = Item::GroupPost {
                from: author.to_string(),
                to: host.to_string(),
                text: text.clone(),
                id: msg.id.to_string(),
            };
            return if author.is_remote() { Vec::new() } else { vec![post] };
        }
        let group = Group::Conversation(conv.id).local();
        conv.members()
            .filter(|m| *m != author && m.is_remote())
            .map(|m| match conv.kind {
                conversation::Kind::Direct => Item::Message {
                    from: author.to_string(),
                    to: m.to_string(),
                    text: text.clone(),
                    id: msg.id.to_string(),
                },
                conversation::Kind::Group => Item::GroupMessage {
                    from: group.clone(),
                    to: m.to_string(),
                    author: author.to_string(),
                    text: text.clone(),
                    id: msg.id.to_string(),
                },
            })
            .collect()
    }

    /// A message from remote user `from` to local user `to`, arriving through federation: it
    /// lands in their 1:1 conversation (started if needed) like any other, after the same
    /// reach check. A repeat of the same remote `id` is stored once: `false` then.
    pub async fn receive(&self, from: &Username, to: &Username, text: &str, id: &str) -> Result<bool, ServiceError> {
        let actor = Actor { user: from, endpoint: None };
        let key = fed_key(id);
        if let Some(k) = &key
            && self.store.im().by_key(from, k)?.is_some()
        {
            return Ok(false);
        }
        let conv = self.start(actor, &[to.to_string()]).await?;
        self.send(actor, conv.id, text, Format::Plain, key).await.map(|_| true)
    }

    /// A remote member's post to group conversation `id` hosted here: stored and carried to
    /// everyone else like a participant's message (a repeat of the same remote `id` is stored
    /// once). Refused unless they are a participant.
    pub async fn receive_post(
        &self,
        from: &Username,
        id: ConversationId,
        text: &str,
        remote_id: &str,
    ) -> Result<(), ServiceError> {
        let actor = Actor { user: from, endpoint: None };
        self.send(actor, id, text, Format::Plain, fed_key(remote_id)).await.map(|_| ())
    }

    /// The conversation standing here for `group` (hosted elsewhere) for local user `user`:
    /// found, or started (a group of `user` and the group's address).
    async fn mirror(&self, group: &Username, user: &Username) -> Result<Conversation, ServiceError> {
        if let Some(id) = self.store.im().direct(user, group)?
            && let Some(c) = self.store.im().conversation(id)?
            && c.hosted_by() == Some(group)
            && c.is_member(user)
        {
            return Ok(c);
        }
        let reserved = self.store.im().reserve()?;
        let id = reserved.id();
        let mut conv = Conversation::new(id, group, std::slice::from_ref(user), now_ms(), 0)?;
        conv.kind = conversation::Kind::Group;
        let _guard = self.lock(id).await;
        let record = self.archive.started(&conv, group);
        self.store.im().create(&conv, record.as_ref()).await?;
        drop(reserved);
        let event = Event::ImConversation { conversation: self.view(&conv, user)? };
        self.outbox.to_user(user, None, &event);
        Ok(conv)
    }

    /// Local user `to` was added to `group`, hosted on another server, by `by`: the group's
    /// conversation appears in their list.
    pub async fn group_invite(&self, group: &Username, to: &Username, by: &Username) -> Result<(), ServiceError> {
        let conv = self.mirror(group, to).await?;
        tracing::debug!(conversation = conv.id, %group, %by, "added to a remote group");
        Ok(())
    }

    /// A post in `group` (hosted on another server) by `author`, for local member `to`: it
    /// lands in the group's conversation here (a repeat of the same `id` is stored once).
    pub async fn group_message(
        &self,
        group: &Username,
        to: &Username,
        author: &Username,
        text: &str,
        id: &str,
    ) -> Result<(), ServiceError> {
        let text = conversation::check_text(text)?;
        let conv = self.mirror(group, to).await?;
        let _guard = self.lock(conv.id).await;
        let key = fed_key(&format!("{group}/{id}"));
        if let Some(k) = &key
            && self.store.im().by_key(author, k)?.is_some()
        {
            return Ok(());
        }
        let reserved = self.store.im().reserve()?;
        let msg = Message {
            id: reserved.id(),
            at: now_ms(),
            from: author.clone(),
            body: Body::Text { text, format: Format::Plain },
            key,
            extras: Default::default(),
        };
        let record = self.record(&conv, &msg)?;
        self.append(Actor { user: author, endpoint: None }, &conv, &msg, true, record, Vec::new()).await?;
        Ok(())
    }

    /// What group conversation `id` is, for a remote participant entering it (an XMPP user
    /// joining it as a room): refused unless they are one.
    pub fn group_state(&self, user: &Username, id: ConversationId) -> Result<Item, ServiceError> {
        let conv = self.conversation_of(user, id)?;
        conv.check_send(user)?;
        let (from, until) = conv.window(user).unwrap_or((1, 0));
        let page = self.store.im().page(Thread::Conversation(id), (from, until), None, None, MAX_GROUP_HISTORY)?;
        Ok(Item::GroupState {
            from: Group::Conversation(id).local(),
            to: user.to_string(),
            name: String::new(),
            subject: String::new(),
            members: conv.members().take(MAX_GROUP_MEMBERS).map(Username::to_string).collect(),
            history: history(&page),
        })
    }
}

/// The idempotency key of a message a remote server identified by `id` (none without one).
pub(crate) fn fed_key(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(id.as_bytes());
        format!("fed:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    })
}

/// A page of a thread as a group's history: its texts.
pub(crate) fn history(page: &[Message]) -> Vec<GroupLine> {
    page.iter()
        .filter_map(|m| m.text().map(|t| GroupLine { author: m.from.to_string(), text: t.to_owned(), at: m.at }))
        .collect()
}

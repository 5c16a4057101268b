//! Group traffic across servers (see `docs/federation.md`, "Groups").
//!
//! A group lives on one server, its *host*: a conversation (`#c<id>`) or a room (`#r<id>`)
//! with members of other servers. The host stores every post and carries it to each remote
//! member as a `group_message` (one item per member); remote members post with `group_post`,
//! enter with `group_join` (XMPP users joining a room; answered with `group_state` or
//! `group_refused`), leave with `group_leave` and invite with `group_add`. On a member's
//! server, a Halo peer keeps one conversation per local member standing for the group (its
//! *mirror*, see [`halo_core::conversation::Conversation::hosted_by`]).

use halo_core::Username;
use halo_core::federation::{Group, Item};

use super::FederationService;
use crate::error::ServiceError;
use crate::im::Actor;

/// The XMPP stanza error condition a refusal of a group request stands for.
fn condition(e: &ServiceError, joining: bool) -> &'static str {
    match e {
        ServiceError::NotFound(_) => "item-not-found",
        ServiceError::Forbidden(_) if joining => "registration-required",
        ServiceError::Forbidden(_) | ServiceError::Blocked(_) => "forbidden",
        ServiceError::TooFast | ServiceError::RateLimited { .. } => "resource-constraint",
        ServiceError::Invalid(_) | ServiceError::TooLarge(_) => "not-acceptable",
        ServiceError::Conflict(_) => "conflict",
        _ => "internal-server-error",
    }
}

impl FederationService {
    /// Traffic from remote user `from` to a group hosted here. A refusal is answered with a
    /// `group_refused` to them (an XMPP user then gets the stanza error) and returned.
    pub(super) async fn to_group(
        &self,
        via: &halo_core::federation::RouteKey,
        from: &Username,
        item: Item,
    ) -> Result<(), String> {
        if halo_core::federation::is_group(from.as_str()) {
            return Err(format!("{} from {from}: a group cannot speak to a group", item.kind()));
        }
        let Some(group) = Group::parse(item.to()) else {
            return Err(format!("no group {:?} here", item.to()));
        };
        let (kind, joining) = (item.kind(), matches!(item, Item::GroupJoin { .. }));
        match self.group_request(from, group, item).await {
            Ok(()) => {
                if let Some(domain) = from.domain() {
                    self.metrics.federation.received(domain, kind);
                }
                self.link(via, |l| l.received += 1);
                Ok(())
            }
            Err(e) => {
                let refused = Item::GroupRefused {
                    from: group.local(),
                    to: from.to_string(),
                    condition: condition(&e, joining).to_owned(),
                    text: e.to_string(),
                };
                if let Err(e) = self.send(refused).await {
                    tracing::debug!(error = %e, "a group refusal was not queued");
                }
                Err(format!("{kind} from {from} to {}: {e}", group.local()))
            }
        }
    }

    async fn group_request(&self, from: &Username, group: Group, item: Item) -> Result<(), ServiceError> {
        let actor = Actor { user: from, endpoint: None };
        match (group, item) {
            (Group::Conversation(id), Item::GroupPost { text, id: rid, .. }) => {
                self.im()?.receive_post(from, id, &text, &rid).await
            }
            (Group::Room(id), Item::GroupPost { text, id: rid, .. }) => {
                self.room_service()?.receive_post(id, from, &text, &rid).await
            }
            (Group::Conversation(id), Item::GroupJoin { .. }) => {
                let state = self.im()?.group_state(from, id)?;
                self.send(state).await
            }
            (Group::Room(id), Item::GroupJoin { .. }) => {
                let state = self.room_service()?.remote_join(id, from).await?;
                self.send(state).await
            }
            (Group::Conversation(id), Item::GroupLeave { .. }) => self.im()?.leave(actor, id).await.map(drop),
            (Group::Room(id), Item::GroupLeave { .. }) => {
                self.room_service()?.remove_member(id, from, from.as_str()).await
            }
            (Group::Conversation(id), Item::GroupAdd { user, .. }) => {
                self.im()?.add(actor, id, &self.local_name(&user)).await.map(drop)
            }
            (Group::Room(id), Item::GroupAdd { user, .. }) => {
                self.room_service()?.remote_add(id, from, &self.local_name(&user)).await
            }
            (_, other) => Err(ServiceError::Invalid(format!("{} is not sent to a group", other.kind()))),
        }
    }

    /// `name@<this domain>` as the local `name`; anything else as it is.
    fn local_name(&self, user: &str) -> String {
        match (user.rsplit_once('@'), self.domain()) {
            (Some((name, d)), Some(own)) if d.eq_ignore_ascii_case(own) => name.to_owned(),
            _ => user.to_owned(),
        }
    }

    /// Traffic from a group hosted elsewhere (`group`) to local user `to`.
    pub(super) async fn group_traffic(&self, group: &Username, to: &Username, item: Item) -> Result<(), ServiceError> {
        let person = |name: &str| {
            Username::parse_address(&self.local_name(name))
                .ok()
                .filter(|u| !halo_core::federation::is_group(u.as_str()))
                .ok_or_else(|| ServiceError::Invalid(format!("invalid author {name:?}")))
        };
        match item {
            Item::GroupInvite { by, .. } => self.im()?.group_invite(group, to, &person(&by)?).await,
            Item::GroupMessage { author, text, id, .. } => {
                self.im()?.group_message(group, to, &person(&author)?, &text, &id).await
            }
            Item::GroupRefused { condition, text, .. } => {
                tracing::info!(%group, user = %to, %condition, reason = %text, "a remote group refused a request");
                Ok(())
            }
            Item::GroupState { .. } => Ok(()),
            other => Err(ServiceError::Invalid(format!("{} does not come from a group", other.kind()))),
        }
    }
}

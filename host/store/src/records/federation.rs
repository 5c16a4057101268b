//! Federation rules and queued items.

use halo_core::federation::{
    Access, DeliveryFailure, GroupLine, Item, PresenceInfo, Refusal, Route, Rule, Subscription,
};
use serde::{Deserialize, Serialize};

use super::{stored, unit_enum};

stored!(Rule => RuleV1, Item => ItemV1, DeliveryFailure => DeliveryFailureV1);

unit_enum! {
    /// Allowed or blocked.
    AccessV1 <=> Access, "snake_case" { Allow, Block }
}

unit_enum! {
    /// Subscription traffic.
    SubscriptionV1 <=> Subscription, "snake_case" { Request, Accept, Refuse, Cancel, Probe }
}

unit_enum! {
    /// Why a remote server refused an item.
    RefusalV1 <=> Refusal, "snake_case" {
        NoSuchUser, Blocked, Unavailable, RateLimited, TooBig, BadRequest, NotFederated, Internal
    }
}

/// `fed_failed`: a message a remote server refused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryFailureV1 {
    pub(crate) to: String,
    pub(crate) code: RefusalV1,
    pub(crate) reason: String,
}

impl From<&DeliveryFailure> for DeliveryFailureV1 {
    fn from(f: &DeliveryFailure) -> Self {
        Self { to: f.to.clone(), code: (&f.code).into(), reason: f.reason.clone() }
    }
}

impl From<DeliveryFailureV1> for DeliveryFailure {
    fn from(f: DeliveryFailureV1) -> Self {
        Self { to: f.to, code: f.code.into(), reason: f.reason }
    }
}

/// How a domain is reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub(crate) enum RouteV1 {
    /// An adapter plugin.
    Adapter { plugin: String },
    /// A Halo peer.
    Halo {
        url: String,
        secret: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca: Option<String>,
    },
}

/// `fed_rules`: the admin's rule for one domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RuleV1 {
    pub(crate) access: AccessV1,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) route: Option<RouteV1>,
}

impl From<&Route> for RouteV1 {
    fn from(r: &Route) -> Self {
        match r {
            Route::Adapter { plugin } => Self::Adapter { plugin: plugin.clone() },
            Route::Halo { url, secret, ca } => Self::Halo { url: url.clone(), secret: secret.clone(), ca: ca.clone() },
        }
    }
}

impl From<RouteV1> for Route {
    fn from(r: RouteV1) -> Self {
        match r {
            RouteV1::Adapter { plugin } => Self::Adapter { plugin },
            RouteV1::Halo { url, secret, ca } => Self::Halo { url, secret, ca },
        }
    }
}

impl From<&Rule> for RuleV1 {
    fn from(r: &Rule) -> Self {
        Self { access: (&r.access).into(), route: r.route.as_ref().map(RouteV1::from) }
    }
}

impl From<RuleV1> for Rule {
    fn from(r: RuleV1) -> Self {
        Self { access: r.access.into(), route: r.route.map(Route::from) }
    }
}

/// Presence as it crosses servers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PresenceInfoV1 {
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) activity: Option<String>,
    pub(crate) label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
}

/// `fed_queue`: one item waiting for a remote domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ItemV1 {
    /// A message.
    Message { from: String, to: String, text: String, id: String },
    /// A presence change.
    Presence { from: String, to: String, info: PresenceInfoV1 },
    /// A subscription stanza.
    Subscribe { from: String, to: String, kind: SubscriptionV1 },
    /// Groups (added later; earlier items keep their bytes).
    GroupInvite { from: String, to: String, by: String, name: String },
    /// A post of a group for one member.
    GroupMessage { from: String, to: String, author: String, text: String, id: String },
    /// A group's state for a member who joined.
    GroupState {
        from: String,
        to: String,
        name: String,
        subject: String,
        members: Vec<String>,
        history: Vec<GroupLineV1>,
    },
    /// A refusal from a group.
    GroupRefused { from: String, to: String, condition: String, text: String },
    /// A member's post to a group.
    GroupPost { from: String, to: String, text: String, id: String },
    /// Entering a group.
    GroupJoin { from: String, to: String },
    /// Leaving a group.
    GroupLeave { from: String, to: String },
    /// A member's invitation into a group.
    GroupAdd { from: String, to: String, user: String },
}

/// One post of a group's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GroupLineV1 {
    pub(crate) author: String,
    pub(crate) text: String,
    pub(crate) at: u64,
}

impl From<&Item> for ItemV1 {
    fn from(i: &Item) -> Self {
        match i.clone() {
            Item::Message { from, to, text, id } => Self::Message { from, to, text, id },
            Item::Presence { from, to, info: PresenceInfo { state, activity, label, note } } => {
                Self::Presence { from, to, info: PresenceInfoV1 { state, activity, label, note } }
            }
            Item::Subscribe { from, to, kind } => Self::Subscribe { from, to, kind: (&kind).into() },
            Item::GroupInvite { from, to, by, name } => Self::GroupInvite { from, to, by, name },
            Item::GroupMessage { from, to, author, text, id } => Self::GroupMessage { from, to, author, text, id },
            Item::GroupState { from, to, name, subject, members, history } => Self::GroupState {
                from,
                to,
                name,
                subject,
                members,
                history: history
                    .into_iter()
                    .map(|GroupLine { author, text, at }| GroupLineV1 { author, text, at })
                    .collect(),
            },
            Item::GroupRefused { from, to, condition, text } => Self::GroupRefused { from, to, condition, text },
            Item::GroupPost { from, to, text, id } => Self::GroupPost { from, to, text, id },
            Item::GroupJoin { from, to } => Self::GroupJoin { from, to },
            Item::GroupLeave { from, to } => Self::GroupLeave { from, to },
            Item::GroupAdd { from, to, user } => Self::GroupAdd { from, to, user },
        }
    }
}

impl From<ItemV1> for Item {
    fn from(i: ItemV1) -> Self {
        match i {
            ItemV1::Message { from, to, text, id } => Self::Message { from, to, text, id },
            ItemV1::Presence { from, to, info: PresenceInfoV1 { state, activity, label, note } } => {
                Self::Presence { from, to, info: PresenceInfo { state, activity, label, note } }
            }
            ItemV1::Subscribe { from, to, kind } => Self::Subscribe { from, to, kind: kind.into() },
            ItemV1::GroupInvite { from, to, by, name } => Self::GroupInvite { from, to, by, name },
            ItemV1::GroupMessage { from, to, author, text, id } => Self::GroupMessage { from, to, author, text, id },
            ItemV1::GroupState { from, to, name, subject, members, history } => Self::GroupState {
                from,
                to,
                name,
                subject,
                members,
                history: history
                    .into_iter()
                    .map(|GroupLineV1 { author, text, at }| GroupLine { author, text, at })
                    .collect(),
            },
            ItemV1::GroupRefused { from, to, condition, text } => Self::GroupRefused { from, to, condition, text },
            ItemV1::GroupPost { from, to, text, id } => Self::GroupPost { from, to, text, id },
            ItemV1::GroupJoin { from, to } => Self::GroupJoin { from, to },
            ItemV1::GroupLeave { from, to } => Self::GroupLeave { from, to },
            ItemV1::GroupAdd { from, to, user } => Self::GroupAdd { from, to, user },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::golden::pin;

    #[test]
    fn rule_v1_is_pinned() {
        let samples = [
            Rule { access: Access::Allow, route: Some(Route::Adapter { plugin: "xmpp".into() }) },
            Rule {
                access: Access::Allow,
                route: Some(Route::Halo {
                    url: "https://b.example:8443".into(),
                    secret: "a-shared-secret-of-32-characters".into(),
                    ca: Some("/etc/halo/b.pem".into()),
                }),
            },
            Rule {
                access: Access::Allow,
                route: Some(Route::Halo { url: "https://c.example".into(), secret: "s".repeat(16), ca: None }),
            },
            Rule { access: Access::Block, route: None },
        ];
        pin("fed_rules", include_str!("golden/rule_v1.hex"), &samples);
    }

    #[test]
    fn delivery_failure_v1_is_pinned() {
        let samples = [
            DeliveryFailure {
                to: "bob@b.example".into(),
                code: Refusal::NoSuchUser,
                reason: "no user bob here".into(),
            },
            DeliveryFailure { to: "carol@c.example".into(), code: Refusal::RateLimited, reason: "slow down".into() },
        ];
        pin("fed_failed", include_str!("golden/delivery_failure_v1.hex"), &samples);
    }

    #[test]
    fn item_v1_is_pinned() {
        let presence = |activity: Option<&str>, note: Option<&str>| Item::Presence {
            from: "alice".into(),
            to: "bob@b.example".into(),
            info: PresenceInfo {
                state: "busy".into(),
                activity: activity.map(str::to_owned),
                label: "Busy".into(),
                note: note.map(str::to_owned),
            },
        };
        let subscribe = |kind| Item::Subscribe { from: "alice".into(), to: "bob@b.example".into(), kind };
        let samples = [
            Item::Message { from: "alice".into(), to: "bob@b.example".into(), text: "hi".into(), id: "42".into() },
            presence(Some("in-a-meeting"), Some("Back at 3")),
            presence(None, None),
            subscribe(Subscription::Request),
            subscribe(Subscription::Accept),
            subscribe(Subscription::Refuse),
            subscribe(Subscription::Cancel),
            subscribe(Subscription::Probe),
        ];
        pin("fed_queue", include_str!("golden/item_v1.hex"), &samples);
    }

    #[test]
    fn group_items_are_pinned() {
        let (g, m) = ("#r5".to_owned(), "bob@b.example".to_owned());
        let samples = [
            Item::GroupInvite { from: g.clone(), to: m.clone(), by: "alice".into(), name: "Design".into() },
            Item::GroupMessage {
                from: g.clone(),
                to: m.clone(),
                author: "alice".into(),
                text: "hi".into(),
                id: "42".into(),
            },
            Item::GroupState {
                from: g.clone(),
                to: m.clone(),
                name: "Design".into(),
                subject: "colours".into(),
                members: vec!["alice".into(), m.clone()],
                history: vec![GroupLine { author: "alice".into(), text: "hi".into(), at: 7 }],
            },
            Item::GroupRefused { from: g.clone(), to: m.clone(), condition: "forbidden".into(), text: "no".into() },
            Item::GroupPost { from: "alice".into(), to: "#c9@b.example".into(), text: "hi".into(), id: "1".into() },
            Item::GroupJoin { from: "alice".into(), to: "#r5@b.example".into() },
            Item::GroupLeave { from: "alice".into(), to: "#r5@b.example".into() },
            Item::GroupAdd { from: "alice".into(), to: "#r5@b.example".into(), user: "carol".into() },
        ];
        pin("fed_queue", include_str!("golden/item_v1_groups.hex"), &samples);
    }
}

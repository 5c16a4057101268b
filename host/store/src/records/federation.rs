//! Federation rules and queued items.

use halo_core::federation::{Access, DeliveryFailure, Item, PresenceInfo, Refusal, Route, Rule, Subscription};
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
}

impl From<&Item> for ItemV1 {
    fn from(i: &Item) -> Self {
        match i.clone() {
            Item::Message { from, to, text, id } => Self::Message { from, to, text, id },
            Item::Presence { from, to, info: PresenceInfo { state, activity, label, note } } => {
                Self::Presence { from, to, info: PresenceInfoV1 { state, activity, label, note } }
            }
            Item::Subscribe { from, to, kind } => Self::Subscribe { from, to, kind: (&kind).into() },
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
}

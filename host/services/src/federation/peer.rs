//! Halo-to-Halo federation: two Halo servers exchange the same [`Item`]s their queues hold,
//! over HTTPS, each request signed with the secret the two admins agreed on.
//!
//! Built into the host rather than as an adapter plugin: both ends already speak HTTP and
//! JSON, so there is nothing to translate, and TLS and request signing are security code best
//! kept in one audited place.
//!
//! The wire: `POST /federation/v1/inbox` on the peer's federation listener with a JSON body
//! `{"items": [...]}` and headers `Halo-Origin` (the sender's domain), `Halo-Timestamp` (ms
//! since the Unix epoch) and `Halo-Signature` (`hex(HMAC-SHA256(secret, origin + "\n" +
//! timestamp + "\n" + body))`). The receiver checks that the origin has a Halo rule, the
//! signature under that rule's secret (in constant time), and that the timestamp is within
//! five minutes. Items carry the sender's local name in `from` (the receiver qualifies it with
//! the origin) and the full address in `to`. Messages are deduplicated by their id, so a
//! retried request does not deliver twice.

use std::sync::Arc;
use std::time::Duration;

use halo_core::federation::{Breaker, Item, RouteKey};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

use super::FederationService;
use crate::clock::now_ms;
use crate::error::ServiceError;

/// Header naming the sending server's domain.
pub const ORIGIN: &str = "halo-origin";
/// Header with the signing time, ms since the Unix epoch.
pub const TIMESTAMP: &str = "halo-timestamp";
/// Header with the signature.
pub const SIGNATURE: &str = "halo-signature";
/// How far a request's timestamp may be from the receiver's clock.
pub const MAX_SKEW_MS: u64 = 5 * 60 * 1000;
/// Items per request.
const BATCH: usize = 100;
/// Largest request body accepted.
pub const MAX_BODY: usize = 4 << 20;

/// A request body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Envelope {
    /// The items, in order.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Item>,
}

/// What the receiver answers.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct Receipt {
    /// Items taken.
    pub accepted: usize,
    /// Messages taken before (same sender and id): not delivered again.
    #[serde(default)]
    pub duplicates: usize,
    /// Items refused, with why (they are not retried).
    pub refused: Vec<String>,
    /// The refusals in detail: which item (its index in the request) and the code
    /// (`no_such_user`, `blocked`, `unavailable`, `rate_limited`, `too_big`, `bad_request`,
    /// `not_federated`, `internal`).
    #[serde(default)]
    pub refusals: Vec<RefusedItem>,
}

/// One refused item of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RefusedItem {
    /// Its index in the request's `items`.
    pub index: usize,
    /// Why, as a code.
    #[schema(value_type = String)]
    pub code: halo_core::federation::Refusal,
    /// Why, in words.
    pub reason: String,
}

/// The MAC of a request: over the origin, the timestamp and the body. (HMAC takes keys of any
/// length, so this is always `Some`.)
fn mac(secret: &str, origin: &str, timestamp: u64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).ok()?;
    mac.update(origin.as_bytes());
    mac.update(b"\n");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b"\n");
    mac.update(body);
    Some(mac)
}

/// The signature of a request.
pub fn sign(secret: &str, origin: &str, timestamp: u64, body: &[u8]) -> String {
    mac(secret, origin, timestamp, body)
        .map(|m| m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
        .unwrap_or_default()
}

/// Checks a signature in constant time.
fn verify(secret: &str, origin: &str, timestamp: u64, body: &[u8], signature: &str) -> bool {
    let Some(bytes) = (0..signature.len())
        .step_by(2)
        .map(|i| signature.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, origin, timestamp, body).is_some_and(|m| m.verify_slice(&bytes).is_ok())
}

/// Reads a PEM file of CA certificates.
pub fn read_ca(path: &str) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)?.collect::<Result<_, _>>()?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {path}");
    }
    Ok(certs)
}

/// A TLS client trusting `ca` (a PEM file), or Mozilla's roots.
pub fn tls_client(ca: Option<&str>) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            for c in read_ca(path)? {
                roots.add(c)?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn agent(ca: Option<&str>) -> anyhow::Result<ureq::Agent> {
    let roots = match ca {
        Some(path) => ureq::tls::RootCerts::Specific(Arc::new(
            read_ca(path)?.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect(),
        )),
        None => ureq::tls::RootCerts::WebPki,
    };
    let config = ureq::Agent::config_builder()
        .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
        .timeout_global(Some(Duration::from_secs(15)))
        .http_status_as_error(false)
        .https_only(true)
        .build();
    Ok(config.into())
}

/// A receipt as the receiver sends it: the JSON body and the headers that sign it ([`ORIGIN`]
/// the receiver's domain, [`TIMESTAMP`], [`SIGNATURE`] under the secret the two share), so the
/// sender can trust its refusals.
#[derive(Debug)]
pub struct SignedReceipt {
    /// The JSON body.
    pub body: Vec<u8>,
    /// The receiver's domain.
    pub origin: String,
    /// Signing time, ms since the Unix epoch.
    pub timestamp: u64,
    /// The signature.
    pub signature: String,
}

/// Checks a peer's request, delivers its items, and signs the receipt.
pub async fn receive_signed(
    fed: &FederationService,
    signed: Signed<'_>,
    body: &[u8],
) -> Result<SignedReceipt, ServiceError> {
    let origin = signed.origin.map(str::to_ascii_lowercase).unwrap_or_default();
    let receipt = receive(fed, signed, body).await?;
    let body = serde_json::to_vec(&receipt).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let own = fed.domain().unwrap_or_default().to_owned();
    let secret = fed.halo_route(&origin).map(|(_, secret, _)| secret).unwrap_or_default();
    let timestamp = now_ms();
    let signature = sign(&secret, &own, timestamp, &body);
    Ok(SignedReceipt { body, origin: own, timestamp, signature })
}

/// Whether a receipt's signature headers check out for `peer` under `secret`.
fn receipt_signed(resp: &ureq::http::Response<ureq::Body>, peer: &str, secret: &str, body: &[u8]) -> bool {
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let (Some(origin), Some(ts), Some(sig)) = (header(ORIGIN), header(TIMESTAMP), header(SIGNATURE)) else {
        return false;
    };
    let Ok(ts) = ts.parse::<u64>() else { return false };
    origin.eq_ignore_ascii_case(peer) && now_ms().abs_diff(ts) <= MAX_SKEW_MS && verify(secret, origin, ts, body, sig)
}

/// Posts one batch; the receipt (its refusals only if the peer signed it), or why not.
fn post(
    agent: &ureq::Agent,
    url: &str,
    (origin, peer): (&str, &str),
    secret: &str,
    items: &[Item],
) -> Result<Receipt, String> {
    let body = serde_json::to_vec(&Envelope { items: items.to_vec() }).map_err(|e| e.to_string())?;
    let ts = now_ms();
    let sig = sign(secret, origin, ts, &body);
    let url = format!("{}/federation/v1/inbox", url.trim_end_matches('/'));
    let mut resp = agent
        .post(&url)
        .header("content-type", "application/json")
        .header(ORIGIN, origin)
        .header(TIMESTAMP, &ts.to_string())
        .header(SIGNATURE, &sig)
        .send(&body[..])
        .map_err(|e| format!("{url}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().with_config().limit(1 << 20).read_to_string().unwrap_or_default();
    if status != 200 {
        return Err(format!("{url}: HTTP {status}: {}", text.chars().take(300).collect::<String>()));
    }
    let mut receipt: Receipt = serde_json::from_str(&text).map_err(|e| format!("{url}: bad receipt: {e}"))?;
    if !receipt.refusals.is_empty() && !receipt_signed(&resp, peer, secret, text.as_bytes()) {
        // An older peer, or a receipt nobody vouches for: its refusals fail no message.
        tracing::info!(%peer, "the peer's receipt is not signed; its refusals are only logged");
        receipt.refusals.clear();
    }
    Ok(receipt)
}

/// Carries `domain`'s queue to its Halo peer, forever: batches in order, each removed once the
/// peer answered; failures back off per the circuit breaker. A link that comes back resyncs
/// presence both ways.
pub(super) async fn deliver(fed: Arc<FederationService>, domain: String) {
    let key = RouteKey::Halo(domain.clone());
    let wake = fed.waker(&key);
    let mut breaker = Breaker::default();
    let mut up = false;
    // A first contact counts as coming up: presence goes out and probes ask for theirs.
    let mut announced = false;
    loop {
        let Some((url, secret, ca)) = fed.halo_route(&domain) else { return };
        let Some(origin) = fed.domain().map(str::to_owned) else {
            fed.link(&key, |l| {
                l.state = "down".into();
                l.last_error = Some("set [federation] domain in halo.toml to federate with Halo peers".into());
            });
            wake.notified().await;
            continue;
        };
        if !announced {
            announced = true;
            fed.resync(&key).await;
        }
        let batch = fed.peek(&domain, BATCH);
        if batch.is_empty() && up {
            wake.notified().await;
            continue;
        }
        // An empty batch (nothing queued while the peer is not known to be up) probes it, so
        // admins see its state.
        let items: Vec<Item> = batch.iter().map(|q| q.item.clone()).collect();
        let (u, o, s, ca2, d) = (url.clone(), origin.clone(), secret.clone(), ca.clone(), domain.clone());
        let result = tokio::task::spawn_blocking(move || {
            agent(ca2.as_deref()).map_err(|e| format!("{e:#}")).and_then(|a| post(&a, &u, (&o, &d), &s, &items))
        })
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
        match result {
            Ok(receipt) => {
                // Refusals with their item go back to its sender (a message: failed); an older
                // peer says only why.
                for r in &receipt.refusals {
                    if let Some(q) = batch.get(r.index) {
                        fed.bounced(&key, &q.item, r.code, &r.reason).await;
                    }
                }
                if receipt.refusals.is_empty() {
                    for why in &receipt.refused {
                        tracing::info!(%domain, reason = %why, "the peer refused an item");
                    }
                }
                for q in &batch {
                    fed.carried(&key, &domain, &q.item);
                }
                if !batch.is_empty() {
                    let seqs: Vec<u64> = batch.iter().map(|q| q.seq).collect();
                    if let Err(e) = fed.done(&domain, &seqs).await {
                        tracing::error!(error = %e, "federation queue not updated");
                    }
                    let depths = fed.store.federation().depths().ok();
                    fed.metrics.federation.queue(&domain, depths.and_then(|d| d.get(&domain).copied()).unwrap_or(0));
                }
                if !up {
                    came_up(&fed, &key, &mut breaker, &mut up).await;
                }
            }
            Err(why) => {
                failed(&fed, &key, &domain, &mut breaker, &why, &mut up);
                let wait = Duration::from_millis(breaker.retry_at().saturating_sub(now_ms()));
                tokio::select! { _ = tokio::time::sleep(wait) => {}, _ = wake.notified() => {} }
            }
        }
    }
}

async fn came_up(fed: &FederationService, key: &RouteKey, breaker: &mut Breaker, up: &mut bool) {
    let was_failing = breaker.failures() > 0;
    breaker.succeeded();
    *up = true;
    fed.link(key, |l| {
        l.state = "up".into();
        l.breaker(breaker);
    });
    if was_failing {
        fed.resync(key).await;
    }
}

fn failed(fed: &FederationService, key: &RouteKey, domain: &str, breaker: &mut Breaker, why: &str, up: &mut bool) {
    breaker.failed(now_ms(), why);
    if std::mem::replace(up, false) || breaker.failures() == 1 {
        fed.unreachable(key);
    }
    tracing::info!(%domain, reason = %why, failures = breaker.failures(), "Halo peer unreachable");
    fed.metrics.federation.failed(domain);
    fed.link(key, |l| {
        l.state = "down".into();
        l.breaker(breaker);
    });
}

/// The headers of an inbound request that authenticate it ([`ORIGIN`], [`TIMESTAMP`],
/// [`SIGNATURE`]), as the transport read them.
#[derive(Debug, Clone, Default)]
pub struct Signed<'a> {
    /// The sending server's domain.
    pub origin: Option<&'a str>,
    /// The signing time, ms since the Unix epoch.
    pub timestamp: Option<&'a str>,
    /// The signature.
    pub signature: Option<&'a str>,
}

/// Checks a peer's request and delivers its items. Refused with
/// [`ServiceError::PeerUnauthorized`] or [`ServiceError::PeerMalformed`].
pub async fn receive(fed: &FederationService, signed: Signed<'_>, body: &[u8]) -> Result<Receipt, ServiceError> {
    let header = |name: &str| {
        match name {
            ORIGIN => signed.origin,
            TIMESTAMP => signed.timestamp,
            _ => signed.signature,
        }
        .map(str::to_owned)
    };
    // Every refusal is counted under the origin it claims (`?` without one), on its link when
    // the origin is a peer, so the overview and `halo_federation_rejected_total` agree.
    let unauthorized = |origin: &str, peer: bool, why: String| {
        tracing::info!(%origin, reason = %why, "Halo peer request refused");
        let key = RouteKey::Halo(origin.to_owned());
        fed.count_rejected(peer.then_some(&key), origin);
        ServiceError::PeerUnauthorized(why)
    };
    let Some(origin) = header(ORIGIN).map(|o| o.to_ascii_lowercase()) else {
        return Err(unauthorized("?", false, "no Halo-Origin".into()));
    };
    let Some((_, secret, _)) = fed.halo_route(&origin) else {
        let shown =
            halo_core::federation::Domain::parse(&origin).map_or_else(|_| "?".to_owned(), |d| d.as_str().to_owned());
        return Err(unauthorized(&shown, false, format!("{shown} is not a Halo peer of this server")));
    };
    let Some(ts) = header(TIMESTAMP).and_then(|t| t.parse::<u64>().ok()) else {
        return Err(unauthorized(&origin, true, "no Halo-Timestamp".into()));
    };
    if now_ms().abs_diff(ts) > MAX_SKEW_MS {
        return Err(unauthorized(&origin, true, "Halo-Timestamp is more than five minutes off".into()));
    }
    let Some(sig) = header(SIGNATURE) else {
        return Err(unauthorized(&origin, true, "no Halo-Signature".into()));
    };
    if !verify(&secret, &origin, ts, body, &sig) {
        return Err(unauthorized(&origin, true, format!("bad signature from {origin}")));
    }
    let env: Envelope = serde_json::from_slice(body)
        .map_err(|e| ServiceError::PeerMalformed(format!("malformed federation request: {e}")))?;
    let key = RouteKey::Halo(origin.clone());
    let own = fed.domain().unwrap_or_default().to_owned();
    let mut receipt = Receipt::default();
    for (index, item) in env.items.into_iter().enumerate() {
        let item = match qualify(item, &origin, &own) {
            Ok(i) => i,
            Err(why) => {
                fed.rejected_by_transport(&key, Some(&origin), &why);
                let code = halo_core::federation::Refusal::BadRequest;
                receipt.refusals.push(RefusedItem { index, code, reason: why.clone() });
                receipt.refused.push(why);
                continue;
            }
        };
        match fed.inbound(&key, item).await {
            Ok(super::Accepted::New) => receipt.accepted += 1,
            Ok(super::Accepted::Duplicate) => receipt.duplicates += 1,
            Err((code, why)) => {
                receipt.refusals.push(RefusedItem { index, code, reason: why.clone() });
                receipt.refused.push(why);
            }
        }
    }
    Ok(receipt)
}

/// A peer's item in local terms: `from` (a name at the origin) becomes `name@origin`, `to`
/// (`name@<this domain>`) becomes `name`.
fn qualify(item: Item, origin: &str, own: &str) -> Result<Item, String> {
    let from = |f: String| {
        if f.contains('@') {
            Err(format!("sender {f:?} must be a local name of {origin}"))
        } else {
            Ok(format!("{f}@{origin}"))
        }
    };
    let to = |t: String| match t.split_once('@') {
        Some((name, d)) if d.eq_ignore_ascii_case(own) => Ok(name.to_owned()),
        _ => Err(format!("recipient {t:?} is not on {own}")),
    };
    // Groups: a group hosted at the origin is `#x` there and `#x@origin` here; a group hosted
    // here is `#x@<this domain>` there and `#x` here. People named in group items (authors,
    // inviters) are qualified like senders, but may be of any server the host relays.
    let group = |g: String| {
        if halo_core::federation::is_group(&g) && !g.contains('@') {
            Ok(format!("{g}@{origin}"))
        } else {
            Err(format!("group {g:?} must be a group of {origin}"))
        }
    };
    let our_group = |g: String| match g.split_once('@') {
        Some((name, d)) if d.eq_ignore_ascii_case(own) && halo_core::federation::is_group(name) => Ok(name.to_owned()),
        _ => Err(format!("group {g:?} is not on {own}")),
    };
    let member =
        |f: String| if halo_core::federation::is_group(&f) { Err(format!("{f:?} is not a user")) } else { from(f) };
    let person = |p: String| match p.split_once('@') {
        None => Ok::<_, String>(format!("{p}@{origin}")),
        Some((name, d)) if d.eq_ignore_ascii_case(own) => Ok(name.to_owned()),
        Some(_) => Ok(p),
    };
    Ok(match item {
        Item::Message { from: f, to: t, text, id } => Item::Message { from: from(f)?, to: to(t)?, text, id },
        Item::Presence { from: f, to: t, info } => Item::Presence { from: from(f)?, to: to(t)?, info },
        Item::Subscribe { from: f, to: t, kind } => Item::Subscribe { from: from(f)?, to: to(t)?, kind },
        Item::GroupInvite { from: f, to: t, by, name } => {
            Item::GroupInvite { from: group(f)?, to: to(t)?, by: person(by)?, name }
        }
        Item::GroupMessage { from: f, to: t, author, text, id } => {
            Item::GroupMessage { from: group(f)?, to: to(t)?, author: person(author)?, text, id }
        }
        Item::GroupState { from: f, to: t, name, subject, members, history } => Item::GroupState {
            from: group(f)?,
            to: to(t)?,
            name,
            subject,
            members: members.into_iter().map(person).collect::<Result<_, _>>()?,
            history,
        },
        Item::GroupRefused { from: f, to: t, condition, text } => {
            Item::GroupRefused { from: group(f)?, to: to(t)?, condition, text }
        }
        Item::GroupPost { from: f, to: t, text, id } => {
            Item::GroupPost { from: member(f)?, to: our_group(t)?, text, id }
        }
        Item::GroupJoin { from: f, to: t } => Item::GroupJoin { from: member(f)?, to: our_group(t)? },
        Item::GroupLeave { from: f, to: t } => Item::GroupLeave { from: member(f)?, to: our_group(t)? },
        Item::GroupAdd { from: f, to: t, user } => {
            Item::GroupAdd { from: member(f)?, to: our_group(t)?, user: person(user)? }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_catch_tampering() {
        let sig = sign("0123456789abcdef", "a.test", 42, b"{\"items\":[]}");
        assert!(verify("0123456789abcdef", "a.test", 42, b"{\"items\":[]}", &sig));
        assert!(!verify("0123456789abcdef", "a.test", 43, b"{\"items\":[]}", &sig));
        assert!(!verify("0123456789abcdef", "b.test", 42, b"{\"items\":[]}", &sig));
        assert!(!verify("0123456789abcdeX", "a.test", 42, b"{\"items\":[]}", &sig));
        assert!(!verify("0123456789abcdef", "a.test", 42, b"{\"items\":[1]}", &sig));
        assert!(!verify("0123456789abcdef", "a.test", 42, b"{\"items\":[]}", "zz"));
        assert!(!verify("0123456789abcdef", "a.test", 42, b"{\"items\":[]}", ""));
    }

    #[test]
    fn items_are_qualified_and_spoofs_refused() {
        let m = |from: &str, to: &str| Item::Message {
            from: from.into(),
            to: to.into(),
            text: "hi".into(),
            id: "1".into(),
        };
        assert_eq!(qualify(m("alice", "bob@b.test"), "a.test", "b.test"), Ok(m("alice@a.test", "bob")));
        assert!(qualify(m("alice@c.test", "bob@b.test"), "a.test", "b.test").is_err());
        assert!(qualify(m("alice", "bob@c.test"), "a.test", "b.test").is_err());
        assert!(qualify(m("alice", "bob"), "a.test", "b.test").is_err());
    }

    #[test]
    fn group_items_are_qualified_and_spoofs_refused() {
        let gm = |from: &str, author: &str| Item::GroupMessage {
            from: from.into(),
            to: "bob@b.test".into(),
            author: author.into(),
            text: "hi".into(),
            id: "1".into(),
        };
        let want = |from: &str, author: &str| Item::GroupMessage {
            from: from.into(),
            to: "bob".into(),
            author: author.into(),
            text: "hi".into(),
            id: "1".into(),
        };
        assert_eq!(qualify(gm("#c7", "alice"), "a.test", "b.test"), Ok(want("#c7@a.test", "alice@a.test")));
        // The host relays posts of users of other servers, ours included.
        assert_eq!(qualify(gm("#c7", "carol@c.test"), "a.test", "b.test"), Ok(want("#c7@a.test", "carol@c.test")));
        assert_eq!(qualify(gm("#c7", "eve@b.test"), "a.test", "b.test"), Ok(want("#c7@a.test", "eve")));
        // A group of another server, or a user posing as a group.
        assert!(qualify(gm("#c7@c.test", "alice"), "a.test", "b.test").is_err());
        assert!(qualify(gm("alice", "alice"), "a.test", "b.test").is_err());
        let post = |from: &str, to: &str| Item::GroupPost {
            from: from.into(),
            to: to.into(),
            text: "hi".into(),
            id: "1".into(),
        };
        assert_eq!(qualify(post("bob", "#r5@b.test"), "a.test", "b.test"), Ok(post("bob@a.test", "#r5")));
        assert!(qualify(post("#c1", "#r5@b.test"), "a.test", "b.test").is_err());
        assert!(qualify(post("bob", "#r5@c.test"), "a.test", "b.test").is_err());
        assert!(qualify(post("bob", "carol@b.test"), "a.test", "b.test").is_err());
    }
}

//! Leases in a JetStream key-value bucket: the one pattern behind "one node does this".
//!
//! A lease is a key whose value names its holder. Taking it is `create` (refused while the key
//! exists), keeping it is `update` at the revision last written (refused once another node
//! wrote it), and the bucket's age limit (`ttl`) removes a key nobody renewed: a dead node's
//! leases are free `ttl` after its last renewal. The holder renews three times per `ttl` and
//! gives the lease up by itself when it could not renew for `ttl` minus one renewal interval,
//! so two nodes never both believe they hold it for longer than a clock tick (fencing by time,
//! as every lease does; the replicated write is what decides).

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use halo_cluster::Cluster;

/// How long [`open_bucket`] retries while JetStream does not answer for a bucket.
pub const OPEN_WAIT: Duration = Duration::from_secs(60);

/// Opens the pool's bucket `config.bucket`, creating it (with the cluster's replicas, see
/// [`Cluster::place`]) if missing. A JetStream cluster started a moment ago (all of it
/// restarted) answers before its streams have elected leaders again, and asking for a bucket
/// then times out: that is retried for up to [`OPEN_WAIT`], so a node started together with
/// its NATS servers waits for them instead of exiting.
pub async fn open_bucket(cluster: &Cluster, config: kv::Config) -> anyhow::Result<kv::Store> {
    let js = cluster.jetstream();
    let deadline = Instant::now() + OPEN_WAIT;
    loop {
        let error = match js.get_key_value(&config.bucket).await {
            Ok(kv) => return Ok(kv),
            Err(e) => match cluster
                .place(|num_replicas| js.create_key_value(kv::Config { num_replicas, ..config.clone() }))
                .await
            {
                Ok(kv) => return Ok(kv),
                // Another node created it meanwhile, or JetStream is not ready yet.
                Err(created) => match js.get_key_value(&config.bucket).await {
                    Ok(kv) => return Ok(kv),
                    Err(_) => format!("{e}; creating it: {created}"),
                },
            },
        };
        if Instant::now() > deadline {
            anyhow::bail!("JetStream, the {} bucket: {error}", config.bucket);
        }
        tracing::warn!(bucket = %config.bucket, %error, "the pool's bucket is not ready; retrying");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The leases bucket of one kind of lease.
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    node: String,
    ttl: Duration,
}

/// A lease this node holds.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    revision: u64,
    renewed: Instant,
}

impl Leases {
    /// Opens (creating if needed) the bucket `name` of the pool, whose keys live `ttl`.
    pub async fn open(cluster: &Cluster, name: &str, ttl: Duration) -> anyhow::Result<Self> {
        let config = kv::Config {
            bucket: cluster.bucket(name),
            description: "halo pool leases".into(),
            history: 1,
            max_age: ttl,
            ..Default::default()
        };
        let kv = open_bucket(cluster, config).await?;
        Ok(Self { kv, node: cluster.node_id().to_owned(), ttl })
    }

    /// How often a holder renews.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }

    /// The holder of `key`, if anyone holds it.
    pub async fn holder(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(match self.kv.entry(key).await? {
            Some(e) if e.operation == kv::Operation::Put => Some(String::from_utf8_lossy(&e.value).into_owned()),
            _ => None,
        })
    }

    /// Tries to take `key`; `None` when someone holds it.
    pub async fn take(&self, key: &str) -> Option<Held> {
        let started = Instant::now();
        match self.kv.create(key, self.node.clone().into_bytes().into()).await {
            Ok(revision) => Some(Held { revision, renewed: started }),
            Err(_) => None,
        }
    }

    /// Renews `held`; `false` when it is lost (another node took it, or it could not be
    /// renewed for too long: give it up now).
    pub async fn renew(&self, key: &str, held: &mut Held) -> bool {
        let started = Instant::now();
        match self.kv.update(key, self.node.clone().into_bytes().into(), held.revision).await {
            Ok(revision) => {
                *held = Held { revision, renewed: started };
                true
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(%key, "lease lost to another node");
                false
            }
            Err(e) => {
                let ok = held.renewed.elapsed() + self.renew_every() < self.ttl;
                tracing::warn!(%key, error = %e, keeping = ok, "renewing a lease failed");
                ok
            }
        }
    }

    /// Gives `key` up (when stopping), so another node need not wait for it to expire.
    pub async fn release(&self, key: &str, held: Held) {
        let _ = self.kv.delete_expect_revision(key, Some(held.revision)).await;
    }

    /// Every key held, with its holder.
    pub async fn all(&self) -> Vec<(String, String)> {
        use futures_util::StreamExt;
        let mut out = Vec::new();
        let Ok(mut keys) = self.kv.keys().await else { return out };
        while let Some(Ok(key)) = keys.next().await {
            if let Ok(Some(holder)) = self.holder(&key).await {
                out.push((key, holder));
            }
        }
        out
    }
}

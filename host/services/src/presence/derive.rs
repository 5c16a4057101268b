//! Presence plugins, off the shards: one thread runs the enabled plugins' `derive` for the
//! requests the shards send, first come first served in batches (one crossing to a plugin's
//! executor for up to [`BATCH`] users), and hands each answer back to the shard that asked. Requests queued for the same user collapse into the latest (the engine ignores
//! answers to older ones), so a slow plugin falls behind by at most one derivation per user,
//! and no shard ever waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use halo_core::Username;
use halo_core::presence::engine::{DeriveRequest, Input};
use halo_core::presence::{CustomState, Published};
use halo_plugin_host::{DeriveRequest as PluginRequest, Plugin};

use super::shards::World;
use crate::metrics::Metrics;

/// Enabled presence plugins, in install order, with the state catalog they make.
#[derive(Default)]
pub(super) struct Plugins {
    pub list: Vec<Arc<Plugin>>,
    /// Config states, then each plugin's (ids already taken are skipped).
    pub catalog: Arc<Vec<CustomState>>,
}

/// Most users derived in one crossing to a plugin's executor: large enough that a fast plugin
/// pays the handoff once for many users, small enough that with a slow one a user who asks
/// later waits for a few dozen calls at most.
const BATCH: usize = 32;

/// Starts the plugin thread; it ends when every shard and the service are gone.
pub(super) fn spawn(
    plugins: Arc<RwLock<Arc<Plugins>>>,
    metrics: Arc<Metrics>,
    world: Weak<World>,
    rx: mpsc::Receiver<DeriveRequest>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name("presence-derive".into()).spawn(move || {
        // Users in the order they first asked, each with their latest request.
        let mut order: VecDeque<Username> = VecDeque::new();
        let mut latest: HashMap<Username, DeriveRequest> = HashMap::new();
        while let Ok(first) = rx.recv() {
            queue(first, &mut order, &mut latest);
            loop {
                while let Ok(more) = rx.try_recv() {
                    queue(more, &mut order, &mut latest);
                }
                let batch: Vec<DeriveRequest> = std::iter::from_fn(|| order.pop_front())
                    .filter_map(|user| latest.remove(&user))
                    .take(BATCH)
                    .collect();
                if batch.is_empty() {
                    break;
                }
                let current = plugins.read().unwrap_or_else(|p| p.into_inner()).clone();
                let results = derive(&current, &batch, &metrics);
                let Some(world) = world.upgrade() else { return };
                for (r, result) in batch.into_iter().zip(results) {
                    world.send(Input::Derived { user: r.user, seq: r.seq, result }, None);
                }
            }
        }
    })?;
    Ok(())
}

fn queue(r: DeriveRequest, order: &mut VecDeque<Username>, latest: &mut HashMap<Username, DeriveRequest>) {
    let user = r.user.clone();
    if latest.insert(user.clone(), r).is_none() {
        order.push_back(user);
    }
}

/// Runs the plugins over each request's built-in result, each plugin over the previous one's,
/// a batch per plugin in one crossing to its executor; a failing plugin is skipped for that
/// user, and an answer must name a known state. `None` where no plugin answered.
fn derive(plugins: &Plugins, batch: &[DeriveRequest], metrics: &Metrics) -> Vec<Option<Published>> {
    let mut current: Vec<Option<Published>> = vec![None; batch.len()];
    for p in &plugins.list {
        let bases: Vec<&Published> =
            batch.iter().zip(&current).map(|(r, c)| c.as_ref().unwrap_or(&r.builtin)).collect();
        let requests: Vec<PluginRequest<'_>> = batch
            .iter()
            .zip(&bases)
            .map(|(r, base)| PluginRequest { user: r.user.as_str(), inputs: &r.inputs, now_ms: r.now, builtin: base })
            .collect();
        let started = Instant::now();
        let answers = p.derive_many_blocking(&requests);
        metrics.plugin_wait(&p.manifest().name, started.elapsed());
        let mut derived = Vec::with_capacity(batch.len());
        for answer in answers {
            derived.push(match answer {
                Ok(Some(d)) if d.custom.as_ref().is_none_or(|c| plugins.catalog.iter().any(|s| &s.id == c)) => Some(d),
                Ok(Some(_)) => {
                    tracing::debug!(plugin = %p.manifest().name, "derived an unknown custom state; ignored");
                    None
                }
                Ok(None) | Err(_) => None,
            });
        }
        for (slot, d) in current.iter_mut().zip(derived) {
            if d.is_some() {
                *slot = d;
            }
        }
    }
    current
}

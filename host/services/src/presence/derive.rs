//! Presence plugins, off the shards: one thread runs the enabled plugins' `derive` for the
//! requests the shards send, first come first served, and hands each answer back to the shard
//! that asked. Requests queued for the same user collapse into the latest (the engine ignores
//! answers to older ones), so a slow plugin falls behind by at most one derivation per user,
//! and no shard ever waits for it.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc;
use std::sync::{Arc, RwLock, Weak};
use std::time::Instant;

use halo_core::Username;
use halo_core::presence::engine::{DeriveRequest, Input};
use halo_core::presence::{CustomState, Published};
use halo_plugin_host::Plugin;

use super::shards::World;
use crate::metrics::Metrics;

/// Enabled presence plugins, in install order, with the state catalog they make.
#[derive(Default)]
pub(super) struct Plugins {
    pub list: Vec<Arc<Plugin>>,
    /// Config states, then each plugin's (ids already taken are skipped).
    pub catalog: Arc<Vec<CustomState>>,
}

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
                let Some(user) = order.pop_front() else { break };
                let Some(r) = latest.remove(&user) else { continue };
                let current = plugins.read().unwrap_or_else(|p| p.into_inner()).clone();
                let result = derive(&current, &r, &metrics);
                let Some(world) = world.upgrade() else { return };
                world.send(Input::Derived { user, seq: r.seq, result }, None);
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

/// Runs the plugins over the built-in result, each over the previous one's; a failing plugin is
/// skipped, and an answer must name a known state. `None` when no plugin answered.
fn derive(plugins: &Plugins, r: &DeriveRequest, metrics: &Metrics) -> Option<Published> {
    let mut current: Option<Published> = None;
    for p in &plugins.list {
        let started = Instant::now();
        let base = current.as_ref().unwrap_or(&r.builtin);
        let result = p.derive(r.user.as_str(), &r.inputs, r.now, base);
        metrics.plugin_call(&p.manifest().name, started.elapsed(), result.as_ref().err());
        match result {
            Ok(Some(derived)) if derived.custom.as_ref().is_none_or(|c| plugins.catalog.iter().any(|s| &s.id == c)) => {
                current = Some(derived)
            }
            Ok(Some(_)) => tracing::debug!(plugin = %p.manifest().name, "derived an unknown custom state; ignored"),
            Ok(None) | Err(_) => {}
        }
    }
    current
}

//! Plugins across the pool: a plugin installed, upgraded, configured, enabled, disabled or
//! removed through one node runs the same way on every node.
//!
//! The records and components are in the pool's shared state (the plugin records bucket and
//! the object store); what each node must do is load again what changed. A node that made a
//! change publishes `halo.<pool>.plugins` (its name); the others [`PluginService::resync`]: they
//! read every record and load those that differ from what runs. They also resync every ten
//! seconds, for a notice lost while a node was reconnecting, or a record that reached the
//! node's replica of the bucket after the notice.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::Pool;
use crate::plugins::PluginService;

/// Tells the other nodes of changes made here, and follows theirs.
pub async fn follow(pool: &Arc<Pool>, plugins: &Arc<PluginService>) -> anyhow::Result<()> {
    let cluster = pool.cluster().clone();
    let subject = cluster.subject("plugins");
    let mut notices = cluster.client().subscribe(subject.clone()).await?;
    let me = pool.node().to_owned();
    let (client, node) = (cluster.client().clone(), me.clone());
    plugins.on_change(Box::new(move || {
        let (client, subject, node) = (client.clone(), subject.clone(), node.clone());
        tokio::spawn(async move {
            let _ = client.publish(subject, node.into_bytes().into()).await;
        });
    }));
    let weak = Arc::downgrade(plugins);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = notices.next() => match msg {
                    Some(m) if m.payload.as_ref() == me.as_bytes() => continue,
                    Some(_) => {}
                    None => break,
                },
                _ = every.tick() => {}
            }
            let Some(plugins) = weak.upgrade() else { break };
            if let Err(e) = plugins.resync().await {
                tracing::warn!(error = %e, "following plugin changes of the pool");
            }
        }
    });
    Ok(())
}

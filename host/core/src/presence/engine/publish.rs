//! Recomputation, plugin derivation, timers, coalescing and fan-out.

use std::cmp::Reverse;
use std::sync::Arc;

use super::{Audience, DeriveRequest, Effect, Engine, Publication, Recipient, Viewer};
use crate::presence::{CustomState, Published, Visibility, aggregate};
use crate::{Millis, Username};

impl Engine {
    /// Marks `user` for publication at the next flush.
    pub(super) fn mark_dirty(&mut self, user: &Username, now: Millis) {
        self.dirty.insert(user.clone());
        if self.flush_at.is_none() {
            self.flush_at = Some(now.saturating_add(self.cfg.coalesce_ms));
        }
    }

    fn set_published(&mut self, user: &Username, published: Published, now: Millis) {
        let Some(entry) = self.entries.get_mut(user) else { return };
        if entry.snap.published != published {
            let snap = entry.snap_mut();
            snap.published = published;
            snap.since = now;
            self.mark_dirty(user, now);
        }
    }

    /// Aggregates `user`'s sources; with plugins, asks for a derivation and lets the built-in
    /// state stand meanwhile (or the last derived one, if the built-in state did not change).
    pub(super) fn recompute(&mut self, user: &Username, now: Millis) {
        self.recompute_as(user, now, false);
    }

    /// As [`Engine::recompute`]; `fresh` lets the built-in state stand while waiting even if it
    /// did not change (the plugins did).
    fn recompute_as(&mut self, user: &Username, now: Millis, fresh: bool) {
        let derive = self.derive;
        let timers = self.cfg.timers;
        let Some(entry) = self.entries.get_mut(user) else { return };
        let inputs = entry.inputs();
        let (builtin, next) = aggregate(&inputs, now, &timers);
        if next != entry.deadline {
            entry.deadline = next;
            if let Some(at) = next {
                self.deadlines.push(Reverse((at, user.clone())));
            }
        }
        let shown =
            if derive && !fresh && builtin == entry.builtin { entry.snap.published.clone() } else { builtin.clone() };
        entry.builtin = builtin.clone();
        if derive {
            self.next_seq += 1;
            entry.derive_seq = self.next_seq;
            let request = DeriveRequest { user: user.clone(), seq: self.next_seq, inputs, now, builtin };
            self.emit(Effect::Derive(request));
        }
        self.set_published(user, shown, now);
    }

    /// Takes the plugins' answer if it is the latest asked for; a state outside the catalog
    /// counts as no answer.
    pub(super) fn derived(&mut self, user: Username, seq: u64, result: Option<Published>, now: Millis) {
        let Some(entry) = self.entries.get_mut(&user) else { return };
        if seq != entry.derive_seq || !self.derive {
            return;
        }
        let known = |p: &Published| p.custom.as_ref().is_none_or(|c| self.catalog.iter().any(|s| &s.id == c));
        let published = result.filter(known).unwrap_or_else(|| entry.builtin.clone());
        self.set_published(&user, published, now);
    }

    /// Every held user is republished (the catalog's labels may have changed) and derived anew.
    pub(super) fn plugins(&mut self, catalog: Arc<Vec<CustomState>>, derive: bool, tick_ms: Option<u64>, now: Millis) {
        self.catalog = catalog;
        self.derive = derive;
        self.plugin_tick = tick_ms.filter(|_| derive).map(|every| (every, now.saturating_add(every)));
        let mut users: Vec<Username> = self.entries.keys().cloned().collect();
        users.sort();
        for u in &users {
            if let Some(entry) = self.entries.get_mut(u) {
                entry.snap_mut().custom = self.catalog.clone();
            }
            self.mark_dirty(u, now);
            self.recompute_as(u, now, true);
        }
    }

    /// Fires the plugin tick and due timers, then publishes the dirty users if it is time.
    pub(super) fn tick(&mut self, now: Millis) {
        if let Some((every, next)) = self.plugin_tick
            && next <= now
        {
            self.plugin_tick = Some((every, now.saturating_add(every)));
            let mut online: Vec<Username> =
                self.entries.iter().filter(|(_, e)| e.online()).map(|(u, _)| u.clone()).collect();
            online.sort();
            for u in &online {
                self.recompute(u, now);
            }
        }
        while let Some(Reverse((at, _))) = self.deadlines.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, user))) = self.deadlines.pop() else { break };
            if self.entries.get(&user).is_some_and(|e| e.deadline == Some(at)) {
                self.recompute(&user, now);
            }
        }
        if self.flush_at.is_some_and(|at| at <= now) {
            self.flush_at = None;
            for target in std::mem::take(&mut self.dirty) {
                self.fan_out(&target, now);
            }
        }
    }

    /// Publishes `target` to its own devices, its watchers, the endpoints subscribed to it
    /// (expired subscriptions are dropped) and its remote followers, grouped by visibility.
    fn fan_out(&mut self, target: &Username, now: Millis) {
        let Some(entry) = self.entries.get(target) else { return };
        let mut audiences =
            vec![Audience { visibility: Visibility::Own, to: vec![Recipient::Devices(target.clone())] }];
        let mut add = |visibility: Visibility, to: Recipient| {
            if !visibility.hears_changes() {
                return;
            }
            match audiences.iter_mut().find(|a| a.visibility == visibility) {
                Some(a) => a.to.push(to),
                None => audiences.push(Audience { visibility, to: vec![to] }),
            }
        };
        for w in self.watchers.get(target).into_iter().flatten() {
            add(entry.visibility(&Viewer::User(w.clone())), Recipient::Devices(w.clone()));
        }
        if let Some(subs) = self.adhoc.get_mut(target) {
            subs.retain(|_, (_, expires)| *expires > now);
            for (endpoint, (user, _)) in subs.iter() {
                let to = Recipient::Endpoint { user: user.clone(), endpoint: *endpoint };
                add(entry.visibility(&Viewer::User(user.clone())), to);
            }
            if subs.is_empty() {
                self.adhoc.remove(target);
            }
        }
        for f in self.followers.get(target).into_iter().flatten() {
            add(entry.visibility(&Viewer::User(f.clone())), Recipient::Follower(f.clone()));
        }
        let publication = Publication { target: target.clone(), snapshot: entry.snap.clone(), audiences };
        self.emit(Effect::Publish(publication));
    }
}

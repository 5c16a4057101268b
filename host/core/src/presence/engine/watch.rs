//! Who hears of whom: the watcher index, ad-hoc endpoint subscriptions, remote followers, and
//! remote users' presence.

use std::collections::{BTreeMap, BTreeSet};

use super::{Answer, Audience, Effect, Engine, Input, Publication, Recipient, Refusal, Req, Viewer, shard_of};
use crate::federation::PresenceInfo;
use crate::{Millis, Username};

impl Engine {
    pub(super) fn watch(&mut self, target: Username, watcher: Username, on: bool) {
        if on {
            self.watchers.entry(target).or_default().insert(watcher);
        } else if let Some(ws) = self.watchers.get_mut(&target) {
            ws.remove(&watcher);
            if ws.is_empty() {
                self.watchers.remove(&target);
            }
        }
    }

    /// Shard `shard` starts afresh: the online users held here tell it again whom of its users
    /// they watch.
    pub(super) fn rewatch(&mut self, shard: usize, now: Millis) {
        let shards = self.cfg.shards;
        let mut sends = Vec::new();
        for entry in self.entries.values().filter(|e| e.online()) {
            for c in entry.contacts.contacts.keys().filter(|c| !c.is_remote() && shard_of(c, shards) == shard) {
                sends.push(Input::Watch { target: c.clone(), watcher: entry.username().clone(), on: true });
            }
        }
        for input in sends {
            self.send(input, now);
        }
    }

    /// Tells a new watcher how the target looks now, if they still watch.
    pub(super) fn greet(&mut self, target: Username, watcher: Username) {
        if !self.watchers.get(&target).is_some_and(|ws| ws.contains(&watcher)) {
            return;
        }
        if target.is_remote() {
            let (info, since) = self.remote.get(&target).map_or((None, 0), |(i, s)| (Some(i.clone()), *s));
            self.emit(Effect::PublishRemote { remote: target, info, since, to: vec![watcher] });
            return;
        }
        let Some(entry) = self.entries.get(&target) else { return };
        let visibility = entry.visibility(&Viewer::User(watcher.clone()));
        if visibility.hears_changes() {
            let publication = Publication {
                target,
                snapshot: entry.snap.clone(),
                audiences: vec![Audience { visibility, to: vec![Recipient::Devices(watcher)] }],
            };
            self.emit(Effect::Publish(publication));
        }
    }

    pub(super) fn adhoc(&mut self, target: Username, endpoint: u64, subscriber: Username, expires: Option<Millis>) {
        match expires {
            Some(at) => {
                self.adhoc.entry(target).or_default().insert(endpoint, (subscriber, at));
            }
            None => {
                if let Some(subs) = self.adhoc.get_mut(&target) {
                    subs.remove(&endpoint);
                    if subs.is_empty() {
                        self.adhoc.remove(&target);
                    }
                }
            }
        }
    }

    /// Expired subscriptions do not count against the limit.
    pub(super) fn subscribe(
        &mut self,
        user: Username,
        endpoint: u64,
        targets: Vec<Username>,
        ttl_ms: u64,
        req: Req,
        now: Millis,
    ) {
        let expires = now.saturating_add(ttl_ms.min(self.cfg.subscription_ttl_ms));
        let targets: BTreeSet<Username> = targets.into_iter().collect();
        let subs = self.subscriptions.entry(endpoint).or_default();
        subs.retain(|_, until| *until > now);
        let has = subs.len();
        let new = targets.iter().filter(|t| !subs.contains_key(*t)).count();
        if has + new > self.cfg.max_subscriptions {
            if subs.is_empty() {
                self.subscriptions.remove(&endpoint);
            }
            let max = self.cfg.max_subscriptions;
            self.reply(req, Answer::Refused(Refusal::TooManySubscriptions { max, has }));
            return;
        }
        for t in &targets {
            subs.insert(t.clone(), expires);
        }
        for target in targets {
            let input = Input::Adhoc { target, endpoint, subscriber: user.clone(), expires: Some(expires) };
            self.send(input, now);
        }
        self.reply(req, Answer::Done);
    }

    pub(super) fn unsubscribe(&mut self, user: Username, endpoint: u64, targets: Vec<Username>, now: Millis) {
        let Some(subs) = self.subscriptions.get_mut(&endpoint) else { return };
        let gone: Vec<Username> = targets.into_iter().filter(|t| subs.remove(t).is_some()).collect();
        if subs.is_empty() {
            self.subscriptions.remove(&endpoint);
        }
        for target in gone {
            self.send(Input::Adhoc { target, endpoint, subscriber: user.clone(), expires: None }, now);
        }
    }

    pub(super) fn remote_followers(&mut self, all: BTreeMap<Username, Vec<Username>>) {
        self.followers = all
            .into_iter()
            .filter(|(local, _)| self.owns(local))
            .map(|(local, remotes)| (local, remotes.into_iter().collect()))
            .collect();
    }

    pub(super) fn remote_follower(&mut self, local: Username, remote: Username, on: bool) {
        if on {
            self.followers.entry(local).or_default().insert(remote);
        } else if let Some(set) = self.followers.get_mut(&local) {
            set.remove(&remote);
            if set.is_empty() {
                self.followers.remove(&local);
            }
        }
    }

    /// Kept, and shown to every online local user with them in their contacts; `None` after
    /// a known state makes it unknown again.
    pub(super) fn remote_presence(&mut self, remote: Username, info: Option<PresenceInfo>, now: Millis) {
        let since = match info {
            Some(ref i) => {
                self.remote.insert(remote.clone(), (i.clone(), now));
                now
            }
            None if self.remote.remove(&remote).is_none() => return,
            None => 0,
        };
        let to: Vec<Username> = self.watchers.get(&remote).map(|ws| ws.iter().cloned().collect()).unwrap_or_default();
        self.emit(Effect::PublishRemote { remote, info, since, to });
    }
}

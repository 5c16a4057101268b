//! Inputs about one held user: devices, document, contacts, account, and the questions asked
//! of them.

use std::collections::{BTreeMap, BTreeSet};

use super::{
    Answer, Audience, ContactEdit, DocPatch, Effect, Engine, Input, Publication, Recipient, Refusal, Req, Seen, Viewer,
};
use crate::presence::{AccessLevel, Band, Machine, MachineState, Visibility};
use crate::{Millis, Username};

impl Engine {
    /// The owner's own view.
    fn own(&self, user: &Username) -> Seen {
        match self.entries.get(user) {
            Some(e) => Seen::Local { snapshot: e.snap.clone(), visibility: Visibility::Own },
            None => Seen::Missing(user.clone()),
        }
    }

    fn save_document(&mut self, user: &Username) {
        if let Some(e) = self.entries.get(user) {
            let doc = e.snap.doc.clone();
            self.emit(Effect::SaveDocument { user: user.clone(), doc });
        }
    }

    pub(super) fn connect(&mut self, user: Username, endpoint: u64, req: Req, now: Millis) {
        let Some(entry) = self.entries.get_mut(&user) else { return };
        let first = !entry.online();
        entry.endpoints.insert(endpoint, Machine { state: MachineState::Active, since: now });
        entry.lingering = None;
        entry.snap_mut().doc.last_active = Some(now);
        let contacts: Vec<Username> = entry.contacts.contacts.keys().cloned().collect();
        self.save_document(&user);
        if first {
            for c in &contacts {
                self.send(Input::Watch { target: c.clone(), watcher: user.clone(), on: true }, now);
            }
        }
        self.recompute(&user, now);
        self.mark_dirty(&user, now);
        let me = self.own(&user);
        self.reply(req, Answer::Connected { me, contacts });
    }

    pub(super) fn disconnect(&mut self, user: Username, endpoint: u64, now: Millis) {
        if let Some(targets) = self.subscriptions.remove(&endpoint) {
            for target in targets.into_keys() {
                self.send(Input::Adhoc { target, endpoint, subscriber: user.clone(), expires: None }, now);
            }
        }
        let Some(entry) = self.entries.get_mut(&user) else { return };
        let Some(machine) = entry.endpoints.remove(&endpoint) else { return };
        if !entry.online() {
            entry.lingering = Some((machine, now));
            let contacts: Vec<Username> = entry.contacts.contacts.keys().cloned().collect();
            for c in contacts {
                self.send(Input::Watch { target: c, watcher: user.clone(), on: false }, now);
            }
        }
        self.recompute(&user, now);
    }

    /// A report from an endpoint that is not connected (it raced its disconnect) changes
    /// nothing: it would bring a device back that is gone.
    pub(super) fn machine(&mut self, user: Username, endpoint: u64, state: MachineState, req: Req, now: Millis) {
        let Some(entry) = self.entries.get_mut(&user) else { return };
        if let Some(m) = entry.endpoints.get_mut(&endpoint) {
            *m = Machine { state, since: now };
            if state == MachineState::Active {
                entry.snap_mut().doc.last_active = Some(now);
                self.save_document(&user);
            }
            self.recompute(&user, now);
        }
        let me = self.own(&user);
        self.reply(req, Answer::Seen(me));
    }

    pub(super) fn update(&mut self, user: Username, patch: DocPatch, req: Req, now: Millis) {
        if let Some(Some(m)) = &patch.manual
            && m.until.is_some_and(|u| u <= now)
        {
            self.reply(req, Answer::Refused(Refusal::UntilInPast));
            return;
        }
        let Some(entry) = self.entries.get_mut(&user) else { return };
        let mut doc = entry.snap.doc.clone();
        patch.apply(&mut doc);
        if doc != entry.snap.doc {
            entry.snap_mut().doc = doc;
            self.save_document(&user);
            self.mark_dirty(&user, now);
            self.recompute(&user, now);
        }
        let me = self.own(&user);
        self.reply(req, Answer::Seen(me));
    }

    pub(super) fn edit_contacts(&mut self, owner: Username, edit: ContactEdit, req: Req, now: Millis) {
        let max = self.cfg.max_contacts;
        let Some(entry) = self.entries.get_mut(&owner) else { return };
        let mut list = entry.contacts.clone();
        if let Err(e) = edit.apply(&owner, &mut list, max, now) {
            self.reply(req, Answer::Refused(e.into()));
            return;
        }
        if list == entry.contacts {
            self.reply(req, Answer::Contacts(list));
            return;
        }
        let before_levels: BTreeMap<Username, AccessLevel> =
            entry.contacts.contacts.iter().map(|(u, c)| (u.clone(), c.level)).collect();
        let before: BTreeSet<Username> = before_levels.keys().cloned().collect();
        let after: BTreeSet<Username> = list.contacts.keys().cloned().collect();
        let online = entry.online();
        entry.contacts = list.clone();
        self.emit(Effect::SaveContacts { user: owner.clone(), list: list.clone() });
        if online {
            for gone in before.difference(&after) {
                self.send(Input::Watch { target: gone.clone(), watcher: owner.clone(), on: false }, now);
            }
            for new in after.difference(&before) {
                self.send(Input::Watch { target: new.clone(), watcher: owner.clone(), on: true }, now);
                self.send(Input::Greet { target: new.clone(), watcher: owner.clone() }, now);
            }
        }
        self.tell_blocked(&owner, &before_levels);
        // Levels may have changed: everyone who hears of the owner hears again.
        self.mark_dirty(&owner, now);
        self.reply(req, Answer::Contacts(list));
    }

    /// Watchers and remote followers of `owner` just put at Blocked hear no more changes: they
    /// are told once that the owner is Offline, as a Blocked contact always sees them (a remote
    /// follower's server keeps that unavailable presence, since nothing follows it).
    fn tell_blocked(&mut self, owner: &Username, before: &BTreeMap<Username, AccessLevel>) {
        let Some(entry) = self.entries.get(owner) else { return };
        let watchers = self.watchers.get(owner);
        let followers = self.followers.get(owner);
        let blocked = Visibility::Level(AccessLevel::Blocked);
        let newly: Vec<Recipient> = entry
            .contacts
            .contacts
            .iter()
            .filter(|(u, c)| c.level == AccessLevel::Blocked && before.get(*u) != Some(&AccessLevel::Blocked))
            .filter_map(|(u, _)| {
                if followers.is_some_and(|f| f.contains(u)) {
                    Some(Recipient::Follower(u.clone()))
                } else if watchers.is_some_and(|w| w.contains(u)) {
                    Some(Recipient::Devices(u.clone()))
                } else {
                    None
                }
            })
            .collect();
        if !newly.is_empty() {
            let audiences = vec![Audience { visibility: blocked, to: newly }];
            let publication = Publication { target: owner.clone(), snapshot: entry.snap.clone(), audiences };
            self.emit(Effect::Publish(publication));
        }
    }

    /// The account changed in the store: reload it if held (the load then republishes).
    pub(super) fn account_changed(&mut self, user: Username) {
        if self.entries.contains_key(&user) && self.loading.insert(user.clone()) {
            self.emit(Effect::Load { user });
        }
    }

    pub(super) fn look(&mut self, targets: Vec<Username>, viewer: Viewer, req: Req) {
        let views = targets
            .into_iter()
            .map(|t| {
                if t.is_remote() {
                    let (info, since) = self.remote.get(&t).map_or((None, 0), |(i, s)| (Some(i.clone()), *s));
                    return Seen::Remote { user: t, info, since };
                }
                match self.entries.get(&t) {
                    Some(e) => Seen::Local { snapshot: e.snap.clone(), visibility: e.visibility(&viewer) },
                    None => Seen::Missing(t),
                }
            })
            .collect();
        self.reply(req, Answer::Views(views));
    }

    pub(super) fn contacts(&mut self, owner: Username, req: Req) {
        if let Some(e) = self.entries.get(&owner) {
            let list = e.contacts.clone();
            self.reply(req, Answer::Contacts(list));
        }
    }

    pub(super) fn reach(&mut self, from: Username, to: Username, req: Req) {
        // A remote recipient's server decides; federation has checked the domain.
        let answer = match self.entries.get(&to) {
            None => Answer::Done,
            Some(e) => {
                let level = e.contacts.level_of(&from);
                if level == Some(AccessLevel::Blocked) {
                    Answer::Refused(Refusal::Blocked(to))
                } else if Band::of(e.snap.published.availability) == Band::DoNotDisturb
                    && !level.is_some_and(AccessLevel::interrupts_dnd)
                {
                    Answer::Refused(Refusal::DoNotDisturb(to))
                } else {
                    Answer::Done
                }
            }
        };
        self.reply(req, answer);
    }
}

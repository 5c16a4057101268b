//! The table-test driver: a simulated server of one or more shards. Steps are (time, input);
//! the driver answers loads from a fixture store at once, routes sends to their shards, and
//! delivers the ticks each shard asked for when their time comes. Everything the shards do is
//! rendered as text, one effect a line, and compared with the expected text.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;

use crate::contacts::ContactList;
use crate::presence::engine::{
    Answer, Config, ContactEdit, DocPatch, Effect, Engine, Input, Recipient, Req, Seen, Stored, Viewer,
};
use crate::presence::{
    AccessLevel, Calendar, CalendarActivity, CustomState, Document, Field, MachineState, Manual, Phone, Published,
    StateChoice, Visibility,
};
use crate::user::Profile;
use crate::{Millis, User, Username};

pub fn u(name: &str) -> Username {
    Username::parse_address(name).expect("test username")
}

fn account(name: &str) -> User {
    User {
        username: u(name),
        profile: Profile { display_name: Some(name.to_uppercase()), ..Profile::default() },
        roles: Default::default(),
        disabled: false,
        password_hash: String::new(),
        created_at: 0,
        updated_at: 0,
    }
}

pub fn focusing() -> CustomState {
    CustomState {
        id: "focusing".into(),
        labels: [("en".into(), "Focusing".into())].into(),
        availability: 6500,
        colour: "#8e44ad".into(),
    }
}

/// A simulated presence service.
pub struct Sim {
    shards: Vec<Engine>,
    wakes: Vec<Option<Millis>>,
    store: BTreeMap<Username, Stored>,
    broken: Vec<Username>,
    log: String,
}

impl Sim {
    /// One shard, default settings.
    pub fn new() -> Self {
        Self::with(Config::default(), 1)
    }

    /// `shards` shards with `cfg`.
    pub fn with(cfg: Config, shards: usize) -> Self {
        let engines = (0..shards).map(|shard| Engine::new(Config { shard, shards, ..cfg.clone() })).collect();
        Self {
            shards: engines,
            wakes: vec![None; shards],
            store: BTreeMap::new(),
            broken: Vec::new(),
            log: String::new(),
        }
    }

    /// Accounts with empty documents and lists.
    pub fn users(mut self, names: &[&str]) -> Self {
        for n in names {
            let stored = Stored { account: account(n), doc: Document::default(), contacts: ContactList::default() };
            self.store.insert(u(n), stored);
        }
        self
    }

    /// `owner` has `who` at `level`.
    pub fn contact(mut self, owner: &str, who: &str, level: AccessLevel) -> Self {
        let s = self.store.get_mut(&u(owner)).expect("owner in fixture");
        s.contacts.add(&u(owner), &u(who), None, level, 1000, 0).expect("add contact");
        self
    }

    /// Changes `owner`'s stored document.
    pub fn doc(mut self, owner: &str, f: impl FnOnce(&mut Document)) -> Self {
        f(&mut self.store.get_mut(&u(owner)).expect("owner in fixture").doc);
        self
    }

    /// Loads of `name` fail.
    pub fn broken(mut self, name: &str) -> Self {
        self.broken.push(u(name));
        self
    }

    /// Runs `steps` and compares the rendering with `expect` (leading and trailing blank
    /// lines and each line's indentation beyond the first line's are ignored).
    #[track_caller]
    pub fn check(mut self, steps: Vec<(Millis, Input)>, expect: &str) {
        for (t, input) in steps {
            self.advance(t);
            if input == Input::Tick {
                continue;
            }
            let _ = writeln!(self.log, "@{t} {}", describe(&input, self.shards.len()));
            let mut lines = String::new();
            self.deliver(input, t, &mut lines);
            self.log.push_str(&lines);
        }
        let want = dedent(expect);
        let got = self.log.trim_end().to_owned();
        if want != got {
            if std::env::var_os("UPDATE_EXPECT").is_some() {
                update_expect(std::panic::Location::caller(), &got);
                return;
            }
            panic!("\n--- expected\n{want}\n--- got\n{got}\n---\n(UPDATE_EXPECT=1 rewrites it)\n");
        }
    }

    /// Delivers every tick due by `t`, in time order.
    fn advance(&mut self, t: Millis) {
        loop {
            let due =
                self.wakes.iter().enumerate().filter_map(|(s, w)| w.map(|w| (w, s))).filter(|(w, _)| *w <= t).min();
            let Some((at, shard)) = due else { break };
            self.wakes[shard] = None;
            let mut lines = String::new();
            self.deliver_to(shard, Input::Tick, at, &mut lines);
            if !lines.is_empty() {
                let tag = if self.shards.len() > 1 { format!(" s{shard}") } else { String::new() };
                let _ = writeln!(self.log, "@{at} tick{tag}");
                self.log.push_str(&lines);
            }
        }
    }

    fn deliver(&mut self, input: Input, now: Millis, lines: &mut String) {
        match input.shard(self.shards.len()) {
            Some(s) => self.deliver_to(s, input, now, lines),
            None => {
                for s in 0..self.shards.len() {
                    self.deliver_to(s, input.clone(), now, lines);
                }
            }
        }
    }

    fn deliver_to(&mut self, shard: usize, input: Input, now: Millis, lines: &mut String) {
        let multi = self.shards.len() > 1;
        let mut queue = VecDeque::from([(shard, input)]);
        while let Some((s, input)) = queue.pop_front() {
            // Loads are answered before anything else queued, in the order asked.
            let mut loads = Vec::new();
            for effect in self.shards[s].apply(input, now) {
                let tag = if multi { format!("s{s} ") } else { String::new() };
                match effect {
                    Effect::Wake(w) => self.wakes[s] = w,
                    Effect::Load { user } => {
                        let _ = writeln!(lines, "  {tag}load {user}");
                        let result = if self.broken.contains(&user) {
                            Err("disk on fire".to_owned())
                        } else {
                            Ok(self.store.get(&user).cloned().map(Box::new))
                        };
                        loads.push((s, Input::Loaded { user, result }));
                    }
                    Effect::Send(input) => {
                        let to = input.shard(self.shards.len()).unwrap_or(s);
                        let _ = writeln!(lines, "  {tag}send s{to} {}", describe(&input, 1));
                        queue.push_back((to, input));
                    }
                    Effect::SaveDocument { user, doc } => {
                        let _ = writeln!(lines, "  {tag}save-doc {user}");
                        if let Some(s) = self.store.get_mut(&user) {
                            s.doc = doc;
                        }
                    }
                    Effect::SaveContacts { user, list } => {
                        let _ = writeln!(lines, "  {tag}save-contacts {user} {}", render_list(&list));
                        if let Some(s) = self.store.get_mut(&user) {
                            s.contacts = list;
                        }
                    }
                    other => {
                        let _ = writeln!(lines, "  {tag}{}", render(&other));
                    }
                }
            }
            for l in loads.into_iter().rev() {
                queue.push_front(l);
            }
        }
    }
}

/// Lines added to each test file by updates so far: (original line, lines added there).
static UPDATED: std::sync::Mutex<Vec<(String, u32, i64)>> = std::sync::Mutex::new(Vec::new());

/// Rewrites the expectation of the `check` called at `at` (the first string literal after the
/// call that opens and closes on lines of its own) with `got`.
fn update_expect(at: &std::panic::Location<'_>, got: &str) {
    let mut updated = UPDATED.lock().unwrap_or_else(|p| p.into_inner());
    let mut path = std::path::PathBuf::from(at.file());
    if !path.exists() {
        path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(at.file());
    }
    let text = std::fs::read_to_string(&path).expect("read test file");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let shift: i64 = updated.iter().filter(|(f, l, _)| f == at.file() && *l < at.line()).map(|(_, _, d)| d).sum();
    let from = (i64::from(at.line()) - 1 + shift).max(0) as usize;
    let is_open = |l: &str| matches!(l.trim(), "\"" | "r#\"");
    let is_close = |l: &str| matches!(l.trim(), "\"," | "\"#," | "\"" | "\"#");
    let start = (from..lines.len()).find(|&i| is_open(&lines[i])).expect("expectation literal");
    let end = (start + 1..lines.len()).find(|&i| is_close(&lines[i])).expect("end of expectation");
    let indent: String = lines[start].chars().take_while(|c| *c == ' ').collect();
    let raw = got.contains('"');
    let mut new = vec![format!("{indent}{}", if raw { "r#\"" } else { "\"" })];
    new.extend(got.lines().map(|l| if l.is_empty() { String::new() } else { format!("{indent}{l}") }));
    let tail = lines[end].trim().trim_start_matches('"').trim_start_matches('#').to_owned();
    new.push(format!("{indent}{}{tail}", if raw { "\"#" } else { "\"" }));
    let delta = new.len() as i64 - (end + 1 - start) as i64;
    lines.splice(start..=end, new);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write test file");
    updated.push((at.file().to_owned(), at.line(), delta));
}

fn dedent(s: &str) -> String {
    let lines: Vec<&str> = s.lines().skip_while(|l| l.trim().is_empty()).collect();
    let indent = lines.first().map_or(0, |l| l.len() - l.trim_start().len());
    let out: Vec<&str> = lines.iter().map(|l| if l.len() >= indent { &l[indent..] } else { l.trim_start() }).collect();
    out.join("\n").trim_end().to_owned()
}

fn level(l: AccessLevel) -> &'static str {
    match l {
        AccessLevel::Blocked => "blocked",
        AccessLevel::External => "external",
        AccessLevel::Colleagues => "colleagues",
        AccessLevel::Workgroup => "workgroup",
        AccessLevel::FriendsAndFamily => "family",
    }
}

fn vis(v: Visibility) -> &'static str {
    match v {
        Visibility::Own => "own",
        Visibility::Level(l) => level(l),
        Visibility::Private => "private",
    }
}

fn state(p: &Published) -> String {
    let mut s = p.availability.to_string();
    if let Some(a) = p.activity {
        s.push(' ');
        s.push_str(&serde_json::to_value(a).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default());
    }
    if let Some(c) = &p.custom {
        let _ = write!(s, " custom:{c}");
    }
    s
}

/// What a viewer with `v` sees of `p` and its document: the availability (`?` unknown), the
/// activity and custom state if shown, and the note if shown.
fn seen_state(v: Visibility, p: &Published, doc: &Document) -> String {
    let Some(a) = v.availability(p.availability) else { return "?".into() };
    let shown = Published {
        availability: a,
        activity: p.activity.filter(|_| v.sees(Field::Activity)),
        custom: p.custom.clone().filter(|_| v.sees(Field::Activity)),
    };
    let mut s = state(&shown);
    if let Some(n) = doc.note.as_ref().filter(|_| v.sees(Field::Note)) {
        let _ = write!(s, " note:{}", n.replace(' ', "_"));
    }
    if let Some(m) = doc.mobile_phone.as_ref().filter(|_| v.sees(Field::MobilePhone)) {
        let _ = write!(s, " mobile:{m}");
    }
    s
}

fn recipient(r: &Recipient) -> String {
    match r {
        Recipient::Devices(u) => u.to_string(),
        Recipient::Endpoint { user, endpoint } => format!("{user}#{endpoint}"),
        Recipient::Follower(f) => format!("follower:{f}"),
    }
}

fn render_seen(s: &Seen) -> String {
    match s {
        Seen::Local { snapshot, visibility } => {
            let name = &snapshot.user.username;
            format!("{name} {} {}", vis(*visibility), seen_state(*visibility, &snapshot.published, &snapshot.doc))
        }
        Seen::Remote { user, info: Some(i), since } => format!("{user} remote {} since={since}", i.state),
        Seen::Remote { user, info: None, .. } => format!("{user} remote unknown"),
        Seen::Missing(u) => format!("{u} missing"),
    }
}

fn render_list(list: &ContactList) -> String {
    let items: Vec<String> = list.contacts.iter().map(|(u, c)| format!("{u}:{}", level(c.level))).collect();
    format!("[{}]", items.join(" "))
}

fn render(e: &Effect) -> String {
    match e {
        Effect::Publish(p) => {
            let mut s = format!("publish {} {} since={}", p.target, state(&p.snapshot.published), p.snapshot.since);
            for a in &p.audiences {
                let to: Vec<String> = a.to.iter().map(recipient).collect();
                let seen = seen_state(a.visibility, &p.snapshot.published, &p.snapshot.doc);
                let _ = write!(s, "\n    {} {seen} -> {}", vis(a.visibility), to.join(" "));
            }
            s
        }
        Effect::PublishRemote { remote, info, since, to } => {
            let st = info.as_ref().map_or("unknown", |i| i.state.as_str());
            let to: Vec<String> = to.iter().map(ToString::to_string).collect();
            format!("publish-remote {remote} {st} since={since} -> {}", to.join(" "))
        }
        Effect::Derive(d) => format!("derive {} #{} builtin={}", d.user, d.seq, state(&d.builtin)),
        Effect::Reply { answer, .. } => match answer {
            Answer::Done => "reply done".into(),
            Answer::Connected { me, contacts } => {
                let cs: Vec<String> = contacts.iter().map(ToString::to_string).collect();
                format!("reply connected {} contacts=[{}]", render_seen(me), cs.join(" "))
            }
            Answer::Seen(s) => format!("reply {}", render_seen(s)),
            Answer::Views(vs) => {
                let vs: Vec<String> = vs.iter().map(render_seen).collect();
                format!("reply views [{}]", vs.join(", "))
            }
            Answer::Contacts(list) => format!("reply contacts {}", render_list(list)),
            Answer::Refused(r) => format!("reply refused: {r}"),
        },
        other => format!("{other:?}"),
    }
}

fn describe(i: &Input, shards: usize) -> String {
    let viewer = |v: &Viewer| match v {
        Viewer::User(u) => u.to_string(),
        Viewer::App => "app".into(),
        Viewer::Anonymous => "anonymous".into(),
    };
    let names = |us: &[Username]| us.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ");
    let s = match i {
        Input::Connect { user, endpoint, .. } => format!("connect {user}#{endpoint}"),
        Input::Disconnect { user, endpoint } => format!("disconnect {user}#{endpoint}"),
        Input::Machine { user, endpoint, state, .. } => format!("machine {user}#{endpoint} {state:?}"),
        Input::Update { user, patch, .. } => format!("update {user} {}", describe_patch(patch)),
        Input::EditContacts { owner, edit, .. } => format!("edit-contacts {owner} {}", describe_edit(edit)),
        Input::AccountChanged { user } => format!("account-changed {user}"),
        Input::Subscribe { user, endpoint, targets, ttl_ms, .. } => {
            format!("subscribe {user}#{endpoint} [{}] ttl={ttl_ms}", names(targets))
        }
        Input::Unsubscribe { user, endpoint, targets } => format!("unsubscribe {user}#{endpoint} [{}]", names(targets)),
        Input::Look { targets, viewer: v, .. } => format!("look [{}] as {}", names(targets), viewer(v)),
        Input::Contacts { owner, .. } => format!("contacts {owner}"),
        Input::Reach { from, to, .. } => format!("reach {from} -> {to}"),
        Input::RemoteFollowers(all) => format!("remote-followers {}", all.len()),
        Input::RemoteFollower { local, remote, on } => format!("remote-follower {local} {}{remote}", sign(*on)),
        Input::RemotePresence { remote, info } => {
            format!("remote-presence {remote} {}", info.as_ref().map_or("unknown", |i| i.state.as_str()))
        }
        Input::Plugins { catalog, derive, tick_ms } => {
            format!("plugins catalog={} derive={derive} tick={tick_ms:?}", catalog.len())
        }
        Input::Derived { user, seq, result } => {
            format!("derived {user} #{seq} {}", result.as_ref().map_or("none".into(), state))
        }
        Input::Loaded { user, .. } => format!("loaded {user}"),
        Input::Watch { target, watcher, on } => format!("watch {target} {}{watcher}", sign(*on)),
        Input::Greet { target, watcher } => format!("greet {target} -> {watcher}"),
        Input::Adhoc { target, endpoint, subscriber, expires } => match expires {
            Some(at) => format!("adhoc {target} +{subscriber}#{endpoint} until={at}"),
            None => format!("adhoc {target} -{subscriber}#{endpoint}"),
        },
        Input::Rewatch { shard } => format!("rewatch {shard}"),
        Input::Tick => "tick".into(),
    };
    match i.shard(shards) {
        Some(k) if shards > 1 => format!("{s} (s{k})"),
        _ => s,
    }
}

fn describe_edit(e: &ContactEdit) -> String {
    match e {
        ContactEdit::Add { user, level: l, .. } => format!("add {user} {}", level(*l)),
        ContactEdit::Update { user, level: l, .. } => format!("update {user} {}", l.map_or("-", level)),
        ContactEdit::Remove { user } => format!("remove {user}"),
        ContactEdit::Block { user } => format!("block {user}"),
        ContactEdit::Unblock { user } => format!("unblock {user}"),
        other => format!("{other:?}"),
    }
}

fn describe_patch(p: &DocPatch) -> String {
    let mut s = Vec::new();
    if let Some(m) = &p.manual {
        s.push(match m {
            Some(m) => format!(
                "manual={} until={:?}",
                state(&Published {
                    availability: m.choice.availability,
                    activity: m.choice.activity,
                    custom: m.choice.custom.clone(),
                }),
                m.until
            ),
            None => "manual=none".into(),
        });
    }
    if let Some(c) = &p.calendar {
        s.push(format!("calendar={:?}", c.as_ref().map(|c| (c.activity, c.until))));
    }
    if let Some(ph) = &p.phone {
        s.push(format!("phone={ph:?}"));
    }
    for (name, v) in [("note", &p.note), ("mobile", &p.mobile_phone)] {
        if let Some(v) = v {
            s.push(format!("{name}={}", v.as_deref().unwrap_or("none")));
        }
    }
    if let Some(v) = p.privacy_mode {
        s.push(format!("privacy_mode={v}"));
    }
    s.join(" ")
}

fn sign(on: bool) -> &'static str {
    if on { "+" } else { "-" }
}

// Inputs, shortly.

pub fn connect(user: &str, endpoint: u64) -> Input {
    Input::Connect { user: u(user), endpoint, req: Req(0) }
}

pub fn disconnect(user: &str, endpoint: u64) -> Input {
    Input::Disconnect { user: u(user), endpoint }
}

pub fn machine(user: &str, endpoint: u64, state: MachineState) -> Input {
    Input::Machine { user: u(user), endpoint, state, req: Req(0) }
}

pub fn update(user: &str, patch: DocPatch) -> Input {
    Input::Update { user: u(user), patch, req: Req(0) }
}

pub fn manual(user: &str, token: &str, until: Option<Millis>) -> Input {
    let choice = StateChoice::from_token(token, &[focusing()]).expect("token");
    update(user, DocPatch { manual: Some(Some(Manual { choice, until })), ..DocPatch::default() })
}

pub fn note(user: &str, text: &str) -> Input {
    update(user, DocPatch { note: Some(Some(text.into())), ..DocPatch::default() })
}

pub fn meeting(user: &str, until: Option<Millis>) -> Input {
    let calendar = Calendar { activity: CalendarActivity::InAMeeting, until, subject: Some("Plans".into()) };
    update(user, DocPatch { calendar: Some(Some(calendar)), ..DocPatch::default() })
}

pub fn phone(user: &str, p: Option<Phone>) -> Input {
    update(user, DocPatch { phone: Some(p), ..DocPatch::default() })
}

pub fn edit(owner: &str, edit: ContactEdit) -> Input {
    Input::EditContacts { owner: u(owner), edit, req: Req(0) }
}

pub fn add(owner: &str, who: &str, level: AccessLevel) -> Input {
    edit(owner, ContactEdit::Add { user: u(who), group: None, level })
}

pub fn look(targets: &[&str], viewer: Viewer) -> Input {
    Input::Look { targets: targets.iter().map(|t| u(t)).collect(), viewer, req: Req(0) }
}

pub fn as_user(name: &str) -> Viewer {
    Viewer::User(u(name))
}

pub fn subscribe(user: &str, endpoint: u64, targets: &[&str], ttl_ms: u64) -> Input {
    Input::Subscribe { user: u(user), endpoint, targets: targets.iter().map(|t| u(t)).collect(), ttl_ms, req: Req(0) }
}

pub fn reach(from: &str, to: &str) -> Input {
    Input::Reach { from: u(from), to: u(to), req: Req(0) }
}

pub fn derived(user: &str, seq: u64, result: Option<Published>) -> Input {
    Input::Derived { user: u(user), seq, result }
}

pub fn plugins(derive: bool, tick_ms: Option<u64>) -> Input {
    Input::Plugins { catalog: std::sync::Arc::new(vec![focusing()]), derive, tick_ms }
}

/// Runs the clock to `t` (ticks due by then are delivered).
pub fn advance() -> Input {
    Input::Tick
}

pub fn published(availability: u32, custom: Option<&str>) -> Published {
    Published { availability, activity: None, custom: custom.map(str::to_owned) }
}

pub use MachineState::{Active, Away as AwayState, Inactive};

//! The IM log's entries and the snapshot of its projection.
//!
//! `log` (sequence, big-endian → [`FactV1`]): one entry per acknowledged IM write, built of
//! the records the old trees used (`MessageV1`, `ConversationV1`, `RecordV1`, `ItemV1`, …).
//! The snapshot file (`im-snapshot.v1`) is a [`SnapshotV1`]: the projection as of one entry.

use halo_core::Username;
use halo_core::im::{Acked, Amend, Amended, Change, Fact, ImState, Indexed, Outbound, Posted, Thread, UserIm};
use serde::{Deserialize, Serialize};

use super::archive::RecordV1;
use super::federation::ItemV1;
use super::im::{ConversationV1, FormatV1, InboxEntryV1, MessageV1};
use super::rooms::{RoomMarkV1, RoomV1};
use super::stored;

stored!(Fact => FactV1, ImState => SnapshotV1);

/// A thread.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ThreadV1 {
    Conversation(u64),
    Room(u64),
}

impl From<Thread> for ThreadV1 {
    fn from(t: Thread) -> Self {
        match t {
            Thread::Conversation(c) => Self::Conversation(c),
            Thread::Room(r) => Self::Room(r),
        }
    }
}

impl From<ThreadV1> for Thread {
    fn from(t: ThreadV1) -> Self {
        match t {
            ThreadV1::Conversation(c) => Self::Conversation(c),
            ThreadV1::Room(r) => Self::Room(r),
        }
    }
}

/// An item for a remote domain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OutboundV1 {
    pub(crate) domain: String,
    pub(crate) item: ItemV1,
}

/// A message stored, with what its entry carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PostedV1 {
    pub(crate) thread: ThreadV1,
    pub(crate) message: MessageV1,
    pub(crate) conversation: Option<ConversationV1>,
    pub(crate) offline: Vec<Username>,
    pub(crate) live: Vec<Username>,
    pub(crate) archived: Option<RecordV1>,
    pub(crate) outbound: Vec<OutboundV1>,
}

/// A change to a stored message.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ChangeV1 {
    Edited { text: String, format: FormatV1 },
    Deleted,
    Reacted { emoji: String, add: bool },
}

/// A message edited, deleted or reacted to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AmendedV1 {
    pub(crate) thread: ThreadV1,
    pub(crate) target: u64,
    pub(crate) id: u64,
    pub(crate) by: Username,
    pub(crate) at: u64,
    pub(crate) change: ChangeV1,
    pub(crate) archived: Option<RecordV1>,
}

impl From<&Amended> for AmendedV1 {
    fn from(a: &Amended) -> Self {
        let Amended { thread, target, id, by, at, change, archived } = a;
        Self {
            thread: (*thread).into(),
            target: *target,
            id: *id,
            by: by.clone(),
            at: *at,
            change: match change {
                Change::Edited { text, format } => ChangeV1::Edited { text: text.clone(), format: format.into() },
                Change::Deleted => ChangeV1::Deleted,
                Change::Reacted { emoji, add } => ChangeV1::Reacted { emoji: emoji.clone(), add: *add },
            },
            archived: archived.as_ref().map(Into::into),
        }
    }
}

impl From<AmendedV1> for Amended {
    fn from(a: AmendedV1) -> Self {
        let AmendedV1 { thread, target, id, by, at, change, archived } = a;
        Self {
            thread: thread.into(),
            target,
            id,
            by,
            at,
            change: match change {
                ChangeV1::Edited { text, format } => Change::Edited { text, format: format.into() },
                ChangeV1::Deleted => Change::Deleted,
                ChangeV1::Reacted { emoji, add } => Change::Reacted { emoji, add },
            },
            archived: archived.map(Into::into),
        }
    }
}

/// `log`: one acknowledged IM write. New facts are appended last (`federated`), so older
/// entries decode unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FactV1 {
    Started { conversation: ConversationV1, archived: Option<RecordV1> },
    Posted(Box<PostedV1>),
    Read { user: Username, conversation: u64, upto: u64 },
    Hidden { user: Username, conversation: u64 },
    Acked { user: Username, upto: u64 },
    RoomPut { room: RoomV1, joined: Vec<Username>, left: Vec<Username> },
    RoomMarked { user: Username, room: u64, mark: RoomMarkV1 },
    InboxImported { user: Username, conversation: u64, entry: InboxEntryV1 },
    QueueImported { user: Username, id: u64, thread: ThreadV1, live: bool },
    Amended(Box<AmendedV1>),
    Muted { user: Username, thread: ThreadV1, muted: bool },
    Federated { items: Vec<OutboundV1> },
}

fn outbound_v1(items: &[Outbound]) -> Vec<OutboundV1> {
    items.iter().map(|o| OutboundV1 { domain: o.domain.clone(), item: (&o.item).into() }).collect()
}

fn outbound_of(items: Vec<OutboundV1>) -> Vec<Outbound> {
    items.into_iter().map(|o| Outbound { domain: o.domain, item: o.item.into() }).collect()
}

impl From<&Fact> for FactV1 {
    fn from(f: &Fact) -> Self {
        match f {
            Fact::Started { conversation, archived } => {
                Self::Started { conversation: conversation.into(), archived: archived.as_ref().map(Into::into) }
            }
            Fact::Posted(p) => {
                let Posted { thread, message, conversation, offline, live, archived, outbound } = &**p;
                Self::Posted(Box::new(PostedV1 {
                    thread: (*thread).into(),
                    message: message.into(),
                    conversation: conversation.as_ref().map(Into::into),
                    offline: offline.clone(),
                    live: live.clone(),
                    archived: archived.as_ref().map(Into::into),
                    outbound: outbound_v1(outbound),
                }))
            }
            Fact::Read { user, conversation, upto } => {
                Self::Read { user: user.clone(), conversation: *conversation, upto: *upto }
            }
            Fact::Hidden { user, conversation } => Self::Hidden { user: user.clone(), conversation: *conversation },
            Fact::Acked { user, upto } => Self::Acked { user: user.clone(), upto: *upto },
            Fact::RoomPut { room, joined, left } => {
                Self::RoomPut { room: room.into(), joined: joined.clone(), left: left.clone() }
            }
            Fact::RoomMarked { user, room, mark } => {
                Self::RoomMarked { user: user.clone(), room: *room, mark: mark.into() }
            }
            Fact::InboxImported { user, conversation, entry } => {
                Self::InboxImported { user: user.clone(), conversation: *conversation, entry: entry.into() }
            }
            Fact::QueueImported { user, entry } => {
                Self::QueueImported { user: user.clone(), id: entry.id, thread: entry.thread.into(), live: entry.live }
            }
            Fact::Amended(a) => Self::Amended(Box::new((&**a).into())),
            Fact::Muted { user, thread, muted } => {
                Self::Muted { user: user.clone(), thread: (*thread).into(), muted: *muted }
            }
            Fact::Federated { items } => Self::Federated { items: outbound_v1(items) },
        }
    }
}

impl From<FactV1> for Fact {
    fn from(f: FactV1) -> Self {
        match f {
            FactV1::Started { conversation, archived } => {
                Self::Started { conversation: conversation.into(), archived: archived.map(Into::into) }
            }
            FactV1::Posted(p) => {
                let PostedV1 { thread, message, conversation, offline, live, archived, outbound } = *p;
                Self::Posted(Box::new(Posted {
                    thread: thread.into(),
                    message: message.into(),
                    conversation: conversation.map(Into::into),
                    offline,
                    live,
                    archived: archived.map(Into::into),
                    outbound: outbound_of(outbound),
                }))
            }
            FactV1::Read { user, conversation, upto } => Self::Read { user, conversation, upto },
            FactV1::Hidden { user, conversation } => Self::Hidden { user, conversation },
            FactV1::Acked { user, upto } => Self::Acked { user, upto },
            FactV1::RoomPut { room, joined, left } => Self::RoomPut { room: room.into(), joined, left },
            FactV1::RoomMarked { user, room, mark } => Self::RoomMarked { user, room, mark: mark.into() },
            FactV1::InboxImported { user, conversation, entry } => {
                Self::InboxImported { user, conversation, entry: entry.into() }
            }
            FactV1::QueueImported { user, id, thread, live } => {
                Self::QueueImported { user, entry: Acked { id, thread: thread.into(), live } }
            }
            FactV1::Amended(a) => Self::Amended(Box::new((*a).into())),
            FactV1::Muted { user, thread, muted } => Self::Muted { user, thread: thread.into(), muted },
            FactV1::Federated { items } => Self::Federated { items: outbound_of(items) },
        }
    }
}

/// A thread's message index in the snapshot: (id, seq, sender number, text).
type IndexV1 = Vec<(u64, u64, u32, bool)>;

/// One user's part of the snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct UserV1 {
    /// (conversation, entry).
    pub(crate) entries: Vec<(u64, InboxEntryV1)>,
    /// (message id, thread, pushed live).
    pub(crate) queue: Vec<(u64, ThreadV1, bool)>,
    /// (room, mark).
    pub(crate) marks: Vec<(u64, RoomMarkV1)>,
    /// Muted conversations and rooms (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) muted: Vec<ThreadV1>,
}

/// A message's changes in the snapshot: (thread, id, edit's seq and time, deleted at,
/// reactions as (emoji, user numbers)).
type AmendV1 = (ThreadV1, u64, Option<(u64, u64)>, Option<u64>, Vec<(String, Vec<u32>)>);

/// The snapshot file: the projection as of log entry `seq`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotV1 {
    pub(crate) seq: u64,
    pub(crate) names: Vec<Username>,
    pub(crate) users: Vec<UserV1>,
    pub(crate) conversations: Vec<ConversationV1>,
    /// (user number, user number, conversation).
    pub(crate) direct: Vec<(u32, u32, u64)>,
    /// Each thread's index: (id, seq, sender number, text).
    pub(crate) threads: Vec<(ThreadV1, IndexV1)>,
    /// (key hash, thread, message id).
    pub(crate) keys: Vec<(u64, ThreadV1, u64)>,
    pub(crate) rooms: Vec<RoomV1>,
    /// Messages' edits, deletions and reactions (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) amends: Vec<AmendV1>,
    /// (attachment id, messages carrying it) (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) attachments: Vec<(String, Vec<(ThreadV1, u64)>)>,
}

impl From<&ImState> for SnapshotV1 {
    fn from(s: &ImState) -> Self {
        Self {
            seq: s.seq,
            names: s.names.clone(),
            users: s
                .users
                .iter()
                .map(|u| UserV1 {
                    entries: u.entries.iter().map(|(c, e)| (*c, e.into())).collect(),
                    queue: u.queue.iter().map(|(id, (t, live))| (*id, (*t).into(), *live)).collect(),
                    marks: u.marks.iter().map(|(r, m)| (*r, m.into())).collect(),
                    muted: u.muted.iter().map(|t| (*t).into()).collect(),
                })
                .collect(),
            conversations: s.conversations.values().map(Into::into).collect(),
            direct: s.direct.iter().map(|((a, b), c)| (*a, *b, *c)).collect(),
            threads: s
                .threads
                .iter()
                .map(|(t, index)| ((*t).into(), index.iter().map(|i| (i.id, i.seq, i.from, i.text)).collect()))
                .collect(),
            keys: s.keys.iter().map(|(h, (t, id))| (*h, (*t).into(), *id)).collect(),
            rooms: s.rooms.values().map(Into::into).collect(),
            amends: s
                .amends
                .iter()
                .map(|((t, id), a)| {
                    let reactions = a.reactions.iter().map(|(e, users)| (e.clone(), users.clone())).collect();
                    ((*t).into(), *id, a.edited, a.deleted, reactions)
                })
                .collect(),
            attachments: s
                .attachments
                .iter()
                .map(|(a, refs)| (a.clone(), refs.iter().map(|(t, id)| ((*t).into(), *id)).collect()))
                .collect(),
        }
    }
}

impl From<SnapshotV1> for ImState {
    fn from(s: SnapshotV1) -> Self {
        let SnapshotV1 { seq, names, users, conversations, direct, threads, keys, rooms, amends, attachments } = s;
        let mut state = ImState {
            seq,
            numbers: names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect(),
            names,
            users: users
                .into_iter()
                .map(|u| UserIm {
                    entries: u.entries.into_iter().map(|(c, e)| (c, e.into())).collect(),
                    recent: Default::default(),
                    queue: u.queue.into_iter().map(|(id, t, live)| (id, (t.into(), live))).collect(),
                    marks: u.marks.into_iter().map(|(r, m)| (r, m.into())).collect(),
                    muted: u.muted.into_iter().map(Into::into).collect(),
                })
                .collect(),
            conversations: conversations.into_iter().map(|c| (c.id, c.into())).collect(),
            direct: direct.into_iter().map(|(a, b, c)| ((a, b), c)).collect(),
            threads: threads
                .into_iter()
                .map(|(t, index)| {
                    let index =
                        index.into_iter().map(|(id, seq, from, text)| Indexed { id, seq, from, text }).collect();
                    (t.into(), index)
                })
                .collect(),
            keys: keys.into_iter().map(|(h, t, id)| (h, (t.into(), id))).collect(),
            rooms: rooms.into_iter().map(|r| (r.id, r.into())).collect(),
            room_names: Default::default(),
            queued: 0,
            amends: amends
                .into_iter()
                .map(|(t, id, edited, deleted, reactions)| {
                    ((t.into(), id), Amend { edited, deleted, reactions: reactions.into_iter().collect() })
                })
                .collect(),
            attachments: attachments
                .into_iter()
                .map(|(a, refs)| (a, refs.into_iter().map(|(t, id)| (t.into(), id)).collect()))
                .collect(),
        };
        state.derive();
        state
    }
}

#[cfg(test)]
mod tests {
    use halo_core::archive::{Place, Record};
    use halo_core::conversation::{Conversation, Format};
    use halo_core::federation::Item;
    use halo_core::im::{InboxEntry, RoomMark};
    use halo_core::message::{Body, Message};
    use halo_core::room::{Privacy, Room};

    use super::*;
    use crate::records::golden::pin;

    fn name(s: &str) -> Username {
        Username::parse(s).expect("valid")
    }

    fn samples() -> Vec<Fact> {
        let conv = Conversation::new(7, &name("alice"), &[name("bob")], 1_000, 0).expect("conv");
        let msg = Message {
            id: 42,
            at: 1_700_000_000_000,
            from: name("alice"),
            body: Body::Text { text: "hi".into(), format: Format::Plain },
            key: Some("k-1".into()),
            extras: Default::default(),
        };
        let record = Record::of_message(Place::Conversation(7), &msg, conv.members());
        let item =
            Item::Message { from: "alice".into(), to: "bob@b.example".into(), text: "hi".into(), id: "42".into() };
        let room = Room::new(9, "Lobby", &name("alice"), Privacy::Open, "t", "d", 5).expect("room");
        vec![
            Fact::Started { conversation: conv.clone(), archived: None },
            Fact::Posted(Box::new(Posted {
                thread: Thread::Conversation(7),
                message: msg,
                conversation: Some(conv),
                offline: vec![name("bob")],
                live: vec![name("carol")],
                archived: Some(record),
                outbound: vec![Outbound { domain: "b.example".into(), item }],
            })),
            Fact::Read { user: name("bob"), conversation: 7, upto: 42 },
            Fact::Hidden { user: name("bob"), conversation: 7 },
            Fact::Acked { user: name("bob"), upto: 42 },
            Fact::RoomPut { room, joined: vec![name("alice")], left: vec![name("bob")] },
            Fact::RoomMarked { user: name("alice"), room: 9, mark: RoomMark { read_upto: 3, follow: false } },
            Fact::InboxImported {
                user: name("bob"),
                conversation: 7,
                entry: InboxEntry { last: 42, last_at: 1, unread: 1, read_upto: 0, hidden_upto: 0 },
            },
            Fact::QueueImported { user: name("bob"), entry: Acked { id: 42, thread: Thread::Room(9), live: true } },
        ]
    }

    /// Facts added after the first release (their own golden file, so the first one stays).
    fn later_samples() -> Vec<Fact> {
        let conv = Conversation::new(7, &name("alice"), &[name("bob")], 1_000, 0).expect("conv");
        let amended = |id, change| Amended {
            thread: Thread::Conversation(7),
            target: 42,
            id,
            by: name("alice"),
            at: 1_700_000_000_100,
            change,
            archived: None,
        };
        let edit = Change::Edited { text: "hi!".into(), format: Format::Markdown };
        let mut edited = amended(50, edit.clone());
        edited.archived = Some(Record::of_change(
            Place::Conversation(7),
            (50, 1_700_000_000_100, &name("alice")),
            42,
            &edit,
            conv.members(),
        ));
        vec![
            Fact::Amended(Box::new(edited)),
            Fact::Amended(Box::new(amended(51, Change::Deleted))),
            Fact::Amended(Box::new(amended(52, Change::Reacted { emoji: "👍".into(), add: true }))),
            Fact::Muted { user: name("bob"), thread: Thread::Room(9), muted: true },
            Fact::Federated {
                items: vec![Outbound {
                    domain: "b.example".into(),
                    item: Item::Subscribe {
                        from: "alice".into(),
                        to: "bob@b.example".into(),
                        kind: halo_core::federation::Subscription::Request,
                    },
                }],
            },
        ]
    }

    #[test]
    fn fact_v1_is_pinned() {
        pin("log", include_str!("golden/fact_v1.hex"), &samples());
        pin("log", include_str!("golden/fact_v1_later.hex"), &later_samples());
    }

    #[test]
    fn snapshot_v1_is_pinned() {
        let mut state = ImState::default();
        for (i, f) in samples().iter().chain(&later_samples()).enumerate() {
            state.apply(i as u64 + 1, f);
        }
        // Maps are written in their iteration order: pin a state with one entry per map.
        state.keys.clear();
        let back: ImState = SnapshotV1::from(&state).into();
        assert_eq!(back, state, "a snapshot round-trips");
        let small = {
            let mut s = ImState::default();
            s.apply(1, &samples()[0]);
            s
        };
        pin("snapshot", include_str!("golden/snapshot_v1.hex"), &[small]);
    }
}

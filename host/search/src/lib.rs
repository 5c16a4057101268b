//! Full-text search over IM history and room posts, on tantivy.
//!
//! [`SearchIndex`] holds one document per message: its words, its container (conversation or
//! room), its sender, its *audience* (the users allowed to read it: the conversation's present
//! participants when it was sent) and its time. [`SearchIndex::search`] combines words,
//! participant and date range with what the searcher may read, so visibility is decided by the
//! index, never by scanning history. Indexing is asynchronous: the caller batches [`Doc`]s and
//! calls [`SearchIndex::commit`]; the message store stays the source of truth.
//!
//! This crate knows nothing of sled, axum or the wire format.

use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use tantivy::collector::{DocSetCollector, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term, doc};

/// Memory budget of the index writer's one thread (tantivy's minimum is 15 MB per thread).
/// One thread: the index commits small batches every fraction of a second, and each commit
/// sets up (and zeroes) a fresh arena per writer thread — with two threads and 32 MB that was
/// a visible share of the server's CPU under an IM load (perf, halo-bench im).
const WRITER_HEAP_BYTES: usize = 15 << 20;

/// Search failures.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index failed (I/O, corruption).
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be created.
    #[error("search index directory: {0}")]
    Dir(#[from] std::io::Error),
    /// The index directory could not be opened.
    #[error("search index directory: {0}")]
    OpenDir(#[from] tantivy::directory::error::OpenDirectoryError),
}

/// Where a message lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// A conversation (1:1 or multiparty).
    Conversation(u64),
    /// A persistent chat room.
    Room(u64),
}

/// One message to index.
#[derive(Debug, Clone)]
pub struct Doc {
    /// Message id.
    pub id: u64,
    /// Where it was posted.
    pub container: Container,
    /// Sender.
    pub from: String,
    /// Who may read it (conversations; empty for rooms, whose readers are decided at query time).
    pub audience: Vec<String>,
    /// Server time, ms since the Unix epoch.
    pub at: u64,
    /// The words.
    pub text: String,
}

/// What to look for, on behalf of whom.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// The searcher: conversation messages are limited to those they may read.
    pub user: String,
    /// Search every document, whoever may read it (compliance search).
    pub everyone: bool,
    /// Rooms the searcher may read (room posts are limited to these).
    pub rooms: Vec<u64>,
    /// Words (all must match; `"a phrase"` and `-word` work).
    pub words: Option<String>,
    /// Only conversation messages that this user could read too (a participant), or posts by them.
    pub with: Option<String>,
    /// Only messages in this conversation.
    pub conversation: Option<u64>,
    /// Only posts in this room.
    pub room: Option<u64>,
    /// From this time on (ms, inclusive).
    pub since: Option<u64>,
    /// Before this time (ms, exclusive).
    pub until: Option<u64>,
    /// Most hits (newest first).
    pub limit: usize,
}

/// A matching message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Message id.
    pub id: u64,
    /// Where it lives.
    pub container: Container,
    /// Its time.
    pub at: u64,
}

struct Fields {
    id: Field,
    conversation: Field,
    room: Field,
    from: Field,
    audience: Field,
    at: Field,
    text: Field,
}

/// The search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// `None` after a failure: a writer whose operation failed (e.g. an I/O error killed its
    /// worker) is dropped, releasing its lock, and a fresh one is made at the next use.
    writer: Mutex<Option<IndexWriter>>,
    f: Fields,
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        let mut s = Schema::builder();
        let f = Fields {
            id: s.add_u64_field("id", STORED | INDEXED),
            conversation: s.add_u64_field("conversation", STORED | INDEXED),
            room: s.add_u64_field("room", STORED | INDEXED),
            from: s.add_text_field("from", STRING),
            audience: s.add_text_field("audience", STRING),
            at: s.add_u64_field("at", STORED | INDEXED | FAST),
            text: s.add_text_field("text", TEXT),
        };
        let schema = s.build();
        std::fs::create_dir_all(dir)?;
        let mmap = tantivy::directory::MmapDirectory::open(dir)?;
        let index = Index::open_or_create(mmap, schema)?;
        let writer = index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { index, reader, writer: Mutex::new(Some(writer)), f })
    }

    /// Runs `f` with the writer (made afresh if the last one failed); on an error the writer is
    /// dropped, so uncommitted work is abandoned and the caller retries from its own cursor.
    fn with_writer<T>(&self, f: impl FnOnce(&mut IndexWriter) -> Result<T, SearchError>) -> Result<T, SearchError> {
        let mut slot = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let writer = match slot.take() {
            Some(w) => w,
            None => self.index.writer_with_num_threads(1, WRITER_HEAP_BYTES)?,
        };
        let writer = slot.insert(writer);
        let result = f(writer);
        if result.is_err() {
            *slot = None;
        }
        result
    }

    /// Adds documents, replacing any earlier copy with the same id (visible after
    /// [`SearchIndex::commit`]).
    pub fn add(&self, docs: &[Doc]) -> Result<(), SearchError> {
        self.with_writer(|writer| self.add_with(writer, docs))
    }

    fn add_with(&self, writer: &mut IndexWriter, docs: &[Doc]) -> Result<(), SearchError> {
        let f = &self.f;
        for d in docs {
            writer.delete_term(Term::from_field_u64(f.id, d.id));
            let mut doc = doc!(f.id => d.id, f.from => d.from.as_str(), f.at => d.at, f.text => d.text.as_str());
            match d.container {
                Container::Conversation(c) => doc.add_u64(f.conversation, c),
                Container::Room(r) => doc.add_u64(f.room, r),
            }
            for a in &d.audience {
                doc.add_text(f.audience, a);
            }
            writer.add_document(doc)?;
        }
        Ok(())
    }

    /// Makes added documents durable and searchable.
    pub fn commit(&self) -> Result<(), SearchError> {
        self.with_writer(|w| Ok(w.commit()?))?;
        self.reader.reload()?;
        Ok(())
    }

    /// Messages matching `q` that `q.user` may read, newest first (by time, then by id).
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<Hit>, SearchError> {
        let f = &self.f;
        let term = |field, s: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_text(field, s), IndexRecordOption::Basic))
        };
        let u64_term = |field, v: u64| -> Box<dyn Query> {
            Box::new(TermQuery::new(Term::from_field_u64(field, v), IndexRecordOption::Basic))
        };

        // Readable: a conversation message with the searcher in its audience, or a readable room's post.
        let mut readable: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, term(f.audience, &q.user))];
        if !q.rooms.is_empty() {
            let rooms = q.rooms.iter().map(|r| Term::from_field_u64(f.room, *r));
            readable.push((Occur::Should, Box::new(TermSetQuery::new(rooms))));
        }
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if !q.everyone {
            must.push((Occur::Must, Box::new(BooleanQuery::new(readable))));
        }

        if let Some(words) = q.words.as_deref().filter(|w| !w.trim().is_empty()) {
            let mut parser = QueryParser::for_index(&self.index, vec![f.text]);
            parser.set_conjunction_by_default();
            let (parsed, _errors) = parser.parse_query_lenient(words);
            must.push((Occur::Must, parsed));
        }
        if let Some(with) = &q.with {
            let either = vec![(Occur::Should, term(f.audience, with)), (Occur::Should, term(f.from, with))];
            must.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        if let Some(c) = q.conversation {
            must.push((Occur::Must, u64_term(f.conversation, c)));
        }
        if let Some(r) = q.room {
            must.push((Occur::Must, u64_term(f.room, r)));
        }
        if q.since.is_some() || q.until.is_some() {
            let lower = q.since.map_or(Bound::Unbounded, |s| Bound::Included(Term::from_field_u64(f.at, s)));
            let upper = q.until.map_or(Bound::Unbounded, |u| Bound::Excluded(Term::from_field_u64(f.at, u)));
            must.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }

        let query = BooleanQuery::new(must);
        let searcher = self.reader.searcher();
        let limit = q.limit.max(1);
        let top = TopDocs::with_limit(limit).order_by_u64_field("at", Order::Desc);
        let found = searcher.search(&query, &top)?;
        let full = found.len() == limit;
        let mut hits = self.hits(&searcher, found.into_iter().map(|(_, addr)| addr))?;
        // Messages of the same millisecond come newest (highest id) first, not in index order;
        // when the page is full, those sharing the last one's time may have been cut anywhere
        // among them, so that time is read whole and cut by id.
        if full && let Some(edge) = hits.last().map(|h| h.at) {
            let at_edge = RangeQuery::new(
                Bound::Included(Term::from_field_u64(f.at, edge)),
                Bound::Included(Term::from_field_u64(f.at, edge)),
            );
            let tie = BooleanQuery::new(vec![(Occur::Must, Box::new(query.clone())), (Occur::Must, Box::new(at_edge))]);
            let tied = searcher.search(&tie, &DocSetCollector)?;
            hits.retain(|h| h.at > edge);
            hits.extend(self.hits(&searcher, tied.into_iter())?);
        }
        hits.sort_by(|a, b| b.at.cmp(&a.at).then(b.id.cmp(&a.id)));
        hits.truncate(limit);
        Ok(hits)
    }

    /// The hits of found documents (in no particular order).
    fn hits(&self, searcher: &Searcher, found: impl Iterator<Item = DocAddress>) -> Result<Vec<Hit>, SearchError> {
        let f = &self.f;
        let mut hits = Vec::new();
        for addr in found {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let get = |field| doc.get_first(field).and_then(|v| v.as_u64());
            let container = match (get(f.conversation), get(f.room)) {
                (Some(c), _) => Container::Conversation(c),
                (None, Some(r)) => Container::Room(r),
                (None, None) => continue,
            };
            hits.push(Hit { id: get(f.id).unwrap_or(0), container, at: get(f.at).unwrap_or(0) });
        }
        Ok(hits)
    }

    /// Removes documents by id (visible after [`SearchIndex::commit`]).
    pub fn remove_ids(&self, ids: &[u64]) -> Result<(), SearchError> {
        self.with_writer(|writer| {
            for id in ids {
                writer.delete_term(Term::from_field_u64(self.f.id, *id));
            }
            Ok(())
        })
    }

    /// Removes every document of a container (a deleted room).
    pub fn remove_container(&self, container: Container) -> Result<(), SearchError> {
        let term = match container {
            Container::Conversation(c) => Term::from_field_u64(self.f.conversation, c),
            Container::Room(r) => Term::from_field_u64(self.f.room, r),
        };
        self.with_writer(|writer| {
            writer.delete_term(term);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: u64, container: Container, from: &str, audience: &[&str], at: u64, text: &str) -> Doc {
        Doc {
            id,
            container,
            from: from.into(),
            audience: audience.iter().map(|s| s.to_string()).collect(),
            at,
            text: text.into(),
        }
    }

    fn query(user: &str) -> SearchQuery {
        SearchQuery { user: user.into(), limit: 10, ..Default::default() }
    }

    #[test]
    fn finds_by_words_participant_and_date_within_what_the_user_may_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = SearchIndex::open(dir.path()).expect("open");
        let c1 = Container::Conversation(1);
        idx.add(&[
            doc(1, c1, "alice", &["alice", "bob"], 1_000, "the quarterly budget is ready"),
            doc(2, c1, "bob", &["alice", "bob"], 2_000, "Budget approved!"),
            doc(3, Container::Conversation(2), "carol", &["carol", "dave"], 3_000, "budget secrets"),
            doc(4, Container::Room(7), "erin", &[], 4_000, "room budget talk"),
            doc(5, c1, "alice", &["alice", "bob", "frank"], 5_000, "welcome frank"),
        ])
        .expect("add");
        idx.commit().expect("commit");

        let ids = |q: SearchQuery| idx.search(&q).expect("search").iter().map(|h| h.id).collect::<Vec<_>>();
        assert_eq!(
            ids(SearchQuery { words: Some("budget".into()), ..query("alice") }),
            [2, 1],
            "newest first, case-folded"
        );
        assert_eq!(ids(SearchQuery { words: Some("budget".into()), ..query("dave") }), [3]);
        assert_eq!(ids(SearchQuery { words: Some("budget".into()), rooms: vec![7], ..query("dave") }), [4, 3]);
        assert_eq!(
            ids(SearchQuery { words: Some("budget".into()), ..query("frank") }),
            Vec::<u64>::new(),
            "joined later"
        );
        assert_eq!(ids(SearchQuery { with: Some("frank".into()), ..query("alice") }), [5]);
        assert_eq!(
            ids(SearchQuery { words: Some("budget".into()), everyone: true, ..query("nobody") }),
            [4, 3, 2, 1],
            "compliance search sees everything"
        );
        assert_eq!(ids(SearchQuery { since: Some(1_500), until: Some(5_000), ..query("alice") }), [2]);
        assert_eq!(ids(SearchQuery { words: Some("budget -approved".into()), ..query("bob") }), [1]);
        assert_eq!(ids(SearchQuery { words: Some("\"budget is".into()), ..query("bob") }).len(), 1, "lenient parsing");
        let hit =
            idx.search(&SearchQuery { words: Some("room".into()), rooms: vec![7], ..query("x") }).expect("search");
        assert_eq!(hit, [Hit { id: 4, container: Container::Room(7), at: 4_000 }]);

        idx.add(&[doc(5, c1, "alice", &["alice", "bob", "frank"], 5_000, "welcome frank")]).expect("re-add");
        idx.commit().expect("commit");
        assert_eq!(ids(SearchQuery { words: Some("welcome".into()), ..query("bob") }), [5], "re-adding replaces");

        idx.remove_container(Container::Room(7)).expect("remove");
        idx.commit().expect("commit");
        assert!(ids(SearchQuery { words: Some("room".into()), rooms: vec![7], ..query("x") }).is_empty());
        drop(idx);
        let idx = SearchIndex::open(dir.path()).expect("reopen");
        assert_eq!(
            idx.search(&SearchQuery { words: Some("welcome".into()), ..query("bob") }).expect("search").len(),
            1
        );
    }

    #[test]
    fn messages_of_the_same_millisecond_come_highest_id_first_also_at_a_page_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = SearchIndex::open(dir.path()).expect("open");
        let c = Container::Conversation(1);
        // Indexed out of order, over several commits (segments), all at one time but one.
        for batch in [[4, 1, 6], [2, 7, 3], [5, 8, 9]] {
            let docs: Vec<Doc> = batch
                .iter()
                .map(|id| doc(*id, c, "alice", &["alice"], if *id == 9 { 2_000 } else { 1_000 }, "same words"))
                .collect();
            idx.add(&docs).expect("add");
            idx.commit().expect("commit");
        }
        let ids = |limit: usize| {
            let q = SearchQuery { words: Some("words".into()), limit, ..query("alice") };
            idx.search(&q).expect("search").iter().map(|h| h.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(10), [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        for limit in 1..=9 {
            assert_eq!(ids(limit), [9, 8, 7, 6, 5, 4, 3, 2, 1][..limit], "limit {limit}");
        }
    }
}

//! The full-text index: an FTS5 table in its own database file (`text.db`), filled by a
//! background thread from committed spans, so ingest never waits for it.
//!
//! - Its own file means its own write lock and WAL: the indexer never blocks the span writer.
//!   Readers attach it as `fts`.
//! - A document is the searchable text ([`loupe_model::text::SpanText`]) of the spans of one
//!   trace that one indexer pass picked up; its rowid is `trace seq << 16 | part`, so a query
//!   maps matches to traces with a shift and no join. A trace has at most 65,536 parts (one per
//!   pass that saw new spans of it); text beyond that is not indexed.
//! - The table is contentless (it keeps the index, not the text) with `contentless_delete`, so
//!   deleting a trace removes its documents, and keeps no positions (`detail = none`): queries
//!   ask for all their terms, not their order.
//! - Progress is the span rowid up to which everything is indexed, stored in the same
//!   transaction as the documents: a crash re-indexes at most one pass, never skips one.
//!   Deleting the newest spans lets SQLite hand their rowids out again, so a delete moves the
//!   mark back below them (under the writer lock, before new spans can take those rowids).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use loupe_model::text::SpanText;
use loupe_store::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

use crate::bodylog::LogReader;
use crate::read::{BODY_COLUMNS, Bodies, body_ref};
use crate::{DB_FILE, db_err, schema};

/// File name of the text index inside the data directory.
pub const TEXT_DB: &str = "text.db";

/// Spans read per pass.
const PASS_SPANS: i64 = 4_096;

/// How long a flush waits for the indexer to make progress before it reports the index as
/// behind (it waits as long as passes keep advancing).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// While spans keep arriving (and nobody waits for the index), the indexer rests this many
/// times as long as each pass took: it then takes at most a fifth of a core from ingest, and
/// catches up in the pauses. Unbounded, it took CPU the span writer needed (figures:
/// docs/performance.md, "Ingest decode pool and priorities").
const REST_FACTOR: u32 = 4;

/// Writes this recent count as "spans keep arriving".
const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// Most parts (documents) one trace may have.
const MAX_PARTS: i64 = 1 << 16;

const SCHEMA: &str = "
CREATE VIRTUAL TABLE IF NOT EXISTS trace_text USING fts5(
    body, content = '', contentless_delete = 1, detail = none,
    tokenize = 'unicode61 remove_diacritics 0'
);
-- The index's terms, for spelling out a query's last word (a prefix) as whole terms.
CREATE VIRTUAL TABLE IF NOT EXISTS trace_text_terms USING fts5vocab(trace_text, 'row');
CREATE TABLE IF NOT EXISTS text_parts (trace_seq INTEGER PRIMARY KEY, parts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS text_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
";

struct State {
    /// Every span with a rowid up to this is indexed.
    indexed: i64,
    /// Writes happened since the last pass.
    dirty: bool,
    stop: bool,
    /// The last pass failed with this.
    error: Option<String>,
    /// When spans were last written.
    last_write: Option<Instant>,
    /// Callers waiting in [`TextIndex::wait_for`].
    waiting: usize,
}

struct Shared {
    /// The text database, written by the indexer and by deletes.
    conn: Mutex<Connection>,
    state: Mutex<State>,
    wake: Condvar,
    /// Signalled after each pass.
    done: Condvar,
}

/// The running indexer. Stops (after its current pass) when dropped.
pub(crate) struct TextIndex {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn open_text_db(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(db_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(db_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(db_err)?;
    // The index can be rebuilt from the spans; a crash loses at most the last passes, and the
    // progress mark is lost with them.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_err)?;
    conn.execute_batch(SCHEMA).map_err(db_err)?;
    Ok(conn)
}

fn load_mark(conn: &Connection) -> Result<i64, StoreError> {
    conn.query_row(
        "SELECT value FROM text_state WHERE key = 'indexed'",
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(db_err)
    .map(|v| v.unwrap_or(0))
}

fn save_mark(conn: &Connection, mark: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO text_state (key, value) VALUES ('indexed', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [mark],
    )
    .map(|_| ())
}

/// The path of the text index in `data_dir`.
pub(crate) fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(TEXT_DB)
}

/// Attaches the text index to a reader connection as `fts`.
pub(crate) fn attach(conn: &Connection, data_dir: &Path) -> rusqlite::Result<()> {
    let p = path(data_dir);
    conn.execute("ATTACH DATABASE ?1 AS fts", [p.to_string_lossy()])
        .map(|_| ())
}

impl TextIndex {
    /// Opens (creating) the index and starts its thread.
    pub(crate) fn start(data_dir: &Path) -> Result<Self, StoreError> {
        let conn = open_text_db(&path(data_dir))?;
        let main = Connection::open(data_dir.join(DB_FILE)).map_err(db_err)?;
        schema::configure(&main, schema::Role::Reader).map_err(db_err)?;
        let mut mark = load_mark(&conn)?;
        // Spans deleted while a rewind was not yet saved: never leave the mark above the last
        // span, or the rowids SQLite hands out again would be skipped.
        let last: i64 = main
            .query_row("SELECT coalesce(max(rowid), 0) FROM spans", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        if last < mark {
            mark = last;
            save_mark(&conn, mark).map_err(db_err)?;
        }
        let shared = Arc::new(Shared {
            conn: Mutex::new(conn),
            state: Mutex::new(State {
                indexed: mark,
                dirty: true,
                stop: false,
                error: None,
                last_write: None,
                waiting: 0,
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let log = LogReader::new(data_dir);
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("loupe-text-index".into())
            .spawn(move || {
                // Indexing can lag; ingest cannot. A delete waiting on a pass in progress is
                // the only writer that can wait on this thread, and deletes are rare.
                loupe_store::threads::lower_priority(loupe_store::threads::QUERY_NICE);
                run(&s, &main, &log)
            })
            .map_err(|e| StoreError::internal(format!("cannot start the text indexer: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Tells the indexer new spans are committed.
    pub(crate) fn notify(&self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.dirty = true;
            st.last_write = Some(Instant::now());
            self.shared.wake.notify_one();
        }
    }

    /// Waits until every span up to `target` (a span rowid) is indexed.
    pub(crate) fn wait_for(&self, target: i64) -> Result<(), StoreError> {
        let mut deadline = Instant::now() + FLUSH_TIMEOUT;
        let mut st = self
            .shared
            .state
            .lock()
            .map_err(|_| StoreError::internal("text index poisoned"))?;
        st.dirty = true;
        st.waiting += 1;
        self.shared.wake.notify_all();
        let mut seen = st.indexed;
        let out = loop {
            if st.indexed >= target {
                break Ok(());
            }
            if st.indexed > seen {
                seen = st.indexed;
                deadline = Instant::now() + FLUSH_TIMEOUT;
            }
            let now = Instant::now();
            if now >= deadline || st.stop {
                break Err(StoreError::unavailable(format!(
                    "the text index is behind (indexed up to span {}, waiting for {target}){}",
                    st.indexed,
                    st.error
                        .as_ref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                )));
            }
            st = self
                .shared
                .done
                .wait_timeout(st, deadline - now)
                .map_err(|_| StoreError::internal("text index poisoned"))?
                .0;
        };
        st.waiting -= 1;
        out
    }

    /// Forgets deleted traces: drops their documents and moves the progress mark back below
    /// the first deleted span (`min_span`), whose rowid SQLite may hand out again. Called with
    /// the span writer locked, so no span can take such a rowid before this is saved.
    pub(crate) fn forget(&self, seqs: &[i64], min_span: Option<i64>) -> Result<(), StoreError> {
        let mut conn = self
            .shared
            .conn
            .lock()
            .map_err(|_| StoreError::internal("text index poisoned"))?;
        let tx = conn.transaction().map_err(db_err)?;
        for seq in seqs {
            tx.execute(
                "DELETE FROM trace_text WHERE rowid BETWEEN ?1 AND ?2",
                params![seq << 16, (seq << 16) | (MAX_PARTS - 1)],
            )
            .map_err(db_err)?;
            tx.execute("DELETE FROM text_parts WHERE trace_seq = ?1", [seq])
                .map_err(db_err)?;
        }
        let mut st = self
            .shared
            .state
            .lock()
            .map_err(|_| StoreError::internal("text index poisoned"))?;
        if let Some(min) = min_span
            && min - 1 < st.indexed
        {
            save_mark(&tx, min - 1).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            st.indexed = min - 1;
        } else {
            tx.commit().map_err(db_err)?;
        }
        Ok(())
    }
}

impl Drop for TextIndex {
    fn drop(&mut self) {
        if let Ok(mut st) = self.shared.state.lock() {
            st.stop = true;
            self.shared.wake.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(shared: &Shared, main: &Connection, log: &LogReader) {
    loop {
        {
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            while !st.dirty && !st.stop {
                st = match shared.wake.wait_timeout(st, Duration::from_secs(1)) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
            if st.stop {
                return;
            }
            st.dirty = false;
        }
        // Passes until caught up.
        loop {
            let began = Instant::now();
            let r = pass(shared, main, log);
            let Ok(mut st) = shared.state.lock() else {
                return;
            };
            match r {
                Ok((_, more)) => {
                    st.error = None;
                    shared.done.notify_all();
                    if !more || st.stop {
                        break;
                    }
                    let busy = st.last_write.is_some_and(|t| t.elapsed() < BUSY_WINDOW);
                    if busy && st.waiting == 0 {
                        // Rest, unless someone starts waiting or we are stopped.
                        let rest = began.elapsed() * REST_FACTOR;
                        let until = Instant::now() + rest;
                        while st.waiting == 0 && !st.stop {
                            let now = Instant::now();
                            if now >= until {
                                break;
                            }
                            st = match shared.wake.wait_timeout(st, until - now) {
                                Ok((g, _)) => g,
                                Err(_) => return,
                            };
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "text index pass failed; retrying");
                    st.error = Some(e.to_string());
                    st.dirty = true;
                    shared.done.notify_all();
                    drop(st);
                    std::thread::sleep(Duration::from_secs(1));
                    break;
                }
            }
        }
    }
}

/// Indexes the next spans; returns the new mark and whether more spans may be waiting.
fn pass(shared: &Shared, main: &Connection, log: &LogReader) -> Result<(i64, bool), StoreError> {
    let mut conn = shared
        .conn
        .lock()
        .map_err(|_| StoreError::internal("text index poisoned"))?;
    let from = load_mark(&conn)?;
    let mut stmt = main
        .prepare_cached(&format!(
            "SELECT s.rowid, s.trace_seq, s.status_message, {BODY_COLUMNS} FROM spans s \
             WHERE s.rowid > ?1 ORDER BY s.rowid LIMIT ?2"
        ))
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![from, PASS_SPANS], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                body_ref(r, 3)?,
            ))
        })
        .map_err(db_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    let Some(&(last, ..)) = rows.last() else {
        set_indexed(shared, from);
        return Ok((from, false));
    };
    let more = rows.len() as i64 == PASS_SPANS;
    let mut bodies = Bodies::new(log);
    let mut order: Vec<i64> = Vec::new();
    let mut docs: HashMap<i64, SpanText> = HashMap::new();
    for (_, seq, status_message, at) in rows {
        let body = bodies.get_or_note(at);
        let view = loupe_model::normalize::view(&body.attributes, &body.events);
        docs.entry(seq)
            .or_insert_with(|| {
                order.push(seq);
                SpanText::new()
            })
            .add_view(&view, &status_message);
    }
    let tx = conn.transaction().map_err(db_err)?;
    {
        let mut parts = tx
            .prepare_cached("SELECT parts FROM text_parts WHERE trace_seq = ?1")
            .map_err(db_err)?;
        let mut set_parts = tx
            .prepare_cached(
                "INSERT INTO text_parts (trace_seq, parts) VALUES (?1, ?2) \
                 ON CONFLICT (trace_seq) DO UPDATE SET parts = excluded.parts",
            )
            .map_err(db_err)?;
        let mut insert = tx
            .prepare_cached("INSERT INTO trace_text (rowid, body) VALUES (?1, ?2)")
            .map_err(db_err)?;
        for seq in order {
            let Some(doc) = docs.get(&seq).filter(|d| !d.is_empty()) else {
                continue;
            };
            let part: i64 = parts
                .query_row([seq], |r| r.get(0))
                .optional()
                .map_err(db_err)?
                .unwrap_or(0);
            if part >= MAX_PARTS {
                continue;
            }
            insert
                .execute(params![(seq << 16) | part, doc.text()])
                .map_err(db_err)?;
            set_parts.execute(params![seq, part + 1]).map_err(db_err)?;
        }
    }
    save_mark(&tx, last).map_err(db_err)?;
    tx.commit().map_err(db_err)?;
    // Still holding the text database, so a delete's rewind cannot come in between.
    set_indexed(shared, last);
    Ok((last, more))
}

fn set_indexed(shared: &Shared, mark: i64) {
    if let Ok(mut st) = shared.state.lock() {
        st.indexed = mark;
    }
}

#[cfg(test)]
mod tests {
    use loupe_model::{Span, SpanId, SpanStatus, TraceId};
    use loupe_store::{EncodedSpan, TraceQuery, TraceSelection, TraceStore, encode_span};
    use serde_json::{Map, json};

    use crate::SqliteStore;

    fn span(trace: u8, id: u8, input: &str, output: &str) -> EncodedSpan {
        let mut attributes = Map::new();
        attributes.insert("mlflow.spanInputs".into(), json!({ "question": input }));
        attributes.insert("mlflow.spanOutputs".into(), json!(output));
        let derived = loupe_model::normalize::derive(&attributes);
        encode_span(Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_id: (id > 1).then_some(SpanId([1; 8])),
            name: format!("span-{id}"),
            kind: 0,
            start_ns: 1_000_000_000 * u64::from(trace) + u64::from(id),
            end_ns: 1_000_000_000 * u64::from(trace) + 1_000,
            status: SpanStatus::Ok,
            status_message: String::new(),
            attributes,
            events: vec![],
            links: vec![],
            resource: Map::new(),
            scope: None,
            project: "default".into(),
            derived,
        })
    }

    async fn search(store: &SqliteStore, words: &str) -> Vec<u8> {
        store.flush_text_index().await.expect("flush");
        let filter = loupe_query::parse(&format!("text ~ '{words}'"), 0).expect("parses");
        let page = store
            .list_traces(TraceQuery {
                filter: Some(filter),
                limit: 50,
                ..TraceQuery::default()
            })
            .await
            .expect("query");
        let mut ids: Vec<u8> = page.traces.iter().map(|t| t.trace_id.0[0]).collect();
        ids.sort_unstable();
        ids
    }

    #[tokio::test]
    async fn the_index_survives_a_restart_and_catches_up_on_what_it_missed() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = SqliteStore::open(dir.path()).expect("open");
            store
                .write_spans(vec![span(1, 1, "where is my refund", "soon")])
                .await
                .expect("write");
            assert_eq!(search(&store, "refund").await, [1]);
            // Written and dropped at once: the indexer may not have seen it.
            store
                .write_spans(vec![span(2, 1, "une crème brûlée", "voilà")])
                .await
                .expect("write");
        }
        let store = SqliteStore::open(dir.path()).expect("reopen");
        assert_eq!(search(&store, "refund").await, [1]);
        assert_eq!(search(&store, "creme brulee").await, [2]);
        assert_eq!(search(&store, "VOILA").await, [2]);
    }

    #[tokio::test]
    async fn spans_of_a_trace_arriving_in_many_batches_are_all_searchable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .write_spans(vec![span(3, 1, "first question", "alpha")])
            .await
            .expect("write");
        assert_eq!(search(&store, "alpha").await, [3]);
        store
            .write_spans(vec![span(3, 2, "second question", "我要退款")])
            .await
            .expect("write");
        assert_eq!(search(&store, "alpha").await, [3]);
        assert_eq!(search(&store, "退款").await, [3]);
        assert_eq!(search(&store, "question").await, [3]);
    }

    #[tokio::test]
    async fn deleting_the_newest_traces_neither_keeps_their_text_nor_skips_what_comes_next() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        store
            .write_spans(vec![span(4, 1, "keep me", "kept")])
            .await
            .expect("write");
        store
            .write_spans(vec![
                span(5, 1, "delete me", "walrus"),
                span(5, 2, "x", "y"),
            ])
            .await
            .expect("write");
        assert_eq!(search(&store, "walrus").await, [5]);
        let n = store
            .delete_traces(TraceSelection::Ids(vec![TraceId([5; 16])]))
            .await
            .expect("delete");
        assert_eq!(n, 1);
        assert!(search(&store, "walrus").await.is_empty());
        // These spans take the deleted spans' rowids again, and must be indexed.
        store
            .write_spans(vec![span(6, 1, "zebra crossing", "z")])
            .await
            .expect("write");
        assert_eq!(search(&store, "zebra").await, [6]);
        assert_eq!(search(&store, "kept").await, [4]);
    }
}

//! SQLite-only store tests: data surviving a reopen, the body log, rows written before it,
//! damaged bodies. Everything backend-neutral lives in `loupe-store-conformance` and runs from
//! `tests/conformance.rs` against every backend.

use loupe_model::{SpanStatus, TraceId};
use loupe_store::{TraceQuery, TraceStore};
use loupe_store_conformance::fixtures::{span, trace_spans};
use serde_json::json;

use super::SqliteStore;

#[tokio::test]
async fn data_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for t in 10..35u8 {
            let base = u64::from(t) * 1_000_000_000;
            all.push(span(t, 1, None, base, base + 1_000, SpanStatus::Ok, None));
        }
        store.write_spans(all).await.unwrap();
        store.write_spans(trace_spans(1)).await.unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let page = store
        .list_traces(TraceQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 26);
    loupe_store_conformance::fixtures::check_rollup(&store, 1).await;
}

fn log_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join(crate::bodylog::BODIES_DIR))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn each_body_group_is_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    // Two traces in one batch, their spans interleaved: one group each.
    let raw = loupe_store_conformance::fixtures::interleaved_spans();
    let batch = loupe_store::encode_spans(raw);
    let out = store.write_spans(batch.clone()).await.unwrap();
    assert_eq!(out.inserted, 6);
    let written = log_bytes(dir.path());
    let groups: std::collections::HashSet<usize> =
        batch.iter().map(|s| s.body.group_key()).collect();
    let expected: u64 = batch
        .iter()
        .filter(|s| s.body.index == 0)
        .map(|s| s.body.group.len() as u64)
        .sum();
    assert_eq!(groups.len(), 2);
    assert_eq!(written, expected, "each group written once");
    // The same batch again: every span a duplicate, nothing appended.
    let again = store.write_spans(batch).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 6));
    assert_eq!(log_bytes(dir.path()), written);
    for t in [7u8, 8] {
        let detail = store.get_trace(TraceId([t; 16])).await.unwrap().unwrap();
        assert_eq!(detail.spans.len(), 3);
        for s in &detail.spans {
            let id = s.span_id.0[0];
            assert_eq!(
                s.body.attributes["mlflow.spanInputs"],
                json!({ "t": t, "id": id }),
                "trace {t} span {id} reads its own body"
            );
        }
    }
}

#[tokio::test]
async fn rows_written_before_the_body_log_still_read() {
    let dir = tempfile::tempdir().unwrap();
    {
        // A version-1 database, as the previous release wrote it: the body inline.
        let mut conn = rusqlite::Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        tx.pragma_update(None, "user_version", 1).unwrap();
        tx.execute(
            "INSERT INTO traces (trace_id, project, name, start_ns, end_ns, span_count) \
             VALUES (?1, 'default', 'old', 1, 2, 1)",
            [&[9u8; 16][..]],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO spans (trace_seq, span_id, name, span_type, start_ns, end_ns, status) \
             VALUES (1, 5, 'old', 'UNKNOWN', 1, 2, 0)",
            [],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO span_bodies (id, body) VALUES (1, ?1)",
            [br#"{"kind":2,"attributes":{"legacy":true}}"#.as_slice()],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let store = SqliteStore::open(dir.path()).unwrap();
    let detail = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 1);
    assert_eq!(detail.spans[0].body.kind, 2);
    assert_eq!(detail.spans[0].body.attributes["legacy"], json!(true));
    // New spans of the same trace go to the log; both read back.
    let mut more = span(9, 6, Some(0), 1, 3, SpanStatus::Ok, None);
    more.parent_id = None;
    store.write_spans(vec![more]).await.unwrap();
    let detail = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 2);
    assert!(
        detail
            .spans
            .iter()
            .any(|s| s.body.attributes.get("legacy").is_some())
    );
    assert!(detail.spans.iter().any(|s| s.name == "span-6"));
}

#[tokio::test]
async fn an_unreadable_body_does_not_hide_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.write_spans(trace_spans(3)).await.unwrap();
    // Damage the log as a power cut could (never for an acknowledged batch).
    let seg = dir
        .path()
        .join(crate::bodylog::BODIES_DIR)
        .join("00000001.log");
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    let detail = store.get_trace(TraceId([3; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 4);
    assert!(
        detail.spans[0].body.attributes["loupe.body_error"]
            .as_str()
            .unwrap()
            .contains("span body")
    );
}

#[tokio::test]
async fn a_span_row_that_locates_no_body_is_noted_not_read_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.write_spans(trace_spans(3)).await.unwrap();
    drop(store);
    // A log position without its length: neither a body in the log nor one inline.
    let conn = rusqlite::Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
    conn.execute("UPDATE spans SET body_len = NULL", [])
        .unwrap();
    drop(conn);
    let store = SqliteStore::open(dir.path()).unwrap();
    let detail = store.get_trace(TraceId([3; 16])).await.unwrap().unwrap();
    assert_eq!(detail.spans.len(), 4);
    for s in &detail.spans {
        assert!(
            s.body.attributes["loupe.body_error"]
                .as_str()
                .unwrap()
                .contains("corrupt span row"),
            "{:?}",
            s.body.attributes
        );
    }
}

/// Many searches at once share the four query threads: every one is answered, in full, while a
/// write goes on beside them; dropping the store then lets the threads go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_searches_all_answer_on_the_query_threads() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let mut all = Vec::new();
    for t in 1..=40u8 {
        let base = u64::from(t) * 1_000_000_000;
        let status = if t % 4 == 0 {
            SpanStatus::Error
        } else {
            SpanStatus::Ok
        };
        all.push(span(t, 1, None, base, base + 1_000, status, None));
    }
    store.write_spans(all).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let q = if i % 2 == 0 {
                "status = 'ERROR'"
            } else {
                "status = 'OK'"
            };
            let page = store
                .list_traces(TraceQuery {
                    limit: 100,
                    filter: Some(loupe_query::parse(q, 0).unwrap()),
                    ..Default::default()
                })
                .await
                .unwrap();
            (i, page.traces.len())
        }));
    }
    // An unset trace, which neither search counts, whenever it lands.
    let writer = store.write_spans(vec![span(
        99,
        1,
        None,
        99_000_000_000,
        99_000_001_000,
        SpanStatus::Unset,
        None,
    )]);
    let (written, answers) = tokio::join!(writer, join_tasks(tasks));
    written.unwrap();
    for (i, n) in answers {
        assert_eq!(n, if i % 2 == 0 { 10 } else { 30 }, "search {i}");
    }
    drop(store);
}

async fn join_tasks(tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>) -> Vec<(usize, usize)> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Starts for `n` traces: scattered over ~3.5 s, many in the same second, none equal, in an
/// order unrelated to arrival.
fn scattered_starts(n: u64) -> Vec<u64> {
    let edge = 1_700_000_000_000_000_000u64 >> 30 << 30;
    (0..n)
        .map(|i| edge - 500_000_000 + (i * 2_654_435_761 % 3_500_000_000) + i)
        .collect()
}

#[tokio::test]
async fn pages_follow_start_order_whatever_the_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let starts = scattered_starts(200);
    // Arrival order differs from start order: batches of 17, in index order.
    let spans: Vec<_> = starts
        .iter()
        .enumerate()
        .map(|(i, &s)| span(i as u8 + 1, 1, None, s, s + 1_000, SpanStatus::Ok, None))
        .collect();
    for batch in spans.chunks(17) {
        store.write_spans(batch.to_vec()).await.unwrap();
    }
    let mut expected: Vec<u64> = starts.clone();
    expected.sort_unstable_by(|a, b| b.cmp(a));
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_traces(TraceQuery {
                limit: 9,
                cursor,
                ..Default::default()
            })
            .await
            .unwrap();
        seen.extend(page.traces.iter().map(|t| t.start_ns));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(seen, expected, "newest first across pages");
    // Ordered by start explicitly (MLflow's `order_by`), oldest first, paged by offset.
    let mut oldest_first = Vec::new();
    loop {
        let page = store
            .list_traces(TraceQuery {
                limit: 11,
                order: vec![(
                    loupe_store::OrderKey::Start,
                    loupe_store::Direction::Ascending,
                )],
                offset: oldest_first.len(),
                ..Default::default()
            })
            .await
            .unwrap();
        oldest_first.extend(page.traces.iter().map(|t| t.start_ns));
        if page.next_cursor.is_none() {
            break;
        }
    }
    expected.reverse();
    assert_eq!(oldest_first, expected, "oldest first across pages");
    expected.reverse();

    // Time ranges in ms, some inside a second and some across a second's edge.
    let edge_ms = (1_700_000_000_000_000_000i64 >> 30 << 30) / 1_000_000;
    for (from, to) in [
        (edge_ms - 400, edge_ms + 10),
        (edge_ms, edge_ms + 1),
        (edge_ms + 1, edge_ms + 2_100),
        (edge_ms - 600, edge_ms + 5_000),
    ] {
        let want = starts
            .iter()
            .filter(|&&s| {
                let s = s as i64;
                s >= from * 1_000_000 && s < to * 1_000_000
            })
            .count();
        let page = store
            .list_traces(TraceQuery::newest(500).started(Some(from), Some(to)))
            .await
            .unwrap();
        assert_eq!(
            page.traces.len(),
            want,
            "traces started in [{from}, {to}) ms"
        );
        let q = loupe_query::parse(&format!("start >= {from} AND start < {to}"), 0).unwrap();
        let page = store
            .list_traces(TraceQuery {
                limit: 500,
                filter: Some(q),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.traces.len(), want, "start >= {from} AND start < {to}");
    }
}

#[tokio::test]
async fn trace_pages_are_read_in_start_index_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
    crate::fts::attach(&conn, dir.path()).unwrap();
    // The plan of the SQL a page runs.
    let plan = |q: &TraceQuery| -> String {
        let (sql, args) = crate::read::page_sql(&conn, q, 5_000, false).unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let filtered = |f: &str| TraceQuery {
        filter: Some(loupe_query::parse(f, 0).unwrap()),
        limit: 50,
        ..Default::default()
    };
    let plain = TraceQuery {
        limit: 50,
        ..Default::default()
    };
    let cases = [
        (plain.clone(), "traces_by_start"),
        (
            TraceQuery {
                cursor: Some(loupe_store::Cursor {
                    start_ns: 5_000_000_000,
                    seq: 7,
                }),
                ..plain.clone()
            }
            .started(Some(1_000), None),
            "traces_by_start",
        ),
        (
            TraceQuery {
                order: vec![(
                    loupe_store::OrderKey::Start,
                    loupe_store::Direction::Ascending,
                )],
                ..plain.clone()
            },
            "traces_by_start",
        ),
        (plain.clone().project("p"), "traces_by_project_start"),
        (plain.clone().status(SpanStatus::Error), "traces_errors"),
        (filtered("status = 'ERROR'"), "traces_errors"),
        (filtered("status = 'OK'"), "traces_by_start"),
        (filtered("name = 'agent'"), "traces_by_start"),
        // Not the session index: a quarter of all traces, to be sorted whole.
        (
            filtered("session_id IS NOT NULL AND cost_usd > 0.001"),
            "traces_by_start",
        ),
        // A condition checked trace by trace: in start order, so that the page stops early.
        (
            filtered("span.type = 'TOOL' AND span.status = 'ERROR'"),
            "traces_by_start",
        ),
    ];
    for (q, index) in cases {
        let p = plan(&q);
        assert!(p.contains(&format!("INDEX {index}")), "{q:?}: {p}");
        // Sorted within a start bucket only: never the whole result.
        assert!(!p.contains("TEMP B-TREE FOR ORDER BY"), "{q:?}: {p}");
    }
    // One session's traces: its own index.
    let p = plan(&filtered("session_id = 's-1'"));
    assert!(p.contains("INDEX traces_by_session (session_id=?)"), "{p}");
}

/// Frames in the WAL now (0 once it was restarted).
fn wal_frames(db: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wal_held_back_by_readers_that_never_pause_is_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(crate::DB_FILE);
    let store = SqliteStore::open(dir.path()).unwrap();
    store.write_spans(trace_spans(1)).await.unwrap();
    // Readers in relay: a new snapshot always begins before the last one ends, so at no moment
    // is the WAL free of readers, and a passive checkpoint can never let it start over.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conns = [
                rusqlite::Connection::open(&db).unwrap(),
                rusqlite::Connection::open(&db).unwrap(),
            ];
            let mut i = 0;
            conns[0]
                .execute_batch("BEGIN; SELECT count(*) FROM traces;")
                .unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(10));
                let (next, last) = (&conns[(i + 1) % 2], &conns[i % 2]);
                next.execute_batch("BEGIN; SELECT count(*) FROM traces;")
                    .unwrap();
                last.execute_batch("COMMIT").unwrap();
                i += 1;
            }
            conns[i % 2].execute_batch("COMMIT").unwrap();
        })
    };
    let mut t = 0u64;
    let mut batch = || -> Vec<loupe_store::EncodedSpan> {
        (0..50)
            .map(|_| {
                t += 1;
                let start = t * 1_000_000_007 % 60_000_000_000;
                let mut s = span(1, 1, None, start, start + 5, SpanStatus::Ok, None);
                let mut id = [0u8; 16];
                id[..8].copy_from_slice(&t.to_be_bytes());
                s.trace_id = TraceId(id);
                s
            })
            .collect()
    };
    let mut peak = 0;
    let mut restarted = false;
    for _ in 0..2_000 {
        store.write_spans(batch()).await.unwrap();
        // As the commit thread would, were commits on time not off in unit tests.
        drop(store.settled_writer().unwrap());
        let frames = wal_frames(&db);
        peak = peak.max(frames);
        if peak > crate::checkpoint::WAL_MAX_FRAMES && frames < peak / 2 {
            restarted = true;
            break;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    relay.join().unwrap();
    assert!(
        peak > crate::checkpoint::WAL_MAX_FRAMES,
        "the WAL grew past its cap ({peak} frames)"
    );
    assert!(
        restarted,
        "past its cap the WAL was restarted, readers or not ({peak} frames)"
    );
    let page = store
        .list_traces(TraceQuery {
            limit: 5,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 5, "and the traces are all there");
}

/// Copies what a crash would leave on disk: the database, its WAL, the redo log and the body
/// log, as they are while the store still runs.
fn crash_copy(from: &std::path::Path, to: &std::path::Path) {
    for name in [
        crate::DB_FILE.to_string(),
        format!("{}-wal", crate::DB_FILE),
    ] {
        if from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name)).unwrap();
        }
    }
    copy_logs(from, to);
}

/// Copies the redo log and the body log only.
fn copy_logs(from: &std::path::Path, to: &std::path::Path) {
    for name in crate::redo::REDO_FILES {
        if from.join(name).exists() {
            std::fs::copy(from.join(name), to.join(name)).unwrap();
        }
    }
    let bodies = to.join(crate::bodylog::BODIES_DIR);
    std::fs::create_dir_all(&bodies).unwrap();
    for e in std::fs::read_dir(from.join(crate::bodylog::BODIES_DIR))
        .unwrap()
        .flatten()
    {
        std::fs::copy(e.path(), bodies.join(e.file_name())).unwrap();
    }
}

/// Traces a plain SQLite connection sees in the database file: what is committed.
fn committed_traces(dir: &std::path::Path) -> i64 {
    let c = rusqlite::Connection::open(dir.join(crate::DB_FILE)).unwrap();
    c.query_row("SELECT count(*) FROM traces", [], |r| r.get(0))
        .unwrap()
}

/// Three batches that exercise every write path: a trace split over two batches, a span sent
/// twice, new traces.
async fn write_uncommitted_batches(store: &SqliteStore) {
    let one = trace_spans(1);
    let mut first = one[..2].to_vec();
    first.extend(trace_spans(2));
    store.write_spans(first).await.unwrap();
    let mut second = one[2..].to_vec();
    second.push(one[0].clone());
    let out = store.write_spans(second).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (2, 1));
    store.write_spans(trace_spans(3)).await.unwrap();
}

/// A store that acknowledged [`write_uncommitted_batches`], and a copy of its files as a crash
/// at that moment would leave them.
async fn crashed_after_three_batches() -> (tempfile::TempDir, tempfile::TempDir, SqliteStore) {
    let live = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(live.path()).unwrap();
    write_uncommitted_batches(&store).await;
    crash_copy(live.path(), crashed.path());
    (live, crashed, store)
}

#[tokio::test]
async fn acknowledged_assessments_survive_a_crash_before_their_commit() {
    use loupe_store_conformance::fixtures::feedback;
    let (live, crashed, store) = crashed_after_three_batches().await;
    // Assessments join the open transaction as a record of their own: no commit of their own.
    store
        .put_assessments(vec![
            feedback("a-1", TraceId([1; 16]), "quality", json!(0.25), 1_000),
            feedback("a-2", TraceId([3; 16]), "quality", json!(0.75), 1_000),
        ])
        .await
        .unwrap();
    let mut over = feedback("a-3", TraceId([1; 16]), "quality", json!(0.5), 2_000);
    over.overrides = Some("a-1".into());
    store.put_assessments(vec![over]).await.unwrap();
    // A trace that does not exist refuses its batch, and nothing of it is written.
    let refused = store
        .put_assessments(vec![
            feedback("a-4", TraceId([2; 16]), "quality", json!(1), 3_000),
            feedback("a-5", TraceId([9; 16]), "quality", json!(1), 3_000),
        ])
        .await
        .unwrap_err();
    assert_eq!(refused.kind, loupe_store::ErrorKind::NotFound);
    crash_copy(live.path(), crashed.path());
    assert_eq!(committed_traces(crashed.path()), 0, "nothing committed yet");
    let kinds: Vec<_> = crate::redo::read_records(crashed.path())
        .unwrap()
        .into_iter()
        .map(|(_, kind, _)| kind)
        .collect();
    assert_eq!(
        kinds,
        [
            crate::redo::RecordKind::Spans,
            crate::redo::RecordKind::Spans,
            crate::redo::RecordKind::Spans,
            crate::redo::RecordKind::Assessments,
            crate::redo::RecordKind::Assessments,
        ]
    );

    let recovered = SqliteStore::open(crashed.path()).unwrap();
    for found in [&store, &recovered] {
        let got = found
            .assessments(vec![TraceId([1; 16]), TraceId([2; 16]), TraceId([3; 16])])
            .await
            .unwrap();
        let by_id = |id: &str| got.iter().find(|a| a.id == id).cloned();
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(by_id("a-4").is_none(), "the refused batch wrote nothing");
        let first = by_id("a-1").unwrap();
        assert!(!first.valid, "overridden by a-3");
        assert_eq!(first.overridden_by.as_deref(), Some("a-3"));
        assert!(by_id("a-2").unwrap().valid);
        // Filters read them by the trace's number.
        let page = found
            .list_traces(TraceQuery {
                filter: Some(loupe_query::parse("feedback.quality > 0.4", 0).unwrap()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut ids: Vec<_> = page.traces.iter().map(|t| t.trace_id).collect();
        ids.sort();
        assert_eq!(ids, [TraceId([1; 16]), TraceId([3; 16])]);
    }
}

#[tokio::test]
async fn acknowledged_batches_survive_a_crash_before_their_commit() {
    let (live, crashed, store) = crashed_after_three_batches().await;
    // Acknowledged, and only in the redo log: the database file holds none of it yet.
    assert_eq!(committed_traces(crashed.path()), 0);
    assert_eq!(crate::redo::read_records(crashed.path()).unwrap().len(), 3);

    let recovered = SqliteStore::open(crashed.path()).unwrap();
    assert_eq!(
        committed_traces(crashed.path()),
        3,
        "replayed and committed at open"
    );
    for t in 1..=3 {
        loupe_store_conformance::fixtures::check_rollup(&recovered, t).await;
        let d = recovered
            .get_trace(TraceId([t; 16]))
            .await
            .unwrap()
            .unwrap();
        assert!(
            d.spans
                .iter()
                .all(|s| s.body.resource.get("service.name") == Some(&json!("svc"))),
            "every body reads back from the body log"
        );
    }
    assert!(
        crate::redo::read_records(crashed.path())
            .unwrap()
            .is_empty(),
        "the redo log is emptied once its batches are committed"
    );
    // New batches go on from the replayed ones.
    recovered.write_spans(trace_spans(4)).await.unwrap();
    drop(recovered);
    let reopened = SqliteStore::open(crashed.path()).unwrap();
    for t in 1..=4 {
        loupe_store_conformance::fixtures::check_rollup(&reopened, t).await;
    }

    // The live store reads its own batches: a read commits them first.
    loupe_store_conformance::fixtures::check_rollup(&store, 1).await;
    assert_eq!(committed_traces(live.path()), 3);
}

#[tokio::test]
async fn a_torn_redo_record_ends_the_replay() {
    let (_live, crashed, _store) = crashed_after_three_batches().await;
    // The last record cut short, as a crash in the middle of its write leaves it (such a batch
    // was never acknowledged).
    let redo = crashed.path().join(crate::redo::REDO_FILES[0]);
    let len = std::fs::metadata(&redo).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&redo)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let recovered = SqliteStore::open(crashed.path()).unwrap();
    for t in 1..=2 {
        loupe_store_conformance::fixtures::check_rollup(&recovered, t).await;
    }
    assert!(
        recovered
            .get_trace(TraceId([3; 16]))
            .await
            .unwrap()
            .is_none()
    );
    // Garbage after the records is ignored just as well.
    drop(recovered);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&redo)
        .unwrap();
    std::io::Write::write_all(&mut f, b"LRD1 not a record").unwrap();
    let reopened = SqliteStore::open(crashed.path()).unwrap();
    loupe_store_conformance::fixtures::check_rollup(&reopened, 2).await;
}

#[tokio::test]
async fn batches_already_committed_are_never_replayed() {
    let (_live, crashed, _store) = crashed_after_three_batches().await;
    let stale_redo = std::fs::read(crashed.path().join(crate::redo::REDO_FILES[0])).unwrap();
    {
        let recovered = SqliteStore::open(crashed.path()).unwrap();
        let gone = recovered
            .delete_traces(loupe_store::TraceSelection::Ids(vec![TraceId([2; 16])]))
            .await
            .unwrap();
        assert_eq!(gone, 1);
    }
    // A crash can lose the emptying of the redo log: its old records come back.
    std::fs::write(crashed.path().join(crate::redo::REDO_FILES[0]), stale_redo).unwrap();
    let reopened = SqliteStore::open(crashed.path()).unwrap();
    assert!(
        reopened
            .get_trace(TraceId([2; 16]))
            .await
            .unwrap()
            .is_none(),
        "a deleted trace stays deleted"
    );
    loupe_store_conformance::fixtures::check_rollup(&reopened, 1).await;
    assert_eq!(committed_traces(crashed.path()), 2);
}

#[tokio::test]
async fn a_commit_lost_before_its_flush_is_replayed_from_both_redo_files() {
    let (live, crashed, store) = crashed_after_three_batches().await;
    // `crashed` holds the database as it was before the commit below.
    drop(store.settled_writer().unwrap());
    assert_eq!(committed_traces(live.path()), 3);
    let redo_len = |dir: &std::path::Path, i: usize| {
        std::fs::metadata(dir.join(crate::redo::REDO_FILES[i]))
            .unwrap()
            .len()
    };
    assert!(
        redo_len(live.path(), 0) > 0,
        "the commit is not flushed yet: the batches stay in the first file"
    );
    store.write_spans(trace_spans(4)).await.unwrap();
    assert!(
        redo_len(live.path(), 1) > 0,
        "the next batch went to the other"
    );

    // A crash loses the commit (its WAL frames never reached the disk), while both redo files
    // and the bodies are on disk, as every batch was flushed before it was acknowledged.
    copy_logs(live.path(), crashed.path());
    assert_eq!(committed_traces(crashed.path()), 0);
    assert_eq!(crate::redo::read_records(crashed.path()).unwrap().len(), 4);
    let recovered = SqliteStore::open(crashed.path()).unwrap();
    for t in 1..=4 {
        loupe_store_conformance::fixtures::check_rollup(&recovered, t).await;
    }
    assert_eq!(redo_len(crashed.path(), 0) + redo_len(crashed.path(), 1), 0);
    drop(recovered);

    // Live: the commit thread's flush empties the first file and leaves the second alone.
    store.inner.flush_pending().unwrap();
    assert_eq!(redo_len(live.path(), 0), 0);
    assert!(redo_len(live.path(), 1) > 0);
    // A commit whose pending flush nobody made makes it first, before it switches back.
    drop(store.settled_writer().unwrap());
    store.write_spans(trace_spans(5)).await.unwrap();
    drop(store.settled_writer().unwrap());
    assert_eq!(
        redo_len(live.path(), 1),
        0,
        "flushed by the commit after it"
    );
    assert!(redo_len(live.path(), 0) > 0);
    drop(store);
    let reopened = SqliteStore::open(live.path()).unwrap();
    for t in 1..=5 {
        loupe_store_conformance::fixtures::check_rollup(&reopened, t).await;
    }
    assert_eq!(redo_len(live.path(), 0) + redo_len(live.path(), 1), 0);
}

fn id_counts(dir: &std::path::Path) -> (i64, i64) {
    let c = rusqlite::Connection::open(dir.join(crate::DB_FILE)).unwrap();
    let count = |t: &str| -> i64 {
        c.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("trace_ids"), count("trace_ids_recent"))
}

#[tokio::test]
async fn trace_ids_merge_in_proportion_to_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_trace_id_merge_threshold(1);
    let write = |traces: std::ops::RangeInclusive<u8>| {
        let spans: Vec<_> = traces.flat_map(trace_spans).collect();
        let store = &store;
        async move {
            store.write_spans(spans).await.unwrap();
            // A read commits, and a commit merges when it is time.
            store.list_traces(TraceQuery::default()).await.unwrap();
        }
    };
    write(1..=100).await;
    assert_eq!(id_counts(dir.path()), (100, 0), "100 new ids of 100 traces");
    write(101..=105).await;
    assert_eq!(
        id_counts(dir.path()),
        (100, 5),
        "5 new ids are less than a sixteenth of 105 traces"
    );
    write(106..=106).await;
    assert_eq!(id_counts(dir.path()), (106, 0), "6 of 106 are");
    for t in [1, 100, 105, 106] {
        loupe_store_conformance::fixtures::check_rollup(&store, t).await;
    }
}

#[tokio::test]
async fn trace_ids_are_found_across_merges() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_trace_id_merge_threshold(3);
    // Half of each trace, then a read (which commits: every third new trace moves the recent
    // ids to the large table).
    for t in 1..=8u8 {
        store
            .write_spans(trace_spans(t)[..2].to_vec())
            .await
            .unwrap();
        store.list_traces(TraceQuery::default()).await.unwrap();
    }
    assert_eq!(id_counts(dir.path()), (6, 2), "two merges of three ids");
    // The whole of each trace: two new spans and two duplicates, whichever table holds its id.
    for t in 1..=8u8 {
        let out = store.write_spans(trace_spans(t)).await.unwrap();
        assert_eq!((out.inserted, out.duplicates), (2, 2), "trace {t}");
    }
    for t in 1..=8u8 {
        loupe_store_conformance::fixtures::check_rollup(&store, t).await;
    }
    let page = store
        .list_traces(TraceQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 8, "one row per trace");
    // Deleted from either table: gone, and a new trace if it comes again.
    let deleted = store
        .delete_traces(loupe_store::TraceSelection::Ids(vec![
            TraceId([2; 16]),
            TraceId([8; 16]),
        ]))
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(id_counts(dir.path()), (5, 1));
    assert!(store.get_trace(TraceId([8; 16])).await.unwrap().is_none());
    let out = store.write_spans(trace_spans(2)).await.unwrap();
    assert_eq!((out.inserted, out.duplicates), (4, 0));
    loupe_store_conformance::fixtures::check_rollup(&store, 2).await;
    // A trace the client announced first (MLflow's StartTraceV3) is found by its spans.
    store
        .upsert_trace_info(loupe_store::TraceInfoUpdate {
            trace_id: TraceId([9; 16]),
            project: "default".into(),
            start_ns: None,
            duration_ns: None,
            status: None,
            name: Some("announced".into()),
            session_id: None,
            user_id: None,
            tags: serde_json::Map::new(),
            metadata: serde_json::Map::new(),
            info: serde_json::Map::new(),
        })
        .await
        .unwrap();
    let out = store.write_spans(trace_spans(9)).await.unwrap();
    assert_eq!(out.inserted, 4);
    let announced = |d: loupe_store::TraceDetail| (d.summary.name, d.summary.span_count);
    let d = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(announced(d), ("span-1".to_string(), 4));
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    for t in [1, 2, 3, 4, 5, 6, 7] {
        loupe_store_conformance::fixtures::check_rollup(&store, t).await;
    }
    let d = store.get_trace(TraceId([9; 16])).await.unwrap().unwrap();
    assert_eq!(announced(d), ("span-1".to_string(), 4));
    let (large, recent) = id_counts(dir.path());
    assert_eq!(large + recent, 8);
}

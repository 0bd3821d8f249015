//! The store conformance suite on PostgreSQL: a throwaway server started from the machine's
//! binaries, one database per test.

use loupe_store_conformance::pg;
use loupe_store_postgres::PostgresStore;

loupe_store_conformance::conformance_tests!(async {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", db.url));
    (store, db)
});

/// Connecting again runs no migration twice, and a newer schema is refused.
#[tokio::test]
async fn migrations_run_once_and_refuse_a_newer_schema() {
    let db = pg::fresh_database().await;
    let first = PostgresStore::connect(&db.url).await.expect("connects");
    let (a, b) = tokio::join!(
        PostgresStore::connect(&db.url),
        PostgresStore::connect(&db.url)
    );
    a.expect("second connect");
    b.expect("third connect");
    assert!(first.describe().contains(&db.name), "{}", first.describe());
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*), count(DISTINCT version), max(version) FROM schema_version",
            &[],
        )
        .await
        .expect("query");
    let (rows, versions, newest): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert!(newest >= 4, "runs and datasets migrated: {newest}");
    assert_eq!(
        (rows, versions),
        (newest, newest),
        "one row per migration, each applied once"
    );
    client
        .execute("INSERT INTO schema_version (version) VALUES (999)", &[])
        .await
        .expect("insert");
    let err = PostgresStore::connect(&db.url)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(err.message.contains("newer"), "{}", err.message);
}

/// Queries run without parallel workers (ingest keeps the other cores), unless the URL's own
/// options say otherwise.
#[tokio::test]
async fn sessions_run_without_parallel_workers_unless_the_url_says() {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url).await.expect("connects");
    let workers = store
        .setting("max_parallel_workers_per_gather")
        .await
        .expect("shows");
    assert_eq!(workers, "0");
    // The test server's URL is in key=value form.
    let url = format!("{} options='-c max_parallel_workers_per_gather=3'", db.url);
    let store = PostgresStore::connect(&url).await.expect("connects");
    let workers = store
        .setting("max_parallel_workers_per_gather")
        .await
        .expect("shows");
    assert_eq!(workers, "3");
    let err = store
        .setting("x; DROP TABLE traces")
        .await
        .expect_err("refused");
    assert_eq!(err.kind, loupe_store::ErrorKind::InvalidInput);
}

/// A bad connection string is an input error, not a panic.
#[tokio::test]
async fn a_bad_url_is_refused() {
    let err = PostgresStore::connect("postgres://[broken")
        .await
        .err()
        .expect("refused");
    assert_eq!(err.kind, loupe_store::ErrorKind::InvalidInput);
}

/// Two stores (two replicas) and many concurrent batches over the same traces: every span is
/// stored once and every roll-up is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_writing_the_same_traces_at_once() {
    use loupe_store::TraceStore;
    use loupe_store_conformance::fixtures::{check_rollup, trace_spans};
    let db = pg::fresh_database().await;
    let a = PostgresStore::connect(&db.url).await.expect("connects");
    let b = PostgresStore::connect(&db.url).await.expect("connects");
    let traces: Vec<u8> = (20..40).collect();
    let mut tasks = Vec::new();
    for w in 0..8usize {
        let store = if w % 2 == 0 { a.clone() } else { b.clone() };
        // Each writer sends a different overlapping part, traces in a different order.
        let mut batch = Vec::new();
        for (i, t) in traces.iter().enumerate() {
            let t = if w % 3 == 0 {
                traces[traces.len() - 1 - i]
            } else {
                *t
            };
            for (k, s) in trace_spans(t).into_iter().enumerate() {
                if (k + w) % 3 != 0 {
                    batch.push(s);
                }
            }
        }
        tasks.push(tokio::spawn(async move { store.write_spans(batch).await }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.expect("task").expect("write").inserted;
    }
    assert_eq!(inserted, 4 * traces.len() as u64, "each span stored once");
    for t in traces {
        check_rollup(&a, t).await;
    }
}

/// The full-text case again with every word counted as common, so the GIN index is consulted
/// inside the page query instead of listing a rare word's traces first.
#[tokio::test]
async fn full_text_with_the_common_word_plan() {
    let db = pg::fresh_database().await;
    let store = PostgresStore::connect(&db.url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", db.url));
    store.set_common_text_threshold(0);
    loupe_store_conformance::query::query_full_text(&store).await;
}

/// A database written by the binary before assessments had columns (schema 1, commit 622455c;
/// `tests/data/v1-assessments.sql` is its `pg_dump --inserts`), carried over on connect.
#[tokio::test]
async fn v1_assessments_migrate_to_columns() {
    let db = pg::fresh_database().await;
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connects");
    tokio::spawn(conn);
    client
        .batch_execute(include_str!("data/v1-assessments.sql"))
        .await
        .expect("the old database restores");
    let store = PostgresStore::connect(&db.url)
        .await
        .expect("connects and migrates");
    loupe_store_conformance::migration::assessments_written_as_mlflow_json_read_back_typed(&store)
        .await;
}

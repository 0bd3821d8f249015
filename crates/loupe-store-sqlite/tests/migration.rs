//! A data directory written by the binary before assessments had columns (schema v8, commit
//! 622455c; see `loupe_store_conformance::migration`), carried over on open.

use std::path::Path;

use loupe_store_sqlite::SqliteStore;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

#[tokio::test]
async fn v8_assessments_migrate_to_columns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v8-assessments");
    copy_dir(&fixture, dir.path());
    let store = SqliteStore::open(dir.path()).expect("opens and migrates");
    loupe_store_conformance::migration::assessments_written_as_mlflow_json_read_back_typed(&store)
        .await;
}

/// A JSON column that does not parse reads as an error, never as an empty value.
#[tokio::test]
async fn corrupt_json_columns_are_errors() {
    use loupe_model::TraceId;
    use loupe_store::{ErrorKind, TraceStore};
    let dir = tempfile::tempdir().expect("temp dir");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v8-assessments");
    copy_dir(&fixture, dir.path());
    drop(SqliteStore::open(dir.path()).expect("opens and migrates"));
    let db = rusqlite::Connection::open(dir.path().join(loupe_store_sqlite::DB_FILE)).expect("db");
    db.execute_batch(
        "UPDATE traces SET tags = '{not json' WHERE trace_id = x'11111111111111111111111111111111';
         UPDATE assessments SET metadata = '[1]' WHERE trace_id = x'22222222222222222222222222222222';",
    )
    .expect("corrupts");
    drop(db);
    let store = SqliteStore::open(dir.path()).expect("opens");
    let err = store
        .trace_summaries(vec![TraceId([0x11; 16])])
        .await
        .expect_err("corrupt tags");
    assert_eq!(err.kind, ErrorKind::Internal);
    let err = store
        .assessments(vec![TraceId([0x22; 16])])
        .await
        .expect_err("corrupt metadata");
    assert_eq!(err.kind, ErrorKind::Internal);
    assert_eq!(
        store
            .trace_summaries(vec![TraceId([0x22; 16])])
            .await
            .expect("intact")
            .len(),
        1
    );
}

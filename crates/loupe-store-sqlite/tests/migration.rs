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

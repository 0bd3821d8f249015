//! The store conformance suite on SQLite: a fresh data directory per test.

use loupe_store_sqlite::SqliteStore;

loupe_store_conformance::conformance_tests!(async {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("opens");
    (store, dir)
});

/// The full-text case again with every word counted as common, so the plan that checks the
/// newest traces one by one answers it instead of the list of matches.
#[tokio::test]
async fn full_text_with_the_common_word_plan() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("opens");
    store.set_common_text_threshold(0);
    loupe_store_conformance::query::query_full_text(&store).await;
}

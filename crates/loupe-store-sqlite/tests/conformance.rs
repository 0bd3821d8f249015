//! The store conformance suite on SQLite: a fresh data directory per test.

use loupe_store_sqlite::SqliteStore;

loupe_store_conformance::conformance_tests!(async {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path()).expect("opens");
    (store, dir)
});

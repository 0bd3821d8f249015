//! A real Loupe in the test's process (SQLite in a temporary directory, port 0), and reads of
//! its JSON API.

#![allow(clippy::unwrap_used, dead_code)]

use std::sync::Arc;

use loupe_ingest::{IngestQueue, QueueConfig};
use loupe_server::{AppState, ServerConfig};
use loupe_store_sqlite::SqliteStore;
use serde_json::Value;

/// Starts Loupe; returns its URL and the directory that must outlive it.
pub async fn start() -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn loupe_store::TraceStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let (queue, _writer) = IngestQueue::start(store.clone(), QueueConfig::default());
    let state = AppState {
        store,
        queue,
        config: Arc::new(ServerConfig::default()),
        prices: Arc::new(loupe_model::pricing::PriceBook::builtin()),
    };
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", http.local_addr().unwrap());
    tokio::spawn(loupe_server::serve(
        http,
        grpc,
        state,
        std::future::pending(),
    ));
    (url, dir)
}

pub async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

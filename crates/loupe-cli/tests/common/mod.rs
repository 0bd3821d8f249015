//! Test harness: a Loupe server in this process on port 0, or the real binary as a child.

#![allow(dead_code, clippy::unwrap_used, clippy::type_complexity)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use loupe_ingest::{IngestQueue, QueueConfig, WriterHandle};
use loupe_server::{AppState, ServerConfig};
use loupe_store::TraceStore;
use loupe_store_sqlite::SqliteStore;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

/// A server running inside the test process.
pub struct TestServer {
    pub url: String,
    pub grpc: SocketAddr,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    writer: Option<WriterHandle>,
}

pub struct Options {
    pub max_request_bytes: usize,
    pub max_queued_spans: usize,
    /// Wrap the store (to slow it down, say).
    pub wrap: Option<Box<dyn FnOnce(Arc<dyn TraceStore>) -> Arc<dyn TraceStore>>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024 * 1024,
            max_queued_spans: 100_000,
            wrap: None,
        }
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(opts: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut store: Arc<dyn TraceStore> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        if let Some(wrap) = opts.wrap {
            store = wrap(store);
        }
        let (queue, writer) = IngestQueue::start(
            store.clone(),
            QueueConfig {
                max_queued_spans: opts.max_queued_spans,
                ..QueueConfig::default()
            },
        );
        let state = AppState {
            store,
            queue,
            config: Arc::new(ServerConfig {
                max_request_bytes: opts.max_request_bytes,
                retry_after_secs: 1,
            }),
            prices: Arc::new(loupe_model::pricing::PriceBook::builtin()),
        };
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", http.local_addr().unwrap());
        let grpc_addr = grpc.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loupe_server::serve(http, grpc, state, async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            url,
            grpc: grpc_addr,
            dir,
            stop: Some(tx),
            task: Some(task),
            writer: Some(writer),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("{}{path}", self.url)).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    pub async fn trace(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/v1/traces/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
        if let Some(w) = self.writer.take() {
            w.join().await;
        }
    }
}

/// The `loupe` binary running as a child process.
pub struct ChildServer {
    pub child: tokio::process::Child,
    pub url: String,
}

pub fn loupe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_loupe"))
}

impl ChildServer {
    pub async fn start(data_dir: &Path) -> Self {
        let mut child = tokio::process::Command::new(loupe_bin())
            .args([
                "serve",
                "--http",
                "127.0.0.1:0",
                "--grpc",
                "127.0.0.1:0",
                "--data-dir",
            ])
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(rest) = line.trim().strip_prefix("HTTP:") {
                    return rest.split_whitespace().next().unwrap().to_string();
                }
            }
            panic!("the server exited before printing its address");
        })
        .await
        .expect("server start");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, url }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().unwrap() as i32
    }
}

pub fn signal(pid: i32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

/// Every trace id the server lists, following cursors.
pub async fn all_traces(url: &str) -> Vec<Value> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = client
            .get(format!("{url}/api/v1/traces"))
            .query(&[("limit", "1000")]);
        if let Some(c) = &cursor {
            req = req.query(&[("cursor", c)]);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        out.extend(body["traces"].as_array().unwrap().iter().cloned());
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

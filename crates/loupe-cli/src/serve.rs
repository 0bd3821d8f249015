//! `loupe serve`: configuration, wiring of the store, queue and servers, and signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use loupe_ingest::{IngestQueue, QueueConfig};
use loupe_model::pricing::PriceBook;
use loupe_server::{AppState, ServerConfig};
use loupe_store_postgres::PostgresStore;
use loupe_store_sqlite::SqliteStore;
use tokio::net::TcpListener;

/// Options of `loupe serve`. Flags win over environment variables, which win over defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the data lives (with the embedded SQLite store, the default).
    #[arg(long, env = "LOUPE_DATA_DIR", default_value = "./loupe-data")]
    pub data_dir: PathBuf,
    /// A PostgreSQL database to keep the data in instead of the data directory
    /// (`postgres://user:password@host:5432/dbname`); several replicas may share one.
    #[arg(long, env = "LOUPE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// HTTP address: OTLP/HTTP, JSON API, UI (port 0 picks a free port).
    #[arg(long, env = "LOUPE_HTTP", default_value = "127.0.0.1:4318")]
    pub http: SocketAddr,
    /// OTLP/gRPC address (port 0 picks a free port).
    #[arg(long, env = "LOUPE_GRPC", default_value = "127.0.0.1:4317")]
    pub grpc: SocketAddr,
    /// Largest OTLP request accepted, in bytes, compressed or not.
    #[arg(long, env = "LOUPE_MAX_REQUEST_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Spans that may wait for the writer before new requests get 503 / UNAVAILABLE.
    #[arg(long, env = "LOUPE_MAX_QUEUED_SPANS", default_value_t = 20_000)]
    pub max_queued_spans: usize,
    /// A price book (JSON, the shape of the built-in one) whose models replace or add to the
    /// built-in prices.
    #[arg(long, env = "LOUPE_PRICES")]
    pub prices: Option<PathBuf>,
}

/// The built-in price book, with the user's file on top.
pub fn load_prices(path: Option<&std::path::Path>) -> anyhow::Result<PriceBook> {
    let book = PriceBook::builtin();
    let Some(path) = path else {
        return Ok(book);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the price book {}", path.display()))?;
    let user = PriceBook::parse(&text).with_context(|| format!("in {}", path.display()))?;
    Ok(book.merged(user))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let prices = Arc::new(load_prices(args.prices.as_deref())?);
    // The server's log goes to stderr, filtered by `LOUPE_LOG` (tracing's `EnvFilter` syntax:
    // `info`, `loupe_store_sqlite=debug,warn`); unset or not a valid filter, `warn`.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LOUPE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let (store, where_data): (Arc<dyn loupe_store::TraceStore>, String) =
        match args.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => {
                let store = PostgresStore::connect(url)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("cannot open the PostgreSQL store (--database-url)")?;
                let at = store.describe().to_string();
                (Arc::new(store), at)
            }
            None => {
                let store = SqliteStore::open(&args.data_dir)
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| {
                        format!("cannot open the store in {}", args.data_dir.display())
                    })?;
                (Arc::new(store), args.data_dir.display().to_string())
            }
        };
    let http = TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {} (HTTP)", args.http))?;
    let grpc = TcpListener::bind(args.grpc)
        .await
        .with_context(|| format!("cannot listen on {} (gRPC)", args.grpc))?;
    let (queue, writer) = IngestQueue::start(
        store.clone(),
        QueueConfig {
            max_queued_spans: args.max_queued_spans,
            ..QueueConfig::default()
        },
    );
    let state = AppState {
        store,
        queue,
        config: Arc::new(ServerConfig {
            max_request_bytes: args.max_request_bytes,
            ..ServerConfig::default()
        }),
        prices,
    };
    let http_addr = http.local_addr()?;
    let grpc_addr = grpc.local_addr()?;
    println!(
        "loupe {} ready in {} ms",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_millis()
    );
    println!("  data:      {where_data}");
    println!("  HTTP:      http://{http_addr}  (OTLP/HTTP at /v1/traces, API at /api/v1, UI at /)");
    println!("  OTLP/gRPC: {grpc_addr}");
    loupe_server::serve(http, grpc, state, shutdown_signal()).await?;
    // Every sender is gone with the servers: the writer flushes what it holds and stops.
    writer.close();
    if tokio::time::timeout(Duration::from_secs(30), writer.join())
        .await
        .is_err()
    {
        anyhow::bail!("the writer did not finish within 30 s");
    }
    println!("loupe stopped");
    Ok(ExitCode::SUCCESS)
}

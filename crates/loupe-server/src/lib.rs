//! Loupe's front doors: one HTTP port (OTLP/HTTP traces and logs, the JSON API, the web UI)
//! and one gRPC port (OTLP/gRPC traces and logs).
//!
//! [`app`] builds the HTTP router, testable without a socket; [`serve`] runs both servers on
//! listeners the caller already bound, until the shutdown future resolves. Every transport calls
//! the same ingest path (`loupe_ingest`), and every error is turned into a status code in one
//! place per protocol ([`error`]).

mod api;
mod body;
pub mod error;
mod grpc;
mod mlflow;
mod otlp_http;
mod ui;
mod util;

/// What the fuzz targets (`fuzz/`) drive below the HTTP routes: MLflow request bodies read as
/// their handlers read them, before anything is looked up or stored.
#[cfg(fuzzing)]
pub mod fuzzing {
    use crate::mlflow::{json_object, traces};

    /// A StartTraceV3 body; whether it was accepted.
    pub fn mlflow_start_trace(body: &[u8]) -> bool {
        json_object(body)
            .and_then(|v| traces::read_start_trace(&v))
            .is_ok()
    }

    /// A SearchTracesV3 body; whether it was accepted.
    pub fn mlflow_search_traces(body: &[u8]) -> bool {
        json_object(body)
            .and_then(|v| traces::read_search_traces(&v))
            .is_ok()
    }
}

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post, put};
use loupe_ingest::IngestQueue;
use loupe_store::TraceStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Limits and knobs of the front doors.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest OTLP request accepted, in bytes, both as sent and after decompression.
    pub max_request_bytes: usize,
    /// Seconds a client is told to wait when the write queue is full.
    pub retry_after_secs: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: 32 * 1024 * 1024,
            retry_after_secs: 1,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The store, for reads.
    pub store: Arc<dyn TraceStore>,
    /// The write queue.
    pub queue: IngestQueue,
    /// Limits.
    pub config: Arc<ServerConfig>,
    /// Prices for the cost of LLM spans.
    pub prices: Arc<loupe_model::pricing::PriceBook>,
}

/// The HTTP router: OTLP/HTTP, the JSON API, the MLflow API, health and the web UI.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/v1/traces", post(otlp_http::export))
        .route("/v1/logs", post(otlp_http::export_logs))
        .route("/api/v1/openapi.json", get(api::openapi))
        .route("/api/v1/traces", get(api::list_traces))
        .route("/api/v1/traces/{trace_id}", get(api::get_trace))
        .route(
            "/api/v1/traces/{trace_id}/assessments",
            post(api::post_assessments),
        )
        .route(
            "/api/v1/traces/{trace_id}/tags/{key}",
            put(api::put_tag).delete(api::delete_tag),
        )
        .route(
            "/api/v1/assessments/{assessment_id}",
            get(api::get_assessment)
                .patch(api::patch_assessment)
                .delete(api::delete_assessment),
        )
        .route("/api/v1/stats", get(api::stats))
        .route("/api/v1/spans", get(api::list_spans))
        .route("/api/v1/sessions", get(api::list_sessions))
        .route("/api/v1/sessions/{session_id}", get(api::get_session))
        .route("/api/v1/runs", get(api::runs::list_runs))
        .route("/api/v1/runs/{run_id}", get(api::runs::get_run))
        .merge(mlflow::routes())
        .merge(ui::routes())
        .fallback(api::not_found)
        .with_state(state)
}

/// Serves HTTP on `http` and OTLP/gRPC on `grpc` until `shutdown` resolves. Then both stop
/// accepting connections, finish the requests they hold (each waits for its commit), and
/// return.
pub async fn serve(
    http: TcpListener,
    grpc: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let wait = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let grpc_service = grpc::service(state.clone());
    let logs_service = grpc::logs_service(state.clone());
    let http_server = axum::serve(http, app(state)).with_graceful_shutdown(wait(stop_rx.clone()));
    let grpc_server = tonic::transport::Server::builder()
        .add_service(grpc_service)
        .add_service(logs_service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc),
            wait(stop_rx),
        );
    let (h, g) = tokio::join!(http_server, grpc_server);
    h?;
    g.map_err(std::io::Error::other)
}

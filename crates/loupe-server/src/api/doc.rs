//! The OpenAPI document, derived from the handlers' `#[utoipa::path]` attributes and the
//! response and request types (`types.rs`, `annotations.rs`): an endpoint is documented by
//! writing it.

use std::sync::OnceLock;

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Loupe API",
        version = "1.0.0",
        description = "Loupe's JSON API and OTLP/HTTP endpoint. Every JSON error is \
            {\"error\": {\"code\": ..., \"message\": ...}}; an internal error names only an id \
            that the server log also prints."
    ),
    paths(
        super::healthz,
        super::openapi,
        super::list_traces,
        super::get_trace,
        super::list_spans,
        super::stats,
        super::list_sessions,
        super::get_session,
        super::runs::list_runs,
        super::runs::get_run,
        super::annotations::post_assessments,
        super::annotations::get_assessment,
        super::annotations::patch_assessment,
        super::annotations::delete_assessment,
        super::annotations::put_tag,
        super::annotations::delete_tag,
        crate::otlp_http::export,
        crate::otlp_http::export_logs,
    ),
    tags(
        (name = "traces", description = "Traces and spans: list, search, read, aggregate, tag"),
        (name = "sessions", description = "Conversations: traces grouped by session id"),
        (name = "runs", description = "MLflow runs: evaluations and experiment tracking, with their traces and scores"),
        (name = "assessments", description = "Feedback, expectations and issues on traces"),
        (name = "otlp", description = "OpenTelemetry ingest (OTLP/HTTP); gRPC on the same port"),
        (name = "health", description = "Liveness and this document"),
    )
)]
struct ApiDoc;

/// The document as JSON, built once.
pub(crate) fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|_| String::from("{}"))
    })
}

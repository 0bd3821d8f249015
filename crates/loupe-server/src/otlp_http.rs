//! `POST /v1/traces` and `POST /v1/logs`: OTLP over HTTP, protobuf or JSON.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_ingest::{Encoding, IngestError, Prepared};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::json;

use crate::AppState;
use crate::body::read_limited;
use crate::error::OtlpError;

/// Headers that name the project of an OTLP request, in order of preference.
pub(crate) const PROJECT_HEADERS: &[&str] = &["x-loupe-project", "x-mlflow-experiment-id"];

fn encoding_of(headers: &HeaderMap) -> Result<Encoding, OtlpError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(OtlpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "unsupported Content-Type {ct:?}: OTLP/HTTP takes application/x-protobuf or application/json"
            ),
            Encoding::Json,
        )),
    }
}

/// The project a request names: `x-loupe-project`, else the project of the MLflow experiment
/// `x-mlflow-experiment-id` names.
pub(crate) async fn project_from(
    state: &AppState,
    header: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let named = |h: &str| {
        header(h)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(p) = named(PROJECT_HEADERS[0]) {
        return Some(p);
    }
    let id = named(PROJECT_HEADERS[1])?;
    Some(crate::mlflow::project_for_experiment_id(state, &id).await)
}

/// Admits the body against the decoding budget ([`loupe_ingest::IngestQueue::admit`]), reads
/// it within its bounds and decodes it on ingest's decode threads
/// ([`loupe_ingest::IngestQueue::cpu`]: one per core, at nice 5, so the span writer gets the
/// CPU first), as decode, normalize and compress are CPU work. Shared by both signals.
async fn decode<T: Send + 'static>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    f: impl FnOnce(&[u8], Encoding) -> Result<T, IngestError> + Send + 'static,
) -> Result<(Encoding, T), OtlpError> {
    let encoding = encoding_of(headers)?;
    let retry = state.config.retry_after_secs;
    let refused = |e| OtlpError::from_ingest(e, encoding, retry);
    // Admitted before the body is read where its length is declared, and for what it turned
    // out to be once read: an overload is refused before it costs memory or decode time.
    let declared = crate::body::declared_length(headers).unwrap_or(0);
    let admitted = match state.queue.admit(declared, None) {
        Ok(admitted) => admitted,
        Err(e) => {
            crate::body::discard(body, state.config.max_request_bytes).await;
            return Err(refused(e));
        }
    };
    let bytes = read_limited(headers, body, state.config.max_request_bytes)
        .await
        .map_err(|e| OtlpError::new(e.status, e.message, encoding))?;
    let _admitted = state
        .queue
        .admit(bytes.len(), Some(admitted))
        .map_err(refused)?;
    let decoded = state
        .queue
        .cpu(move || f(&bytes, encoding))
        .await
        .map_err(refused)?
        .map_err(refused)?;
    Ok((encoding, decoded))
}

/// A 200 in the request's encoding: the protobuf response, or its JSON form with
/// `partialSuccess` when something was refused.
fn success(encoding: Encoding, protobuf: Vec<u8>, partial: Option<serde_json::Value>) -> Response {
    match encoding {
        Encoding::Protobuf => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            protobuf,
        )
            .into_response(),
        Encoding::Json => {
            let body = match partial {
                Some(p) => json!({ "partialSuccess": p }),
                None => json!({}),
            };
            (StatusCode::OK, axum::Json(body)).into_response()
        }
    }
}

/// OTLP/HTTP trace export; answers only after the spans are on disk.
///
/// An `ExportTraceServiceRequest` as protobuf (`application/x-protobuf`) or OTLP/JSON
/// (`application/json`), optionally gzip-encoded. The answer is an `ExportTraceServiceResponse`
/// in the same encoding; spans refused as invalid are counted in its partial success. A full
/// write queue answers 503 with `Retry-After`.
#[utoipa::path(post, path = "/v1/traces", tag = "otlp",
    request_body(description = "ExportTraceServiceRequest: protobuf, or OTLP/JSON",
        content((Vec<u8> = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "Stored: ExportTraceServiceResponse"),
        (status = 400, description = "Undecodable body: google.rpc.Status"),
        (status = 413, description = "The body is over the server's limit"),
        (status = 415, description = "Neither application/x-protobuf nor application/json"),
        (status = 503, description = "The write queue is full: retry after Retry-After")))]
pub(crate) async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let project = project_from(&state, |h| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    })
    .await;
    let prices = state.prices.clone();
    let (encoding, prepared) = decode(&state, &headers, body, move |bytes, encoding| {
        loupe_ingest::prepare(bytes, encoding, project.as_deref(), &prices)
    })
    .await?;
    let Prepared {
        spans,
        rejected,
        reject_reason,
    } = prepared;
    let retry = state.config.retry_after_secs;
    state
        .queue
        .submit(spans)
        .await
        .map_err(|e| OtlpError::from_ingest(e, encoding, retry))?;
    let reason = reject_reason.unwrap_or_default();
    let protobuf = ExportTraceServiceResponse {
        partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
            rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reason.clone(),
        }),
    }
    .encode_to_vec();
    let partial = (rejected > 0)
        .then(|| json!({"rejectedSpans": rejected.to_string(), "errorMessage": reason}));
    Ok(success(encoding, protobuf, partial))
}

/// OTLP/HTTP log export: records tied to a span become events of that span.
///
/// GenAI message events arrive this way; the answer waits for the commit.
#[utoipa::path(post, path = "/v1/logs", tag = "otlp",
    request_body(description = "ExportLogsServiceRequest: protobuf, or OTLP/JSON",
        content((Vec<u8> = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "Stored: ExportLogsServiceResponse"),
        (status = 400, description = "Undecodable body: google.rpc.Status"),
        (status = 413, description = "The body is over the server's limit"),
        (status = 415, description = "Neither application/x-protobuf nor application/json"),
        (status = 503, description = "The write queue is full: retry after Retry-After")))]
pub(crate) async fn export_logs(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OtlpError> {
    let (encoding, prepared) = decode(&state, &headers, body, loupe_ingest::prepare_logs).await?;
    let retry = state.config.retry_after_secs;
    state
        .queue
        .submit_events(prepared.events)
        .await
        .map_err(|e| OtlpError::from_ingest(e, encoding, retry))?;
    let (rejected, reason) = (
        prepared.rejected,
        prepared.reject_reason.unwrap_or_default(),
    );
    let protobuf = ExportLogsServiceResponse {
        partial_success: (rejected > 0).then(|| ExportLogsPartialSuccess {
            rejected_log_records: i64::try_from(rejected).unwrap_or(i64::MAX),
            error_message: reason.clone(),
        }),
    }
    .encode_to_vec();
    let partial = (rejected > 0)
        .then(|| json!({"rejectedLogRecords": rejected.to_string(), "errorMessage": reason}));
    Ok(success(encoding, protobuf, partial))
}

//! From OTLP bytes to committed spans.
//!
//! Every door calls the same two steps: [`prepare`] decodes a request (protobuf or JSON),
//! validates it, turns it into canonical [`loupe_model::Span`]s and encodes them for storage —
//! CPU work, run off the async executor; then [`IngestQueue::submit`] hands them to the single
//! batch writer and waits until they are committed. The queue is bounded by a span budget: when
//! it is spent, submissions fail at once with [`IngestError::Overloaded`] instead of buffering.

mod error;
mod logs;
mod mlflow;
mod otlp;
mod otlp_json;
mod queue;

pub use error::IngestError;
pub use logs::{PreparedLogs, convert_logs};
pub use mlflow::{prepare_traces_json, spans_from_traces_json};
pub use otlp::{Prepared, convert_request};
pub use otlp_json::{decode_json, decode_json_as};
pub use queue::{Admission, IngestQueue, QueueConfig, WriterHandle};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// The wire encoding of an OTLP request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`
    Protobuf,
    /// `application/json`
    Json,
}

/// Decodes, validates, normalizes and encodes one OTLP request body.
pub fn prepare(
    body: &[u8],
    encoding: Encoding,
    project: Option<&str>,
    prices: &loupe_model::pricing::PriceBook,
) -> Result<Prepared, IngestError> {
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body)
            .map_err(|e| IngestError::BadRequest(format!("invalid OTLP protobuf: {e}")))?,
        Encoding::Json => decode_json(body)?,
    };
    convert_request(request, project, prices)
}

/// Decodes and converts one OTLP logs request body.
pub fn prepare_logs(body: &[u8], encoding: Encoding) -> Result<PreparedLogs, IngestError> {
    let request = match encoding {
        Encoding::Protobuf => {
            opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(body)
                .map_err(|e| IngestError::BadRequest(format!("invalid OTLP protobuf: {e}")))?
        }
        Encoding::Json => decode_json_as(body)?,
    };
    convert_logs(request)
}

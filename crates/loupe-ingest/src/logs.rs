//! OTLP log records → span events.
//!
//! Some instrumentations (the OpenTelemetry GenAI ones among them) send prompts and completions
//! as log records tied to a span. Loupe keeps those as events of that span; a record outside
//! any span has nowhere to go and is refused through OTLP partial success.

use loupe_model::{SpanEvent, SpanId, TraceId};
use loupe_store::EncodedEvent;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use serde_json::Value;

use crate::IngestError;
use crate::otlp::{any_to_json, attrs_to_json};

/// Events ready to store, and what was refused.
#[derive(Debug, Default)]
pub struct PreparedLogs {
    /// Events.
    pub events: Vec<EncodedEvent>,
    /// Records refused.
    pub rejected: u64,
    /// Why the first refused record was refused.
    pub reject_reason: Option<String>,
}

/// Converts an export request. Malformed ids fail the request; records without a span context
/// are refused one by one.
pub fn convert_logs(req: ExportLogsServiceRequest) -> Result<PreparedLogs, IngestError> {
    let mut out = PreparedLogs::default();
    for (ri, rl) in req.resource_logs.into_iter().enumerate() {
        for (si, sl) in rl.scope_logs.into_iter().enumerate() {
            for (li, rec) in sl.log_records.into_iter().enumerate() {
                let at = || format!("resourceLogs[{ri}].scopeLogs[{si}].logRecords[{li}]");
                if rec.trace_id.is_empty() || rec.span_id.is_empty() {
                    out.rejected += 1;
                    out.reject_reason.get_or_insert_with(|| {
                        format!(
                            "{}: a log record without traceId and spanId is not stored (Loupe keeps log records as span events)",
                            at()
                        )
                    });
                    continue;
                }
                let trace_id = TraceId::from_slice(&rec.trace_id)
                    .map_err(|e| IngestError::BadRequest(format!("{}.traceId: {e}", at())))?;
                let span_id = SpanId::from_slice(&rec.span_id)
                    .map_err(|e| IngestError::BadRequest(format!("{}.spanId: {e}", at())))?;
                let mut attributes = attrs_to_json(rec.attributes);
                let name = if !rec.event_name.is_empty() {
                    rec.event_name
                } else {
                    match attributes.get("event.name") {
                        Some(Value::String(n)) => n.clone(),
                        _ => "log".to_string(),
                    }
                };
                if let Some(body) = rec.body {
                    attributes.insert("body".into(), any_to_json(body));
                }
                if !rec.severity_text.is_empty() {
                    attributes.insert("severity".into(), Value::String(rec.severity_text));
                }
                let time_ns = if rec.time_unix_nano > 0 {
                    rec.time_unix_nano
                } else {
                    rec.observed_time_unix_nano
                };
                out.events.push(EncodedEvent {
                    trace_id,
                    span_id,
                    event: SpanEvent {
                        name,
                        time_ns,
                        attributes,
                    },
                });
            }
        }
    }
    Ok(out)
}

//! OTLP protobuf types → canonical spans.

use base64::Engine;
use loupe_model::pricing::PriceBook;
use loupe_model::{
    DEFAULT_PROJECT, IdError, Span, SpanEvent, SpanId, SpanLink, SpanStatus, TraceId,
};
use loupe_store::{EncodedSpan, encode_spans};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use serde_json::{Map, Number, Value};

use crate::IngestError;

/// Resource attribute that names the project when no header does.
pub const PROJECT_RESOURCE_KEY: &str = "loupe.project";

/// Spans ready for the writer, and what was refused.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Spans to store.
    pub spans: Vec<EncodedSpan>,
    /// Spans refused (reported as OTLP partial success).
    pub rejected: u64,
    /// Why the first refused span was refused.
    pub reject_reason: Option<String>,
}

/// Converts an OTLP value to JSON. Doubles that JSON cannot hold (NaN, ±∞) become strings;
/// bytes become base64.
pub fn any_to_json(v: AnyValue) -> Value {
    match v.value {
        None => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::String(s),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::Number(i.into()),
        Some(any_value::Value::DoubleValue(f)) => Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.into_iter().map(any_to_json).collect())
        }
        Some(any_value::Value::KvlistValue(kv)) => Value::Object(attrs_to_json(kv.values)),
        Some(any_value::Value::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // A string-table index only means something inside a profiles dictionary; keep it.
        Some(any_value::Value::StringValueStrindex(i)) => {
            serde_json::json!({ "stringValueStrindex": i })
        }
    }
}

/// Converts a list of key-values to a JSON object; a repeated key keeps its last value.
pub fn attrs_to_json(kvs: Vec<KeyValue>) -> Map<String, Value> {
    let mut m = Map::with_capacity(kvs.len());
    for kv in kvs {
        let v = kv.value.map(any_to_json).unwrap_or(Value::Null);
        m.insert(kv.key, v);
    }
    m
}

/// Where a span sits in the request, for error messages (built only when one is needed).
#[derive(Clone, Copy)]
struct At(usize, usize, usize);

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "resourceSpans[{}].scopeSpans[{}].spans[{}]",
            self.0, self.1, self.2
        )
    }
}

fn bad_id(path: impl std::fmt::Display, field: &str, e: IdError) -> IngestError {
    IngestError::BadRequest(format!("{path}.{field}: {e}"))
}

/// Validates and converts a decoded request. Malformed ids fail the whole request with the
/// path of the offending span; all-zero ids refuse just that span (partial success).
pub fn convert_request(
    req: ExportTraceServiceRequest,
    project: Option<&str>,
    prices: &PriceBook,
) -> Result<Prepared, IngestError> {
    let total: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum();
    let mut out = Prepared::default();
    let mut spans = Vec::with_capacity(total);
    for (ri, rs) in req.resource_spans.into_iter().enumerate() {
        let resource = rs
            .resource
            .map(|r| attrs_to_json(r.attributes))
            .unwrap_or_default();
        let project = project
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| match resource.get(PROJECT_RESOURCE_KEY) {
                Some(Value::String(p)) if !p.is_empty() => Some(p.clone()),
                _ => None,
            })
            .unwrap_or_else(|| DEFAULT_PROJECT.to_string());
        for (si, ss) in rs.scope_spans.into_iter().enumerate() {
            let scope = ss.scope.map(|s| (s.name, s.version));
            for (ki, sp) in ss.spans.into_iter().enumerate() {
                let path = At(ri, si, ki);
                let trace_id =
                    TraceId::from_slice(&sp.trace_id).map_err(|e| bad_id(path, "traceId", e))?;
                let span_id =
                    SpanId::from_slice(&sp.span_id).map_err(|e| bad_id(path, "spanId", e))?;
                let parent_id = if sp.parent_span_id.is_empty() {
                    None
                } else {
                    Some(
                        SpanId::from_slice(&sp.parent_span_id)
                            .map_err(|e| bad_id(path, "parentSpanId", e))?,
                    )
                    .filter(|p| !p.is_zero())
                };
                if trace_id.is_zero() || span_id.is_zero() {
                    out.rejected += 1;
                    out.reject_reason.get_or_insert_with(|| {
                        format!("{path}: all-zero traceId or spanId is invalid")
                    });
                    continue;
                }
                let mut links = Vec::with_capacity(sp.links.len());
                for (li, l) in sp.links.into_iter().enumerate() {
                    links.push(SpanLink {
                        trace_id: TraceId::from_slice(&l.trace_id)
                            .map_err(|e| bad_id(format!("{path}.links[{li}]"), "traceId", e))?,
                        span_id: SpanId::from_slice(&l.span_id)
                            .map_err(|e| bad_id(format!("{path}.links[{li}]"), "spanId", e))?,
                        attributes: attrs_to_json(l.attributes),
                    });
                }
                let attributes = attrs_to_json(sp.attributes);
                let derived = prices.derive(&attributes, sp.start_time_unix_nano);
                let (status, status_message) = match sp.status {
                    Some(s) => (SpanStatus::from_code(i64::from(s.code)), s.message),
                    None => (SpanStatus::Unset, String::new()),
                };
                let span = Span {
                    trace_id,
                    span_id,
                    parent_id,
                    name: sp.name,
                    kind: sp.kind,
                    start_ns: sp.start_time_unix_nano,
                    end_ns: sp.end_time_unix_nano.max(sp.start_time_unix_nano),
                    status,
                    status_message,
                    attributes,
                    events: sp
                        .events
                        .into_iter()
                        .map(|e| SpanEvent {
                            name: e.name,
                            time_ns: e.time_unix_nano,
                            attributes: attrs_to_json(e.attributes),
                        })
                        .collect(),
                    links,
                    resource: resource.clone(),
                    scope: scope.clone(),
                    project: project.clone(),
                    derived,
                };
                spans.push(span);
            }
        }
    }
    out.spans = encode_spans(spans);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as PSpan, Status};

    fn req(spans: Vec<PSpan>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        }
    }

    fn pspan(trace: Vec<u8>, span: Vec<u8>) -> PSpan {
        PSpan {
            trace_id: trace,
            span_id: span,
            name: "s".into(),
            start_time_unix_nano: 10,
            end_time_unix_nano: 5,
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn converts_and_clamps() {
        let p = convert_request(
            req(vec![pspan(vec![1; 16], vec![2; 8])]),
            Some("proj"),
            &PriceBook::builtin(),
        )
        .unwrap();
        assert_eq!(p.spans.len(), 1);
        let s = &p.spans[0];
        assert_eq!((s.start_ns, s.end_ns), (10, 10));
        assert_eq!(s.status, SpanStatus::Error);
        assert_eq!(s.project, "proj");
    }

    #[test]
    fn wrong_length_ids_name_the_span() {
        let e = convert_request(
            req(vec![
                pspan(vec![1; 16], vec![2; 8]),
                pspan(vec![1; 15], vec![2; 8]),
            ]),
            None,
            &PriceBook::builtin(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "resourceSpans[0].scopeSpans[0].spans[1].traceId: expected 16 bytes (32 hex characters), got 15 bytes"
        );
    }

    #[test]
    fn zero_ids_are_partial_rejections() {
        let p = convert_request(
            req(vec![
                pspan(vec![1; 16], vec![2; 8]),
                pspan(vec![0; 16], vec![2; 8]),
            ]),
            None,
            &PriceBook::builtin(),
        )
        .unwrap();
        assert_eq!((p.spans.len(), p.rejected), (1, 1));
        assert!(p.reject_reason.unwrap().contains("spans[1]"));
    }

    #[test]
    fn values_convert() {
        let v = any_to_json(AnyValue {
            value: Some(any_value::Value::DoubleValue(f64::NAN)),
        });
        assert_eq!(v, Value::String("NaN".into()));
        let v = any_to_json(AnyValue {
            value: Some(any_value::Value::BytesValue(b"hello".to_vec())),
        });
        assert_eq!(v, Value::String("aGVsbG8=".into()));
    }
}

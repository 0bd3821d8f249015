//! MLflow's `traces.json` upload (the client's span data when its spans did not go over OTLP):
//! span dicts with base64 ids and JSON-text attribute values, into canonical spans, derived
//! and priced like OTLP spans.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use loupe_model::pricing::PriceBook;
use loupe_model::{Span, SpanEvent, SpanId, SpanLink, SpanStatus, TraceId};
use loupe_store::EncodedSpan;
use serde_json::{Map, Value};

use crate::IngestError;

/// Parses, normalizes and encodes a `traces.json` upload of `trace_id` (CPU work: run it on
/// [`crate::IngestQueue::cpu`]).
pub fn prepare_traces_json(
    trace_id: TraceId,
    body: &[u8],
    project: &str,
    prices: &PriceBook,
) -> Result<Vec<EncodedSpan>, IngestError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON body: {e}")))?;
    let spans =
        spans_from_traces_json(trace_id, &v, project, prices).map_err(IngestError::BadRequest)?;
    Ok(loupe_store::encode_spans(spans))
}

fn b64_id<const N: usize>(v: Option<&Value>, what: &str) -> Result<[u8; N], String> {
    let s = v
        .and_then(Value::as_str)
        .ok_or_else(|| format!("{what}: expected a base64 string"))?;
    let bytes = B64
        .decode(s)
        .map_err(|e| format!("{what}: invalid base64 {s:?}: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{what}: expected {N} bytes, got {}", b.len()))
}

fn nanos(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Parses the span dicts of a `traces.json` upload into canonical spans of `trace_id`.
pub fn spans_from_traces_json(
    trace_id: TraceId,
    body: &Value,
    project: &str,
    prices: &PriceBook,
) -> Result<Vec<Span>, String> {
    let spans = body
        .get("spans")
        .and_then(Value::as_array)
        .ok_or("traces.json: expected an object with a \"spans\" list")?;
    spans
        .iter()
        .enumerate()
        .map(|(i, s)| span(trace_id, i, s, project, prices))
        .collect()
}

/// Span dict number `i` of the upload of `trace_id`.
fn span(
    trace_id: TraceId,
    i: usize,
    s: &Value,
    project: &str,
    prices: &PriceBook,
) -> Result<Span, String> {
    let at = |f: &str| format!("spans[{i}].{f}");
    let tid = TraceId(b64_id::<16>(s.get("trace_id"), &at("trace_id"))?);
    if tid != trace_id {
        return Err(format!(
            "{}: belongs to trace {}, not {}",
            at("trace_id"),
            tid.to_hex(),
            trace_id.to_hex()
        ));
    }
    let span_id = SpanId(b64_id::<8>(s.get("span_id"), &at("span_id"))?);
    let parent_id = match s.get("parent_span_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.is_empty() => None,
        p => Some(SpanId(b64_id::<8>(p, &at("parent_span_id"))?)),
    };
    let attributes = attributes(s.get("attributes"));
    let (status, status_message) = status(s.get("status"));
    let start_ns = nanos(s.get("start_time_unix_nano")).unwrap_or(0);
    let end_ns = nanos(s.get("end_time_unix_nano")).unwrap_or(start_ns);
    let derived = prices.derive(&attributes, start_ns);
    Ok(Span {
        trace_id,
        span_id,
        parent_id,
        name: text(s.get("name")),
        kind: 0,
        start_ns,
        end_ns: end_ns.max(start_ns),
        status,
        status_message,
        attributes,
        events: events(s.get("events")),
        links: Vec::<SpanLink>::new(),
        resource: Map::new(),
        scope: None,
        project: project.to_string(),
        derived,
    })
}

/// A string field, empty when missing.
fn text(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("").to_string()
}

/// A span dict's attributes, whose values are JSON text; a value that does not parse is kept
/// as it came.
fn attributes(v: Option<&Value>) -> Map<String, Value> {
    let Some(m) = v.and_then(Value::as_object) else {
        return Map::new();
    };
    m.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(t) => serde_json::from_str(t).unwrap_or(v.clone()),
                other => other.clone(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A span dict's status code and message.
fn status(v: Option<&Value>) -> (SpanStatus, String) {
    let Some(st) = v else {
        return (SpanStatus::Unset, String::new());
    };
    let code = match st.get("code").and_then(Value::as_str).unwrap_or("") {
        "STATUS_CODE_OK" | "OK" => SpanStatus::Ok,
        "STATUS_CODE_ERROR" | "ERROR" => SpanStatus::Error,
        _ => SpanStatus::Unset,
    };
    (code, text(st.get("message")))
}

/// A span dict's events.
fn events(v: Option<&Value>) -> Vec<SpanEvent> {
    let Some(es) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    es.iter()
        .map(|e| SpanEvent {
            name: text(e.get("name")),
            time_ns: nanos(e.get("time_unix_nano")).unwrap_or(0),
            attributes: e
                .get("attributes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn traces_json_parses_and_refuses_bad_ids() {
        let tid = TraceId([7; 16]);
        let body = json!({"spans": [{
            "trace_id": B64.encode([7u8; 16]), "span_id": B64.encode([1u8; 8]),
            "parent_span_id": null, "name": "root",
            "start_time_unix_nano": 10, "end_time_unix_nano": 20,
            "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
            "attributes": {"mlflow.spanType": "\"CHAIN\"", "mlflow.spanInputs": "{\"x\": 1}"},
            "events": [{"name": "exception", "time_unix_nano": 15, "attributes": {"exception.type": "ValueError"}}]
        }]});
        let prices = PriceBook::builtin();
        let spans = spans_from_traces_json(tid, &body, "p", &prices).unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].attributes["mlflow.spanInputs"], json!({"x": 1}));
        assert_eq!(spans[0].derived.span_type, "CHAIN");
        assert_eq!(spans[0].status, SpanStatus::Error);
        assert_eq!(
            spans[0].events[0].attributes["exception.type"],
            json!("ValueError")
        );
        let mut wrong = body.clone();
        wrong["spans"][0]["span_id"] = json!("AAAA");
        assert!(
            spans_from_traces_json(tid, &wrong, "p", &prices)
                .unwrap_err()
                .contains("span_id")
        );
        assert!(spans_from_traces_json(TraceId([8; 16]), &body, "p", &prices).is_err());
        assert!(spans_from_traces_json(tid, &json!([]), "p", &prices).is_err());
    }
}

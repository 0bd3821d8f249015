//! OTLP/JSON decoding that accepts everything proto3-JSON allows.
//!
//! opentelemetry-proto's serde impls refuse some valid inputs (`null` fields, empty
//! `arrayValue`/`kvlistValue`, 32-bit integers as strings, enum names, `"NaN"` doubles) and
//! silently ignore snake_case keys, which would store nothing and answer 200. A pass over the
//! parsed JSON fixes the first group, refuses the second with the path of the key, and checks
//! every id so an error names the span it is in. The result is then handed to the serde impls.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::{Map, Value};

use crate::IngestError;

/// snake_case spellings of OTLP fields: proto field names, which OTLP/JSON forbids.
const SNAKE_KEYS: &[(&str, &str)] = &[
    ("resource_spans", "resourceSpans"),
    ("resource_logs", "resourceLogs"),
    ("scope_logs", "scopeLogs"),
    ("log_records", "logRecords"),
    ("observed_time_unix_nano", "observedTimeUnixNano"),
    ("severity_number", "severityNumber"),
    ("event_name", "eventName"),
    ("scope_spans", "scopeSpans"),
    ("instrumentation_library_spans", "scopeSpans"),
    ("trace_id", "traceId"),
    ("span_id", "spanId"),
    ("parent_span_id", "parentSpanId"),
    ("start_time_unix_nano", "startTimeUnixNano"),
    ("end_time_unix_nano", "endTimeUnixNano"),
    ("time_unix_nano", "timeUnixNano"),
    ("string_value", "stringValue"),
    ("int_value", "intValue"),
    ("double_value", "doubleValue"),
    ("bool_value", "boolValue"),
    ("array_value", "arrayValue"),
    ("kvlist_value", "kvlistValue"),
    ("bytes_value", "bytesValue"),
    ("trace_state", "traceState"),
    ("schema_url", "schemaUrl"),
];

const ID_FIELDS: &[(&str, usize)] = &[("traceId", 32), ("spanId", 16), ("parentSpanId", 16)];

const INT32_FIELDS: &[&str] = &[
    "droppedAttributesCount",
    "droppedEventsCount",
    "droppedLinksCount",
    "flags",
];

fn span_kind(name: &str) -> Option<i64> {
    Some(match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        _ => return None,
    })
}

fn status_code(name: &str) -> Option<i64> {
    Some(match name {
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        _ => return None,
    })
}

struct Walker {
    path: Vec<String>,
}

impl Walker {
    fn here(&self, key: &str) -> String {
        let mut p = String::new();
        for seg in &self.path {
            if !p.is_empty() && !seg.starts_with('[') {
                p.push('.');
            }
            p.push_str(seg);
        }
        if !key.is_empty() {
            if !p.is_empty() {
                p.push('.');
            }
            p.push_str(key);
        }
        if p.is_empty() { "$".into() } else { p }
    }

    fn bad(&self, key: &str, msg: impl std::fmt::Display) -> IngestError {
        IngestError::BadRequest(format!("invalid OTLP/JSON at {}: {msg}", self.here(key)))
    }

    fn value(&mut self, v: &mut Value, key: &str) -> Result<(), IngestError> {
        match v {
            Value::Object(m) => self.object(m, key),
            Value::Array(a) => {
                for (i, item) in a.iter_mut().enumerate() {
                    self.path.push(format!("[{i}]"));
                    let r = self.value(item, key);
                    self.path.pop();
                    r?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn object(&mut self, m: &mut Map<String, Value>, parent_key: &str) -> Result<(), IngestError> {
        m.retain(|_, v| !v.is_null());
        if let Some((snake, camel)) = SNAKE_KEYS.iter().find(|(s, _)| m.contains_key(*s)) {
            return Err(self.bad(
                snake,
                format!("OTLP/JSON keys are lowerCamelCase: use {camel:?}, not {snake:?}"),
            ));
        }
        // A KeyValue inside an attribute list may omit its key (proto3 default "").
        if matches!(parent_key, "attributes" | "values")
            && m.contains_key("value")
            && !m.contains_key("key")
        {
            m.insert("key".into(), Value::String(String::new()));
        }
        for (field, hex_len) in ID_FIELDS {
            if let Some(v) = m.get(*field) {
                let Value::String(s) = v else {
                    return Err(self.bad(field, "an id must be a hex string"));
                };
                // Empty means unset: a root's parent, or a log record outside any span. Spans
                // without ids are refused later, with their position.
                if s.is_empty() {
                    continue;
                }
                if s.len() != *hex_len {
                    return Err(self.bad(
                        field,
                        format!(
                            "expected {hex_len} hex characters, got {}",
                            s.chars().count()
                        ),
                    ));
                }
                if let Some((pos, ch)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
                    return Err(self.bad(
                        field,
                        format!("invalid hex character {ch:?} at position {pos}"),
                    ));
                }
            }
        }
        if let Some(Value::String(s)) = m.get("kind") {
            let k =
                span_kind(s).ok_or_else(|| self.bad("kind", format!("unknown span kind {s:?}")))?;
            m.insert("kind".into(), Value::from(k));
        }
        if parent_key == "status"
            && let Some(Value::String(s)) = m.get("code")
        {
            let c = status_code(s)
                .or_else(|| s.parse().ok())
                .ok_or_else(|| self.bad("code", format!("unknown status code {s:?}")))?;
            m.insert("code".into(), Value::from(c));
        }
        for field in INT32_FIELDS {
            if let Some(Value::String(s)) = m.get(*field) {
                let n: u32 = s
                    .parse()
                    .map_err(|_| self.bad(field, format!("expected an integer, got {s:?}")))?;
                m.insert((*field).into(), Value::from(n));
            }
        }
        if let Some(Value::String(s)) = m.get("doubleValue") {
            // JSON numbers cannot hold these; keep the attribute, as a string.
            let s = s.clone();
            if s.parse::<f64>().is_ok_and(|f| f.is_finite()) {
                let f: f64 = s.parse().unwrap_or_default();
                m.insert("doubleValue".into(), Value::from(f));
            } else {
                m.remove("doubleValue");
                m.insert("stringValue".into(), Value::String(s));
            }
        }
        for list in ["arrayValue", "kvlistValue"] {
            if let Some(Value::Object(inner)) = m.get_mut(list) {
                inner.retain(|_, v| !v.is_null());
                inner
                    .entry("values")
                    .or_insert_with(|| Value::Array(Vec::new()));
            }
        }
        for (k, v) in m.iter_mut() {
            if v.is_object() || v.is_array() {
                self.path.push(k.clone());
                let r = self.value(v, k);
                self.path.pop();
                r?;
            }
        }
        Ok(())
    }
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest`.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, IngestError> {
    decode_json_as(body)
}

/// Decodes any OTLP/JSON export request (traces or logs).
pub fn decode_json_as<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| IngestError::BadRequest(format!("invalid JSON: {e}")))?;
    if !v.is_object() {
        return Err(IngestError::BadRequest(
            "invalid OTLP/JSON: the body must be a JSON object".into(),
        ));
    }
    Walker { path: Vec::new() }.value(&mut v, "")?;
    serde_json::from_value(v)
        .map_err(|e| IngestError::BadRequest(format!("invalid OTLP/JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<ExportTraceServiceRequest, IngestError> {
        decode_json(v.to_string().as_bytes())
    }

    fn with_span(span: Value) -> Value {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    }

    fn base_span() -> Value {
        json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
               "name": "s", "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000u64})
    }

    #[test]
    fn canonical_sample_decodes() {
        let sample = include_str!("../tests/data/otlp-canonical.json");
        let r = decode_json(sample.as_bytes()).unwrap();
        let spans = &r.resource_spans[0].scope_spans[0].spans;
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].trace_id.len(), 16);
        assert_eq!(spans[0].start_time_unix_nano, 1_544_712_660_000_000_000);
    }

    /// proto3-JSON inputs the serde impls alone refuse, all of which are valid.
    #[test]
    fn lenient_cases_accepted() {
        let cases = vec![
            json!({}),
            json!({"resourceSpans": null}),
            with_span(
                json!({"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174", "parentSpanId": null, "attributes": null, "kind": null}),
            ),
            with_span({
                let mut s = base_span();
                s["attributes"] = json!([{"key": "a", "value": {"arrayValue": {}}}, {"key": "b", "value": {"kvlistValue": {}}}]);
                s
            }),
            with_span({
                let mut s = base_span();
                s["attributes"] = json!([{"value": {"stringValue": "no key"}}]);
                s
            }),
            with_span({
                let mut s = base_span();
                s["droppedAttributesCount"] = json!("3");
                s["flags"] = json!("1");
                s
            }),
            with_span({
                let mut s = base_span();
                s["attributes"] = json!([{"key": "x", "value": {"doubleValue": "NaN"}}, {"key": "y", "value": {"doubleValue": "2.5"}}]);
                s
            }),
            with_span({
                let mut s = base_span();
                s["kind"] = json!("SPAN_KIND_SERVER");
                s["status"] = json!({"code": "STATUS_CODE_ERROR"});
                s
            }),
            with_span({
                let mut s = base_span();
                s["attributes"] = json!([{"key": "n", "value": {"doubleValue": null}}, {"key": "i", "value": {"intValue": 5}}]);
                s
            }),
            with_span({
                let mut s = base_span();
                s["unknownField"] = json!(1);
                s["status"] = json!({});
                s
            }),
        ];
        for c in cases {
            let r = decode(c.clone());
            assert!(r.is_ok(), "{c}: {:?}", r.err());
        }
        let r = decode(with_span({
            let mut s = base_span();
            s["kind"] = json!("SPAN_KIND_SERVER");
            s["status"] = json!({"code": "STATUS_CODE_ERROR"});
            s
        }))
        .unwrap();
        let sp = &r.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!((sp.kind, sp.status.as_ref().map(|s| s.code)), (2, Some(2)));
    }

    #[test]
    fn refusals_are_precise() {
        let cases = vec![
            (
                json!({"resource_spans": []}),
                "at resource_spans: OTLP/JSON keys are lowerCamelCase: use \"resourceSpans\"",
            ),
            (
                with_span({
                    let mut s = base_span();
                    s["traceId"] = json!("abc");
                    s
                }),
                "at resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 32 hex characters, got 3",
            ),
            (
                with_span({
                    let mut s = base_span();
                    s["spanId"] = json!("eee19b7ec3c1b17g");
                    s
                }),
                "spans[0].spanId: invalid hex character 'g' at position 15",
            ),
            (
                with_span({
                    let mut s = base_span();
                    s["spanId"] = json!("7uGbfsPBsXQ=");
                    s
                }),
                "spans[0].spanId: expected 16 hex characters, got 12",
            ),
            (
                with_span({
                    let mut s = base_span();
                    s["trace_id"] = json!("5b8efff798038103d269b633813fc60c");
                    s
                }),
                "use \"traceId\"",
            ),
            (json!([1, 2]), "must be a JSON object"),
            (
                with_span({
                    let mut s = base_span();
                    s["kind"] = json!("SIDEWAYS");
                    s
                }),
                "unknown span kind",
            ),
        ];
        for (input, want) in cases {
            let e = decode(input.clone()).unwrap_err().to_string();
            assert!(e.contains(want), "{input}: got {e:?}, want {want:?}");
        }
        let e = decode_json(b"{\"resourceSpans\": [")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid JSON: EOF"), "{e}");
        let e = decode_json(b"\xff\xfe").unwrap_err().to_string();
        assert!(e.starts_with("invalid JSON"), "{e}");
    }
}

//! MLflow's wire shapes: TraceInfoV3, spans as OTel proto JSON (typed attribute values) and as
//! `traces.json` span dicts (JSON-string attribute values), timestamps and durations.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use loupe_model::pricing::PriceBook;
use loupe_model::{SpanStatus, TraceId, TraceSummary};
use loupe_store::{Assessment, StoredSpan};
use serde_json::{Map, Value, json};

/// Tag naming where an MLflow client finds a trace's spans.
pub(crate) const SPANS_LOCATION: &str = "mlflow.trace.spansLocation";
/// Tag naming a trace's artifact directory.
pub(crate) const ARTIFACT_LOCATION: &str = "mlflow.artifactLocation";

/// `tr-` + 32 hex, MLflow's trace id.
pub(crate) fn mlflow_id(id: &TraceId) -> String {
    format!("tr-{}", id.to_hex())
}

/// Parses `tr-<32 hex>` (or bare hex).
pub(crate) fn parse_trace_id(s: &str) -> Result<TraceId, String> {
    let hex = s.strip_prefix("tr-").unwrap_or(s);
    TraceId::from_hex(hex).map_err(|e| format!("invalid trace id {s:?}: {e}"))
}

// ---- time ----------------------------------------------------------------------------------

/// RFC 3339 in UTC with milliseconds, as protobuf's JSON Timestamp.
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = loupe_model::civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

/// Parses an RFC 3339 timestamp (`2026-11-23T21:20:26.482Z`, offsets allowed) to ns.
pub(crate) fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut frac_ns = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let digits: String = f.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.chars().take(9).collect::<String>();
        while padded.len() < 9 {
            padded.push('0');
        }
        frac_ns = padded.parse().ok()?;
        rest = &f[digits.len()..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 && (o.starts_with('+') || o.starts_with('-')) => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3_600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let secs =
        loupe_model::days_from_civil(y, mo, d) * 86_400 + h * 3_600 + mi * 60 + sec - offset_s;
    u64::try_from(secs.checked_mul(1_000_000_000)?.checked_add(frac_ns)?).ok()
}

/// A protobuf JSON Duration (`"0.011s"`) to ns.
pub(crate) fn parse_duration_ns(s: &str) -> Option<u64> {
    let v: f64 = s.strip_suffix('s')?.parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| (v * 1e9).round() as u64)
}

/// ns to a protobuf JSON Duration, millisecond precision as MLflow sends it.
pub(crate) fn duration_string(ns: u64) -> String {
    let ms = ns / 1_000_000;
    format!("{}.{:03}s", ms / 1_000, ms % 1_000)
}

// ---- TraceInfoV3 -------------------------------------------------------------------------

/// The MLflow state of a trace: what the client reported, else from the spans.
fn state(t: &TraceSummary) -> &'static str {
    if let Some(Value::String(s)) = t.info.get("state") {
        match s.as_str() {
            "OK" => return "OK",
            "ERROR" => return "ERROR",
            "IN_PROGRESS" => return "IN_PROGRESS",
            _ => {}
        }
    }
    match t.status {
        SpanStatus::Error => "ERROR",
        _ if t.has_root => "OK",
        SpanStatus::Ok => "OK",
        _ => "IN_PROGRESS",
    }
}

fn string_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .map(|(k, v)| {
            let s = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), Value::String(s))
        })
        .collect()
}

/// Text of a preview: a string as is, anything else as JSON, cut to 1,000 characters.
fn preview(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(s.chars().take(1_000).collect())
}

/// The TraceInfoV3 of a stored trace. `experiment` is its experiment's id and artifact root.
pub(crate) fn trace_info(
    t: &TraceSummary,
    experiment: (i64, &str),
    assessments: &[Assessment],
) -> Value {
    let id = mlflow_id(&t.trace_id);
    let mut tags = string_map(&t.tags);
    tags.entry("mlflow.traceName")
        .or_insert_with(|| Value::String(t.name.clone()));
    tags.insert(
        ARTIFACT_LOCATION.into(),
        Value::String(format!("{}/traces/{id}/artifacts", experiment.1)),
    );
    if t.span_count > 0 {
        tags.insert(
            SPANS_LOCATION.into(),
            Value::String("TRACKING_STORE".into()),
        );
    }
    let mut metadata = string_map(&t.metadata);
    metadata
        .entry("mlflow.trace_schema.version")
        .or_insert_with(|| Value::String("3".into()));
    if t.total_tokens > 0 || t.input_tokens > 0 {
        metadata.insert(
            "mlflow.trace.tokenUsage".into(),
            Value::String(
                json!({
                    "input_tokens": t.input_tokens,
                    "output_tokens": t.output_tokens,
                    "total_tokens": t.total_tokens,
                })
                .to_string(),
            ),
        );
    }
    if t.cost_usd > 0.0 {
        metadata
            .entry("mlflow.trace.cost")
            .or_insert_with(|| Value::String(json!({ "total_cost": t.cost_usd }).to_string()));
    }
    if let Some(s) = &t.session_id {
        metadata
            .entry("mlflow.trace.session")
            .or_insert_with(|| Value::String(s.clone()));
    }
    if let Some(u) = &t.user_id {
        metadata
            .entry("mlflow.trace.user")
            .or_insert_with(|| Value::String(u.clone()));
    }
    let start_ms = i64::try_from(t.start_ns / 1_000_000).unwrap_or(i64::MAX);
    let mut info = json!({
        "trace_id": id,
        "trace_location": {
            "type": "MLFLOW_EXPERIMENT",
            "mlflow_experiment": {"experiment_id": experiment.0.to_string()},
        },
        "request_time": rfc3339_ms(start_ms),
        "state": state(t),
        "trace_metadata": metadata,
        "tags": tags,
        "assessments": assessments.iter().map(super::assessments::to_mlflow).collect::<Vec<_>>(),
    });
    let in_progress = state(t) == "IN_PROGRESS";
    if !in_progress {
        info["execution_duration"] = Value::String(duration_string(t.duration_ns()));
    }
    for key in ["client_request_id", "request_preview", "response_preview"] {
        if let Some(v) = t.info.get(key).filter(|v| !v.is_null()) {
            info[key] = v.clone();
        }
    }
    if info.get("request_preview").is_none()
        && let Some(p) = preview(t.metadata.get("mlflow.traceInputs"))
    {
        info["request_preview"] = Value::String(p);
    }
    if info.get("response_preview").is_none()
        && let Some(p) = preview(t.metadata.get("mlflow.traceOutputs"))
    {
        info["response_preview"] = Value::String(p);
    }
    info
}

// ---- spans as OTel proto JSON ------------------------------------------------------------

/// A JSON value as a typed OTLP AnyValue (proto3 JSON, field names as in the .proto).
pub(crate) fn any_value(v: &Value) -> Value {
    match v {
        Value::Null => json!({}),
        Value::Bool(b) => json!({ "bool_value": b }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => json!({ "int_value": i.to_string() }),
            None => json!({ "double_value": n.as_f64().unwrap_or(0.0) }),
        },
        Value::String(s) => json!({ "string_value": s }),
        Value::Array(a) => {
            json!({ "array_value": { "values": a.iter().map(any_value).collect::<Vec<_>>() } })
        }
        Value::Object(o) => json!({ "kvlist_value": { "values": key_values(o) } }),
    }
}

fn key_values(m: &Map<String, Value>) -> Vec<Value> {
    m.iter()
        .map(|(k, v)| json!({ "key": k, "value": any_value(v) }))
        .collect()
}

fn status_code(s: SpanStatus) -> &'static str {
    match s {
        SpanStatus::Ok => "STATUS_CODE_OK",
        SpanStatus::Error => "STATUS_CODE_ERROR",
        SpanStatus::Unset => "STATUS_CODE_UNSET",
    }
}

/// What MLflow's server adds to a model-call span when it stores it, from Loupe's canonical
/// columns: `mlflow.llm.model`, `mlflow.llm.provider` and `mlflow.llm.cost` (Loupe's price book),
/// when the client did not set them.
fn enrich(attributes: &mut Map<String, Value>, s: &StoredSpan, prices: &PriceBook) {
    let Some(model) = &s.columns.model else {
        return;
    };
    attributes
        .entry("mlflow.llm.model")
        .or_insert_with(|| Value::String(model.clone()));
    if let Some(p) = &s.columns.provider {
        attributes
            .entry("mlflow.llm.provider")
            .or_insert_with(|| Value::String(p.clone()));
    }
    if attributes.contains_key("mlflow.llm.cost") {
        return;
    }
    if let Some((input, output)) = prices.cost_parts(&s.columns.derived(), s.start_ns) {
        attributes.insert(
            "mlflow.llm.cost".into(),
            json!({"input_cost": input, "output_cost": output, "total_cost": input + output}),
        );
    }
}

/// A stored span as `opentelemetry.proto.trace.v1.Span` JSON: base64 ids, typed attributes.
pub(crate) fn otel_span(trace_id: &TraceId, s: &StoredSpan, prices: &PriceBook) -> Value {
    let mut attributes = s.body.attributes.clone();
    attributes
        .entry("mlflow.traceRequestId")
        .or_insert_with(|| Value::String(mlflow_id(trace_id)));
    enrich(&mut attributes, s, prices);
    let mut span = json!({
        "trace_id": B64.encode(trace_id.0),
        "span_id": B64.encode(s.span_id.0),
        "name": s.name,
        "kind": s.body.kind,
        "start_time_unix_nano": s.start_ns.to_string(),
        "end_time_unix_nano": s.end_ns.to_string(),
        "attributes": key_values(&attributes),
        "events": s.body.events.iter().map(|e| json!({
            "name": e.name,
            "time_unix_nano": e.time_ns.to_string(),
            "attributes": key_values(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": s.body.links.iter().map(|l| json!({
            "trace_id": B64.encode(l.trace_id.0),
            "span_id": B64.encode(l.span_id.0),
            "attributes": key_values(&l.attributes),
        })).collect::<Vec<_>>(),
        "status": {"code": status_code(s.status), "message": s.status_message},
    });
    if let Some(p) = s.parent_id {
        span["parent_span_id"] = Value::String(B64.encode(p.0));
    }
    span
}

// ---- traces.json span dicts --------------------------------------------------------------

/// A stored span as an MLflow span dict (`traces.json`): base64 ids, JSON-string attributes.
pub(crate) fn span_dict(trace_id: &TraceId, s: &StoredSpan) -> Value {
    let mut attributes: Map<String, Value> = s
        .body
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
        .collect();
    attributes
        .entry("mlflow.traceRequestId")
        .or_insert_with(|| Value::String(Value::String(mlflow_id(trace_id)).to_string()));
    json!({
        "trace_id": B64.encode(trace_id.0),
        "span_id": B64.encode(s.span_id.0),
        "parent_span_id": s.parent_id.map(|p| B64.encode(p.0)),
        "name": s.name,
        "start_time_unix_nano": s.start_ns,
        "end_time_unix_nano": s.end_ns,
        "events": s.body.events.iter().map(|e| json!({
            "name": e.name, "time_unix_nano": e.time_ns, "attributes": e.attributes,
        })).collect::<Vec<_>>(),
        "status": {"code": status_code(s.status), "message": s.status_message},
        "attributes": attributes,
        "links": [],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let ms = 1_795_468_826_482i64;
        let s = rfc3339_ms(ms);
        assert_eq!(s, "2026-11-23T21:20:26.482Z");
        assert_eq!(parse_rfc3339_ns(&s), Some(ms as u64 * 1_000_000));
        assert_eq!(
            parse_rfc3339_ns("2026-11-23T22:20:26.482123456+01:00"),
            Some(1_795_468_826_482_123_456)
        );
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        for bad in [
            "",
            "2026-11-23",
            "2026-11-23T21:20:26.Z",
            "2026-11-23T21:20:26",
            "x026-11-23T21:20:26Z",
        ] {
            assert_eq!(parse_rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ns("0.011s"), Some(11_000_000));
        assert_eq!(parse_duration_ns("3s"), Some(3_000_000_000));
        assert_eq!(parse_duration_ns("-1s"), None);
        assert_eq!(parse_duration_ns("1"), None);
        assert_eq!(duration_string(1_234_567_890), "1.234s");
    }

    #[test]
    fn typed_values() {
        let v = json!({"q": "hi", "k": 2, "f": 0.5, "l": [true, null]});
        let a = any_value(&v);
        let values = a["kvlist_value"]["values"].as_array().unwrap();
        let find = |k: &str| values.iter().find(|e| e["key"] == k).unwrap()["value"].clone();
        assert_eq!(find("q"), json!({"string_value": "hi"}));
        assert_eq!(find("k"), json!({"int_value": "2"}));
        assert_eq!(find("f"), json!({"double_value": 0.5}));
        assert_eq!(
            find("l"),
            json!({"array_value": {"values": [{"bool_value": true}, {}]}})
        );
    }
}

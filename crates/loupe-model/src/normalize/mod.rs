//! From attribute conventions to canonical LLM fields.
//!
//! Clients describe LLM work with different attribute vocabularies. Each convention has its own
//! module that reads its keys; [`derive`] is the one place that decides which applies and in what
//! order. The attributes themselves are never modified: normalization only reads them, so a
//! mapping change can be re-applied to stored spans later.

mod flat;
pub mod gen_ai;
pub mod mlflow;
pub mod openinference;
pub mod openllmetry;
pub mod vercel_ai;
mod view;

#[cfg(test)]
mod conventions_tests;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use view::{Document, Exception, LlmView, Message, ToolCall};

use crate::SpanEvent;

/// Span types Loupe knows. Types are free strings on the wire (MLflow allows custom ones), so
/// the canonical field is a string; these are the names the normalizers produce.
pub mod span_type {
    /// A completion-style LLM call.
    pub const LLM: &str = "LLM";
    /// A chat-model call.
    pub const CHAT_MODEL: &str = "CHAT_MODEL";
    /// An embedding call.
    pub const EMBEDDING: &str = "EMBEDDING";
    /// A retrieval step.
    pub const RETRIEVER: &str = "RETRIEVER";
    /// A reranking step.
    pub const RERANKER: &str = "RERANKER";
    /// A tool invocation.
    pub const TOOL: &str = "TOOL";
    /// An agent step.
    pub const AGENT: &str = "AGENT";
    /// A chain or pipeline step.
    pub const CHAIN: &str = "CHAIN";
    /// Anything else.
    pub const UNKNOWN: &str = "UNKNOWN";
}

/// The conventions, in the order they are consulted. Earlier ones win a field; later ones only
/// fill what is still empty. MLflow's explicit keys come first because its client sets them
/// deliberately; the generic GenAI keys come last because the others often emit them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// `mlflow.*`
    Mlflow,
    /// OpenInference
    OpenInference,
    /// Vercel AI SDK `ai.*`
    VercelAi,
    /// OpenLLMetry / Traceloop
    OpenLlmetry,
    /// OpenTelemetry GenAI `gen_ai.*`
    GenAi,
}

impl Convention {
    /// All of them, in precedence order.
    pub const ALL: [Convention; 5] = [
        Convention::Mlflow,
        Convention::OpenInference,
        Convention::VercelAi,
        Convention::OpenLlmetry,
        Convention::GenAi,
    ];

    /// Stable name, stored in trace metadata.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Mlflow => "mlflow",
            Convention::OpenInference => "openinference",
            Convention::VercelAi => "vercel_ai",
            Convention::OpenLlmetry => "openllmetry",
            Convention::GenAi => "gen_ai",
        }
    }

    /// Whether the span carries this convention's keys.
    pub fn applies(self, a: &Map<String, Value>) -> bool {
        match self {
            Convention::Mlflow => mlflow::applies(a),
            Convention::OpenInference => openinference::applies(a),
            Convention::VercelAi => vercel_ai::applies(a),
            Convention::OpenLlmetry => openllmetry::applies(a),
            Convention::GenAi => gen_ai::applies(a),
        }
    }

    fn fill(self, a: &Map<String, Value>, d: &mut Derived) {
        match self {
            Convention::Mlflow => mlflow::fill(a, d),
            Convention::OpenInference => openinference::fill(a, d),
            Convention::VercelAi => vercel_ai::fill(a, d),
            Convention::OpenLlmetry => openllmetry::fill(a, d),
            Convention::GenAi => gen_ai::fill(a, d),
        }
    }

    fn view(self, a: &Map<String, Value>, events: &[SpanEvent], v: &mut LlmView) {
        match self {
            Convention::Mlflow => mlflow::view(a, v),
            Convention::OpenInference => openinference::view(a, v),
            Convention::VercelAi => vercel_ai::view(a, v),
            Convention::OpenLlmetry => openllmetry::view(a, v),
            Convention::GenAi => gen_ai::view(a, events, v),
        }
    }
}

/// Canonical fields derived from a span's attributes, stored in indexed columns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Derived {
    /// Span type (see [`span_type`]).
    pub span_type: String,
    /// Model asked for.
    pub request_model: Option<String>,
    /// Model that answered.
    pub response_model: Option<String>,
    /// Provider (openai, anthropic …).
    pub provider: Option<String>,
    /// Input (prompt) tokens, cached ones included.
    pub input_tokens: Option<u64>,
    /// Output (completion) tokens, reasoning included.
    pub output_tokens: Option<u64>,
    /// Total tokens (input + output when the sender gives no total).
    pub total_tokens: Option<u64>,
    /// Input tokens read from a prompt cache.
    pub cache_read_tokens: Option<u64>,
    /// Input tokens written to a prompt cache.
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens (part of the output tokens).
    pub reasoning_tokens: Option<u64>,
    /// Cost in US dollars, from the price book (set by the ingest path, not by [`derive`]).
    pub cost_usd: Option<f64>,
    /// Session (conversation) id.
    pub session_id: Option<String>,
    /// End-user id.
    pub user_id: Option<String>,
    /// Which convention supplied the fields.
    pub convention: Option<&'static str>,
    /// Whether the call was a batch or flex-tier request, which providers bill at a discount.
    #[serde(default)]
    pub batch: bool,
    /// Set by a convention whose span repeats usage its children already report.
    #[serde(skip)]
    pub suppress_usage: bool,
}

impl Derived {
    /// The model to show: the one that answered, else the one asked for.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }
}

/// MLflow's OTLP exporter writes every value as JSON text; read those decoded.
fn readable(attributes: &Map<String, Value>) -> std::borrow::Cow<'_, Map<String, Value>> {
    if mlflow::json_encoded(attributes) {
        std::borrow::Cow::Owned(mlflow::decoded(attributes))
    } else {
        std::borrow::Cow::Borrowed(attributes)
    }
}

/// Derives the canonical fields of a span from its attributes.
pub fn derive(attributes: &Map<String, Value>) -> Derived {
    let attributes = &*readable(attributes);
    let mut d = Derived::default();
    for c in Convention::ALL {
        if c.applies(attributes) {
            c.fill(attributes, &mut d);
            d.convention.get_or_insert(c.name());
        }
    }
    // Session and user ids in the generic spelling many SDKs use.
    if d.session_id.is_none() {
        d.session_id = as_str(attributes.get("session.id"));
    }
    if d.user_id.is_none() {
        d.user_id = as_str(attributes.get("user.id"));
    }
    d.batch = batch_request(attributes);
    if d.suppress_usage {
        d.input_tokens = None;
        d.output_tokens = None;
        d.total_tokens = None;
        d.cache_read_tokens = None;
        d.cache_write_tokens = None;
        d.reasoning_tokens = None;
    }
    if d.span_type.is_empty() {
        d.span_type = if d.request_model.is_some() || d.response_model.is_some() {
            span_type::LLM.to_string()
        } else {
            span_type::UNKNOWN.to_string()
        };
    }
    if d.total_tokens.is_none() && (d.input_tokens.is_some() || d.output_tokens.is_some()) {
        d.total_tokens = Some(
            d.input_tokens
                .unwrap_or(0)
                .saturating_add(d.output_tokens.unwrap_or(0)),
        );
    }
    d
}

/// Attributes instrumentations record a request's service tier under.
const SERVICE_TIER_KEYS: &[&str] = &[
    "openai.request.service_tier",
    "openai.response.service_tier",
    "gen_ai.openai.request.service_tier",
    "gen_ai.openai.response.service_tier",
    "gen_ai.request.service_tier",
    "gen_ai.response.service_tier",
];

/// Whether a span is a request providers bill at their batch price: a `flex` or `batch`
/// service tier (OpenAI bills flex at batch prices), or `loupe.batch = true` set by the
/// application.
fn batch_request(attributes: &Map<String, Value>) -> bool {
    attributes.get("loupe.batch") == Some(&Value::Bool(true))
        || SERVICE_TIER_KEYS.iter().any(|k| {
            attributes
                .get(*k)
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("flex") || t.eq_ignore_ascii_case("batch"))
        })
}

/// The read-time view of a span: messages, tool calls, parameters, documents, inputs, outputs.
pub fn view(attributes: &Map<String, Value>, events: &[SpanEvent]) -> LlmView {
    let attributes = &*readable(attributes);
    let mut v = LlmView::default();
    for c in Convention::ALL {
        if c.applies(attributes) {
            c.view(attributes, events, &mut v);
        }
    }
    if v.input_messages.is_empty() && v.output_messages.is_empty() {
        // Events alone can carry GenAI messages.
        gen_ai::view(attributes, events, &mut v);
    }
    v.exceptions = events
        .iter()
        .filter(|e| e.name == "exception")
        .map(|e| {
            let get = |k: &str| as_str(e.attributes.get(k));
            Exception {
                kind: get("exception.type"),
                message: get("exception.message"),
                stacktrace: get("exception.stacktrace"),
                time_ns: e.time_ns,
            }
        })
        .collect();
    v.finish();
    v
}

/// Reads a non-negative integer that may arrive as a number or a numeric string.
pub(crate) fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads a non-empty string.
pub(crate) fn as_str(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The value at `key` of an object that may be JSON encoded in a string, read without building
/// the object: a span's logged inputs and outputs are often KBs of JSON, and only a field or
/// two is wanted from them (the model, the usage).
pub(crate) fn json_field(v: &Value, key: &str) -> Option<Value> {
    match v {
        Value::Object(m) => m.get(key).cloned(),
        Value::String(s) if s.trim_start().starts_with('{') => {
            use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
            struct Field<'k>(&'k str);
            impl<'de> Visitor<'de> for Field<'_> {
                type Value = Option<Value>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                    // The last of repeated keys wins, as when the object is built.
                    let mut found = None;
                    while let Some(k) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                        if k == self.0 {
                            found = Some(map.next_value::<Value>()?);
                        } else {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                    Ok(found)
                }
            }
            impl<'de> DeserializeSeed<'de> for Field<'_> {
                type Value = Option<Value>;
                fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                    d.deserialize_map(self)
                }
            }
            let mut de = serde_json::Deserializer::from_str(s);
            let found = Field(key).deserialize(&mut de).ok().flatten();
            // Only a whole, valid document counts, as when the object is built.
            de.end().ok().and(found)
        }
        _ => None,
    }
}

/// The non-empty string at `key` (see [`json_field`]).
pub(crate) fn json_str_field(v: &Value, key: &str) -> Option<String> {
    as_str(json_field(v, key).as_ref())
}

/// A value that may be JSON encoded in a string (some clients send objects that way).
pub(crate) fn maybe_json_object(v: &Value) -> Option<Map<String, Value>> {
    match v {
        Value::Object(m) => Some(m.clone()),
        Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(s) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        },
        _ => None,
    }
}

/// `camelCase` → `snake_case` (ASCII capitals only): Vercel AI SDK settings, MLflow field masks.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_of_json_text_read_as_of_the_built_object() {
        let doc = Value::String(
            r#" {"messages": [{"role": "user", "content": "a \"model\": x"}], "mo\u0064el": "gpt-4o", "n": {"model": "inner"}}"#.into(),
        );
        assert_eq!(json_str_field(&doc, "model").as_deref(), Some("gpt-4o"));
        assert_eq!(
            json_field(&doc, "n"),
            Some(serde_json::json!({"model": "inner"}))
        );
        assert_eq!(json_field(&doc, "absent"), None);
        let repeated = Value::String(r#"{"model": "a", "model": "b"}"#.into());
        assert_eq!(json_str_field(&repeated, "model").as_deref(), Some("b"));
        for bad in [
            r#"{"model": "a"} trailing"#,
            r#"{"model": "a""#,
            "model",
            "[1]",
            "",
        ] {
            assert_eq!(
                json_field(&Value::String(bad.into()), "model"),
                None,
                "{bad}"
            );
        }
        let object = serde_json::json!({"model": "m"});
        assert_eq!(json_str_field(&object, "model").as_deref(), Some("m"));
        assert_eq!(json_str_field(&Value::Null, "model"), None);
    }

    fn attrs(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn mlflow_span() {
        let a = attrs(json!({
            "mlflow.spanType": "CHAT_MODEL",
            "mlflow.spanInputs": {"messages": [{"role": "user", "content": "hi"}]},
            "mlflow.spanOutputs": "hello",
            "mlflow.chat.tokenUsage": "{\"input_tokens\": 12, \"output_tokens\": 3, \"total_tokens\": 15}",
            "model": "gpt-4o-mini"
        }));
        let d = derive(&a);
        assert_eq!(d.span_type, "CHAT_MODEL");
        assert_eq!(
            (d.input_tokens, d.output_tokens, d.total_tokens),
            (Some(12), Some(3), Some(15))
        );
        assert_eq!(d.convention, Some("mlflow"));
        assert_eq!(
            view(&a, &[]).inputs,
            Some(json!({"messages": [{"role": "user", "content": "hi"}]}))
        );
        assert_eq!(view(&a, &[]).outputs, Some(json!("hello")));
    }

    #[test]
    fn gen_ai_span() {
        let a = attrs(json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": "20"
        }));
        let d = derive(&a);
        assert_eq!(d.span_type, "CHAT_MODEL");
        assert_eq!(d.model(), Some("gpt-4o-2024-08-06"));
        assert_eq!(d.request_model.as_deref(), Some("gpt-4o"));
        assert_eq!(d.provider.as_deref(), Some("openai"));
        assert_eq!(d.total_tokens, Some(120));
    }

    #[test]
    fn plain_span_is_unknown_and_keeps_nothing_invented() {
        let d = derive(&attrs(json!({"http.method": "GET"})));
        assert_eq!(d.span_type, "UNKNOWN");
        assert_eq!(d.total_tokens, None);
        assert_eq!(d.convention, None);
    }
}

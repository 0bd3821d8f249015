//! MLflow span attributes (`mlflow.*`), as the MLflow client sets them.

use serde_json::{Map, Value};

use super::{Derived, as_str, as_u64, maybe_json_object};

/// The span type MLflow assigned.
pub const SPAN_TYPE: &str = "mlflow.spanType";
/// The span's inputs, any JSON.
pub const SPAN_INPUTS: &str = "mlflow.spanInputs";
/// The span's outputs, any JSON.
pub const SPAN_OUTPUTS: &str = "mlflow.spanOutputs";
/// `{"input_tokens","output_tokens","total_tokens"}`.
pub const TOKEN_USAGE: &str = "mlflow.chat.tokenUsage";
/// The model, when an integration sets it.
pub const LLM_MODEL: &str = "mlflow.llm.model";
/// The provider, when an integration sets it.
pub const LLM_PROVIDER: &str = "mlflow.llm.provider";

/// Whether any MLflow key is present.
pub fn applies(a: &Map<String, Value>) -> bool {
    a.contains_key(SPAN_TYPE)
        || a.contains_key(SPAN_INPUTS)
        || a.contains_key(SPAN_OUTPUTS)
        || a.contains_key(TOKEN_USAGE)
}

/// Fills what MLflow's keys say.
pub fn fill(a: &Map<String, Value>, d: &mut Derived) {
    if let Some(t) = as_str(a.get(SPAN_TYPE)) {
        // The Python client sometimes JSON-encodes the string a second time.
        d.span_type = t.trim_matches('"').to_string();
    }
    if let Some(usage) = a.get(TOKEN_USAGE).and_then(maybe_json_object) {
        d.input_tokens = usage.get("input_tokens").and_then(as_u64);
        d.output_tokens = usage.get("output_tokens").and_then(as_u64);
        d.total_tokens = usage.get("total_tokens").and_then(as_u64);
    }
    if d.request_model.is_none() {
        d.request_model = as_str(a.get(LLM_MODEL));
    }
    if d.provider.is_none() {
        d.provider = as_str(a.get(LLM_PROVIDER));
    }
}

/// The logged inputs.
pub fn inputs(a: &Map<String, Value>) -> Option<Value> {
    a.get(SPAN_INPUTS).cloned()
}

/// The logged outputs.
pub fn outputs(a: &Map<String, Value>) -> Option<Value> {
    a.get(SPAN_OUTPUTS).cloned()
}

//! Assessments: judgements (feedback) and expected answers (expectations) attached to a trace
//! or one of its spans, by a person, an LLM judge or code.
//!
//! This is Loupe's own shape. Every door converts into it (MLflow's JSON lives only in the
//! server's `mlflow` module), every store keeps it in columns, and the query language's
//! `feedback.<name>` / `expectation.<name>` read its [`AssessmentValue`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{SpanId, TraceId};

/// What an assessment says about its trace.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssessmentKind {
    /// A judgement of what the application did (a score, a label, thumbs up).
    Feedback,
    /// What the application should have produced (a ground truth).
    Expectation,
    /// A known issue the trace shows (MLflow's `issue` assessments); its value is the issue.
    Issue,
}

impl AssessmentKind {
    /// The name stored in the `kind` column and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AssessmentKind::Feedback => "feedback",
            AssessmentKind::Expectation => "expectation",
            AssessmentKind::Issue => "issue",
        }
    }

    /// The kind of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "feedback" => AssessmentKind::Feedback,
            "expectation" => AssessmentKind::Expectation,
            "issue" => AssessmentKind::Issue,
            _ => return None,
        })
    }
}

/// An assessment's value. Numbers keep their JSON form (an integer stays an integer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AssessmentValue {
    /// Pass or fail, yes or no.
    Bool(bool),
    /// A score.
    Number(serde_json::Number),
    /// A label or free text.
    String(String),
    /// Anything structured (an object or a list).
    Json(Value),
}

/// Any JSON value: the schema cannot say more than the description does.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for AssessmentValue {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
            .description(Some(
                "A boolean (pass or fail), a number (a score), a string (a label) or any JSON",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for AssessmentValue {}

impl AssessmentValue {
    /// The typed value of a JSON value; `null` is no value.
    pub fn from_json(v: Value) -> Option<Self> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => AssessmentValue::Bool(b),
            Value::Number(n) => AssessmentValue::Number(n),
            Value::String(s) => AssessmentValue::String(s),
            other => AssessmentValue::Json(other),
        })
    }

    /// The value as JSON.
    pub fn to_json(&self) -> Value {
        match self {
            AssessmentValue::Bool(b) => Value::Bool(*b),
            AssessmentValue::Number(n) => Value::Number(n.clone()),
            AssessmentValue::String(s) => Value::String(s.clone()),
            AssessmentValue::Json(v) => v.clone(),
        }
    }

    /// The value as compared with a number: numbers, and booleans as 1 and 0.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AssessmentValue::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            AssessmentValue::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    /// The value as compared with text: a string as itself, anything else as its JSON.
    pub fn as_text(&self) -> String {
        match self {
            AssessmentValue::String(s) => s.clone(),
            other => other.to_json().to_string(),
        }
    }

    /// The name stored in the `value_type` column.
    pub fn type_name(&self) -> &'static str {
        match self {
            AssessmentValue::Bool(_) => "bool",
            AssessmentValue::Number(_) => "number",
            AssessmentValue::String(_) => "string",
            AssessmentValue::Json(_) => "json",
        }
    }

    /// The value of a stored type name and text (see [`AssessmentValue::as_text`]); `None` when
    /// they do not fit together.
    pub fn from_stored(type_name: &str, text: &str) -> Option<Self> {
        match type_name {
            "string" => Some(AssessmentValue::String(text.to_string())),
            "bool" | "number" | "json" => {
                let v: Value = serde_json::from_str(text).ok()?;
                let typed = AssessmentValue::from_json(v)?;
                (typed.type_name() == type_name).then_some(typed)
            }
            _ => None,
        }
    }
}

/// Who produced an assessment.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SourceType {
    /// A person (an end user's thumbs up, a reviewer's label).
    Human,
    /// An LLM asked to judge.
    LlmJudge,
    /// A deterministic check written in code.
    Code,
}

impl SourceType {
    /// The name stored in the `source_type` column and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Human => "HUMAN",
            SourceType::LlmJudge => "LLM_JUDGE",
            SourceType::Code => "CODE",
        }
    }

    /// The type of a stored or sent name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "HUMAN" => SourceType::Human,
            "LLM_JUDGE" => SourceType::LlmJudge,
            "CODE" => SourceType::Code,
            _ => return None,
        })
    }
}

/// Who produced an assessment, and which one of them (a user name, a judge's id).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentSource {
    /// Person, judge or code.
    pub source_type: SourceType,
    /// Which person, judge or check.
    #[serde(default)]
    pub source_id: String,
}

/// Why a feedback has no value: the judge or check that should have produced it failed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssessmentError {
    /// A short code (`TIMEOUT`, `RATE_LIMITED` …).
    #[serde(default)]
    pub code: String,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// Where, when the producer sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
}

/// Feedback or an expectation attached to a trace (or one of its spans).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// Id (`a-` + 32 hex when the server assigns it).
    #[serde(rename = "assessment_id")]
    pub id: String,
    /// The trace (32 hex digits).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub trace_id: TraceId,
    /// The span it is about, when it is about one span (16 hex digits).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub span_id: Option<SpanId>,
    /// Name (`quality`, `expected_answer` …): what `feedback.<name>` filters on.
    pub name: String,
    /// Feedback, expectation or issue.
    pub kind: AssessmentKind,
    /// The value; `None` for a feedback whose producer failed (see `error`).
    pub value: Option<AssessmentValue>,
    /// Why there is no value.
    pub error: Option<AssessmentError>,
    /// Why the value is what it is.
    pub rationale: Option<String>,
    /// Who produced it.
    pub source: AssessmentSource,
    /// Free-form key/value pairs.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub metadata: Map<String, Value>,
    /// False once another assessment overrides it; filters read valid assessments only.
    pub valid: bool,
    /// The assessment this one replaces.
    pub overrides: Option<String>,
    /// The assessment that replaced this one.
    pub overridden_by: Option<String>,
    /// The evaluation run or evaluator that produced it.
    pub run_id: Option<String>,
    /// Created, ms since the epoch.
    pub create_time_ms: i64,
    /// Last changed, ms since the epoch.
    pub last_update_time_ms: i64,
}

impl Assessment {
    /// A new, valid assessment with no rationale, metadata or links, created now.
    pub fn new(
        id: String,
        trace_id: TraceId,
        name: String,
        kind: AssessmentKind,
        value: Option<AssessmentValue>,
        source: AssessmentSource,
    ) -> Self {
        let now = crate::now_ms();
        Assessment {
            id,
            trace_id,
            span_id: None,
            name,
            kind,
            value,
            error: None,
            rationale: None,
            source,
            metadata: Map::new(),
            valid: true,
            overrides: None,
            overridden_by: None,
            run_id: None,
            create_time_ms: now,
            last_update_time_ms: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_keep_their_json_type() {
        for v in [
            json!(true),
            json!(3),
            json!(0.5),
            json!("good"),
            json!({"a": [1]}),
        ] {
            let typed = AssessmentValue::from_json(v.clone()).expect("a value");
            assert_eq!(typed.to_json(), v);
            let back = AssessmentValue::from_stored(typed.type_name(), &typed.as_text());
            assert_eq!(back.as_ref(), Some(&typed), "{v}");
        }
        assert_eq!(AssessmentValue::from_json(Value::Null), None);
        assert_eq!(json!(AssessmentValue::Number(3.into())).to_string(), "3");
    }

    #[test]
    fn stored_values_that_disagree_with_their_type_are_refused() {
        assert_eq!(AssessmentValue::from_stored("number", "\"x\""), None);
        assert_eq!(AssessmentValue::from_stored("bool", "{"), None);
        assert_eq!(AssessmentValue::from_stored("colour", "1"), None);
    }

    #[test]
    fn numbers_compare_and_booleans_count_as_one_and_zero() {
        assert_eq!(AssessmentValue::Bool(true).as_f64(), Some(1.0));
        assert_eq!(AssessmentValue::String("1".into()).as_f64(), None);
        assert_eq!(AssessmentValue::Bool(false).as_text(), "false");
    }

    #[test]
    fn names_round_trip() {
        for k in [
            AssessmentKind::Feedback,
            AssessmentKind::Expectation,
            AssessmentKind::Issue,
        ] {
            assert_eq!(AssessmentKind::parse(k.as_str()), Some(k));
        }
        for s in [SourceType::Human, SourceType::LlmJudge, SourceType::Code] {
            assert_eq!(SourceType::parse(s.as_str()), Some(s));
            assert_eq!(json!(s), json!(s.as_str()));
        }
    }
}

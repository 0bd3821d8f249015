//! An assessment as both backends store it: one column per field, in the same order, so each
//! backend only binds and reads values and the rules (what a value's columns hold, what a
//! corrupt row is) live here once.

use loupe_model::{
    Assessment, AssessmentError, AssessmentKind, AssessmentSource, AssessmentValue, SourceType,
    SpanId, TraceId,
};
use serde_json::{Map, Value};

use crate::StoreError;

/// The assessment columns, in [`AssessmentRow`]'s order.
pub const ASSESSMENT_COLUMNS: &str = "id, trace_id, span_id, name, kind, value_type, value_num, \
     value_text, error_code, error_message, error_trace, rationale, source_type, source_id, \
     metadata, valid, overrides, overridden_by, run_id, create_time, update_time";

/// An assessment's columns.
#[derive(Debug, Clone, PartialEq)]
pub struct AssessmentRow {
    /// `id`.
    pub id: String,
    /// `trace_id`, 16 bytes.
    pub trace_id: Vec<u8>,
    /// `span_id`, 16 hex digits.
    pub span_id: Option<String>,
    /// `name`.
    pub name: String,
    /// `kind`: `feedback`, `expectation` or `issue`.
    pub kind: String,
    /// `value_type`: `bool`, `number`, `string` or `json`; `None` without a value.
    pub value_type: Option<String>,
    /// `value_num`: numbers, and booleans as 1 and 0, for comparisons.
    pub value_num: Option<f64>,
    /// `value_text`: a string as itself, any other value as its JSON.
    pub value_text: Option<String>,
    /// `error_code`.
    pub error_code: Option<String>,
    /// `error_message`.
    pub error_message: Option<String>,
    /// `error_trace`.
    pub error_trace: Option<String>,
    /// `rationale`.
    pub rationale: Option<String>,
    /// `source_type`: `HUMAN`, `LLM_JUDGE` or `CODE`.
    pub source_type: String,
    /// `source_id`.
    pub source_id: String,
    /// `metadata`, a JSON object.
    pub metadata: Map<String, Value>,
    /// `valid`.
    pub valid: bool,
    /// `overrides`.
    pub overrides: Option<String>,
    /// `overridden_by`.
    pub overridden_by: Option<String>,
    /// `run_id`.
    pub run_id: Option<String>,
    /// `create_time`, ms.
    pub create_time: i64,
    /// `update_time`, ms.
    pub update_time: i64,
}

impl From<&Assessment> for AssessmentRow {
    fn from(a: &Assessment) -> Self {
        let error = a.error.as_ref();
        AssessmentRow {
            id: a.id.clone(),
            trace_id: a.trace_id.0.to_vec(),
            span_id: a.span_id.map(|s| s.to_hex()),
            name: a.name.clone(),
            kind: a.kind.as_str().to_string(),
            value_type: a.value.as_ref().map(|v| v.type_name().to_string()),
            value_num: a.value.as_ref().and_then(AssessmentValue::as_f64),
            value_text: a.value.as_ref().map(AssessmentValue::as_text),
            error_code: error.map(|e| e.code.clone()),
            error_message: error.map(|e| e.message.clone()),
            error_trace: error.and_then(|e| e.stack_trace.clone()),
            rationale: a.rationale.clone(),
            source_type: a.source.source_type.as_str().to_string(),
            source_id: a.source.source_id.clone(),
            metadata: a.metadata.clone(),
            valid: a.valid,
            overrides: a.overrides.clone(),
            overridden_by: a.overridden_by.clone(),
            run_id: a.run_id.clone(),
            create_time: a.create_time_ms,
            update_time: a.last_update_time_ms,
        }
    }
}

impl AssessmentRow {
    /// The assessment these columns hold; a row whose columns do not fit together is corrupt,
    /// an error (never read as an empty value).
    pub fn into_assessment(self) -> Result<Assessment, StoreError> {
        let id = self.id;
        let corrupt =
            |what: &str| StoreError::internal(format!("corrupt assessment {id:?}: {what}"));
        let trace_id = TraceId::from_slice(&self.trace_id).map_err(|_| corrupt("trace id"))?;
        let span_id = match self.span_id {
            Some(s) => Some(SpanId::from_hex(&s).map_err(|_| corrupt("span id"))?),
            None => None,
        };
        let kind = AssessmentKind::parse(&self.kind).ok_or_else(|| corrupt("kind"))?;
        let value = match (self.value_type, self.value_text) {
            (None, _) => None,
            (Some(t), Some(text)) => {
                Some(AssessmentValue::from_stored(&t, &text).ok_or_else(|| corrupt("value"))?)
            }
            (Some(_), None) => return Err(corrupt("value")),
        };
        let error =
            (self.error_code.is_some() || self.error_message.is_some()).then(|| AssessmentError {
                code: self.error_code.unwrap_or_default(),
                message: self.error_message.unwrap_or_default(),
                stack_trace: self.error_trace,
            });
        let source_type = SourceType::parse(&self.source_type).ok_or_else(|| corrupt("source"))?;
        Ok(Assessment {
            trace_id,
            span_id,
            name: self.name,
            kind,
            value,
            error,
            rationale: self.rationale,
            source: AssessmentSource {
                source_type,
                source_id: self.source_id,
            },
            metadata: self.metadata,
            valid: self.valid,
            overrides: self.overrides,
            overridden_by: self.overridden_by,
            run_id: self.run_id,
            create_time_ms: self.create_time,
            last_update_time_ms: self.update_time,
            id,
        })
    }
}

/// A JSON object stored as text; anything else is a corrupt row.
pub fn json_object(column: &str, text: &str) -> Result<Map<String, Value>, StoreError> {
    match serde_json::from_str(text) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(StoreError::internal(format!(
            "corrupt {column} column: not a JSON object"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Assessment {
        let mut a = Assessment::new(
            "a-1".into(),
            TraceId([1; 16]),
            "quality".into(),
            AssessmentKind::Feedback,
            AssessmentValue::from_json(json!(0.9)),
            AssessmentSource {
                source_type: SourceType::LlmJudge,
                source_id: "judge".into(),
            },
        );
        a.span_id = Some(SpanId([2; 8]));
        a.rationale = Some("good".into());
        a.metadata.insert("k".into(), json!("v"));
        a
    }

    #[test]
    fn rows_round_trip() {
        let a = sample();
        let row = AssessmentRow::from(&a);
        assert_eq!(row.value_num, Some(0.9));
        assert_eq!(row.value_text.as_deref(), Some("0.9"));
        assert_eq!(row.into_assessment().expect("valid row"), a);
    }

    #[test]
    fn corrupt_rows_are_errors() {
        let mut row = AssessmentRow::from(&sample());
        row.value_text = Some("not json".into());
        assert!(row.into_assessment().is_err());
        let mut row = AssessmentRow::from(&sample());
        row.kind = "verdict".into();
        assert!(row.into_assessment().is_err());
        let mut row = AssessmentRow::from(&sample());
        row.trace_id = vec![1, 2];
        assert!(row.into_assessment().is_err());
        assert!(json_object("metadata", "[1]").is_err());
        assert!(json_object("metadata", "{").is_err());
    }
}

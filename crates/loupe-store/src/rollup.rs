//! What both backends compute the same way: a trace's roll-up delta from its new spans, and the
//! order of aggregation groups.

use std::cmp::Ordering;

use loupe_model::SpanStatus;
use serde_json::Value;

use crate::EncodedSpan;

/// A count or time as SQL's signed integer (saturating).
pub fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// What the new spans of one trace add to its roll-up.
pub struct TraceDelta {
    pub min_start: i64,
    pub max_end: i64,
    pub spans: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub total_tokens: i64,
    pub cost_usd: f64,
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    pub root: Option<(String, SpanStatus)>,
    /// The earliest non-root span, naming traces whose root has not arrived.
    pub earliest: Option<(i64, String)>,
}

impl TraceDelta {
    /// Nothing added yet.
    pub fn new() -> Self {
        Self {
            min_start: i64::MAX,
            max_end: i64::MIN,
            spans: 0,
            errors: 0,
            input_tokens: 0,
            output_tokens: 0,
            total_tokens: 0,
            cost_usd: 0.0,
            session_id: None,
            user_id: None,
            root: None,
            earliest: None,
        }
    }

    /// Adds one new span.
    pub fn add(&mut self, s: &EncodedSpan) {
        let start = to_i64(s.start_ns);
        self.min_start = self.min_start.min(start);
        self.max_end = self.max_end.max(to_i64(s.end_ns));
        self.spans += 1;
        self.errors += i64::from(s.status == SpanStatus::Error);
        self.input_tokens = self
            .input_tokens
            .saturating_add(s.columns.input_tokens.map_or(0, to_i64));
        self.output_tokens = self
            .output_tokens
            .saturating_add(s.columns.output_tokens.map_or(0, to_i64));
        self.total_tokens = self
            .total_tokens
            .saturating_add(s.columns.total_tokens.map_or(0, to_i64));
        self.cost_usd += s.columns.cost_usd.unwrap_or(0.0);
        if self.session_id.is_none() {
            self.session_id.clone_from(&s.session_id);
        }
        if self.user_id.is_none() {
            self.user_id.clone_from(&s.user_id);
        }
        if s.parent_id.is_none() {
            self.root = Some((s.name.clone(), s.status));
        } else if self.earliest.as_ref().is_none_or(|(t, _)| start < *t) {
            self.earliest = Some((start, s.name.clone()));
        }
    }

    /// The root's status code once the root has arrived (0 when it set none).
    pub fn root_status(&self) -> Option<i64> {
        self.root.as_ref().map(|(_, st)| st.code())
    }
}

impl Default for TraceDelta {
    fn default() -> Self {
        Self::new()
    }
}

/// The order of aggregation groups by key: nulls first, numbers by value, the rest as text.
pub fn cmp_group_keys(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            (Value::Number(m), Value::Number(n)) => m
                .as_f64()
                .partial_cmp(&n.as_f64())
                .unwrap_or(Ordering::Equal),
            _ => x.to_string().cmp(&y.to_string()),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// SQL for the trace status rule of [`loupe_model::TraceSummary::status_from`], for the
/// statements that update a trace row in place (both backends, as a literal for `concat!`):
/// the root's status code `$root` (1 OK, 2 ERROR, NULL or 0 unknown) wins; without one, a
/// positive count of failed spans `$errors` makes the trace ERROR (2), else UNSET (0).
#[macro_export]
macro_rules! trace_status_sql {
    ($root:expr, $errors:expr) => {
        concat!(
            "CASE ",
            $root,
            " WHEN 1 THEN 1 WHEN 2 THEN 2 ELSE CASE WHEN ",
            $errors,
            " > 0 THEN 2 ELSE 0 END END"
        )
    };
}

/// SQL for a trace's root status after a write: a final state the client reported in its trace
/// info (`$state`: MLflow's `OK` or `ERROR`) keeps the stored `$old`; otherwise the root span's
/// `$new` status, when the write has one.
#[macro_export]
macro_rules! root_status_sql {
    ($state:expr, $old:expr, $new:expr) => {
        concat!(
            "(CASE WHEN ",
            $state,
            " IN ('OK', 'ERROR') THEN ",
            $old,
            " ELSE coalesce(",
            $new,
            ", ",
            $old,
            ") END)"
        )
    };
}

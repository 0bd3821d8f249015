//! The typed query tree and the field catalog.

use serde::{Deserialize, Serialize};

/// A field of the trace itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TraceField {
    /// `OK`, `ERROR`, `UNSET`.
    Status,
    /// Root span name.
    Name,
    /// Duration, ms.
    DurationMs,
    /// Start time, ms since the epoch.
    Start,
    /// End time, ms since the epoch.
    End,
    /// Token totals.
    TotalTokens,
    /// Input tokens.
    InputTokens,
    /// Output tokens.
    OutputTokens,
    /// Cost, US dollars.
    CostUsd,
    /// Project.
    Project,
    /// Session id.
    SessionId,
    /// User id.
    UserId,
    /// Trace id (32 hex).
    TraceId,
    /// Number of spans.
    SpanCount,
    /// Number of failed spans.
    ErrorCount,
}

/// A field of a span; a condition on one means "some span of the trace".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanField {
    /// Span type.
    Type,
    /// Span name.
    Name,
    /// Model.
    Model,
    /// Provider.
    Provider,
    /// Status.
    Status,
    /// Duration, ms.
    DurationMs,
    /// Total tokens.
    TotalTokens,
    /// Cost, US dollars.
    CostUsd,
}

/// What a condition is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Field {
    /// A trace column.
    Trace(TraceField),
    /// A trace tag (mutable, user-set).
    Tag(String),
    /// A trace metadata key (set at ingest).
    Metadata(String),
    /// A span column.
    Span(SpanField),
    /// The value of an assessment of the trace with this name: "some valid assessment".
    Assessment(AssessmentKind, String),
    /// A span attribute, as sent: "some span has it". Attributes live in compressed span bodies,
    /// so these conditions are checked on candidate traces after the SQL filter (see
    /// [`crate::post`]) and may only be joined to the rest of a query by AND.
    SpanAttribute(String),
}

/// Which assessments a field reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AssessmentKind {
    /// Feedback (a judgement: human, LLM judge or code).
    Feedback,
    /// An expectation (the expected output).
    Expectation,
}

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text.
    Text,
    /// An integer.
    Int,
    /// A real number.
    Real,
    /// A duration in ms (accepts unit suffixes).
    Duration,
    /// A time, ms since the epoch (accepts `now - 1h`, dates).
    Time,
    /// A status (`OK`, `ERROR`, `UNSET`).
    Status,
    /// Any JSON scalar: text, a number or a boolean (assessment values).
    Any,
}

impl Field {
    /// The kind of value this field holds.
    pub fn kind(&self) -> Kind {
        match self {
            Field::Trace(t) => match t {
                TraceField::Status => Kind::Status,
                TraceField::DurationMs => Kind::Duration,
                TraceField::Start | TraceField::End => Kind::Time,
                TraceField::TotalTokens
                | TraceField::InputTokens
                | TraceField::OutputTokens
                | TraceField::SpanCount
                | TraceField::ErrorCount => Kind::Int,
                TraceField::CostUsd => Kind::Real,
                _ => Kind::Text,
            },
            Field::Span(s) => match s {
                SpanField::Status => Kind::Status,
                SpanField::DurationMs => Kind::Duration,
                SpanField::TotalTokens => Kind::Int,
                SpanField::CostUsd => Kind::Real,
                _ => Kind::Text,
            },
            Field::Tag(_) | Field::Metadata(_) => Kind::Text,
            Field::Assessment(..) => Kind::Any,
            Field::SpanAttribute(_) => Kind::Text,
        }
    }
}

/// A typed value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Literal {
    /// Text.
    Str(String),
    /// An integer (counts, ms, times in ms, status codes).
    Int(i64),
    /// A real number.
    Real(f64),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CmpOp {
    /// SQL spelling.
    pub fn sql(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// All must hold.
    And(Vec<Expr>),
    /// One must hold.
    Or(Vec<Expr>),
    /// Must not hold.
    Not(Box<Expr>),
    /// `field op value`
    Cmp {
        /// Field.
        field: Field,
        /// Operator.
        op: CmpOp,
        /// Value.
        value: Literal,
    },
    /// `field [NOT] IN (v, …)`
    In {
        /// Field.
        field: Field,
        /// Values.
        values: Vec<Literal>,
        /// `NOT IN`.
        negated: bool,
    },
    /// `field [NOT] LIKE|ILIKE 'pattern'` (`%` and `_` wildcards).
    Like {
        /// Field.
        field: Field,
        /// Pattern.
        pattern: String,
        /// `NOT LIKE`.
        negated: bool,
        /// `ILIKE`.
        case_insensitive: bool,
    },
    /// `field [NOT] RLIKE 'regex'` (a match anywhere in the value).
    Regex {
        /// Field.
        field: Field,
        /// Regular expression (Rust `regex` syntax).
        pattern: String,
        /// `NOT RLIKE`.
        negated: bool,
    },
    /// `field IS [NOT] NULL`
    IsNull {
        /// Field.
        field: Field,
        /// `IS NOT NULL`.
        negated: bool,
    },
    /// `text ~ 'words'`: the trace's inputs, outputs, messages or errors hold every word, the
    /// last one as a prefix (see `loupe_model::text`).
    Text(String),
}

impl Expr {
    /// `<trace field> <op> <value>`.
    pub fn trace(field: TraceField, op: CmpOp, value: Literal) -> Expr {
        Expr::Cmp {
            field: Field::Trace(field),
            op,
            value,
        }
    }

    /// All of `parts`, with the conditions of an `And` among them joined into one (`None` for
    /// none). Span conditions under one `And` are about the same span, so joining keeps their
    /// meaning.
    pub fn all(parts: impl IntoIterator<Item = Expr>) -> Option<Expr> {
        let mut items = Vec::new();
        for part in parts {
            match part {
                Expr::And(v) => items.extend(v),
                e => items.push(e),
            }
        }
        match items.len() {
            0 => None,
            1 => items.pop(),
            _ => Some(Expr::And(items)),
        }
    }
}

/// The trace metadata key naming the MLflow run a trace ran in (set by the client inside a run).
pub const SOURCE_RUN: &str = "mlflow.sourceRun";
/// Trace metadata `loupe.linkedRun.<run id>` marks every other run a trace was linked to
/// (`traces/link-to-run`, as an evaluation of existing traces does).
pub const LINKED_RUN_PREFIX: &str = "loupe.linkedRun.";

/// Whether a path names MLflow's `run_id` search field (`attribute.run_id = '…'`), which
/// matches a trace's source run or any run it was linked to.
pub fn is_run_id(path: &[String]) -> bool {
    let lower: Vec<String> = path.iter().map(|p| p.to_ascii_lowercase()).collect();
    matches!(
        lower
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice(),
        ["run_id"] | ["trace" | "attributes" | "attribute" | "attr", "run_id"]
    )
}

/// Resolves a field path, in Loupe's or MLflow's spelling.
pub fn resolve(path: &[String]) -> Option<Field> {
    let lower: Vec<String> = path.iter().map(|p| p.to_ascii_lowercase()).collect();
    let parts: Vec<&str> = lower.iter().map(String::as_str).collect();
    let trace = |name: &str| -> Option<TraceField> {
        Some(match name {
            "status" | "state" => TraceField::Status,
            "name" | "trace_name" => TraceField::Name,
            "duration_ms" | "duration" | "latency" | "latency_ms" | "execution_time_ms"
            | "execution_time" => TraceField::DurationMs,
            "start" | "start_time" | "start_time_ms" | "timestamp" | "timestamp_ms"
            | "request_time" => TraceField::Start,
            "end" | "end_time" | "end_time_ms" => TraceField::End,
            "total_tokens" | "tokens" => TraceField::TotalTokens,
            "input_tokens" => TraceField::InputTokens,
            "output_tokens" => TraceField::OutputTokens,
            "cost" | "cost_usd" => TraceField::CostUsd,
            "project" | "experiment_id" => TraceField::Project,
            "session_id" | "session" => TraceField::SessionId,
            "user_id" | "user" => TraceField::UserId,
            "trace_id" | "request_id" => TraceField::TraceId,
            "span_count" => TraceField::SpanCount,
            "error_count" => TraceField::ErrorCount,
            _ => return None,
        })
    };
    let span = |name: &str| -> Option<SpanField> {
        Some(match name {
            "type" | "span_type" => SpanField::Type,
            "name" => SpanField::Name,
            "model" => SpanField::Model,
            "provider" => SpanField::Provider,
            "status" => SpanField::Status,
            "duration_ms" | "duration" | "latency" => SpanField::DurationMs,
            "total_tokens" | "tokens" => SpanField::TotalTokens,
            "cost" | "cost_usd" => SpanField::CostUsd,
            _ => return None,
        })
    };
    let rest = |n: usize| path[n..].join(".");
    match parts.as_slice() {
        [one] => trace(one).map(Field::Trace),
        ["tokens", "total"] => Some(Field::Trace(TraceField::TotalTokens)),
        ["tokens", "input"] => Some(Field::Trace(TraceField::InputTokens)),
        ["tokens", "output"] => Some(Field::Trace(TraceField::OutputTokens)),
        ["trace" | "attributes" | "attribute" | "attr", one] => trace(one).map(Field::Trace),
        ["tags" | "tag", ..] if path.len() >= 2 => Some(Field::Tag(rest(1))),
        ["metadata" | "request_metadata", ..] if path.len() >= 2 => Some(Field::Metadata(rest(1))),
        ["span" | "spans", "attributes" | "attribute" | "attr", ..] if path.len() >= 3 => {
            Some(Field::SpanAttribute(rest(2)))
        }
        ["span" | "spans", one] => span(one).map(Field::Span),
        ["feedback" | "feedbacks", ..] if path.len() >= 2 => {
            Some(Field::Assessment(AssessmentKind::Feedback, rest(1)))
        }
        ["expectation" | "expectations", ..] if path.len() >= 2 => {
            Some(Field::Assessment(AssessmentKind::Expectation, rest(1)))
        }
        _ => None,
    }
}

/// The field names the parser knows, for error messages.
pub const KNOWN_FIELDS: &str = "status, name, duration_ms, start, end, total_tokens, input_tokens, \
     output_tokens, cost_usd, project, session_id, user_id, trace_id, run_id, span_count, error_count, \
     tags.<key>, metadata.<key>, span.type, span.name, span.model, span.provider, span.status, \
     span.duration_ms, span.total_tokens, span.cost_usd, span.attributes.<key>, feedback.<name>, \
     expectation.<name>";

//! Lowering to a SQL condition over `traces t` (and `spans s` inside `EXISTS`, `assessments a`),
//! for SQLite or PostgreSQL, with every user value bound as a parameter. Both backends keep the
//! same table and column names, so one lowering serves both; only spellings differ (JSON access,
//! case-sensitive LIKE, hex, the full-text index).

use crate::ast::{AssessmentKind, CmpOp, Expr, Field, Literal, SpanField, TraceField};

/// A bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Real.
    Real(f64),
}

/// Which SQL to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// SQLite (JSON as text, `json_extract`; full text in the attached FTS5 table
    /// `fts.trace_text`, whose rowid is the trace's `seq << 16` plus a part number).
    #[default]
    Sqlite,
    /// PostgreSQL (JSONB; full text in `trace_text (trace_seq, doc tsvector)`). Every
    /// placeholder carries a cast to its parameter's type.
    Postgres,
}

/// A condition and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lowered {
    /// SQL text with `?` placeholders.
    pub sql: String,
    /// Parameters.
    pub params: Vec<Param>,
    /// The dialect written.
    pub dialect: Dialect,
}

impl Lowered {
    fn pg(&self) -> bool {
        self.dialect == Dialect::Postgres
    }

    /// Appends SQL text (never the user's: values go through [`Lowered::param`]).
    pub fn push(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    /// Pushes a placeholder (cast to the parameter's type in PostgreSQL) and its parameter.
    pub fn param(&mut self, p: Param) {
        self.sql.push('?');
        if self.pg() {
            self.sql.push_str(match p {
                Param::Text(_) => "::text",
                Param::Int(_) => "::bigint",
                Param::Real(_) => "::float8",
            });
        }
        self.params.push(p);
    }

    /// The SQL with its `?` placeholders numbered `$first`, `$first + 1` … (PostgreSQL). User
    /// text is never part of the SQL, so every `?` is a placeholder.
    pub fn numbered(&self, first: usize) -> String {
        let mut out = String::with_capacity(self.sql.len() + 16);
        let mut n = first;
        for c in self.sql.chars() {
            if c == '?' {
                out.push('$');
                out.push_str(&n.to_string());
                n += 1;
            } else {
                out.push(c);
            }
        }
        out
    }
}

/// Whether a condition is about one span. `NOT` is not: `NOT span.type = 'LLM'` means "no span
/// is an LLM call" (`span.type != 'LLM'` is "some span is not").
fn span_only(e: &Expr) -> bool {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().all(span_only),
        Expr::Not(_) => false,
        Expr::Cmp { field, .. }
        | Expr::In { field, .. }
        | Expr::Like { field, .. }
        | Expr::Regex { field, .. }
        | Expr::IsNull { field, .. } => {
            matches!(field, Field::Span(_))
        }
        Expr::Text(_) => false,
    }
}

/// What a store's physical layout adds to the shared lowering. The lowering writes every
/// condition over the tables both backends share; the store spells the conditions that only its
/// own indexes answer: the full-text index, and the terms that let an index be searched.
pub trait Layout {
    /// The SQL spelling.
    fn dialect(&self) -> Dialect;

    /// Pushes ` AND …` terms implied by `t.start_ns <op> bound` (one bound, two for `Eq`), so
    /// that an index can be searched by them. They must hold whenever the bound does, so that
    /// the condition means the same under `NOT`. Nothing by default.
    fn start_bound(&self, _op: CmpOp, _bounds_ns: &[i64], _out: &mut Lowered) {}

    /// Pushes the condition "the trace's text holds `words`" (see [`full_text_conditions`]).
    fn text(&self, words: &str, out: &mut Lowered);

    /// Whether the assessment condition `e` is written as the list of traces that have a
    /// matching assessment (`t.trace_id IN (SELECT …)`) rather than checked trace by trace:
    /// for a store that found its matches few ([`assessment_matches_of`]). No by default.
    fn list_assessments(&self, _e: &Expr) -> bool {
        false
    }

    /// The column of an assessment `a` that names its trace, and the column of the trace `t`
    /// it equals: the trace id in both by default.
    fn assessment_trace(&self) -> (&'static str, &'static str) {
        ("a.trace_id", "t.trace_id")
    }
}

/// Lowers `expr` as a condition on traces. Conditions on spans mean "some span of the trace":
/// the span conditions joined by one AND are checked on the same span.
pub fn lower_traces(expr: &Expr, layout: &dyn Layout) -> Lowered {
    lower_as(expr, layout, false)
}

/// Lowers `expr` for a query over spans (`spans s JOIN traces t`): span fields are about the
/// span itself, trace fields (and `text ~`) about its trace.
pub fn lower_spans(expr: &Expr, layout: &dyn Layout) -> Lowered {
    lower_as(expr, layout, true)
}

/// The words of every `text ~` condition in `expr`.
pub fn full_text_conditions(expr: &Expr) -> Vec<&str> {
    match expr {
        Expr::And(v) | Expr::Or(v) => v.iter().flat_map(full_text_conditions).collect(),
        Expr::Not(x) => full_text_conditions(x),
        Expr::Text(words) => vec![words.as_str()],
        _ => Vec::new(),
    }
}

fn lower_as(expr: &Expr, layout: &dyn Layout, spans: bool) -> Lowered {
    let mut out = Lowered {
        dialect: layout.dialect(),
        ..Lowered::default()
    };
    lower(expr, spans, layout, &mut out);
    out
}

/// A JSON path for a tag or metadata key, as SQLite's `json_extract` reads it. The parser
/// refuses keys it cannot write ([`json_path_refusal`]).
pub fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

/// Why `key` cannot be written in a [`json_path`], if it cannot: a quoted label ends at `"`,
/// SQLite reads a `\` before it as an escape, and it reads the path as a C string, which ends
/// at NUL.
pub fn json_path_refusal(key: &str) -> Option<&'static str> {
    if key.contains('"') {
        Some("may not contain `\"`")
    } else if key.contains('\\') {
        Some("may not contain `\\`")
    } else if key.contains('\0') {
        Some("may not contain a NUL character")
    } else {
        None
    }
}

/// Pushes the column expression of a field (binding JSON paths as parameters). `numeric` says
/// the value is compared with a number (PostgreSQL reads JSON values as numbers then, with
/// booleans as 1 and 0, as SQLite's `json_extract` does).
fn column_for(field: &Field, numeric: bool, out: &mut Lowered) {
    // Inside the assessments `a` that `lower_assessment` reads: numbers and booleans (as 1 and
    // 0) compare as numbers, anything else as its text. In both dialects, so a number never
    // matches a text value and `value_num` is a range on `assessments_by_value`.
    if let Field::Assessment(..) = field {
        out.push(if numeric {
            "a.value_num"
        } else {
            "a.value_text"
        });
        return;
    }
    if out.pg() {
        match field {
            Field::Trace(TraceField::TraceId) => {
                out.sql.push_str("encode(t.trace_id, 'hex')");
                return;
            }
            Field::Tag(k) | Field::Metadata(k) => {
                out.sql.push_str(if matches!(field, Field::Tag(_)) {
                    "(t.tags ->> "
                } else {
                    "(t.metadata ->> "
                });
                out.param(Param::Text(k.clone()));
                out.sql.push(')');
                return;
            }
            Field::Span(SpanField::DurationMs) => {
                out.sql
                    .push_str("((s.end_ns - s.start_ns) / 1000000.0)::float8");
                return;
            }
            _ => {}
        }
    }
    column(field, out)
}

/// Pushes the column expression of a field (binding JSON paths as parameters).
fn column(field: &Field, out: &mut Lowered) {
    let col = match field {
        Field::Trace(t) => match t {
            TraceField::Status => "t.status",
            TraceField::Name => "t.name",
            TraceField::DurationMs => "t.duration_ms",
            // Compared in ns (values are scaled below), so the start index serves the filter.
            TraceField::Start => "t.start_ns",
            TraceField::End => "t.end_ns",
            TraceField::TotalTokens => "t.total_tokens",
            TraceField::InputTokens => "t.input_tokens",
            TraceField::OutputTokens => "t.output_tokens",
            TraceField::CostUsd => "t.cost_usd",
            TraceField::Project => "t.project",
            TraceField::SessionId => "t.session_id",
            TraceField::UserId => "t.user_id",
            TraceField::TraceId => "lower(hex(t.trace_id))",
            TraceField::SpanCount => "t.span_count",
            TraceField::ErrorCount => "t.error_count",
        },
        Field::Span(s) => match s {
            SpanField::Type => "s.span_type",
            SpanField::Name => "s.name",
            SpanField::Model => "s.model",
            SpanField::Provider => "s.provider",
            SpanField::Status => "s.status",
            SpanField::DurationMs => "((s.end_ns - s.start_ns) / 1000000.0)",
            SpanField::TotalTokens => "s.total_tokens",
            SpanField::CostUsd => "s.cost_usd",
        },
        Field::Tag(k) => {
            out.sql.push_str("json_extract(t.tags, ");
            out.param(Param::Text(json_path(k)));
            out.sql.push(')');
            return;
        }
        Field::Metadata(k) => {
            out.sql.push_str("json_extract(t.metadata, ");
            out.param(Param::Text(json_path(k)));
            out.sql.push(')');
            return;
        }
        // Read by `column_for` (numbers from `value_num`).
        Field::Assessment(..) => "a.value_text",
        Field::SpanAttribute(_) => "NULL",
    };
    out.sql.push_str(col);
}

fn literal(field: &Field, v: &Literal, out: &mut Lowered) {
    out.param(match (field, v) {
        // Trace ids compare as lower-case hex, with MLflow's `tr-` prefix dropped.
        (Field::Trace(TraceField::TraceId), Literal::Str(s)) => {
            Param::Text(s.strip_prefix("tr-").unwrap_or(s).to_ascii_lowercase())
        }
        (Field::Trace(TraceField::Start | TraceField::End), Literal::Int(ms)) => {
            Param::Int(ms.saturating_mul(1_000_000))
        }
        (Field::Trace(TraceField::Start | TraceField::End), Literal::Real(ms)) => {
            Param::Real(ms * 1e6)
        }
        (_, Literal::Str(s)) => Param::Text(s.clone()),
        (_, Literal::Int(i)) => Param::Int(*i),
        (_, Literal::Real(r)) => Param::Real(*r),
    });
}

/// A LIKE pattern as a GLOB pattern, which SQLite matches case-sensitively.
fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => match chars.next() {
                Some(n) => push_glob_literal(n, &mut out),
                None => push_glob_literal('\\', &mut out),
            },
            c => push_glob_literal(c, &mut out),
        }
    }
    out
}

fn push_glob_literal(c: char, out: &mut String) {
    if matches!(c, '*' | '?' | '[' | ']') {
        out.push('[');
        out.push(c);
        out.push(']');
    } else {
        out.push(c);
    }
}

/// The field of a condition, if it is one.
fn field_of(e: &Expr) -> Option<&Field> {
    match e {
        Expr::Cmp { field, .. }
        | Expr::In { field, .. }
        | Expr::Like { field, .. }
        | Expr::Regex { field, .. }
        | Expr::IsNull { field, .. } => Some(field),
        _ => None,
    }
}

/// A condition on an assessment: "some valid assessment of the trace with that name whose value
/// satisfies it"; `IS NULL` means "no such assessment". Checked trace by trace (`EXISTS`), or,
/// where the layout says the matches are few ([`Layout::list_assessments`]), as the list of
/// traces that have one.
fn lower_assessment(
    e: &Expr,
    kind: AssessmentKind,
    name: &str,
    layout: &dyn Layout,
    out: &mut Lowered,
) {
    let (open, body): (&str, Option<&Expr>) = match e {
        Expr::IsNull { negated: false, .. } => ("NOT EXISTS", None),
        Expr::IsNull { negated: true, .. } => ("EXISTS", None),
        other => ("EXISTS", Some(other)),
    };
    let (of_assessment, of_trace) = layout.assessment_trace();
    if body.is_some() && layout.list_assessments(e) {
        out.push(of_trace);
        out.push(" IN (");
        assessment_matches(kind, name, body, layout, out);
        out.push(")");
        return;
    }
    out.push(open);
    out.push(" (SELECT 1 FROM assessments a WHERE ");
    out.push(of_assessment);
    out.push(" = ");
    out.push(of_trace);
    out.push(" AND ");
    assessment_where(kind, name, body, layout, out);
    out.push(")");
}

/// `SELECT a.trace_id FROM assessments a WHERE …` (or the column [`Layout::assessment_trace`]
/// names): the traces with a valid assessment of this kind and name satisfying `cond`.
fn assessment_matches(
    kind: AssessmentKind,
    name: &str,
    cond: Option<&Expr>,
    layout: &dyn Layout,
    out: &mut Lowered,
) {
    out.push("SELECT ");
    out.push(layout.assessment_trace().0);
    out.push(" FROM assessments a WHERE ");
    assessment_where(kind, name, cond, layout, out);
}

fn assessment_where(
    kind: AssessmentKind,
    name: &str,
    cond: Option<&Expr>,
    layout: &dyn Layout,
    out: &mut Lowered,
) {
    out.push("a.name = ");
    out.param(Param::Text(name.to_string()));
    out.push(match kind {
        AssessmentKind::Feedback => " AND a.kind = 'feedback'",
        AssessmentKind::Expectation => " AND a.kind = 'expectation'",
    });
    out.push(if out.pg() {
        " AND a.valid"
    } else {
        " AND a.valid = 1"
    });
    if let Some(cond) = cond {
        out.push(" AND ");
        lower_inner(cond, true, layout, out);
    }
}

/// For a condition on an assessment (not `IS NULL`): the query of the traces that have a
/// matching one, `SELECT a.trace_id FROM assessments a WHERE …`, so a store can count them
/// before it chooses a plan ([`Layout::list_assessments`]).
pub fn assessment_matches_of(e: &Expr, layout: &dyn Layout) -> Option<Lowered> {
    let Some(Field::Assessment(kind, name)) = field_of(e) else {
        return None;
    };
    if matches!(e, Expr::IsNull { .. }) {
        return None;
    }
    let mut out = Lowered {
        dialect: layout.dialect(),
        ..Lowered::default()
    };
    assessment_matches(*kind, name, Some(e), layout, &mut out);
    Some(out)
}

fn lower(e: &Expr, in_span: bool, layout: &dyn Layout, out: &mut Lowered) {
    match field_of(e) {
        Some(Field::Assessment(kind, name)) => {
            return lower_assessment(e, *kind, name, layout, out);
        }
        // Checked after SQL, on the candidates' spans (`crate::post`); the parser allows these
        // only under AND, where "true" leaves the rest of the query to decide.
        Some(Field::SpanAttribute(_)) => {
            out.sql.push_str("(1 = 1)");
            return;
        }
        _ => {}
    }
    lower_inner(e, in_span, layout, out);
}

fn lower_inner(e: &Expr, in_span: bool, layout: &dyn Layout, out: &mut Lowered) {
    if !in_span && span_only(e) {
        out.push("EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq AND (");
        lower(e, true, layout, out);
        out.push("))");
        return;
    }
    match e {
        Expr::And(items) => lower_and(items, in_span, layout, out),
        Expr::Or(items) => {
            out.sql.push('(');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(" OR ");
                }
                lower(x, in_span, layout, out);
            }
            out.sql.push(')');
        }
        Expr::Not(x) => {
            out.push("NOT (");
            lower(x, in_span, layout, out);
            out.sql.push(')');
        }
        Expr::Cmp {
            field: field @ Field::Trace(t @ (TraceField::Start | TraceField::End)),
            op,
            value: Literal::Int(ms),
        } => lower_time(field, *t == TraceField::Start, *op, *ms, layout, out),
        // SQLite keeps failed traces in a partial index (`WHERE status = 2`), which it only
        // uses when the query says so literally; a status is a small integer, never user text.
        Expr::Cmp {
            field: Field::Trace(TraceField::Status),
            op: op @ (CmpOp::Eq | CmpOp::Ne),
            value: Literal::Int(code),
        } if out.dialect == Dialect::Sqlite => {
            out.push(&format!("(t.status {} {code})", op.sql()));
        }
        Expr::Cmp { field, op, value } => {
            out.sql.push('(');
            column_for(field, !matches!(value, Literal::Str(_)), out);
            out.sql.push(' ');
            out.push(op.sql());
            out.sql.push(' ');
            literal(field, value, out);
            out.sql.push(')');
        }
        Expr::In {
            field,
            values,
            negated,
        } => {
            out.sql.push('(');
            let numeric = values.iter().any(|v| !matches!(v, Literal::Str(_)));
            column_for(field, numeric, out);
            out.push(if *negated { " NOT IN (" } else { " IN (" });
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.push(", ");
                }
                literal(field, v, out);
            }
            out.push("))");
        }
        Expr::Like {
            field,
            pattern,
            negated,
            case_insensitive,
        } => lower_like(field, pattern, *negated, *case_insensitive, out),
        // Only on span attributes, which `lower` answers before reaching here.
        Expr::Regex { .. } => out.push("(1 = 1)"),
        Expr::Text(words) => {
            out.sql.push('(');
            layout.text(words, out);
            out.sql.push(')');
        }
        Expr::IsNull { field, negated } => lower_is_null(field, *negated, out),
    }
}

/// `a AND b …`. Outside a span, the span conditions joined by this AND are checked on one span.
fn lower_and(items: &[Expr], in_span: bool, layout: &dyn Layout, out: &mut Lowered) {
    let (spans, rest): (Vec<&Expr>, Vec<&Expr>) = if in_span {
        (Vec::new(), items.iter().collect())
    } else {
        items.iter().partition(|x| span_only(x))
    };
    out.sql.push('(');
    let mut first = true;
    if !spans.is_empty() {
        out.push("EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq");
        for s in spans {
            out.push(" AND ");
            lower(s, true, layout, out);
        }
        out.sql.push(')');
        first = false;
    }
    for x in rest {
        if !first {
            out.push(" AND ");
        }
        first = false;
        lower(x, in_span, layout, out);
    }
    out.sql.push(')');
}

/// A start or end time compared with a millisecond. Times are stored in ns and written in ms:
/// the condition holds for the whole millisecond (as MLflow's ms timestamps compare), and stays
/// a range the indexes answer; a start also gets the store's own index terms
/// ([`Layout::start_bound`]).
fn lower_time(
    field: &Field,
    is_start: bool,
    op: CmpOp,
    ms: i64,
    layout: &dyn Layout,
    out: &mut Lowered,
) {
    let lo = ms.saturating_mul(1_000_000);
    let hi = ms.saturating_add(1).saturating_mul(1_000_000);
    let terms: &[(&str, i64)] = match op {
        CmpOp::Eq => &[(" >= ", lo), (" < ", hi)],
        CmpOp::Ne => &[(" < ", lo), (" >= ", hi)],
        CmpOp::Gt => &[(" >= ", hi)],
        CmpOp::Ge => &[(" >= ", lo)],
        CmpOp::Lt => &[(" < ", lo)],
        CmpOp::Le => &[(" < ", hi)],
    };
    let join = if op == CmpOp::Ne { " OR " } else { " AND " };
    out.sql.push('(');
    for (k, &(cmp, bound)) in terms.iter().enumerate() {
        if k > 0 {
            out.push(join);
        }
        column(field, out);
        out.push(cmp);
        out.param(Param::Int(bound));
    }
    let bounds: Vec<i64> = terms.iter().map(|&(_, b)| b).collect();
    if is_start && op != CmpOp::Ne {
        layout.start_bound(op, &bounds, out);
    }
    out.sql.push(')');
}

/// `field [NOT] LIKE | ILIKE pattern`, case-sensitive unless ILIKE in both dialects.
fn lower_like(
    field: &Field,
    pattern: &str,
    negated: bool,
    case_insensitive: bool,
    out: &mut Lowered,
) {
    out.sql.push('(');
    if negated {
        out.push("NOT ");
    }
    column_for(field, false, out);
    match (out.dialect, case_insensitive) {
        // SQLite's LIKE ignores (ASCII) case; GLOB does not.
        (Dialect::Sqlite, true) => {
            out.push(" LIKE ");
            out.param(Param::Text(pattern.to_string()));
            out.push(" ESCAPE '\\'");
        }
        (Dialect::Sqlite, false) => {
            out.push(" GLOB ");
            out.param(Param::Text(like_to_glob(pattern)));
        }
        (Dialect::Postgres, ci) => {
            out.push(if ci { " ILIKE " } else { " LIKE " });
            out.param(Param::Text(pattern.to_string()));
            out.push(" ESCAPE '\\'");
        }
    }
    out.sql.push(')');
}

/// `field IS [NOT] NULL`.
fn lower_is_null(field: &Field, negated: bool, out: &mut Lowered) {
    out.sql.push('(');
    // SQLite: the session index covers only traces with a session, so SQLite may take it for
    // `session_id IS NOT NULL` and then sort every such trace, where reading newest first and
    // checking each finds a page at once (figures: docs/performance.md, "Query and aggregation
    // timings"). A unary `+` keeps the term off the indexes.
    if negated
        && out.dialect == Dialect::Sqlite
        && matches!(field, Field::Trace(TraceField::SessionId))
    {
        out.sql.push('+');
    }
    column_for(field, false, out);
    out.push(if negated {
        " IS NOT NULL)"
    } else {
        " IS NULL)"
    });
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::parse;

    const NOW: i64 = 1_800_000_000_000;

    /// A layout with no indexes of its own: the shared lowering's part alone.
    pub(crate) struct Plain(pub Dialect);

    impl Layout for Plain {
        fn dialect(&self) -> Dialect {
            self.0
        }
        fn text(&self, words: &str, out: &mut Lowered) {
            out.push("t.text_holds(");
            out.param(Param::Text(words.to_string()));
            out.push(")");
        }
    }

    fn low(q: &str) -> Lowered {
        lower_traces(&parse(q, NOW).unwrap(), &Plain(Dialect::Sqlite))
    }

    #[test]
    fn trace_fields_bind_every_value() {
        let l = low("status = 'ERROR' AND duration_ms > 5s AND tags.env = 'prod' AND name != 'x'");
        assert_eq!(
            l.sql,
            "((t.status = 2) AND (t.duration_ms > ?) AND (json_extract(t.tags, ?) = ?) AND (t.name != ?))"
        );
        assert_eq!(
            l.params,
            vec![
                Param::Real(5000.0),
                Param::Text("$.\"env\"".into()),
                Param::Text("prod".into()),
                Param::Text("x".into())
            ]
        );
    }

    #[test]
    fn span_conditions_under_one_and_share_a_span() {
        let l = low("span.type = 'LLM' AND span.model LIKE 'gpt-4%' AND total_tokens > 10000");
        assert_eq!(
            l.sql,
            "(EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq AND (s.span_type = ?) AND (s.model GLOB ?)) AND (t.total_tokens > ?))"
        );
        assert_eq!(l.params[1], Param::Text("gpt-4*".into()));
        let l = low("span.type = 'TOOL' OR status = 'ERROR'");
        assert!(l.sql.starts_with("(EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq AND ((s.span_type = ?))) OR"), "{}", l.sql);
    }

    #[test]
    fn millisecond_times_cover_their_millisecond() {
        let l = low("timestamp_ms = 5");
        assert_eq!(l.sql, "(t.start_ns >= ? AND t.start_ns < ?)");
        assert_eq!(l.params, vec![Param::Int(5_000_000), Param::Int(6_000_000)]);
        let l = low("start != 5");
        assert_eq!(l.sql, "(t.start_ns < ? OR t.start_ns >= ?)");
        let l = pg("start >= 5");
        assert_eq!(l.sql, "(t.start_ns >= ?::bigint)");
        let l = low("end > 5");
        assert_eq!(l.sql, "(t.end_ns >= ?)");
        assert_eq!(l.params, vec![Param::Int(6_000_000)]);
        let l = low("start <= 5");
        assert_eq!(l.params, vec![Param::Int(6_000_000)]);
    }

    #[test]
    fn hostile_text_stays_a_parameter() {
        let evil = "x'); DROP TABLE traces; --";
        let l = low(&format!("name = '{}'", evil.replace('\'', "''")));
        assert_eq!(l.sql, "(t.name = ?)");
        assert_eq!(l.params, vec![Param::Text(evil.into())]);
        let l = low("session_id IS NOT NULL");
        assert_eq!(l.sql, "(+t.session_id IS NOT NULL)");
        let l = low("session_id IS NULL");
        assert_eq!(l.sql, "(t.session_id IS NULL)");
        let l = low("tags.`a.b c` IS NULL");
        assert_eq!(l.params, vec![Param::Text("$.\"a.b c\"".into())]);
        assert_eq!(like_to_glob("a*b?[c]%_\\%"), "a[*]b[?][[]c[]]*?%");
    }

    #[test]
    fn assessment_conditions_read_valid_assessments_by_name() {
        let l = low("status = 'OK' AND feedback.quality > 0.4");
        assert_eq!(
            l.sql,
            "((t.status = 1) AND EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id \
             AND a.name = ? AND a.kind = 'feedback' AND a.valid = 1 \
             AND (a.value_num > ?)))"
        );
        assert_eq!(
            l.params,
            vec![Param::Text("quality".into()), Param::Real(0.4)]
        );
        let l = low("expectation.`expected answer` IS NULL");
        assert!(
            l.sql.starts_with("NOT EXISTS (SELECT 1 FROM assessments a"),
            "{}",
            l.sql
        );
        assert_eq!(l.params, vec![Param::Text("expected answer".into())]);
        let l = low("feedback.correct = true OR feedback.label LIKE 'good%'");
        assert_eq!(l.params[1], Param::Int(1));
        assert_eq!(l.params[3], Param::Text("good*".into()));
    }

    fn pg(q: &str) -> Lowered {
        lower_traces(&parse(q, NOW).expect("parses"), &Plain(Dialect::Postgres))
    }

    #[test]
    fn postgres_casts_every_placeholder_and_numbers_them() {
        let l =
            pg("status = 'ERROR' AND tags.team = 'a' AND duration_ms > 1.5 AND trace_id = 'tr-AB'");
        assert_eq!(
            l.sql,
            "((t.status = ?::bigint) AND ((t.tags ->> ?::text) = ?::text) AND (t.duration_ms > ?::float8) \
             AND (encode(t.trace_id, 'hex') = ?::text))"
        );
        assert_eq!(l.params.len(), 5);
        assert!(l.numbered(3).contains("$3::bigint") && l.numbered(3).contains("$7::text"));
        assert!(!l.numbered(1).contains('?'));
    }

    #[test]
    fn postgres_like_is_case_sensitive_and_ilike_is_not() {
        let l = pg("name LIKE 'Chat%' AND span.model ILIKE 'GPT%'");
        assert!(
            l.sql.contains("(t.name LIKE ?::text ESCAPE '\\')"),
            "{}",
            l.sql
        );
        assert!(
            l.sql.contains("(s.model ILIKE ?::text ESCAPE '\\')"),
            "{}",
            l.sql
        );
        assert_eq!(l.params[1], Param::Text("Chat%".into()));
    }

    #[test]
    fn postgres_reads_assessment_values_as_numbers_or_text() {
        let l = pg("feedback.correct = true");
        assert!(l.sql.contains("a.value_num = ?::bigint"), "{}", l.sql);
        assert!(
            l.sql.contains("a.kind = 'feedback' AND a.valid"),
            "{}",
            l.sql
        );
        let l = pg("feedback.label = 'good'");
        assert!(l.sql.contains("a.value_text = ?::text"), "{}", l.sql);
    }

    #[test]
    fn the_store_spells_full_text_inside_the_shared_condition() {
        let l = low("NOT text ~ 'Refund' AND status = 'ERROR'");
        assert_eq!(l.sql, "(NOT ((t.text_holds(?))) AND (t.status = 2))");
        assert_eq!(l.params, vec![Param::Text("Refund".into())]);
    }

    #[test]
    fn not_on_a_span_condition_means_no_such_span() {
        let l = low("NOT span.type = 'LLM'");
        assert_eq!(
            l.sql,
            "NOT (EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq AND ((s.span_type = ?))))"
        );
        let l = low("span.type != 'LLM'");
        assert!(
            l.sql.starts_with("EXISTS (SELECT 1 FROM spans s"),
            "{}",
            l.sql
        );
        // In a query over spans, NOT is about the span itself.
        let e = parse("NOT span.type = 'LLM'", NOW).expect("parses");
        let l = lower_spans(&e, &Plain(Dialect::Sqlite));
        assert_eq!(l.sql, "NOT ((s.span_type = ?))");
    }

    #[test]
    fn conditions_checked_after_sql_are_true_in_both_dialects() {
        let q = "span.attributes.k = 'v' AND status = 'OK'";
        assert!(low(q).sql.starts_with("((1 = 1) AND"), "{}", low(q).sql);
        assert!(pg(q).sql.starts_with("((1 = 1) AND"), "{}", pg(q).sql);
    }
}

//! Lowering to a SQLite condition over `traces t` (and `spans s` inside `EXISTS`), with every
//! user value bound as a parameter.

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

/// A condition and its parameters, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lowered {
    /// SQL text with `?` placeholders.
    pub sql: String,
    /// Parameters.
    pub params: Vec<Param>,
}

fn span_only(e: &Expr) -> bool {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().all(span_only),
        Expr::Not(x) => span_only(x),
        Expr::Cmp { field, .. }
        | Expr::In { field, .. }
        | Expr::Like { field, .. }
        | Expr::Regex { field, .. }
        | Expr::IsNull { field, .. } => {
            matches!(field, Field::Span(_))
        }
    }
}

/// Lowers `expr` for SQLite. Conditions on spans mean "some span of the trace": the span
/// conditions joined by one AND are checked on the same span.
pub fn sqlite(expr: &Expr) -> Lowered {
    let mut out = Lowered::default();
    lower(expr, false, &mut out);
    out
}

/// Lowers `expr` for a query over spans (`spans s JOIN traces t`): span fields are about the
/// span itself, trace fields about its trace.
pub fn sqlite_spans(expr: &Expr) -> Lowered {
    let mut out = Lowered::default();
    lower(expr, true, &mut out);
    out
}

/// A JSON path for a tag or metadata key, as SQLite's `json_extract` reads it.
pub fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
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
            out.sql.push_str("json_extract(t.tags, ?)");
            out.params.push(Param::Text(json_path(k)));
            return;
        }
        Field::Metadata(k) => {
            out.sql.push_str("json_extract(t.metadata, ?)");
            out.params.push(Param::Text(json_path(k)));
            return;
        }
        // Inside the EXISTS over `assessments a` that `lower` opens.
        Field::Assessment(AssessmentKind::Feedback, _) => {
            "json_extract(a.body, '$.feedback.value')"
        }
        Field::SpanAttribute(_) => "NULL",
        Field::Assessment(AssessmentKind::Expectation, _) => {
            "coalesce(json_extract(a.body, '$.expectation.value'), \
             json_extract(a.body, '$.expectation.serialized_value.value'))"
        }
    };
    out.sql.push_str(col);
}

fn literal(field: &Field, v: &Literal, out: &mut Lowered) {
    out.sql.push('?');
    out.params.push(match (field, v) {
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
/// satisfies it"; `IS NULL` means "no such assessment".
fn lower_assessment(e: &Expr, name: &str, out: &mut Lowered) {
    let (open, body): (&str, Option<&Expr>) = match e {
        Expr::IsNull { negated: false, .. } => ("NOT EXISTS", None),
        Expr::IsNull { negated: true, .. } => ("EXISTS", None),
        other => ("EXISTS", Some(other)),
    };
    out.sql.push_str(open);
    out.sql.push_str(
        " (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id \
         AND json_extract(a.body, '$.assessment_name') = ? \
         AND coalesce(json_extract(a.body, '$.valid'), 1) != 0",
    );
    out.params.push(Param::Text(name.to_string()));
    if let Some(cond) = body {
        out.sql.push_str(" AND ");
        lower_inner(cond, true, out);
    }
    out.sql.push(')');
}

fn lower(e: &Expr, in_span: bool, out: &mut Lowered) {
    match field_of(e) {
        Some(Field::Assessment(_, name)) => return lower_assessment(e, name, out),
        // Checked after SQL, on the candidates' spans (`crate::post`); the parser allows these
        // only under AND, where "true" leaves the rest of the query to decide.
        Some(Field::SpanAttribute(_)) => {
            out.sql.push_str("(1)");
            return;
        }
        _ => {}
    }
    lower_inner(e, in_span, out);
}

fn lower_inner(e: &Expr, in_span: bool, out: &mut Lowered) {
    if !in_span && span_only(e) {
        out.sql
            .push_str("EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq AND (");
        lower(e, true, out);
        out.sql.push_str("))");
        return;
    }
    match e {
        Expr::And(items) => {
            // Span conditions joined by this AND are checked on one span.
            let (spans, rest): (Vec<&Expr>, Vec<&Expr>) = if in_span {
                (Vec::new(), items.iter().collect())
            } else {
                items.iter().partition(|x| span_only(x))
            };
            out.sql.push('(');
            let mut first = true;
            if !spans.is_empty() {
                out.sql
                    .push_str("EXISTS (SELECT 1 FROM spans s WHERE s.trace_seq = t.seq");
                for s in spans {
                    out.sql.push_str(" AND ");
                    lower(s, true, out);
                }
                out.sql.push(')');
                first = false;
            }
            for x in rest {
                if !first {
                    out.sql.push_str(" AND ");
                }
                first = false;
                lower(x, in_span, out);
            }
            out.sql.push(')');
        }
        Expr::Or(items) => {
            out.sql.push('(');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.sql.push_str(" OR ");
                }
                lower(x, in_span, out);
            }
            out.sql.push(')');
        }
        Expr::Not(x) => {
            out.sql.push_str("NOT (");
            lower(x, in_span, out);
            out.sql.push(')');
        }
        // Times are stored in ns and written in ms: a condition holds for the whole
        // millisecond (as MLflow's ms timestamps compare), and stays a range on the index.
        Expr::Cmp {
            field: field @ Field::Trace(TraceField::Start | TraceField::End),
            op,
            value: Literal::Int(ms),
        } => {
            let lo = ms.saturating_mul(1_000_000);
            let hi = ms.saturating_add(1).saturating_mul(1_000_000);
            let (sql, params): (&str, Vec<i64>) = match op {
                CmpOp::Eq => ("(# >= ? AND # < ?)", vec![lo, hi]),
                CmpOp::Ne => ("(# < ? OR # >= ?)", vec![lo, hi]),
                CmpOp::Gt => ("(# >= ?)", vec![hi]),
                CmpOp::Ge => ("(# >= ?)", vec![lo]),
                CmpOp::Lt => ("(# < ?)", vec![lo]),
                CmpOp::Le => ("(# < ?)", vec![hi]),
            };
            let mut col = Lowered::default();
            column(field, &mut col);
            out.sql.push_str(&sql.replace('#', &col.sql));
            out.params.extend(params.into_iter().map(Param::Int));
        }
        Expr::Cmp { field, op, value } => {
            out.sql.push('(');
            column(field, out);
            out.sql.push(' ');
            out.sql.push_str(op.sql());
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
            column(field, out);
            out.sql
                .push_str(if *negated { " NOT IN (" } else { " IN (" });
            for (i, v) in values.iter().enumerate() {
                if i > 0 {
                    out.sql.push_str(", ");
                }
                literal(field, v, out);
            }
            out.sql.push_str("))");
        }
        Expr::Like {
            field,
            pattern,
            negated,
            case_insensitive,
        } => {
            out.sql.push('(');
            if *negated {
                out.sql.push_str("NOT ");
            }
            column(field, out);
            if *case_insensitive {
                // SQLite's LIKE ignores ASCII case; lower() both sides for the rest of Unicode.
                out.sql.push_str(" LIKE ? ESCAPE '\\'");
                out.params.push(Param::Text(pattern.clone()));
            } else {
                out.sql.push_str(" GLOB ?");
                out.params.push(Param::Text(like_to_glob(pattern)));
            }
            out.sql.push(')');
        }
        // Only on span attributes, which `lower` answers before reaching here.
        Expr::Regex { .. } => out.sql.push_str("(1)"),
        Expr::IsNull { field, negated } => {
            out.sql.push('(');
            column(field, out);
            out.sql.push_str(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const NOW: i64 = 1_800_000_000_000;

    fn low(q: &str) -> Lowered {
        sqlite(&parse(q, NOW).unwrap())
    }

    #[test]
    fn trace_fields_bind_every_value() {
        let l = low("status = 'ERROR' AND duration_ms > 5s AND tags.env = 'prod' AND name != 'x'");
        assert_eq!(
            l.sql,
            "((t.status = ?) AND (t.duration_ms > ?) AND (json_extract(t.tags, ?) = ?) AND (t.name != ?))"
        );
        assert_eq!(
            l.params,
            vec![
                Param::Int(2),
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
        let l = low("tags.`a.b c` IS NULL");
        assert_eq!(l.params, vec![Param::Text("$.\"a.b c\"".into())]);
        assert_eq!(like_to_glob("a*b?[c]%_\\%"), "a[*]b[?][[]c[]]*?%");
    }

    #[test]
    fn assessment_conditions_read_valid_assessments_by_name() {
        let l = low("status = 'OK' AND feedback.quality > 0.4");
        assert_eq!(
            l.sql,
            "((t.status = ?) AND EXISTS (SELECT 1 FROM assessments a WHERE a.trace_id = t.trace_id \
             AND json_extract(a.body, '$.assessment_name') = ? \
             AND coalesce(json_extract(a.body, '$.valid'), 1) != 0 \
             AND (json_extract(a.body, '$.feedback.value') > ?)))"
        );
        assert_eq!(
            l.params,
            vec![
                Param::Int(1),
                Param::Text("quality".into()),
                Param::Real(0.4)
            ]
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
}

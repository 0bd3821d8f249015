//! Conditions checked after SQL: `span.attributes.<key>`, whose values live in the compressed
//! span bodies, not in columns. The SQL lowering treats them as true; a reader then keeps the
//! candidate traces where, for each such condition, some span satisfies it. The parser allows
//! them only where that is exact: the whole query, or a term of its top-level AND.

use serde_json::{Map, Value};

use crate::ast::{Expr, Field, Literal};

/// Compiles a RLIKE pattern (bounded in size, so a hostile pattern cannot exhaust memory).
pub fn regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(1 << 20)
        .build()
}

fn on_attribute(e: &Expr) -> bool {
    matches!(
        e,
        Expr::Cmp {
            field: Field::SpanAttribute(_),
            ..
        } | Expr::In {
            field: Field::SpanAttribute(_),
            ..
        } | Expr::Like {
            field: Field::SpanAttribute(_),
            ..
        } | Expr::Regex {
            field: Field::SpanAttribute(_),
            ..
        } | Expr::IsNull {
            field: Field::SpanAttribute(_),
            ..
        }
    )
}

fn mentions_attribute(e: &Expr) -> bool {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().any(mentions_attribute),
        Expr::Not(x) => mentions_attribute(x),
        leaf => on_attribute(leaf),
    }
}

/// Whether every span-attribute condition is the query or a term of its top-level AND.
pub fn well_placed(e: &Expr) -> bool {
    match e {
        Expr::And(items) => items
            .iter()
            .all(|x| on_attribute(x) || !mentions_attribute(x)),
        leaf if on_attribute(leaf) => true,
        other => !mentions_attribute(other),
    }
}

/// The span-attribute conditions of a query (empty when it has none).
pub fn span_attribute_conditions(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::And(items) => items.iter().filter(|x| on_attribute(x)).collect(),
        leaf if on_attribute(leaf) => vec![leaf],
        _ => Vec::new(),
    }
}

/// The text a condition compares: a string as is, anything else as JSON.
fn text(v: &Value) -> std::borrow::Cow<'_, str> {
    match v {
        Value::String(s) => std::borrow::Cow::Borrowed(s),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

fn literal_text(l: &Literal) -> String {
    match l {
        Literal::Str(s) => s.clone(),
        Literal::Int(i) => i.to_string(),
        Literal::Real(r) => r.to_string(),
    }
}

/// Whether `text` matches the SQL `LIKE` pattern (`ILIKE` with `fold_case`).
pub fn like_match(pattern: &str, text: &str, fold_case: bool) -> bool {
    let chars = |s: &str| -> Vec<char> {
        if fold_case {
            s.to_lowercase().chars().collect()
        } else {
            s.chars().collect()
        }
    };
    like(&chars(pattern), &chars(text))
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes.
fn like(pattern: &[char], text: &[char]) -> bool {
    // Iterative matching with backtracking to the last `%`.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        let (pc, escaped, width) = match pattern.get(p) {
            Some('\\') if p + 1 < pattern.len() => (Some(pattern[p + 1]), true, 2),
            Some(c) => (Some(*c), false, 1),
            None => (None, false, 0),
        };
        match pc {
            Some('%') if !escaped => {
                star = Some((p + 1, t));
                p += 1;
            }
            Some(c) if (c == '_' && !escaped) || c == text[t] => {
                p += width;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    while pattern.get(p) == Some(&'%') {
        p += 1;
    }
    p == pattern.len()
}

/// Whether one span's attributes satisfy a span-attribute condition.
pub fn span_matches(cond: &Expr, attributes: &Map<String, Value>) -> bool {
    let value = |field: &Field| match field {
        Field::SpanAttribute(k) => attributes.get(k).filter(|v| !v.is_null()),
        _ => None,
    };
    match cond {
        Expr::Cmp {
            field,
            op,
            value: l,
        } => value(field).is_some_and(|v| {
            let (a, b) = (text(v), literal_text(l));
            match op {
                crate::ast::CmpOp::Eq => a == b,
                crate::ast::CmpOp::Ne => a != b,
                crate::ast::CmpOp::Lt => a.as_ref() < b.as_str(),
                crate::ast::CmpOp::Le => a.as_ref() <= b.as_str(),
                crate::ast::CmpOp::Gt => a.as_ref() > b.as_str(),
                crate::ast::CmpOp::Ge => a.as_ref() >= b.as_str(),
            }
        }),
        Expr::In {
            field,
            values,
            negated,
        } => value(field).is_some_and(|v| {
            let a = text(v);
            values.iter().any(|l| literal_text(l) == a) != *negated
        }),
        Expr::Like {
            field,
            pattern,
            negated,
            case_insensitive,
        } => value(field)
            .is_some_and(|v| like_match(pattern, &text(v), *case_insensitive) != *negated),
        Expr::Regex {
            field,
            pattern,
            negated,
        } => value(field)
            .is_some_and(|v| regex(pattern).is_ok_and(|re| re.is_match(&text(v)) != *negated)),
        Expr::IsNull { field, negated } => value(field).is_some() == *negated,
        _ => false,
    }
}

/// Whether a trace satisfies the span-attribute conditions: each by some span (`IS NULL`: by
/// no span having the attribute).
pub fn trace_matches<'a>(
    conds: &[&Expr],
    spans: impl Iterator<Item = &'a Map<String, Value>> + Clone,
) -> bool {
    conds.iter().all(|c| match c {
        Expr::IsNull {
            field,
            negated: false,
        } => {
            let not_null = Expr::IsNull {
                field: field.clone(),
                negated: true,
            };
            !spans.clone().any(|a| span_matches(&not_null, a))
        }
        c => spans.clone().any(|a| span_matches(c, a)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;
    use serde_json::json;

    fn attrs(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn like_patterns() {
        let m = |p: &str, t: &str| {
            like(
                &p.chars().collect::<Vec<_>>(),
                &t.chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("%pg%", "postgres pg"));
        assert!(m("p_", "pg"));
        assert!(!m("p_", "pgx"));
        assert!(m("a%b%c", "a-b-c"));
        assert!(!m("a%b%c", "a-c-b"));
        assert!(m("100\\%", "100%"));
        assert!(!m("100\\%", "1000"));
        assert!(m("退款%", "退款 please"));
    }

    #[test]
    fn conditions_over_spans() {
        let q = parse(
            "status = 'OK' AND span.attributes.`db.system` LIKE '%pg%' AND span.attributes.`llm.model` RLIKE '^gpt-4'",
            0,
        )
        .unwrap();
        let conds = span_attribute_conditions(&q);
        assert_eq!(conds.len(), 2);
        let a = attrs(json!({"db.system": "pg"}));
        let b = attrs(json!({"llm.model": "gpt-4o"}));
        let c = attrs(json!({"llm.model": "claude"}));
        assert!(trace_matches(&conds, [&a, &b].into_iter()));
        assert!(!trace_matches(&conds, [&a, &c].into_iter()));
        let q = parse("span.attributes.k IS NULL", 0).unwrap();
        let conds = span_attribute_conditions(&q);
        assert!(trace_matches(&conds, [&a].into_iter()));
        assert!(!trace_matches(
            &conds,
            [&attrs(json!({"k": 1}))].into_iter()
        ));
        let q = parse(
            "span.attributes.n = '3' AND span.attributes.x ILIKE 'HI%'",
            0,
        )
        .unwrap();
        let conds = span_attribute_conditions(&q);
        assert!(trace_matches(
            &conds,
            [&attrs(json!({"n": 3, "x": "hi there"}))].into_iter()
        ));
    }

    #[test]
    fn only_under_and() {
        assert!(parse("span.attributes.k = 'v' OR status = 'OK'", 0).is_err());
        assert!(parse("NOT span.attributes.k = 'v'", 0).is_err());
        assert!(
            parse(
                "(status = 'OK' AND span.attributes.k = 'v') OR name = 'x'",
                0
            )
            .is_err()
        );
        assert!(parse("span.attributes.k = 'v'", 0).is_ok());
        assert!(parse("name = 'x' AND span.attributes.k NOT LIKE 'v%'", 0).is_ok());
        assert!(parse("status RLIKE 'x'", 0).is_err());
        assert!(parse("span.attributes.k RLIKE '('", 0).is_err());
    }
}

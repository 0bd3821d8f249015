//! Tokens → a typed [`Expr`], resolving fields and checking every value against its field.
//!
//! ```text
//! expr    := and (OR and)*
//! and     := unary (AND unary)*
//! unary   := NOT unary | '(' expr ')' | cond
//! cond    := field op value | field [NOT] IN '(' value (',' value)* ')'
//!          | field [NOT] (LIKE | ILIKE) string | field IS [NOT] NULL
//! value   := string | number[unit] | now [(+|-) number unit]
//! ```

use crate::QueryError;
use crate::ast::{
    CmpOp, Expr, Field, KNOWN_FIELDS, Kind, LINKED_RUN_PREFIX, Literal, SOURCE_RUN, is_run_id,
    resolve,
};
use crate::lexer::{Tok, Token, lex};
use crate::sql::json_path_refusal;

/// Deepest nesting of parentheses and NOTs accepted.
const MAX_DEPTH: usize = 64;

/// Parses a query. `now_ms` is the time `now` stands for (ms since the epoch).
pub fn parse(text: &str, now_ms: i64) -> Result<Expr, QueryError> {
    let tokens = lex(text)?;
    let end = text.chars().count() + 1;
    if tokens.is_empty() {
        return Err(QueryError::at(
            1,
            "empty query: expected a condition such as status = 'ERROR'",
        ));
    }
    let mut p = Parser {
        tokens,
        i: 0,
        end,
        now_ms,
        depth: 0,
    };
    let expr = p.or()?;
    if let Some(t) = p.peek() {
        return Err(QueryError::at(
            t.pos,
            format!(
                "expected AND, OR or the end of the query, found {}",
                describe(&t.tok)
            ),
        ));
    }
    if !crate::post::well_placed(&expr) {
        return Err(QueryError::at(
            1,
            "span.attributes conditions can only be joined to the rest of the query with AND \
             (not under OR or NOT)",
        ));
    }
    Ok(expr)
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    end: usize,
    now_ms: i64,
    depth: usize,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Path(p) => format!("`{}`", p.join(".")),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Num(n, u) => format!("{n}{}", u.as_deref().unwrap_or("")),
        Tok::Op(o) => format!("`{o}`"),
        Tok::LParen => "`(`".into(),
        Tok::RParen => "`)`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Plus => "`+`".into(),
        Tok::Minus => "`-`".into(),
    }
}

fn keyword(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Path(p) if p.len() == 1 && p[0].eq_ignore_ascii_case(kw))
}

/// Milliseconds in one `unit`.
fn unit_ms(unit: &str) -> Option<f64> {
    Some(match unit.to_ascii_lowercase().as_str() {
        "ms" => 1.0,
        "s" | "sec" | "secs" => 1_000.0,
        "m" | "min" | "mins" => 60_000.0,
        "h" | "hr" | "hrs" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        "w" | "week" | "weeks" => 604_800_000.0,
        _ => return None,
    })
}

/// `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS][Z]` (UTC) → ms since the epoch.
fn parse_date(s: &str) -> Option<i64> {
    let (date, time) = match s.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let mut ms = loupe_model::days_from_date(date)? * 86_400_000;
    if let Some(t) = time {
        let mut parts = t.splitn(3, ':');
        let h: i64 = parts.next()?.parse().ok()?;
        let mi: i64 = parts.next()?.parse().ok()?;
        let sec: f64 = parts.next().map(|s| s.parse().ok()).unwrap_or(Some(0.0))?;
        if h > 23 || mi > 59 || !(0.0..61.0).contains(&sec) {
            return None;
        }
        ms += h * 3_600_000 + mi * 60_000 + (sec * 1000.0) as i64;
    }
    Some(ms)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.i)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        if self.peek().is_some_and(|t| keyword(&t.tok, kw)) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, want: &str) -> Result<Token, QueryError> {
        let pos = self.pos();
        self.next().ok_or_else(|| {
            QueryError::at(pos, format!("expected {want}, found the end of the query"))
        })
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.and()?];
        while self.eat_keyword("OR") {
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::Or(items)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut items = vec![self.unary()?];
        while self.eat_keyword("AND") {
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            Expr::And(items)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::at(
                self.pos(),
                format!("the query nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        let out = if self.eat_keyword("NOT") {
            Expr::Not(Box::new(self.unary()?))
        } else if self.peek().is_some_and(|t| t.tok == Tok::LParen) {
            self.i += 1;
            let e = self.or()?;
            let t = self.expect("`)`")?;
            if t.tok != Tok::RParen {
                return Err(QueryError::at(
                    t.pos,
                    format!("expected `)`, found {}", describe(&t.tok)),
                ));
            }
            e
        } else {
            self.condition()?
        };
        self.depth -= 1;
        Ok(out)
    }

    /// `text ~ 'words'`, after `text`.
    fn full_text(&mut self) -> Result<Expr, QueryError> {
        let op = self.expect("`~`")?;
        if op.tok != Tok::Op("~") {
            return Err(QueryError::at(
                op.pos,
                format!(
                    "expected `~` after text (full-text match: text ~ 'words'), found {}",
                    describe(&op.tok)
                ),
            ));
        }
        let t = self.expect("the quoted words to search for")?;
        let Tok::Str(words) = t.tok else {
            return Err(QueryError::at(
                t.pos,
                format!(
                    "expected the quoted words to search for after `~`, found {}",
                    describe(&t.tok)
                ),
            ));
        };
        if loupe_model::text::query_terms(&words).is_empty() {
            return Err(QueryError::at(
                t.pos,
                "the search text needs at least one letter or digit",
            ));
        }
        Ok(Expr::Text(words))
    }

    fn condition(&mut self) -> Result<Expr, QueryError> {
        let t = self.expect("a field name")?;
        let Tok::Path(path) = &t.tok else {
            return Err(QueryError::at(
                t.pos,
                format!("expected a field name, found {}", describe(&t.tok)),
            ));
        };
        let lower0 = path[0].to_ascii_lowercase();
        if matches!(lower0.as_str(), "text" | "content") && path.len() == 1 {
            return self.full_text();
        }
        if is_run_id(path) {
            return self.run_condition();
        }
        let field = resolve(path).ok_or_else(|| {
            QueryError::at(
                t.pos,
                format!(
                    "unknown field `{}`; known fields: {KNOWN_FIELDS}",
                    path.join(".")
                ),
            )
        })?;
        if let Field::Tag(k) | Field::Metadata(k) = &field
            && let Some(why) = json_path_refusal(k)
        {
            return Err(QueryError::at(
                t.pos,
                format!("a tag or metadata key {why}"),
            ));
        }
        let negated = self.eat_keyword("NOT");
        if self.eat_keyword("IN") {
            return self.in_list(field, negated);
        }
        for (kw, ci) in [("LIKE", false), ("ILIKE", true)] {
            if self.eat_keyword(kw) {
                return self.like(field, kw, ci, negated);
            }
        }
        if self.eat_keyword("RLIKE") || self.eat_keyword("REGEXP") {
            return self.rlike(field, negated);
        }
        if negated {
            return Err(QueryError::at(
                self.pos(),
                "expected IN, LIKE, ILIKE or RLIKE after NOT",
            ));
        }
        if self.eat_keyword("IS") {
            let negated = self.eat_keyword("NOT");
            if !self.eat_keyword("NULL") {
                return Err(QueryError::at(self.pos(), "expected NULL after IS"));
            }
            return Ok(Expr::IsNull { field, negated });
        }
        self.comparison(field)
    }

    /// `field [NOT] IN (v, …)`, after the `IN`.
    fn in_list(&mut self, field: Field, negated: bool) -> Result<Expr, QueryError> {
        let open = self.expect("`(`")?;
        if open.tok != Tok::LParen {
            return Err(QueryError::at(
                open.pos,
                format!("expected `(` after IN, found {}", describe(&open.tok)),
            ));
        }
        let mut values = vec![self.value(&field)?];
        loop {
            let t = self.expect("`,` or `)`")?;
            match t.tok {
                Tok::Comma => values.push(self.value(&field)?),
                Tok::RParen => break,
                other => {
                    return Err(QueryError::at(
                        t.pos,
                        format!("expected `,` or `)`, found {}", describe(&other)),
                    ));
                }
            }
        }
        Ok(Expr::In {
            field,
            values,
            negated,
        })
    }

    /// `field [NOT] LIKE|ILIKE 'pattern'`, after the keyword `kw`.
    fn like(
        &mut self,
        field: Field,
        kw: &str,
        case_insensitive: bool,
        negated: bool,
    ) -> Result<Expr, QueryError> {
        let t = self.expect("a quoted pattern")?;
        let Tok::Str(pattern) = t.tok else {
            return Err(QueryError::at(
                t.pos,
                format!(
                    "expected a quoted pattern after {kw}, found {}",
                    describe(&t.tok)
                ),
            ));
        };
        if !matches!(field.kind(), Kind::Text | Kind::Any) {
            return Err(QueryError::at(t.pos, format!("{kw} needs a text field")));
        }
        Ok(Expr::Like {
            field,
            pattern,
            negated,
            case_insensitive,
        })
    }

    /// `span.attributes.<key> [NOT] RLIKE 'regex'`, after the keyword.
    fn rlike(&mut self, field: Field, negated: bool) -> Result<Expr, QueryError> {
        let t = self.expect("a quoted regular expression")?;
        let Tok::Str(pattern) = t.tok else {
            return Err(QueryError::at(
                t.pos,
                format!(
                    "expected a quoted regular expression after RLIKE, found {}",
                    describe(&t.tok)
                ),
            ));
        };
        if !matches!(field, Field::SpanAttribute(_)) {
            return Err(QueryError::at(
                t.pos,
                "RLIKE is supported on span.attributes.<key>; use LIKE or ILIKE elsewhere",
            ));
        }
        if let Err(e) = crate::post::regex(&pattern) {
            return Err(QueryError::at(
                t.pos,
                format!("invalid regular expression: {e}"),
            ));
        }
        Ok(Expr::Regex {
            field,
            pattern,
            negated,
        })
    }

    /// `field <op> value`.
    /// `run_id = '…'`: the trace ran in that run, or was linked to it.
    fn run_condition(&mut self) -> Result<Expr, QueryError> {
        let t = self.expect("=")?;
        if t.tok != Tok::Op("=") {
            return Err(QueryError::at(t.pos, "run_id is compared with = only"));
        }
        let source = Field::Metadata(SOURCE_RUN.to_string());
        let Literal::Str(run) = self.value(&source)? else {
            return Err(QueryError::at(t.pos, "run_id is compared with a string"));
        };
        if let Some(why) = json_path_refusal(&run) {
            return Err(QueryError::at(t.pos, format!("a run id {why}")));
        }
        Ok(Expr::Or(vec![
            Expr::Cmp {
                field: Field::Metadata(format!("{LINKED_RUN_PREFIX}{run}")),
                op: CmpOp::Eq,
                value: Literal::Str("true".into()),
            },
            Expr::Cmp {
                field: source,
                op: CmpOp::Eq,
                value: Literal::Str(run),
            },
        ]))
    }

    fn comparison(&mut self, field: Field) -> Result<Expr, QueryError> {
        let t = self.expect("a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, IS)")?;
        let op = match t.tok {
            Tok::Op("=") => CmpOp::Eq,
            Tok::Op("!=") => CmpOp::Ne,
            Tok::Op("<") => CmpOp::Lt,
            Tok::Op("<=") => CmpOp::Le,
            Tok::Op(">") => CmpOp::Gt,
            Tok::Op(">=") => CmpOp::Ge,
            Tok::Op("~") => {
                return Err(QueryError::at(
                    t.pos,
                    "`~` (full-text match) applies to `text` only: text ~ 'words'",
                ));
            }
            other => {
                return Err(QueryError::at(
                    t.pos,
                    format!(
                        "expected a comparison operator (=, !=, <, <=, >, >=, IN, LIKE, IS), found {}",
                        describe(&other)
                    ),
                ));
            }
        };
        let value = self.value(&field)?;
        if matches!(field.kind(), Kind::Text | Kind::Status) && !matches!(op, CmpOp::Eq | CmpOp::Ne)
        {
            return Err(QueryError::at(
                t.pos,
                "only = and != compare text; use LIKE for patterns",
            ));
        }
        Ok(Expr::Cmp { field, op, value })
    }

    fn number(&mut self, kind: Kind) -> Result<f64, QueryError> {
        let negative = if self.peek().is_some_and(|t| t.tok == Tok::Minus) {
            self.i += 1;
            true
        } else {
            false
        };
        let t = self.expect("a number")?;
        let Tok::Num(n, unit) = t.tok else {
            return Err(QueryError::at(
                t.pos,
                format!("expected a number, found {}", describe(&t.tok)),
            ));
        };
        let n = match (&unit, kind) {
            (None, _) => n,
            (Some(u), Kind::Duration | Kind::Time) => {
                n * unit_ms(u).ok_or_else(|| {
                    QueryError::at(
                        t.pos,
                        format!("unknown unit {u:?}: use ms, s, m, h, d or w"),
                    )
                })?
            }
            (Some(u), _) => {
                return Err(QueryError::at(
                    t.pos,
                    format!("this field takes a plain number, not {u:?}"),
                ));
            }
        };
        if !n.is_finite() {
            return Err(QueryError::at(t.pos, "the number is too large"));
        }
        Ok(if negative { -n } else { n })
    }

    fn value(&mut self, field: &Field) -> Result<Literal, QueryError> {
        let kind = field.kind();
        let pos = self.pos();
        let Some(t) = self.peek().cloned() else {
            return Err(QueryError::at(
                pos,
                "expected a value, found the end of the query",
            ));
        };
        match kind {
            Kind::Text => {
                self.i += 1;
                text_value(t)
            }
            Kind::Any => self.any_value(t),
            Kind::Status => {
                self.i += 1;
                status_value(&t)
            }
            Kind::Int | Kind::Real => {
                let n = self.number(kind)?;
                Ok(if kind == Kind::Int && n.fract() == 0.0 {
                    Literal::Int(n as i64)
                } else {
                    Literal::Real(n)
                })
            }
            Kind::Duration => Ok(Literal::Real(self.number(kind)?)),
            Kind::Time => self.time_value(&t),
        }
    }

    /// A value of a field of any type (tags, metadata, assessments): text, a boolean (as 1 or
    /// 0) or a number.
    fn any_value(&mut self, t: Token) -> Result<Literal, QueryError> {
        match t.tok {
            Tok::Str(s) => {
                self.i += 1;
                Ok(Literal::Str(s))
            }
            Tok::Path(p) if p.len() == 1 && p[0].eq_ignore_ascii_case("true") => {
                self.i += 1;
                Ok(Literal::Int(1))
            }
            Tok::Path(p) if p.len() == 1 && p[0].eq_ignore_ascii_case("false") => {
                self.i += 1;
                Ok(Literal::Int(0))
            }
            _ => {
                let n = self.number(Kind::Real)?;
                Ok(if n.fract() == 0.0 && n.abs() < 1e15 {
                    Literal::Int(n as i64)
                } else {
                    Literal::Real(n)
                })
            }
        }
    }

    /// A time: `now`, `now - <duration>`, a quoted date, or ms since the epoch.
    fn time_value(&mut self, t: &Token) -> Result<Literal, QueryError> {
        if keyword(&t.tok, "now") {
            self.i += 1;
            let sign = match self.peek().map(|t| &t.tok) {
                Some(Tok::Minus) => -1.0,
                Some(Tok::Plus) => 1.0,
                _ => return Ok(Literal::Int(self.now_ms)),
            };
            self.i += 1;
            let d = self.number(Kind::Duration)?;
            return Ok(Literal::Int(self.now_ms.saturating_add((sign * d) as i64)));
        }
        if let Tok::Str(s) = &t.tok {
            self.i += 1;
            return parse_date(s).map(Literal::Int).ok_or_else(|| {
                QueryError::at(
                    t.pos,
                    format!("invalid date {s:?}: use 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SSZ'"),
                )
            });
        }
        Ok(Literal::Int(self.number(Kind::Int)? as i64))
    }
}

/// A text value: a quoted string, or a bare number as its text.
fn text_value(t: Token) -> Result<Literal, QueryError> {
    match t.tok {
        Tok::Str(s) => Ok(Literal::Str(s)),
        Tok::Num(n, None) => Ok(Literal::Str(if n.fract() == 0.0 && n.abs() < 1e15 {
            format!("{}", n as i64)
        } else {
            n.to_string()
        })),
        other => Err(QueryError::at(
            t.pos,
            format!("expected a quoted string, found {}", describe(&other)),
        )),
    }
}

/// A status, in Loupe's, OTLP's or MLflow's spelling, as its code.
fn status_value(t: &Token) -> Result<Literal, QueryError> {
    let s = match &t.tok {
        Tok::Path(p) => p.join("."),
        Tok::Str(s) => s.clone(),
        _ => {
            return Err(QueryError::at(
                t.pos,
                "expected a status: 'OK', 'ERROR' or 'UNSET'",
            ));
        }
    };
    let code = match s.to_ascii_uppercase().as_str() {
        "OK" | "STATUS_CODE_OK" => 1,
        "ERROR" | "STATUS_CODE_ERROR" => 2,
        "UNSET" | "STATUS_CODE_UNSET" | "IN_PROGRESS" | "STATE_UNSPECIFIED" => 0,
        _ => {
            return Err(QueryError::at(
                t.pos,
                format!("unknown status {s:?}: expected 'OK', 'ERROR' or 'UNSET'"),
            ));
        }
    };
    Ok(Literal::Int(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{SpanField, TraceField};

    const NOW: i64 = 1_800_000_000_000;

    fn p(q: &str) -> Expr {
        parse(q, NOW).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn err(q: &str) -> QueryError {
        parse(q, NOW).unwrap_err()
    }

    #[test]
    fn run_id_matches_the_source_run_or_a_linked_run() {
        let e = parse("attribute.run_id = 'abc'", 0).unwrap();
        let Expr::Or(items) = e else { panic!("{e:?}") };
        assert!(items.contains(&Expr::Cmp {
            field: Field::Metadata("mlflow.sourceRun".into()),
            op: CmpOp::Eq,
            value: Literal::Str("abc".into()),
        }));
        assert!(items.contains(&Expr::Cmp {
            field: Field::Metadata("loupe.linkedRun.abc".into()),
            op: CmpOp::Eq,
            value: Literal::Str("true".into()),
        }));
        assert!(parse("run_id != 'abc'", 0).is_err());
    }

    #[test]
    fn precedence_and_grouping() {
        let e = p("status = 'OK' OR name = 'a' AND NOT (duration_ms < 10)");
        let Expr::Or(items) = e else { panic!() };
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1], Expr::And(v) if matches!(v[1], Expr::Not(_))));
    }

    #[test]
    fn values_are_typed() {
        assert_eq!(
            p("start > now - 1h"),
            Expr::Cmp {
                field: Field::Trace(TraceField::Start),
                op: CmpOp::Gt,
                value: Literal::Int(NOW - 3_600_000)
            }
        );
        assert_eq!(
            p("duration_ms >= 1.5s"),
            Expr::Cmp {
                field: Field::Trace(TraceField::DurationMs),
                op: CmpOp::Ge,
                value: Literal::Real(1500.0)
            }
        );
        assert_eq!(
            p("start >= '2026-11-23'"),
            Expr::Cmp {
                field: Field::Trace(TraceField::Start),
                op: CmpOp::Ge,
                value: Literal::Int(1_795_392_000_000)
            }
        );
        assert!(matches!(
            p("span.status = 'error'"),
            Expr::Cmp {
                field: Field::Span(SpanField::Status),
                value: Literal::Int(2),
                ..
            }
        ));
        assert!(matches!(
            p("tokens.total > 10000"),
            Expr::Cmp {
                field: Field::Trace(TraceField::TotalTokens),
                value: Literal::Int(10_000),
                ..
            }
        ));
        assert!(matches!(
            p("cost_usd > 0.5"),
            Expr::Cmp {
                value: Literal::Real(_),
                ..
            }
        ));
        assert!(
            matches!(p("span.model IN ('gpt-4o', 'gpt-4o-mini')"), Expr::In { values, .. } if values.len() == 2)
        );
        assert!(matches!(
            p("session_id IS NOT NULL"),
            Expr::IsNull { negated: true, .. }
        ));
        assert!(matches!(
            p("name NOT ILIKE '%Refund%'"),
            Expr::Like {
                negated: true,
                case_insensitive: true,
                ..
            }
        ));
        assert!(
            matches!(p("name = 'héllo 退款 مرحبا'"), Expr::Cmp { value: Literal::Str(s), .. } if s == "héllo 退款 مرحبا")
        );
    }

    #[test]
    fn mlflow_spellings() {
        for q in [
            "attributes.status = 'OK'",
            "trace.status = 'ERROR'",
            "attributes.timestamp_ms > 1700000000000",
            "attributes.execution_time_ms > 100",
            "trace.name = 'agent'",
            "tags.`mlflow.traceName` = 'x'",
            "tags.env = 'prod'",
            "metadata.`mlflow.trace.session` = 's'",
            "span.name = 'llm'",
            "span.type = 'CHAT_MODEL'",
            "status = \"OK\"",
            "attributes.status == 'IN_PROGRESS'",
        ] {
            p(q);
        }
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let cases = [
            ("", 1, "empty query"),
            ("status =", 9, "expected a value"),
            ("status = 'OK' AND", 18, "expected a field name"),
            ("colour = 'red'", 1, "unknown field `colour`"),
            ("status = 'MAYBE'", 10, "unknown status"),
            ("name > 'a'", 6, "only = and != compare text"),
            ("duration_ms > 5 parsecs", 17, "expected AND, OR"),
            ("duration_ms > 5lightyears", 15, "unknown unit"),
            ("(status = 'OK'", 15, "expected `)`"),
            ("name = 'unterminated", 8, "unterminated"),
            ("name IN ('a' 'b')", 14, "expected `,` or `)`"),
            ("text = 'refund'", 6, "expected `~` after text"),
            ("text ~ '!!'", 8, "at least one letter or digit"),
            ("text ~ 5", 8, "quoted words"),
            ("name ~ 'x'", 6, "applies to `text` only"),
            (
                "span.attributes.model = 'x' OR name = 'y'",
                1,
                "only be joined",
            ),
            ("name @ 'x'", 6, "unexpected character"),
            ("total_tokens = 'many'", 16, "expected a number"),
            // Found by fuzz/query_sqlite: SQLite's JSON path ended at the NUL and failed.
            ("run_id = ' \0c'", 8, "a run id may not contain a NUL"),
            ("metadata.`a\0b` = 'x'", 1, "key may not contain a NUL"),
            ("tags.`a\"b` = 'x'", 1, "may not contain `\"`"),
            // Also fuzz/query_sqlite: `$."\"` escaped the closing quote.
            ("metadata.`\\` = '-f'", 1, "may not contain `\\`"),
        ];
        for (q, pos, want) in cases {
            let e = err(q);
            assert!(e.message.contains(want), "{q}: {e}");
            assert_eq!(e.position, pos, "{q}: {e}");
        }
        let deep = format!("{}status = 'OK'{}", "(".repeat(100), ")".repeat(100));
        assert!(err(&deep).message.contains("nests deeper"));
        assert!(err(&"a".repeat(20_000)).message.contains("longer than"));
    }

    /// A small deterministic fuzzer: random token soup never panics, and every error points
    /// inside the text (or just past its end).
    #[test]
    fn fuzz_never_panics() {
        let pieces = [
            "status",
            "=",
            "'OK'",
            "AND",
            "OR",
            "NOT",
            "(",
            ")",
            "span.model",
            "LIKE",
            "'%x%'",
            "IN",
            ",",
            "5s",
            "now",
            "-",
            "1h",
            "tags.`k`",
            "IS",
            "NULL",
            "duration_ms",
            ">",
            "'",
            "`",
            "\"",
            "~",
            "!",
            "<>",
            "1e999",
            "-",
            "é",
            "退",
            "\\",
            ".",
            "..",
            "tags.",
            "0x1f",
            "   ",
            "\u{0}",
            "ILIKE",
            "text",
            "'退款 refund'",
            "'\"*'",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let mut q = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 12) as usize;
            for _ in 0..n {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                q.push_str(pieces[(state % pieces.len() as u64) as usize]);
                if state.is_multiple_of(3) {
                    q.push(' ');
                }
            }
            match parse(&q, NOW) {
                Ok(e) => {
                    use crate::sql::{Dialect, lower_traces, tests::Plain};
                    let _ = lower_traces(&e, &Plain(Dialect::Sqlite));
                    let _ = lower_traces(&e, &Plain(Dialect::Postgres));
                }
                Err(e) => assert!(
                    e.position >= 1 && e.position <= q.chars().count() + 1,
                    "{q:?}: {e}"
                ),
            }
        }
    }
}

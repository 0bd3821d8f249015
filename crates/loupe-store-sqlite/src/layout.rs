//! What this store's physical layout adds to the shared query lowering
//! ([`loupe_query::sql::Layout`]): the start buckets its indexes by start time are keyed by, and
//! the rowids of its FTS5 table.

use loupe_query::Expr;
use loupe_query::ast::CmpOp;
use loupe_query::sql::{Dialect, Layout, Lowered, Param};
use rusqlite::types::Value as SqlValue;

/// The indexes by start time (`traces_by_start`, `traces_by_project_start`, `traces_errors`)
/// are keyed by this bucket of the start (a fraction of a second; docs/performance.md, "Start
/// indexes and trace ids"), then by `seq` (arrival order), so a new trace is appended at the end
/// of its bucket instead of inserted at a random place among late-reported starts. A condition on `start_ns` also bounds the bucket, which is
/// what SQLite can search the index by; newest-first pages order by the bucket, then sort
/// within it.
pub(crate) const BUCKET: &str = "(t.start_ns >> 28)";

/// The bucket of a start time, as [`BUCKET`] computes it.
pub(crate) fn start_bucket(start_ns: i64) -> i64 {
    start_ns >> 28
}

/// SQLite's layout for one query. The FTS5 table `fts.trace_text` numbers its rows
/// `seq << 16` plus a part number, so a trace's text is the rowid range of its `seq`.
#[derive(Debug, Default)]
pub(crate) struct SqliteLayout {
    /// Check `text ~` trace by trace (an FTS5 lookup bounded to the trace's rowids) instead of
    /// as a list of every matching trace, for traces numbered up to this: for words found in
    /// many traces, a newest-first page then stops after a few lookups, where the list would
    /// hold them all. Traces after it (ingested, not yet indexed) cannot match.
    pub probe: Option<i64>,
    /// The FTS5 query for the words of each `text ~`, as the store chose it; missing words use
    /// [`loupe_model::text::fts5_query`].
    pub queries: Vec<(String, String)>,
    /// Assessment conditions with few matches, read as the list of their traces (see
    /// [`crate::read::page_sql`]).
    pub listed: Vec<Expr>,
}

impl Layout for SqliteLayout {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn start_bound(&self, op: CmpOp, bounds_ns: &[i64], out: &mut Lowered) {
        let terms: &[&str] = match op {
            CmpOp::Eq => &[" >= ", " <= "],
            CmpOp::Gt | CmpOp::Ge => &[" >= "],
            CmpOp::Lt | CmpOp::Le => &[" <= "],
            CmpOp::Ne => &[],
        };
        for (term, &ns) in terms.iter().zip(bounds_ns) {
            out.push(" AND ");
            out.push(BUCKET);
            out.push(term);
            out.param(Param::Int(start_bucket(ns)));
        }
    }

    fn list_assessments(&self, e: &Expr) -> bool {
        self.listed.contains(e)
    }

    /// `traces` has no index by trace id, and assessments are indexed by their trace's number
    /// (schema version 14), which new traces take in rising order.
    fn assessment_trace(&self) -> (&'static str, &'static str) {
        ("a.trace_seq", "t.seq")
    }

    fn text(&self, words: &str, out: &mut Lowered) {
        let query = self
            .queries
            .iter()
            .find(|(w, _)| w == words)
            .map(|(_, q)| q.clone())
            .or_else(|| loupe_model::text::fts5_query(words))
            .unwrap_or_default();
        match self.probe {
            Some(last) => {
                out.push("t.seq <= ");
                out.param(Param::Int(last));
                out.push(" AND EXISTS (SELECT 1 FROM fts.trace_text WHERE trace_text MATCH ");
                out.param(Param::Text(query));
                out.push(" AND rowid BETWEEN (t.seq << 16) AND (t.seq << 16) + 65535)");
            }
            None => {
                out.push(
                    "t.seq IN (SELECT rowid >> 16 FROM fts.trace_text WHERE trace_text MATCH ",
                );
                out.param(Param::Text(query));
                out.push(")");
            }
        }
    }
}

/// `expr` as a condition on traces, with `text ~` as a list of matching traces.
pub(crate) fn lower(expr: &Expr) -> Lowered {
    loupe_query::sql::lower_traces(expr, &SqliteLayout::default())
}

/// `expr` as a condition on spans joined to their traces.
pub(crate) fn lower_spans(expr: &Expr) -> Lowered {
    loupe_query::sql::lower_spans(expr, &SqliteLayout::default())
}

/// Appends the parameters of a lowered condition to a statement's.
pub(crate) fn bind(params: Vec<Param>, args: &mut Vec<SqlValue>) {
    args.extend(params.into_iter().map(|p| match p {
        Param::Text(s) => SqlValue::Text(s),
        Param::Int(i) => SqlValue::Integer(i),
        Param::Real(r) => SqlValue::Real(r),
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn low(q: &str) -> Lowered {
        lower(&loupe_query::parse(q, NOW).expect("parses"))
    }

    #[test]
    fn start_times_also_bound_the_bucket_the_index_is_searched_by() {
        let l = low("timestamp_ms = 5");
        assert_eq!(
            l.sql,
            "(t.start_ns >= ? AND t.start_ns < ? \
             AND (t.start_ns >> 28) >= ? AND (t.start_ns >> 28) <= ?)"
        );
        assert_eq!(
            l.params,
            vec![
                Param::Int(5_000_000),
                Param::Int(6_000_000),
                Param::Int(0),
                Param::Int(0)
            ]
        );
        let l = low("start >= 1800000000000");
        assert_eq!(l.sql, "(t.start_ns >= ? AND (t.start_ns >> 28) >= ?)");
        assert_eq!(
            l.params,
            vec![
                Param::Int(1_800_000_000_000_000_000),
                Param::Int(1_800_000_000_000_000_000 >> 28)
            ]
        );
        assert_eq!(low("start != 5").sql, "(t.start_ns < ? OR t.start_ns >= ?)");
        assert_eq!(
            low("start <= 5").params,
            vec![Param::Int(6_000_000), Param::Int(0)]
        );
        // The end has no bucket.
        assert_eq!(low("end > 5").sql, "(t.end_ns >= ?)");
    }

    #[test]
    fn full_text_reads_the_fts5_rowids_of_the_trace() {
        let l = low("text ~ 'Refund 退款' AND status = 'ERROR'");
        assert!(
            l.sql.starts_with(
                "((t.seq IN (SELECT rowid >> 16 FROM fts.trace_text WHERE trace_text MATCH ?))"
            ),
            "{}",
            l.sql
        );
        assert_eq!(l.params[0], Param::Text("\"refund\" \"退款\" *".into()));
        let e = loupe_query::parse("text ~ 'refund'", NOW).expect("parses");
        let probe = SqliteLayout {
            probe: Some(42),
            queries: vec![("refund".into(), "\"refund\"".into())],
            ..SqliteLayout::default()
        };
        let l = loupe_query::sql::lower_traces(&e, &probe);
        assert_eq!(
            l.sql,
            "(t.seq <= ? AND EXISTS (SELECT 1 FROM fts.trace_text WHERE trace_text MATCH ? \
             AND rowid BETWEEN (t.seq << 16) AND (t.seq << 16) + 65535))"
        );
        assert_eq!(
            l.params,
            vec![Param::Int(42), Param::Text("\"refund\"".into())]
        );
    }

    #[test]
    fn few_assessment_matches_are_read_as_a_list_of_traces() {
        let e = loupe_query::parse("feedback.quality >= 0.999", NOW).expect("parses");
        assert!(
            low("feedback.quality >= 0.999")
                .sql
                .starts_with("EXISTS (SELECT 1")
        );
        let listed = SqliteLayout {
            listed: vec![e.clone()],
            ..SqliteLayout::default()
        };
        let l = loupe_query::sql::lower_traces(&e, &listed);
        assert_eq!(
            l.sql,
            "t.seq IN (SELECT a.trace_seq FROM assessments a WHERE a.name = ? \
             AND a.kind = 'feedback' AND a.valid = 1 AND (a.value_num >= ?))"
        );
        assert_eq!(
            l.params,
            [Param::Text("quality".into()), Param::Real(0.999)]
        );
    }
}

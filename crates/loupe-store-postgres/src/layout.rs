//! What this store's layout adds to the shared query lowering
//! ([`loupe_query::sql::Layout`]): the full-text index `trace_text (trace_seq, doc tsvector)`.

use loupe_query::Expr;
use loupe_query::sql::{Dialect, Layout, Lowered, Param};

/// PostgreSQL's layout for one query.
#[derive(Debug, Default)]
pub(crate) struct PgLayout {
    /// The traces matching the words of a rare `text ~`, found by the store first, as an array
    /// literal of trace numbers (`{1,2,3}`; see [`crate::read::text_matches`]). For a rare word
    /// the list is short and the page becomes a lookup of those traces; left to itself, the
    /// planner walks traces newest first and checks each against the index.
    pub matches: Vec<(String, String)>,
}

impl Layout for PgLayout {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn text(&self, words: &str, out: &mut Lowered) {
        match self.matches.iter().find(|(w, _)| w == words) {
            Some((_, list)) => {
                out.push("t.seq = ANY(");
                out.param(Param::Text(list.clone()));
                out.push("::bigint[])");
            }
            None => {
                out.push("t.seq IN (SELECT x.trace_seq FROM trace_text x WHERE x.doc @@ ");
                let q = loupe_model::text::pg_tsquery(words).unwrap_or_default();
                out.param(Param::Text(q));
                out.push("::tsquery)");
            }
        }
    }
}

/// `expr` as a condition on traces, with the matches of rare `text ~` words.
pub(crate) fn lower(expr: &Expr, matches: &[(String, String)]) -> Lowered {
    let layout = PgLayout {
        matches: matches.to_vec(),
    };
    loupe_query::sql::lower_traces(expr, &layout)
}

/// `expr` as a condition on spans joined to their traces.
pub(crate) fn lower_spans(expr: &Expr) -> Lowered {
    loupe_query::sql::lower_spans(expr, &PgLayout::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_text_reads_the_gin_index_or_the_matches_found_first() {
        let e = loupe_query::parse("NOT text ~ 'it''s'", 0).expect("parses");
        let l = lower(&e, &[]);
        assert_eq!(
            l.sql,
            "NOT ((t.seq IN (SELECT x.trace_seq FROM trace_text x WHERE x.doc @@ ?::text::tsquery)))"
        );
        assert_eq!(l.params[0], Param::Text("'it' & 's':*".into()));
        // A rare word's matches, found first by the store, become a list; other words stay.
        let e = loupe_query::parse("text ~ 'rare' OR text ~ 'common'", 0).expect("parses");
        let l = lower(&e, &[("rare".into(), "{3,7}".into())]);
        assert_eq!(
            l.sql,
            "((t.seq = ANY(?::text::bigint[])) OR \
             (t.seq IN (SELECT x.trace_seq FROM trace_text x WHERE x.doc @@ ?::text::tsquery)))"
        );
        assert_eq!(
            l.params,
            vec![
                Param::Text("{3,7}".into()),
                Param::Text("'common':*".into())
            ]
        );
    }
}

//! Sessions, the SQL both backends run: traces grouped by session id, most recently active
//! first, paged by (last activity, session id). Written in the SQL both dialects accept
//! (`CAST`, `count(CASE …)`), with placeholders from [`Lowered::param`].

use loupe_query::sql::{Dialect, Lowered, Param};

use crate::SessionQuery;

/// The columns of a session's roll-up, over `traces t` grouped by `t.session_id`, in
/// [`crate::SessionSummary`]'s field order.
pub const SESSION_COLUMNS: &str = "t.session_id, CAST(count(*) AS BIGINT), \
     CAST(count(CASE WHEN t.error_count > 0 THEN 1 END) AS BIGINT), min(t.start_ns), \
     max(t.start_ns), CAST(sum(t.input_tokens) AS BIGINT), CAST(sum(t.output_tokens) AS BIGINT), \
     CAST(sum(t.total_tokens) AS BIGINT), CAST(sum(t.cost_usd) AS DOUBLE PRECISION), \
     max(t.user_id), min(t.project)";

impl SessionQuery {
    /// The query of this page: one row more than the limit, so the page knows whether more
    /// follow ([`crate::SessionPage::from_rows`]).
    pub fn page_sql(&self, dialect: Dialect) -> Lowered {
        let mut sql = Lowered {
            dialect,
            ..Lowered::default()
        };
        sql.push(&format!(
            "SELECT {SESSION_COLUMNS} FROM traces t WHERE t.session_id IS NOT NULL"
        ));
        if let Some(p) = &self.project {
            sql.push(" AND t.project = ");
            sql.param(Param::Text(p.clone()));
        }
        sql.push(" GROUP BY t.session_id");
        if let Some((last, id)) = &self.cursor {
            sql.push(" HAVING (max(t.start_ns), t.session_id) < (");
            sql.param(Param::Int(*last));
            sql.push(", ");
            sql.param(Param::Text(id.clone()));
            sql.push(")");
        }
        sql.push(" ORDER BY max(t.start_ns) DESC, t.session_id DESC LIMIT ");
        let limit = i64::try_from(self.limit.max(1)).unwrap_or(i64::MAX - 1);
        sql.param(Param::Int(limit + 1));
        sql
    }
}

/// The roll-up of the session `id`.
pub fn session_sql(dialect: Dialect, id: &str) -> Lowered {
    let mut sql = Lowered {
        dialect,
        ..Lowered::default()
    };
    sql.push(&format!(
        "SELECT {SESSION_COLUMNS} FROM traces t WHERE t.session_id = "
    ));
    sql.param(Param::Text(id.to_string()));
    sql.push(" GROUP BY t.session_id");
    sql
}

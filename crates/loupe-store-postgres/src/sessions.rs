//! Sessions: traces grouped by their session id.

use loupe_model::TraceSummary;
use loupe_query::sql::Dialect;
use loupe_store::{SessionPage, SessionQuery, SessionSummary, StoreError, session_sql};
use tokio_postgres::Row;

use crate::read::{TRACE_COLUMNS, trace_row};
use crate::{Sql, pg_err, u};

fn session_row(r: &Row) -> Result<SessionSummary, StoreError> {
    let g = |e| pg_err(e);
    Ok(SessionSummary {
        session_id: r.try_get(0).map_err(g)?,
        trace_count: u(r.try_get(1).map_err(g)?),
        error_count: u(r.try_get(2).map_err(g)?),
        first_start_ns: u(r.try_get(3).map_err(g)?),
        last_start_ns: u(r.try_get(4).map_err(g)?),
        input_tokens: u(r.try_get(5).map_err(g)?),
        output_tokens: u(r.try_get(6).map_err(g)?),
        total_tokens: u(r.try_get(7).map_err(g)?),
        cost_usd: r.try_get(8).map_err(g)?,
        user_id: r.try_get(9).map_err(g)?,
        project: r.try_get(10).map_err(g)?,
    })
}

pub(crate) async fn list_sessions(
    client: &deadpool_postgres::Object,
    q: &SessionQuery,
) -> Result<SessionPage, StoreError> {
    let mut sql = Sql::new(String::new());
    sql.lowered(&q.page_sql(Dialect::Postgres));
    let limit = q.limit.max(1);
    let sessions: Vec<SessionSummary> = client
        .query(sql.text.as_str(), &sql.params())
        .await
        .map_err(pg_err)?
        .iter()
        .map(session_row)
        .collect::<Result<_, _>>()?;
    Ok(SessionPage::from_rows(sessions, limit))
}

pub(crate) async fn get_session(
    client: &deadpool_postgres::Object,
    id: &str,
    limit: usize,
) -> Result<Option<(SessionSummary, Vec<TraceSummary>)>, StoreError> {
    let mut sql = Sql::new(String::new());
    sql.lowered(&session_sql(Dialect::Postgres, id));
    let Some(row) = client
        .query_opt(sql.text.as_str(), &sql.params())
        .await
        .map_err(pg_err)?
    else {
        return Ok(None);
    };
    let summary = session_row(&row)?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {TRACE_COLUMNS} FROM traces t WHERE t.session_id = $1 \
             ORDER BY t.start_ns, t.seq LIMIT $2"
        ))
        .await
        .map_err(pg_err)?;
    let traces = client
        .query(&stmt, &[&id, &i64::try_from(limit).unwrap_or(i64::MAX)])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| trace_row(r).map(|(_, t)| t))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((summary, traces)))
}

//! Sessions: traces grouped by their session id.

use loupe_model::TraceSummary;
use loupe_query::sql::Dialect;
use loupe_store::{SessionPage, SessionQuery, SessionSummary, StoreError, session_sql};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use crate::db_err;
use crate::layout::bind;
use crate::read::{TRACE_COLUMNS, trace_row, u};

fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionSummary> {
    Ok(SessionSummary {
        session_id: r.get(0)?,
        trace_count: u(r.get(1)?),
        error_count: u(r.get(2)?),
        first_start_ns: u(r.get(3)?),
        last_start_ns: u(r.get(4)?),
        input_tokens: u(r.get(5)?),
        output_tokens: u(r.get(6)?),
        total_tokens: u(r.get(7)?),
        cost_usd: r.get(8)?,
        user_id: r.get(9)?,
        project: r.get(10)?,
    })
}

pub(crate) fn list_sessions(
    conn: &Connection,
    q: &SessionQuery,
) -> Result<SessionPage, StoreError> {
    let sql = q.page_sql(Dialect::Sqlite);
    let mut args: Vec<SqlValue> = Vec::new();
    bind(sql.params, &mut args);
    let limit = q.limit.max(1);
    let mut stmt = conn.prepare_cached(&sql.sql).map_err(db_err)?;
    let sessions: Vec<SessionSummary> = stmt
        .query_map(rusqlite::params_from_iter(args), session_row)
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    Ok(SessionPage::from_rows(sessions, limit))
}

pub(crate) fn get_session(
    conn: &Connection,
    id: &str,
    limit: usize,
) -> Result<Option<(SessionSummary, Vec<TraceSummary>)>, StoreError> {
    let sql = session_sql(Dialect::Sqlite, id);
    let mut args: Vec<SqlValue> = Vec::new();
    bind(sql.params, &mut args);
    let summary = conn
        .prepare_cached(&sql.sql)
        .map_err(db_err)?
        .query_map(rusqlite::params_from_iter(args), session_row)
        .map_err(db_err)?
        .next()
        .transpose()
        .map_err(db_err)?;
    let Some(summary) = summary else {
        return Ok(None);
    };
    let traces = conn
        .prepare_cached(&format!(
            "SELECT {TRACE_COLUMNS} FROM traces WHERE session_id = ?1 ORDER BY start_ns, seq LIMIT ?2"
        ))
        .map_err(db_err)?
        .query_map(rusqlite::params![id, limit as i64], trace_row)
        .map_err(db_err)?
        .map(|r| r.map(|(_, t)| t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db_err)?;
    Ok(Some((summary, traces)))
}

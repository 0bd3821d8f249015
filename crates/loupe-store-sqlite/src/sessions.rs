//! Sessions: traces grouped by their session id.

use loupe_model::TraceSummary;
use loupe_store::{SessionPage, SessionQuery, SessionSummary, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, Row};

use crate::db_err;
use crate::read::{TRACE_COLUMNS, trace_row, u};

const SESSION_COLUMNS: &str = "session_id, count(*), sum(error_count > 0), min(start_ns), \
     max(start_ns), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cost_usd), \
     max(user_id), min(project)";

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
    let mut sql = format!("SELECT {SESSION_COLUMNS} FROM traces WHERE session_id IS NOT NULL");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(p) = &q.project {
        sql.push_str(" AND project = ?");
        args.push(SqlValue::Text(p.clone()));
    }
    sql.push_str(" GROUP BY session_id");
    if let Some((last, id)) = &q.cursor {
        sql.push_str(" HAVING (max(start_ns), session_id) < (?, ?)");
        args.push(SqlValue::Integer(*last));
        args.push(SqlValue::Text(id.clone()));
    }
    let limit = q.limit.max(1);
    sql.push_str(" ORDER BY max(start_ns) DESC, session_id DESC LIMIT ?");
    args.push(SqlValue::Integer(limit as i64 + 1));
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
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
    let summary = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM traces WHERE session_id = ?1 GROUP BY session_id"
        ))
        .map_err(db_err)?
        .query_map([id], session_row)
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

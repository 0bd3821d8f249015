//! Re-deriving stored spans after a mapping or price change, in small transactions.

use loupe_store::{Recompute, RecomputeStats, StoreError, StoredDerived, Touched};

use crate::read::{DERIVED_COLUMNS, Groups, derived_columns};
use crate::{pg_err, to_i64, u};

/// Spans per transaction: small enough that ingest waits at most a few milliseconds.
const CHUNK: i64 = 2_000;

/// A stored span as a recompute reads it: its id, where its body is, and its columns.
struct SpanRow {
    id: i64,
    body_at: (i64, i32),
    stored: StoredDerived,
}

/// Processes the spans after `after` (a span id); returns the last id seen, or `None` at the
/// end.
pub(crate) async fn recompute_chunk(
    client: &mut deadpool_postgres::Object,
    how: &Recompute,
    after: i64,
    stats: &mut RecomputeStats,
) -> Result<Option<i64>, StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    let spans = read_chunk(&tx, after).await?;
    let Some(last) = spans.last().map(|s| s.id) else {
        return Ok(None);
    };
    let touched = update_spans(&tx, how, spans, stats).await?;
    roll_up(&tx, &touched).await?;
    stats.traces += touched.len() as u64;
    tx.commit().await.map_err(pg_err)?;
    Ok(Some(last))
}

/// Reads up to [`CHUNK`] spans after `after` (a span id), in id order.
async fn read_chunk(
    tx: &deadpool_postgres::Transaction<'_>,
    after: i64,
) -> Result<Vec<SpanRow>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "SELECT s.id, s.trace_seq, s.start_ns, s.body_group, s.body_idx, \
                 {DERIVED_COLUMNS} FROM spans s WHERE s.id > $1 ORDER BY s.id LIMIT $2"
            ),
            &[&after, &CHUNK],
        )
        .await
        .map_err(pg_err)?;
    let mut spans = Vec::with_capacity(rows.len());
    for r in &rows {
        spans.push(SpanRow {
            id: r.try_get(0).map_err(pg_err)?,
            body_at: (r.try_get(3).map_err(pg_err)?, r.try_get(4).map_err(pg_err)?),
            stored: StoredDerived {
                trace_seq: r.try_get(1).map_err(pg_err)?,
                start_ns: u(r.try_get(2).map_err(pg_err)?),
                columns: derived_columns(r, 5)?,
            },
        });
    }
    Ok(spans)
}

/// Recomputes each span and writes those that changed; returns the traces touched.
async fn update_spans(
    tx: &deadpool_postgres::Transaction<'_>,
    how: &Recompute,
    spans: Vec<SpanRow>,
    stats: &mut RecomputeStats,
) -> Result<Touched, StoreError> {
    let groups = match how {
        Recompute::Reindex(_) => {
            Groups::load(tx, spans.iter().map(|s| s.body_at.0).collect()).await?
        }
        Recompute::Reprice(_) => Groups::empty(),
    };
    let mut touched = Touched::new();
    let update = tx
        .prepare_cached(
            "UPDATE spans SET span_type = $2, model = $3, provider = $4, input_tokens = $5, \
             output_tokens = $6, total_tokens = $7, cache_read_tokens = $8, \
             cache_write_tokens = $9, reasoning_tokens = $10, cost_usd = $11 WHERE id = $1",
        )
        .await
        .map_err(pg_err)?;
    for row in spans {
        let body = || groups.get(row.body_at);
        let Some(new) = how.span(&row.stored, body, &mut touched, stats)? else {
            continue;
        };
        tx.execute(
            &update,
            &[
                &row.id,
                &new.span_type,
                &new.model,
                &new.provider,
                &new.input_tokens.map(to_i64),
                &new.output_tokens.map(to_i64),
                &new.total_tokens.map(to_i64),
                &new.cache_read_tokens.map(to_i64),
                &new.cache_write_tokens.map(to_i64),
                &new.reasoning_tokens.map(to_i64),
                &new.cost_usd,
            ],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(touched)
}

/// Recomputes the roll-ups of the traces a chunk touched.
async fn roll_up(
    tx: &deadpool_postgres::Transaction<'_>,
    touched: &Touched,
) -> Result<(), StoreError> {
    // Lock the touched traces first (writers lock them before adding spans), so the sums below
    // see every span committed so far and none is added until this commits.
    let mut seqs: Vec<i64> = touched.keys().copied().collect();
    seqs.sort_unstable();
    tx.execute(
        "SELECT 1 FROM traces WHERE seq = ANY($1::bigint[]) ORDER BY seq FOR UPDATE",
        &[&seqs],
    )
    .await
    .map_err(pg_err)?;
    let rollup = tx
        .prepare_cached(
            "UPDATE traces SET \
             input_tokens = (SELECT coalesce(sum(input_tokens), 0)::bigint FROM spans WHERE trace_seq = $1), \
             output_tokens = (SELECT coalesce(sum(output_tokens), 0)::bigint FROM spans WHERE trace_seq = $1), \
             total_tokens = (SELECT coalesce(sum(total_tokens), 0)::bigint FROM spans WHERE trace_seq = $1), \
             cost_usd = (SELECT coalesce(sum(cost_usd), 0)::float8 FROM spans WHERE trace_seq = $1), \
             session_id = coalesce($2, session_id), \
             user_id = coalesce($3, user_id) \
             WHERE seq = $1",
        )
        .await
        .map_err(pg_err)?;
    for (seq, (session, user)) in touched {
        tx.execute(&rollup, &[seq, session, user])
            .await
            .map_err(pg_err)?;
    }
    Ok(())
}

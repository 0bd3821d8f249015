//! The write path: one transaction per batch, safe beside other writers.
//!
//! 1. Every trace of the batch gets a row (`INSERT … ON CONFLICT DO NOTHING`, in trace-id
//!    order), and the rows are locked (`SELECT … FOR UPDATE`, same order): two batches of one
//!    trace take turns, and batches of different traces never wait on each other in a cycle.
//! 2. Spans go in with `ON CONFLICT DO NOTHING … RETURNING`: only the spans actually inserted
//!    count towards the roll-ups, so a retried batch changes nothing.
//! 3. Their body groups are written, once each, and only if some span of theirs was inserted.
//! 4. One UPDATE adds each trace's delta to its locked row, with the rules of the SQLite store
//!    (the root's name and status win; a client-reported state outlasts the root's; a row the
//!    client created before any span takes its times from the first spans).
//! 5. The new spans' text goes into `trace_text`, then the transaction commits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use loupe_model::normalize::LlmView;
use loupe_model::text::SpanText;
use loupe_model::{SpanId, TraceId};
use loupe_store::{
    EncodedSpan, StoreError, TraceDelta, WriteOutcome, decode_bodies, root_status_sql,
    trace_status_sql,
};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::{cpu, pg_err, to_i64};

/// A batch ready to write: its spans and what their text is (computed before the transaction,
/// off the executor, so no row stays locked while bodies are decompressed).
pub(crate) struct Prepared {
    spans: Vec<EncodedSpan>,
    views: Vec<Option<LlmView>>,
}

/// Decompresses each body group of the batch once and reads every span's text view.
pub(crate) async fn prepare(spans: Vec<EncodedSpan>) -> Result<Arc<Prepared>, StoreError> {
    cpu(move || {
        let mut groups: HashMap<usize, Option<Vec<loupe_store::SpanBody>>> = HashMap::new();
        let mut views = Vec::with_capacity(spans.len());
        for s in &spans {
            let bodies = groups
                .entry(s.body.group_key())
                .or_insert_with(|| decode_bodies(&s.body.group).ok());
            let view = bodies
                .as_ref()
                .and_then(|b| b.get(s.body.index as usize))
                .map(|b| loupe_model::normalize::view(&b.attributes, &b.events));
            views.push(view);
        }
        Arc::new(Prepared { spans, views })
    })
    .await
}

const INSERT_TRACES: &str = "INSERT INTO traces (trace_id, project, start_ns, end_ns, metadata) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[]) \
     AS x(trace_id, project, start_ns, end_ns, metadata) ORDER BY trace_id \
     ON CONFLICT (trace_id) DO NOTHING";

const LOCK_TRACES: &str = "SELECT seq, trace_id FROM traces WHERE trace_id = ANY($1::bytea[]) \
     ORDER BY trace_id FOR UPDATE";

const INSERT_SPANS: &str = "INSERT INTO spans (trace_seq, span_id, parent_id, name, span_type, \
     start_ns, end_ns, status, status_message, model, input_tokens, output_tokens, total_tokens, \
     provider, cache_read_tokens, cache_write_tokens, reasoning_tokens, cost_usd, body_group, \
     body_idx) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
     $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], \
     $12::bigint[], $13::bigint[], $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], \
     $18::float8[], $19::bigint[], $20::int4[]) \
     ON CONFLICT (trace_seq, span_id) DO NOTHING \
     RETURNING trace_seq, span_id";

const INSERT_GROUPS: &str = "INSERT INTO span_groups (id, body) \
     SELECT * FROM unnest($1::bigint[], $2::bytea[])";

const UPDATE_TRACES: &str = concat!(
    "UPDATE traces t SET \
     start_ns = CASE WHEN t.span_count = 0 THEN d.min_start ELSE LEAST(t.start_ns, d.min_start) END, \
     end_ns = CASE WHEN t.span_count = 0 THEN d.max_end ELSE GREATEST(t.end_ns, d.max_end) END, \
     duration_ms = CASE WHEN t.span_count = 0 THEN (d.max_end - d.min_start) / 1000000 \
                   ELSE (GREATEST(t.end_ns, d.max_end) - LEAST(t.start_ns, d.min_start)) / 1000000 END, \
     span_count = t.span_count + d.spans, \
     error_count = t.error_count + d.errors, \
     input_tokens = t.input_tokens + d.input_tokens, \
     output_tokens = t.output_tokens + d.output_tokens, \
     total_tokens = t.total_tokens + d.total_tokens, \
     name = CASE WHEN d.root_name IS NOT NULL THEN d.root_name \
                 WHEN NOT t.has_root AND d.earliest_name IS NOT NULL \
                      AND (t.name = '' OR d.earliest_start < t.start_ns) THEN d.earliest_name \
                 ELSE t.name END, \
     has_root = t.has_root OR d.root_name IS NOT NULL, \
     root_status = ",
    root_status_sql!("(t.info ->> 'state')", "t.root_status", "d.root_status"),
    ", \
     status = ",
    trace_status_sql!(
        root_status_sql!("(t.info ->> 'state')", "t.root_status", "d.root_status"),
        "t.error_count + d.errors"
    ),
    ", \
     cost_usd = t.cost_usd + d.cost_usd, \
     session_id = coalesce(t.session_id, d.session_id), \
     user_id = coalesce(t.user_id, d.user_id) \
     FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
     $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::bigint[], \
     $12::bigint[], $13::float8[], $14::text[], $15::text[]) \
     AS d(seq, min_start, max_end, spans, errors, input_tokens, output_tokens, total_tokens, \
          root_name, earliest_name, earliest_start, root_status, cost_usd, session_id, user_id) \
     WHERE t.seq = d.seq"
);

const INSERT_TEXT: &str = "INSERT INTO trace_text (trace_seq, doc) \
     SELECT s, d::tsvector FROM unnest($1::bigint[], $2::text[]) AS x(s, d)";

/// The batch's spans by trace, in trace-id order (the lock order); a span repeated in the batch
/// once.
type ByTrace = BTreeMap<TraceId, Vec<usize>>;

/// Body group id of each body group of the batch (by its key in the batch).
type GroupIds = HashMap<usize, i64>;

/// Writes a batch in one transaction, in the steps of the module's comment; returns after
/// COMMIT.
pub(crate) async fn write_spans(
    client: &mut deadpool_postgres::Object,
    batch: &Arc<Prepared>,
) -> Result<WriteOutcome, StoreError> {
    let mut outcome = WriteOutcome::default();
    let mut traces = ByTrace::new();
    let mut seen: HashSet<(TraceId, SpanId)> = HashSet::with_capacity(batch.spans.len());
    for (i, s) in batch.spans.iter().enumerate() {
        if seen.insert((s.trace_id, s.span_id)) {
            traces.entry(s.trace_id).or_default().push(i);
        } else {
            outcome.duplicates += 1;
        }
    }
    let tx = client.transaction().await.map_err(pg_err)?;
    let seqs = insert_and_lock_traces(&tx, batch, &traces).await?;
    let groups = group_ids(&tx, batch, &traces).await?;
    let order: Vec<usize> = traces.values().flatten().copied().collect();
    let inserted = insert_spans(&tx, batch, &order, &seqs, &groups).await?;
    outcome.inserted = inserted.len() as u64;
    outcome.duplicates += (order.len() - inserted.len()) as u64;
    if inserted.is_empty() {
        // Nothing new: release the locks without writing anything.
        tx.rollback().await.map_err(pg_err)?;
        return Ok(outcome);
    }
    insert_body_groups(&tx, batch, &order, &inserted, &groups).await?;
    let new_by_trace = roll_up(&tx, batch, &traces, &seqs, &inserted).await?;
    index_text(&tx, batch, new_by_trace).await?;
    tx.commit().await.map_err(pg_err)?;
    Ok(outcome)
}

/// Step 1: a row for every trace, then every row locked; returns each trace's number.
async fn insert_and_lock_traces(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Prepared,
    traces: &ByTrace,
) -> Result<HashMap<TraceId, i64>, StoreError> {
    let mut ids: Vec<&[u8]> = Vec::with_capacity(traces.len());
    let mut projects: Vec<&str> = Vec::with_capacity(traces.len());
    let mut starts = Vec::with_capacity(traces.len());
    let mut ends = Vec::with_capacity(traces.len());
    let mut metadata: Vec<Value> = Vec::with_capacity(traces.len());
    for (trace_id, members) in traces {
        let first = &batch.spans[members[0]];
        let spans = || members.iter().map(|&i| &batch.spans[i]);
        ids.push(&trace_id.0[..]);
        projects.push(&first.project);
        starts.push(spans().map(|s| to_i64(s.start_ns)).min().unwrap_or(0));
        ends.push(spans().map(|s| to_i64(s.end_ns)).max().unwrap_or(0));
        metadata.push(Value::Object(first.trace_metadata.clone()));
    }
    let stmt = tx.prepare_cached(INSERT_TRACES).await.map_err(pg_err)?;
    tx.execute(&stmt, &[&ids, &projects, &starts, &ends, &metadata])
        .await
        .map_err(pg_err)?;
    let stmt = tx.prepare_cached(LOCK_TRACES).await.map_err(pg_err)?;
    let mut seqs = HashMap::with_capacity(traces.len());
    for row in tx.query(&stmt, &[&ids]).await.map_err(pg_err)? {
        let id: Vec<u8> = row.try_get(1).map_err(pg_err)?;
        let id = TraceId::from_slice(&id).map_err(StoreError::internal)?;
        seqs.insert(id, row.try_get(0).map_err(pg_err)?);
    }
    Ok(seqs)
}

/// Step 2a: a fresh id for each body group of the batch.
async fn group_ids(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Prepared,
    traces: &ByTrace,
) -> Result<GroupIds, StoreError> {
    let mut keys: Vec<usize> = Vec::new();
    let mut known: HashSet<usize> = HashSet::new();
    for &i in traces.values().flatten() {
        let key = batch.spans[i].body.group_key();
        if known.insert(key) {
            keys.push(key);
        }
    }
    let stmt = tx
        .prepare_cached("SELECT nextval('span_groups_id') FROM generate_series(1, $1::bigint)")
        .await
        .map_err(pg_err)?;
    let fresh: Vec<i64> = tx
        .query(&stmt, &[&(keys.len() as i64)])
        .await
        .map_err(pg_err)?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()
        .map_err(pg_err)?;
    if fresh.len() < keys.len() {
        return Err(StoreError::internal(
            "PostgreSQL returned too few group ids",
        ));
    }
    Ok(keys.into_iter().zip(fresh).collect())
}

/// Step 2b: the spans, in `order`; returns those actually inserted (not already stored).
async fn insert_spans(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Prepared,
    order: &[usize],
    seqs: &HashMap<TraceId, i64>,
    groups: &GroupIds,
) -> Result<HashSet<usize>, StoreError> {
    let mut by_key: HashMap<(i64, i64), usize> = HashMap::with_capacity(order.len());
    let mut c = SpanArrays::with_capacity(order.len());
    for &i in order {
        let s = &batch.spans[i];
        let seq = *seqs
            .get(&s.trace_id)
            .ok_or_else(|| crate::retry_later("a trace row vanished under a concurrent delete"))?;
        by_key.insert((seq, s.span_id.to_i64()), i);
        c.push(seq, s, groups[&s.body.group_key()]);
    }
    let stmt = tx.prepare_cached(INSERT_SPANS).await.map_err(pg_err)?;
    let rows = tx.query(&stmt, &c.params()).await.map_err(pg_err)?;
    let mut inserted: HashSet<usize> = HashSet::with_capacity(rows.len());
    for r in &rows {
        let key: (i64, i64) = (r.try_get(0).map_err(pg_err)?, r.try_get(1).map_err(pg_err)?);
        if let Some(&i) = by_key.get(&key) {
            inserted.insert(i);
        }
    }
    Ok(inserted)
}

/// Step 3: the body groups that hold a new span, once each.
async fn insert_body_groups(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Prepared,
    order: &[usize],
    inserted: &HashSet<usize>,
    groups: &GroupIds,
) -> Result<(), StoreError> {
    let mut written: HashSet<usize> = HashSet::new();
    let mut ids: Vec<i64> = Vec::new();
    let mut blobs: Vec<&[u8]> = Vec::new();
    for &i in order.iter().filter(|i| inserted.contains(i)) {
        let s = &batch.spans[i];
        let key = s.body.group_key();
        if written.insert(key) {
            ids.push(groups[&key]);
            blobs.push(&s.body.group);
        }
    }
    let stmt = tx.prepare_cached(INSERT_GROUPS).await.map_err(pg_err)?;
    tx.execute(&stmt, &[&ids, &blobs]).await.map_err(pg_err)?;
    Ok(())
}

/// Step 4: each trace's delta added to its locked row; returns the new spans of each trace.
async fn roll_up(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Prepared,
    traces: &ByTrace,
    seqs: &HashMap<TraceId, i64>,
    inserted: &HashSet<usize>,
) -> Result<Vec<(i64, Vec<usize>)>, StoreError> {
    let mut new_by_trace: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut d = DeltaColumns::default();
    for (trace_id, members) in traces {
        let new: Vec<usize> = members
            .iter()
            .copied()
            .filter(|i| inserted.contains(i))
            .collect();
        if new.is_empty() {
            continue;
        }
        let mut delta = TraceDelta::new();
        for &i in &new {
            delta.add(&batch.spans[i]);
        }
        let seq = seqs[trace_id];
        d.push(seq, delta);
        new_by_trace.push((seq, new));
    }
    let stmt = tx.prepare_cached(UPDATE_TRACES).await.map_err(pg_err)?;
    tx.execute(&stmt, &d.params()).await.map_err(pg_err)?;
    Ok(new_by_trace)
}

/// Step 5: the full text of the new spans, one document per trace (built on the CPU pool).
async fn index_text(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &Arc<Prepared>,
    new_by_trace: Vec<(i64, Vec<usize>)>,
) -> Result<(), StoreError> {
    let batch = batch.clone();
    let (seqs, docs) = cpu(move || {
        let mut seqs = Vec::new();
        let mut docs = Vec::new();
        for (seq, members) in new_by_trace {
            let mut text = SpanText::new();
            for i in members {
                if let Some(view) = &batch.views[i] {
                    text.add_view(view, &batch.spans[i].status_message);
                } else {
                    text.add_str(&batch.spans[i].status_message);
                }
            }
            if !text.is_empty() {
                seqs.push(seq);
                docs.push(text.pg_tsvector());
            }
        }
        (seqs, docs)
    })
    .await?;
    if !docs.is_empty() {
        let stmt = tx.prepare_cached(INSERT_TEXT).await.map_err(pg_err)?;
        tx.execute(&stmt, &[&seqs, &docs]).await.map_err(pg_err)?;
    }
    Ok(())
}

/// The span columns of a batch, as arrays for `unnest`.
struct SpanArrays<'a> {
    trace_seq: Vec<i64>,
    span_id: Vec<i64>,
    parent_id: Vec<Option<i64>>,
    name: Vec<&'a str>,
    span_type: Vec<&'a str>,
    start_ns: Vec<i64>,
    end_ns: Vec<i64>,
    status: Vec<i64>,
    status_message: Vec<&'a str>,
    model: Vec<Option<&'a str>>,
    input_tokens: Vec<Option<i64>>,
    output_tokens: Vec<Option<i64>>,
    total_tokens: Vec<Option<i64>>,
    provider: Vec<Option<&'a str>>,
    cache_read_tokens: Vec<Option<i64>>,
    cache_write_tokens: Vec<Option<i64>>,
    reasoning_tokens: Vec<Option<i64>>,
    cost_usd: Vec<Option<f64>>,
    body_group: Vec<i64>,
    body_idx: Vec<i32>,
}

impl<'a> SpanArrays<'a> {
    fn with_capacity(n: usize) -> Self {
        Self {
            trace_seq: Vec::with_capacity(n),
            span_id: Vec::with_capacity(n),
            parent_id: Vec::with_capacity(n),
            name: Vec::with_capacity(n),
            span_type: Vec::with_capacity(n),
            start_ns: Vec::with_capacity(n),
            end_ns: Vec::with_capacity(n),
            status: Vec::with_capacity(n),
            status_message: Vec::with_capacity(n),
            model: Vec::with_capacity(n),
            input_tokens: Vec::with_capacity(n),
            output_tokens: Vec::with_capacity(n),
            total_tokens: Vec::with_capacity(n),
            provider: Vec::with_capacity(n),
            cache_read_tokens: Vec::with_capacity(n),
            cache_write_tokens: Vec::with_capacity(n),
            reasoning_tokens: Vec::with_capacity(n),
            cost_usd: Vec::with_capacity(n),
            body_group: Vec::with_capacity(n),
            body_idx: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, seq: i64, s: &'a EncodedSpan, group: i64) {
        self.trace_seq.push(seq);
        self.span_id.push(s.span_id.to_i64());
        self.parent_id.push(s.parent_id.map(SpanId::to_i64));
        self.name.push(&s.name);
        let c = &s.columns;
        self.span_type.push(&c.span_type);
        self.start_ns.push(to_i64(s.start_ns));
        self.end_ns.push(to_i64(s.end_ns));
        self.status.push(s.status.code());
        self.status_message.push(&s.status_message);
        self.model.push(c.model.as_deref());
        self.input_tokens.push(c.input_tokens.map(to_i64));
        self.output_tokens.push(c.output_tokens.map(to_i64));
        self.total_tokens.push(c.total_tokens.map(to_i64));
        self.provider.push(c.provider.as_deref());
        self.cache_read_tokens.push(c.cache_read_tokens.map(to_i64));
        self.cache_write_tokens
            .push(c.cache_write_tokens.map(to_i64));
        self.reasoning_tokens.push(c.reasoning_tokens.map(to_i64));
        self.cost_usd.push(c.cost_usd);
        self.body_group.push(group);
        self.body_idx
            .push(i32::try_from(s.body.index).unwrap_or(i32::MAX));
    }

    /// The arrays in `INSERT_SPANS`'s parameter order.
    fn params(&self) -> [&(dyn ToSql + Sync); 20] {
        [
            &self.trace_seq,
            &self.span_id,
            &self.parent_id,
            &self.name,
            &self.span_type,
            &self.start_ns,
            &self.end_ns,
            &self.status,
            &self.status_message,
            &self.model,
            &self.input_tokens,
            &self.output_tokens,
            &self.total_tokens,
            &self.provider,
            &self.cache_read_tokens,
            &self.cache_write_tokens,
            &self.reasoning_tokens,
            &self.cost_usd,
            &self.body_group,
            &self.body_idx,
        ]
    }
}

/// Roll-up deltas, as arrays for `unnest`.
#[derive(Default)]
struct DeltaColumns {
    seq: Vec<i64>,
    min_start: Vec<i64>,
    max_end: Vec<i64>,
    spans: Vec<i64>,
    errors: Vec<i64>,
    input_tokens: Vec<i64>,
    output_tokens: Vec<i64>,
    total_tokens: Vec<i64>,
    root_name: Vec<Option<String>>,
    earliest_name: Vec<Option<String>>,
    earliest_start: Vec<Option<i64>>,
    root_status: Vec<Option<i64>>,
    cost_usd: Vec<f64>,
    session_id: Vec<Option<String>>,
    user_id: Vec<Option<String>>,
}

impl DeltaColumns {
    fn push(&mut self, seq: i64, d: TraceDelta) {
        self.seq.push(seq);
        self.min_start.push(d.min_start);
        self.max_end.push(d.max_end);
        self.spans.push(d.spans);
        self.errors.push(d.errors);
        self.input_tokens.push(d.input_tokens);
        self.output_tokens.push(d.output_tokens);
        self.total_tokens.push(d.total_tokens);
        self.root_status
            .push(d.root.as_ref().map(|(_, st)| st.code()));
        self.root_name.push(d.root.map(|(n, _)| n));
        self.earliest_start
            .push(d.earliest.as_ref().map(|(t, _)| *t));
        self.earliest_name.push(d.earliest.map(|(_, n)| n));
        self.cost_usd.push(d.cost_usd);
        self.session_id.push(d.session_id);
        self.user_id.push(d.user_id);
    }

    /// The arrays in `UPDATE_TRACES`'s parameter order.
    fn params(&self) -> [&(dyn ToSql + Sync); 15] {
        [
            &self.seq,
            &self.min_start,
            &self.max_end,
            &self.spans,
            &self.errors,
            &self.input_tokens,
            &self.output_tokens,
            &self.total_tokens,
            &self.root_name,
            &self.earliest_name,
            &self.earliest_start,
            &self.root_status,
            &self.cost_usd,
            &self.session_id,
            &self.user_id,
        ]
    }
}

pub(crate) async fn write_events(
    client: &deadpool_postgres::Object,
    events: &[loupe_store::EncodedEvent],
) -> Result<u64, StoreError> {
    let mut trace_ids: Vec<&[u8]> = Vec::with_capacity(events.len());
    let mut span_ids = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut bodies: Vec<Value> = Vec::with_capacity(events.len());
    for e in events {
        trace_ids.push(&e.trace_id.0[..]);
        span_ids.push(e.span_id.to_i64());
        times.push(to_i64(e.event.time_ns));
        bodies.push(serde_json::to_value(&e.event).map_err(StoreError::internal)?);
    }
    // One statement: atomic and durable when it returns (autocommit).
    let stmt = client
        .prepare_cached(
            "INSERT INTO span_events (trace_id, span_id, time_ns, event) \
             SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::jsonb[])",
        )
        .await
        .map_err(pg_err)?;
    client
        .execute(&stmt, &[&trace_ids, &span_ids, &times, &bodies])
        .await
        .map_err(pg_err)?;
    Ok(events.len() as u64)
}

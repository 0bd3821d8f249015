//! Connection settings and versioned migrations (tracked in `PRAGMA user_version`).

use loupe_store::StoreError;
use rusqlite::Connection;

use crate::db_err;

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`. Never edit a
/// released entry: append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE traces (
    seq           INTEGER PRIMARY KEY,
    trace_id      BLOB    NOT NULL UNIQUE,
    project       TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    start_ns      INTEGER NOT NULL,
    end_ns        INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL DEFAULT 0,
    status        INTEGER NOT NULL DEFAULT 0,
    root_status   INTEGER,
    has_root      INTEGER NOT NULL DEFAULT 0,
    span_count    INTEGER NOT NULL DEFAULT 0,
    error_count   INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL    NOT NULL DEFAULT 0,
    session_id    TEXT,
    user_id       TEXT,
    tags          TEXT    NOT NULL DEFAULT '{}',
    metadata      TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX traces_by_start ON traces (start_ns, seq);
CREATE INDEX traces_by_project_start ON traces (project, start_ns, seq);
CREATE INDEX traces_by_status_start ON traces (status, start_ns, seq);
CREATE INDEX traces_by_session ON traces (session_id, start_ns) WHERE session_id IS NOT NULL;
CREATE TABLE spans (
    trace_seq      INTEGER NOT NULL,
    span_id        INTEGER NOT NULL,
    parent_id      INTEGER,
    name           TEXT    NOT NULL,
    span_type      TEXT    NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    status         INTEGER NOT NULL,
    status_message TEXT    NOT NULL DEFAULT '',
    model          TEXT,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    total_tokens   INTEGER,
    provider       TEXT,
    cache_read_tokens  INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens   INTEGER,
    cost_usd       REAL
);
-- Bodies (attributes, events …; compressed) live apart from the span columns, keyed by the
-- span's rowid, so scans over spans (filters, aggregations) read small rows.
CREATE TABLE span_bodies (
    id   INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
-- Spans append to the rowid table (full pages); this small index keys them by trace. A
-- WITHOUT ROWID table keyed the same way left pages a third empty (1,476 against 1,131 bytes
-- per span on disk).
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_seq, span_id);
-- Span events that arrive as OTLP log records (GenAI message events …), keyed by the trace id
-- because they may come before their span does.
CREATE TABLE span_events (
    trace_id BLOB    NOT NULL,
    span_id  INTEGER NOT NULL,
    time_ns  INTEGER NOT NULL,
    event    TEXT    NOT NULL
);
CREATE INDEX span_events_by_trace ON span_events (trace_id, span_id, time_ns);
"#,
    // Version 2: bodies move to the append-only body log (`bodylog.rs`); a span row holds the
    // position, length and group index of its body. Rows written before keep theirs in
    // `span_bodies` (their `body_pos` is NULL).
    r#"
ALTER TABLE spans ADD COLUMN body_pos INTEGER;
ALTER TABLE spans ADD COLUMN body_len INTEGER;
ALTER TABLE spans ADD COLUMN body_idx INTEGER;
"#,
    // Version 3: experiments (MLflow's projects with ids; 0 is "Default", the project
    // `default`), what a client reports about a trace beyond tags and metadata, assessments.
    r#"
CREATE TABLE experiments (
    id                INTEGER PRIMARY KEY,
    name              TEXT    NOT NULL UNIQUE,
    artifact_location TEXT    NOT NULL,
    lifecycle_stage   TEXT    NOT NULL DEFAULT 'active',
    creation_time     INTEGER NOT NULL,
    last_update_time  INTEGER NOT NULL,
    tags              TEXT    NOT NULL DEFAULT '{}'
);
INSERT INTO experiments (id, name, artifact_location, creation_time, last_update_time)
    VALUES (0, 'Default', 'mlflow-artifacts:/0', 0, 0);
ALTER TABLE traces ADD COLUMN info TEXT NOT NULL DEFAULT '{}';
CREATE TABLE assessments (
    id          TEXT    PRIMARY KEY,
    trace_id    BLOB    NOT NULL,
    create_time INTEGER NOT NULL,
    body        TEXT    NOT NULL
);
CREATE INDEX assessments_by_trace ON assessments (trace_id, create_time);
"#,
    // Version 4: the start-time index also covers what aggregations read, so "by hour over the
    // last day" scans one index range instead of fetching each trace row (figures:
    // docs/performance.md, "Start indexes and trace ids"). It still orders the trace list (start, seq).
    r#"
DROP INDEX traces_by_start;
CREATE INDEX traces_by_start ON traces (start_ns, seq, status, duration_ms, input_tokens,
    output_tokens, total_tokens, cost_usd, project);
"#,
    // Version 5: failed traces get a partial index of their own, in place of an index of
    // every trace by status. Trace starts arrive in no order (clients report them up to a minute
    // late), so each index by start takes one random page per new trace, and every commit
    // copies those pages into the WAL: the status index was a large share of what a commit
    // wrote, for a condition that is only selective for errors. `status = 'OK'` / `'UNSET'` read the
    // start index, which holds the status, newest first. The SQL must say `status = 2` as a
    // literal for SQLite to use a partial index.
    r#"
DROP INDEX traces_by_status_start;
CREATE INDEX traces_errors ON traces (start_ns, seq) WHERE status = 2;
"#,
    // Version 6: the number of the last span batch the database holds, written in the same
    // commit as the batch (see `redo.rs`).
    r#"
CREATE TABLE loupe_meta (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO loupe_meta (key, value) VALUES ('redo_applied', 0);
"#,
    // Version 7: the indexes by start time are keyed by a ~268 ms bucket of the start, then by
    // arrival (`seq`), and hold the start after those (see
    // `layout::BUCKET`). Starts arrive up to a minute late, so an index
    // keyed by the start took one random page per new trace among a minute of traces (at full
    // ingest, more pages than the cache holds), and each commit copied them all into the WAL;
    // now each bucket has one page being appended to (figures: docs/performance.md, "Start
    // indexes and trace ids").
    r#"
DROP INDEX traces_by_start;
CREATE INDEX traces_by_start ON traces ((start_ns >> 28), seq, start_ns, status, duration_ms,
    input_tokens, output_tokens, total_tokens, cost_usd, project);
DROP INDEX traces_by_project_start;
CREATE INDEX traces_by_project_start ON traces (project, (start_ns >> 28), seq, start_ns);
DROP INDEX traces_errors;
CREATE INDEX traces_errors ON traces ((start_ns >> 28), seq, start_ns) WHERE status = 2;
"#,
    // Version 8: trace ids are looked up in two tables instead of a unique index on `traces`
    // (see `write::SEQ_OF_ID`): new ids go to the small `trace_ids_recent`, which the writer
    // moves into `trace_ids` in id order once it holds `MERGE_RECENT_IDS` (one pass over the
    // large index, instead of a random page of it for every new trace and commit). `traces`
    // is copied into a table without the unique constraint, which SQLite cannot drop in place.
    r#"
-- No NOT NULL on `seq`: a constraint that could fail makes SQLite keep a statement journal of
-- every page the merge (`INSERT … SELECT`) touches, in memory.
CREATE TABLE trace_ids (
    trace_id BLOB    PRIMARY KEY,
    seq      INTEGER
) WITHOUT ROWID;
CREATE TABLE trace_ids_recent (
    trace_id BLOB    PRIMARY KEY,
    seq      INTEGER
) WITHOUT ROWID;
INSERT INTO trace_ids (trace_id, seq) SELECT trace_id, seq FROM traces ORDER BY trace_id;
CREATE TABLE traces_v8 (
    seq           INTEGER PRIMARY KEY,
    trace_id      BLOB    NOT NULL,
    project       TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    start_ns      INTEGER NOT NULL,
    end_ns        INTEGER NOT NULL,
    duration_ms   INTEGER NOT NULL DEFAULT 0,
    status        INTEGER NOT NULL DEFAULT 0,
    root_status   INTEGER,
    has_root      INTEGER NOT NULL DEFAULT 0,
    span_count    INTEGER NOT NULL DEFAULT 0,
    error_count   INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens  INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL    NOT NULL DEFAULT 0,
    session_id    TEXT,
    user_id       TEXT,
    tags          TEXT    NOT NULL DEFAULT '{}',
    metadata      TEXT    NOT NULL DEFAULT '{}',
    info          TEXT    NOT NULL DEFAULT '{}'
);
INSERT INTO traces_v8 (seq, trace_id, project, name, start_ns, end_ns, duration_ms, status,
    root_status, has_root, span_count, error_count, input_tokens, output_tokens, total_tokens,
    cost_usd, session_id, user_id, tags, metadata, info)
    SELECT seq, trace_id, project, name, start_ns, end_ns, duration_ms, status, root_status,
    has_root, span_count, error_count, input_tokens, output_tokens, total_tokens, cost_usd,
    session_id, user_id, tags, metadata, info FROM traces;
DROP TABLE traces;
ALTER TABLE traces_v8 RENAME TO traces;
CREATE INDEX traces_by_start ON traces ((start_ns >> 28), seq, start_ns, status, duration_ms,
    input_tokens, output_tokens, total_tokens, cost_usd, project);
CREATE INDEX traces_by_project_start ON traces (project, (start_ns >> 28), seq, start_ns);
CREATE INDEX traces_errors ON traces ((start_ns >> 28), seq, start_ns) WHERE status = 2;
CREATE INDEX traces_by_session ON traces (session_id, start_ns) WHERE session_id IS NOT NULL;
"#,
    // Version 9: assessments in columns (`loupe_model::Assessment`) instead of the MLflow JSON
    // object a client sent, so filters read an indexed name and a number, and every reader sees
    // one shape. Rows written before are carried over from that JSON: the only place outside
    // the server's `mlflow` module that knows it, because it is what older binaries stored.
    r#"
CREATE TABLE assessments_v9 (
    id             TEXT    PRIMARY KEY,
    trace_id       BLOB    NOT NULL,
    span_id        TEXT,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    -- 'bool' | 'number' | 'string' | 'json', NULL without a value. Numbers and booleans (as 1
    -- and 0) are in value_num, for comparisons; value_text holds the string, or the JSON.
    value_type     TEXT,
    value_num      REAL,
    value_text     TEXT,
    error_code     TEXT,
    error_message  TEXT,
    error_trace    TEXT,
    rationale      TEXT,
    source_type    TEXT    NOT NULL,
    source_id      TEXT    NOT NULL DEFAULT '',
    metadata       TEXT    NOT NULL DEFAULT '{}',
    valid          INTEGER NOT NULL DEFAULT 1,
    overrides      TEXT,
    overridden_by  TEXT,
    run_id         TEXT,
    create_time    INTEGER NOT NULL,
    update_time    INTEGER NOT NULL
);
WITH kinded AS (
    SELECT id, trace_id, create_time, body,
        CASE WHEN coalesce(json_type(body, '$.feedback'), 'null') != 'null' THEN 'feedback'
             WHEN coalesce(json_type(body, '$.expectation'), 'null') != 'null' THEN 'expectation'
             ELSE 'issue' END AS kind
    FROM assessments
), valued AS (
    SELECT *,
        CASE kind
            WHEN 'feedback' THEN body -> '$.feedback.value'
            WHEN 'issue' THEN body -> '$.issue'
            WHEN 'expectation' THEN coalesce(body -> '$.expectation.value',
                CASE WHEN json_valid(json_extract(body, '$.expectation.serialized_value.value'))
                     THEN json(json_extract(body, '$.expectation.serialized_value.value'))
                     ELSE json_quote(json_extract(body, '$.expectation.serialized_value.value'))
                END)
        END AS v
    FROM kinded
), typed AS (
    SELECT *,
        CASE json_type(v) WHEN 'true' THEN 'bool' WHEN 'false' THEN 'bool'
            WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' WHEN 'text' THEN 'string'
            WHEN 'object' THEN 'json' WHEN 'array' THEN 'json' END AS vt,
        coalesce(body -> '$.feedback.error', body -> '$.error') AS err
    FROM valued
)
INSERT INTO assessments_v9 (id, trace_id, span_id, name, kind, value_type, value_num,
    value_text, error_code, error_message, error_trace, rationale, source_type, source_id,
    metadata, valid, overrides, create_time, update_time)
SELECT id, trace_id, json_extract(body, '$.span_id'),
    coalesce(json_extract(body, '$.assessment_name'), ''), kind, vt,
    CASE json_type(v) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0
        WHEN 'integer' THEN json_extract(v, '$') WHEN 'real' THEN json_extract(v, '$') END,
    CASE WHEN vt IS NULL THEN NULL WHEN vt = 'string' THEN json_extract(v, '$') ELSE json(v) END,
    json_extract(err, '$.error_code'), json_extract(err, '$.error_message'),
    json_extract(err, '$.stack_trace'), json_extract(body, '$.rationale'),
    CASE WHEN json_extract(body, '$.source.source_type') IN ('HUMAN', 'LLM_JUDGE', 'CODE')
         THEN json_extract(body, '$.source.source_type') ELSE 'CODE' END,
    coalesce(json_extract(body, '$.source.source_id'), 'default'),
    CASE json_type(body, '$.metadata') WHEN 'object' THEN json(body -> '$.metadata') ELSE '{}' END,
    CASE json_type(body, '$.valid') WHEN 'false' THEN 0 ELSE 1 END,
    json_extract(body, '$.overrides'), create_time,
    coalesce(CAST(unixepoch(json_extract(body, '$.last_update_time'), 'subsec') * 1000 AS INTEGER),
        create_time)
FROM typed;
UPDATE assessments_v9 SET overridden_by =
    (SELECT n.id FROM assessments_v9 n WHERE n.overrides = assessments_v9.id
     AND n.trace_id = assessments_v9.trace_id ORDER BY n.create_time LIMIT 1);
DROP TABLE assessments;
ALTER TABLE assessments_v9 RENAME TO assessments;
-- A filter probes one trace's valid assessments of one name.
CREATE INDEX assessments_by_trace ON assessments (trace_id, name, kind, valid, value_num);
"#,
    // Version 10: the assessments of one name by value, so a page can count the traces whose
    // feedback passes a threshold and, when they are few, read just those (`layout.rs`).
    r#"
CREATE INDEX assessments_by_value ON assessments (name, kind, valid, value_num, trace_id);
"#,
    // Version 11: MLflow runs, one document each (`loupe_store::runs`), and metric history.
    r#"
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    value REAL
);
CREATE INDEX run_metrics_by_key ON run_metrics (run_id, key, step, timestamp);
"#,
    // Version 12: MLflow evaluation datasets (`loupe_store::datasets`): a header document and
    // records keyed by a hash of their inputs.
    r#"
CREATE TABLE eval_datasets (
    dataset_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc TEXT NOT NULL
);
CREATE TABLE eval_dataset_records (
    dataset_id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    record_id TEXT NOT NULL,
    created_time INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (dataset_id, input_hash)
);
CREATE INDEX eval_dataset_records_in_order ON eval_dataset_records (dataset_id, created_time, record_id);
CREATE INDEX eval_dataset_records_by_id ON eval_dataset_records (dataset_id, record_id);
"#,
    // Version 13: registered scorers (`loupe_store::scorers`) and their online configurations.
    r#"
CREATE TABLE scorers (
    experiment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    scorer_id TEXT NOT NULL,
    serialized TEXT NOT NULL,
    creation_time INTEGER NOT NULL,
    PRIMARY KEY (experiment_id, name, version)
);
CREATE TABLE scorer_online_configs (
    scorer_id TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
"#,
    // Version 14: assessments indexed by their trace's number instead of its id. New traces
    // take rising numbers, so a new trace's assessments go to the end of both indexes (the
    // values a judge gives are few, so by value too) instead of to a random page of each, which
    // every commit copied into the WAL once the indexes outgrew the cache (figures:
    // docs/performance.md, "Assessments").
    r#"
ALTER TABLE assessments ADD COLUMN trace_seq INTEGER;
UPDATE assessments SET trace_seq = coalesce(
    (SELECT r.seq FROM trace_ids_recent r WHERE r.trace_id = assessments.trace_id),
    (SELECT i.seq FROM trace_ids i WHERE i.trace_id = assessments.trace_id));
DROP INDEX assessments_by_trace;
DROP INDEX assessments_by_value;
CREATE INDEX assessments_by_trace ON assessments (trace_seq, name, kind, valid, value_num);
CREATE INDEX assessments_by_value ON assessments (name, kind, valid, value_num, trace_seq);
"#,
];

/// What a connection is for: the one writer, or a reader (queries, the checkpointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
}

/// Per-connection settings.
pub(crate) fn configure(conn: &Connection, role: Role) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    match role {
        Role::Writer => {
            // Only takes effect on a new database. Rows are small (bodies live in the body
            // log), and every commit copies each page it touched into the WAL whole, so small
            // pages mean less WAL per span (figures: docs/performance.md, "Page size and cache").
            conn.pragma_update(None, "page_size", 4_096)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            // Commits write the WAL without waiting for the disk: a batch is durable before
            // its 2xx through the body log and the redo log that `write_spans` flushes, and the
            // commit thread flushes the WAL afterwards, off the writer lock (`redo.rs`).
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            // Checkpoints run on their own thread (see `Checkpointer`), not inside commits.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
            // What the WAL file is cut back to when it restarts: above what it grows to between
            // restarts under full ingest, so its frames are written over blocks the file has
            // instead of blocks the file system allocates and zeroes again (figures:
            // docs/performance.md, "WAL sizing and checkpoints").
            conn.pragma_update(None, "journal_size_limit", 512 * 1024 * 1024)?;
            // A second of ingest's dirty index pages (see `COMMIT_EVERY`) stays in the cache
            // (figures: docs/performance.md, "Page size and cache").
            conn.pragma_update(None, "cache_size", -65_536)?; // 64 MiB
        }
        Role::Reader => {
            conn.pragma_update(None, "cache_size", -16_384)?; // 16 MiB
            // Readers map the database instead of copying each page out of the kernel, which
            // was a large share of an aggregation's CPU. Mapped pages are the OS page cache,
            // shared and reclaimable, though they count in the process's RSS while mapped.
            // SQLite caps the map at its compile-time limit (2 GiB by default); pages past it
            // are read as before.
            conn.pragma_update(None, "mmap_size", 1i64 << 40)?;
        }
    }
    Ok(())
}

/// Applies pending migrations in one transaction; refuses a database newer than this binary.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_err)?;
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::internal(format!(
            "the database has schema version {current}, newer than this binary knows ({known}); upgrade loupe"
        )));
    }
    if current == known {
        return Ok(());
    }
    let tx = conn.transaction().map_err(db_err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql).map_err(db_err)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(db_err)?;
    }
    tx.commit().map_err(db_err)
}

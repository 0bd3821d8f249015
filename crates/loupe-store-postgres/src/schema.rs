//! Versioned migrations, tracked in `schema_version` and applied at connect.

use loupe_store::StoreError;

use crate::pg_err;

/// Migrations in order; entry `i` moves the schema from version `i` to `i + 1`. Never edit a
/// released entry: append a new one.
///
/// The names of tables and columns are those of the SQLite store: the query layer lowers one
/// filter for both (`loupe_query::sql`).
pub(crate) const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE traces (
    seq           BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id      BYTEA   NOT NULL UNIQUE,
    project       TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    start_ns      BIGINT  NOT NULL,
    end_ns        BIGINT  NOT NULL,
    duration_ms   BIGINT  NOT NULL DEFAULT 0,
    status        BIGINT  NOT NULL DEFAULT 0,
    root_status   BIGINT,
    has_root      BOOLEAN NOT NULL DEFAULT false,
    span_count    BIGINT  NOT NULL DEFAULT 0,
    error_count   BIGINT  NOT NULL DEFAULT 0,
    input_tokens  BIGINT  NOT NULL DEFAULT 0,
    output_tokens BIGINT  NOT NULL DEFAULT 0,
    total_tokens  BIGINT  NOT NULL DEFAULT 0,
    cost_usd      DOUBLE PRECISION NOT NULL DEFAULT 0,
    session_id    TEXT,
    user_id       TEXT,
    tags          JSONB   NOT NULL DEFAULT '{}',
    metadata      JSONB   NOT NULL DEFAULT '{}',
    info          JSONB   NOT NULL DEFAULT '{}'
);
CREATE INDEX traces_by_start ON traces (start_ns, seq);
CREATE INDEX traces_by_project_start ON traces (project, start_ns, seq);
CREATE INDEX traces_by_status_start ON traces (status, start_ns, seq);
CREATE INDEX traces_by_session ON traces (session_id, start_ns) WHERE session_id IS NOT NULL;

-- The compressed bodies of the spans of one trace that arrived together (one zstd frame).
-- Ids come from a sequence taken before the spans are inserted, so a group of duplicates is
-- never written.
CREATE SEQUENCE span_groups_id;
CREATE TABLE span_groups (
    id   BIGINT PRIMARY KEY,
    body BYTEA  NOT NULL
);

CREATE TABLE spans (
    id                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_seq          BIGINT  NOT NULL,
    span_id            BIGINT  NOT NULL,
    parent_id          BIGINT,
    name               TEXT    NOT NULL,
    span_type          TEXT    NOT NULL,
    start_ns           BIGINT  NOT NULL,
    end_ns             BIGINT  NOT NULL,
    status             BIGINT  NOT NULL,
    status_message     TEXT    NOT NULL DEFAULT '',
    model              TEXT,
    input_tokens       BIGINT,
    output_tokens      BIGINT,
    total_tokens       BIGINT,
    provider           TEXT,
    cache_read_tokens  BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens   BIGINT,
    cost_usd           DOUBLE PRECISION,
    body_group         BIGINT  NOT NULL,
    body_idx           INTEGER NOT NULL
);
CREATE UNIQUE INDEX spans_by_trace ON spans (trace_seq, span_id);
CREATE INDEX spans_by_model ON spans (model, trace_seq) WHERE model IS NOT NULL;
CREATE INDEX spans_by_type ON spans (span_type, trace_seq);

-- Span events that arrive as OTLP log records, keyed by the trace id because they may come
-- before their span does.
CREATE TABLE span_events (
    trace_id BYTEA  NOT NULL,
    span_id  BIGINT NOT NULL,
    time_ns  BIGINT NOT NULL,
    event    JSONB  NOT NULL
);
CREATE INDEX span_events_by_trace ON span_events (trace_id, span_id, time_ns);

-- Experiments: MLflow's projects with ids; 0 is "Default", the project `default`.
CREATE SEQUENCE experiments_id START 1;
CREATE TABLE experiments (
    id                BIGINT PRIMARY KEY,
    name              TEXT   NOT NULL UNIQUE,
    artifact_location TEXT   NOT NULL,
    lifecycle_stage   TEXT   NOT NULL DEFAULT 'active',
    creation_time     BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL,
    tags              JSONB  NOT NULL DEFAULT '{}'
);
INSERT INTO experiments (id, name, artifact_location, creation_time, last_update_time)
    VALUES (0, 'Default', 'mlflow-artifacts:/0', 0, 0);

CREATE TABLE assessments (
    id          TEXT   PRIMARY KEY,
    trace_id    BYTEA  NOT NULL,
    create_time BIGINT NOT NULL,
    body        JSONB  NOT NULL
);
CREATE INDEX assessments_by_trace ON assessments (trace_id, create_time);

-- Full text: the terms of the spans of one trace written in one batch (loupe_model::text).
CREATE TABLE trace_text (
    trace_seq BIGINT   NOT NULL,
    doc       TSVECTOR NOT NULL
);
CREATE INDEX trace_text_doc ON trace_text USING GIN (doc);
CREATE INDEX trace_text_by_trace ON trace_text (trace_seq);
"#,
    // Version 2: assessments in columns (`loupe_model::Assessment`) instead of the MLflow JSON
    // object a client sent, so filters read an indexed name and a number, and every reader sees
    // one shape. Rows written before are carried over from that JSON: the only place outside
    // the server's `mlflow` module that knows it, because it is what older binaries stored.
    // The two `pg_temp` functions turn text that does not parse into NULL instead of failing
    // the migration.
    r#"
CREATE FUNCTION pg_temp.loupe_jsonb(t text) RETURNS jsonb LANGUAGE plpgsql AS $f$
BEGIN RETURN t::jsonb; EXCEPTION WHEN others THEN RETURN to_jsonb(t); END $f$;
CREATE FUNCTION pg_temp.loupe_ms(t text) RETURNS bigint LANGUAGE plpgsql AS $f$
BEGIN RETURN (extract(epoch FROM t::timestamptz) * 1000)::bigint;
EXCEPTION WHEN others THEN RETURN NULL; END $f$;
CREATE TABLE assessments_v2 (
    id             TEXT    PRIMARY KEY,
    trace_id       BYTEA   NOT NULL,
    span_id        TEXT,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    -- 'bool' | 'number' | 'string' | 'json', NULL without a value. Numbers and booleans (as 1
    -- and 0) are in value_num, for comparisons; value_text holds the string, or the JSON.
    value_type     TEXT,
    value_num      DOUBLE PRECISION,
    value_text     TEXT,
    error_code     TEXT,
    error_message  TEXT,
    error_trace    TEXT,
    rationale      TEXT,
    source_type    TEXT    NOT NULL,
    source_id      TEXT    NOT NULL DEFAULT '',
    metadata       JSONB   NOT NULL DEFAULT '{}',
    valid          BOOLEAN NOT NULL DEFAULT true,
    overrides      TEXT,
    overridden_by  TEXT,
    run_id         TEXT,
    create_time    BIGINT  NOT NULL,
    update_time    BIGINT  NOT NULL
);
WITH kinded AS (
    SELECT id, trace_id, create_time, body,
        CASE WHEN coalesce(jsonb_typeof(body -> 'feedback'), 'null') != 'null' THEN 'feedback'
             WHEN coalesce(jsonb_typeof(body -> 'expectation'), 'null') != 'null'
                 THEN 'expectation'
             ELSE 'issue' END AS kind
    FROM assessments
), valued AS (
    SELECT *,
        CASE kind
            WHEN 'feedback' THEN body #> '{feedback,value}'
            WHEN 'issue' THEN body -> 'issue'
            ELSE coalesce(body #> '{expectation,value}',
                pg_temp.loupe_jsonb(body #>> '{expectation,serialized_value,value}'))
        END AS v
    FROM kinded
), typed AS (
    SELECT *,
        CASE jsonb_typeof(v) WHEN 'boolean' THEN 'bool' WHEN 'number' THEN 'number'
            WHEN 'string' THEN 'string' WHEN 'object' THEN 'json' WHEN 'array' THEN 'json'
        END AS vt,
        coalesce(body #> '{feedback,error}', body -> 'error') AS err
    FROM valued
)
INSERT INTO assessments_v2 (id, trace_id, span_id, name, kind, value_type, value_num,
    value_text, error_code, error_message, error_trace, rationale, source_type, source_id,
    metadata, valid, overrides, create_time, update_time)
SELECT id, trace_id, body ->> 'span_id', coalesce(body ->> 'assessment_name', ''), kind, vt,
    CASE vt WHEN 'bool' THEN (CASE WHEN v = 'true'::jsonb THEN 1.0 ELSE 0.0 END)
        WHEN 'number' THEN (v #>> '{}')::float8 END,
    CASE WHEN vt IS NULL THEN NULL WHEN vt = 'string' THEN v #>> '{}' ELSE v::text END,
    err ->> 'error_code', err ->> 'error_message', err ->> 'stack_trace', body ->> 'rationale',
    CASE WHEN body #>> '{source,source_type}' IN ('HUMAN', 'LLM_JUDGE', 'CODE')
         THEN body #>> '{source,source_type}' ELSE 'CODE' END,
    coalesce(body #>> '{source,source_id}', 'default'),
    CASE jsonb_typeof(body -> 'metadata') WHEN 'object' THEN body -> 'metadata' ELSE '{}' END,
    coalesce(body -> 'valid', 'true'::jsonb) != 'false'::jsonb,
    body ->> 'overrides', create_time,
    coalesce(pg_temp.loupe_ms(body ->> 'last_update_time'), create_time)
FROM typed;
UPDATE assessments_v2 o SET overridden_by =
    (SELECT n.id FROM assessments_v2 n WHERE n.overrides = o.id AND n.trace_id = o.trace_id
     ORDER BY n.create_time LIMIT 1);
DROP TABLE assessments;
ALTER TABLE assessments_v2 RENAME TO assessments;
ALTER INDEX assessments_v2_pkey RENAME TO assessments_pkey;
-- A filter probes one trace's valid assessments of one name.
CREATE INDEX assessments_by_trace ON assessments (trace_id, name, kind, valid, value_num);
DROP FUNCTION pg_temp.loupe_jsonb(text);
DROP FUNCTION pg_temp.loupe_ms(text);
"#,
    // Version 3: MLflow runs, one document each (`loupe_store::runs`), and metric history.
    r#"
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    start_time BIGINT NOT NULL,
    doc JSONB NOT NULL
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);
CREATE TABLE run_metrics (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    step BIGINT NOT NULL,
    timestamp BIGINT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX run_metrics_by_key ON run_metrics (run_id, key, step, timestamp);
"#,
    // Version 4: MLflow evaluation datasets (`loupe_store::datasets`): a header document and
    // records keyed by a hash of their inputs.
    r#"
CREATE TABLE eval_datasets (
    dataset_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    doc JSONB NOT NULL
);
CREATE TABLE eval_dataset_records (
    dataset_id TEXT NOT NULL,
    input_hash TEXT NOT NULL,
    record_id TEXT NOT NULL,
    created_time BIGINT NOT NULL,
    doc JSONB NOT NULL,
    PRIMARY KEY (dataset_id, input_hash)
);
CREATE INDEX eval_dataset_records_in_order ON eval_dataset_records (dataset_id, created_time, record_id);
CREATE INDEX eval_dataset_records_by_id ON eval_dataset_records (dataset_id, record_id);
"#,
    // Version 5: registered scorers (`loupe_store::scorers`) and their online configurations.
    r#"
CREATE TABLE scorers (
    experiment_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    scorer_id TEXT NOT NULL,
    serialized TEXT NOT NULL,
    creation_time BIGINT NOT NULL,
    PRIMARY KEY (experiment_id, name, version)
);
CREATE TABLE scorer_online_configs (
    scorer_id TEXT PRIMARY KEY,
    doc JSONB NOT NULL
);
"#,
];

/// Key of the advisory lock that serializes migrations between replicas.
const MIGRATION_LOCK: i64 = 0x4c6f_7570_6500_0001;

/// Applies pending migrations in one transaction; refuses a database newer than this binary.
pub(crate) async fn migrate(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(pg_err)?;
    let current: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM schema_version",
            &[],
        )
        .await
        .map_err(pg_err)?
        .get(0);
    let known = MIGRATIONS.len() as i64;
    if current > known {
        return Err(StoreError::internal(format!(
            "the database has schema version {current}, newer than this binary knows ({known}); upgrade loupe"
        )));
    }
    if current == known {
        return Ok(());
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(current).unwrap_or(0))
    {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)
}

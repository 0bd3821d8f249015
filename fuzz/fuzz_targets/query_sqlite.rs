#![no_main]
//! The query language, parsed, lowered and run by the SQLite store on a small store: a page of
//! traces (newest first, and in another order), a page of spans and grouped statistics. A filter
//! that parses is either answered or refused as the caller's mistake; never a panic and never
//! an internal error (SQL that SQLite refuses, a JSON path it cannot read).

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use loupe_fuzz::PRICES;
use loupe_ingest::Encoding;
use loupe_store::{
    Direction, ErrorKind, GroupKey, OrderKey, StatsQuery, StoreError, TraceQuery, TraceStore,
};
use loupe_store_sqlite::SqliteStore;

/// A few traces of each kind the language can name: LLM calls with model, tokens and
/// messages, a failed tool call, sessions, users, tags and metadata.
const SEED: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"spans":[
{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"agent","startTimeUnixNano":"1779990000000000000","endTimeUnixNano":"1779990001000000000","attributes":[{"key":"session.id","value":{"stringValue":"s-1"}},{"key":"user.id","value":{"stringValue":"u-1"}},{"key":"input.value","value":{"stringValue":"refund my order"}},{"key":"mlflow.traceMetadata","value":{"stringValue":"{\"env\":\"prod\"}"}}]},
{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"chat gpt-4o","startTimeUnixNano":"1779990000100000000","endTimeUnixNano":"1779990000900000000","attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"gen_ai.usage.input_tokens","value":{"intValue":"120"}},{"key":"gen_ai.usage.output_tokens","value":{"intValue":"30"}},{"key":"temperature","value":{"doubleValue":0.5}}]},
{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b176","name":"tool lookup","startTimeUnixNano":"1779990002000000000","endTimeUnixNano":"1779990002500000000","status":{"code":2,"message":"timeout"},"attributes":[{"key":"openinference.span.kind","value":{"stringValue":"TOOL"}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"beta"}]}}}]}
]}]}]}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    rt: tokio::runtime::Runtime,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SqliteStore::open(dir.path()).expect("the store opens"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let prepared = loupe_ingest::prepare(SEED.as_bytes(), Encoding::Json, Some("shop"), &PRICES)
        .expect("the seed traces are valid OTLP/JSON");
    rt.block_on(async {
        store
            .write_spans(prepared.spans)
            .await
            .expect("the seed is written");
        store.flush_text_index().await.expect("the seed is indexed");
    });
    Fixture {
        _dir: dir,
        store,
        rt,
    }
});

fn answered<T>(what: &str, r: Result<T, StoreError>) {
    if let Err(e) = r {
        assert!(
            e.kind == ErrorKind::InvalidInput,
            "{what}: an internal error for a filter that parsed: {e}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = loupe_query::parse(text, 1_780_000_000_000) else {
        return;
    };
    let f = &*FIXTURE;
    f.rt.block_on(async {
        let newest = TraceQuery {
            filter: Some(expr.clone()),
            ..TraceQuery::newest(5)
        };
        let by_duration = TraceQuery {
            order: vec![(OrderKey::Duration, Direction::Descending)],
            ..newest.clone()
        };
        answered("newest first", f.store.list_traces(newest).await);
        answered("by duration", f.store.list_traces(by_duration).await);
        answered(
            "spans",
            f.store.list_spans(Some(expr.clone()), 5, None).await,
        );
        let stats = StatsQuery {
            filter: Some(expr),
            group_by: vec![GroupKey::Model, GroupKey::Time],
            bucket_ms: 3_600_000,
            start_from_ms: None,
            start_to_ms: None,
        };
        answered("stats", f.store.stats(stats).await);
    });
});

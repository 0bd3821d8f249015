#![no_main]
//! MLflow request bodies: StartTraceV3, SearchTracesV3 (its filter, order and page token) and
//! the `traces.json` artifact the client uploads when its spans did not go over OTLP. The first
//! byte picks the body; no input panics, and every span of an accepted `traces.json` reads back.

use libfuzzer_sys::fuzz_target;
use loupe_fuzz::{PRICES, bodies_read_back};
use loupe_model::TraceId;

fuzz_target!(|data: &[u8]| {
    let Some((which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            loupe_server::fuzzing::mlflow_start_trace(body);
        }
        1 => {
            loupe_server::fuzzing::mlflow_search_traces(body);
        }
        _ => {
            let trace_id = TraceId([7; 16]);
            if let Ok(spans) = loupe_ingest::prepare_traces_json(trace_id, body, "fuzz", &PRICES) {
                assert!(spans.iter().all(|s| s.trace_id == trace_id));
                bodies_read_back(&spans);
            }
        }
    }
});

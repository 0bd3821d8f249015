#![no_main]
//! OTLP/JSON trace and log requests (hex ids, string integers, the spec's JSON mapping). No
//! input panics; every accepted span's body reads back.

use libfuzzer_sys::fuzz_target;
use loupe_fuzz::{PRICES, bodies_read_back};
use loupe_ingest::Encoding;

fuzz_target!(|data: &[u8]| {
    if let Ok(prepared) = loupe_ingest::prepare(data, Encoding::Json, Some("fuzz"), &PRICES) {
        bodies_read_back(&prepared.spans);
    }
    let _ = loupe_ingest::prepare_logs(data, Encoding::Json);
});

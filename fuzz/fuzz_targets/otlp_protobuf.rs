#![no_main]
//! OTLP/protobuf trace and log requests, as every door takes them: decode, validate, convert
//! to canonical spans and encode their bodies. No input panics; every accepted span's body
//! reads back.

use libfuzzer_sys::fuzz_target;
use loupe_fuzz::{PRICES, bodies_read_back};
use loupe_ingest::Encoding;

fuzz_target!(|data: &[u8]| {
    for project in [None, Some("fuzz")] {
        if let Ok(prepared) = loupe_ingest::prepare(data, Encoding::Protobuf, project, &PRICES) {
            bodies_read_back(&prepared.spans);
        }
    }
    let _ = loupe_ingest::prepare_logs(data, Encoding::Protobuf);
});

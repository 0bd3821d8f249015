#![no_main]
//! The span-body codec (LZ4 frames of MessagePack bodies; older zstd frames): any bytes read
//! from the body log decode to bodies or to an error, never a panic or a runaway allocation.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(bodies) = loupe_store::decode_bodies(data) {
        for i in 0..bodies.len() {
            assert!(loupe_store::decode_body_at(data, i).is_ok());
        }
        assert!(loupe_store::decode_body_at(data, bodies.len()).is_err());
    }
    let _ = loupe_store::decode_body(data);
});

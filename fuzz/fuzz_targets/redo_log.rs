#![no_main]
//! Redo-log replay's reading side: any bytes in a redo file give its records up to the first
//! one cut short or corrupt, and each record's spans or an error; never a panic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    loupe_store_sqlite::fuzzing::read_redo_file(data);
});

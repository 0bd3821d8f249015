#![no_main]
//! The query language, parsed and lowered to PostgreSQL's SQL (traces, with and without a rare
//! word's match list, and spans). The values the user wrote go only in parameters: every `?`
//! in the SQL is a placeholder (PostgreSQL's are numbered from them), one per parameter, and
//! parentheses and quotes are balanced.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = loupe_query::parse(text, 1_780_000_000_000) else {
        return;
    };
    for lowered in loupe_store_postgres::fuzzing::lowerings(&expr) {
        let placeholders = lowered.sql.matches('?').count();
        assert_eq!(placeholders, lowered.params.len(), "{}", lowered.sql);
        assert_eq!(depth_after(&lowered.sql), 0, "unbalanced: {}", lowered.sql);
    }
});

/// The parenthesis depth at the end of `sql`, outside `'…'` literals; panics on a literal
/// left open or a parenthesis closed before it opened.
fn depth_after(sql: &str) -> i64 {
    let (mut depth, mut quoted) = (0i64, false);
    for c in sql.chars() {
        match (quoted, c) {
            (false, '(') => depth += 1,
            (false, ')') => {
                depth -= 1;
                assert!(depth >= 0, "a parenthesis closed before it opened: {sql}");
            }
            (_, '\'') => quoted = !quoted,
            _ => {}
        }
    }
    assert!(!quoted, "a string literal left open: {sql}");
    depth
}

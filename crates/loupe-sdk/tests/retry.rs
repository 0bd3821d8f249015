//! Refused exports are retried with backoff: 503 (with Retry-After) and 429 until accepted.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn refusals_are_retried_until_accepted() {
    let (url, seen) = support::endpoint_for_tests(vec![503, 429], false);
    let guard = loupe_sdk::Config::default().endpoint(url).init();
    {
        let _s = loupe_sdk::span("retried").start();
    }
    assert!(loupe_sdk::flush(Duration::from_secs(20)));
    assert_eq!(
        seen.load(Ordering::SeqCst),
        3,
        "503, then 429, then accepted"
    );
    assert_eq!(loupe_sdk::exported_spans(), 1);
    assert_eq!(loupe_sdk::dropped_spans(), 0);
    drop(guard);
}

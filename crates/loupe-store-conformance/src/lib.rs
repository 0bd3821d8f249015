//! The tests every store backend passes, written once against [`TraceStore`].
//!
//! Each case is an `async fn(&dyn TraceStore)` that starts from an empty store. A backend's
//! test file expands [`conformance_tests!`] with an expression that builds a fresh store, and
//! gets one `#[tokio::test]` per case:
//!
//! ```text
//! loupe_store_conformance::conformance_tests!(async {
//!     let dir = tempfile::tempdir().expect("temp dir");
//!     let store = SqliteStore::open(dir.path()).expect("opens");
//!     (store, dir) // the store, and whatever must live as long as it
//! });
//! ```
//!
//! [`pg`] starts a throwaway PostgreSQL server for the PostgreSQL backend's run.
//!
//! [`TraceStore`]: loupe_store::TraceStore

pub mod cases;
pub mod fixtures;
pub mod hooked;
pub mod migration;
pub mod pg;
pub mod query;

/// Expands to one `#[tokio::test]` per conformance case. `$make` is an expression whose value
/// is a future of `(store, guard)`: a fresh, empty store and what must outlive it.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@cases $make;
            cases::rollups_in_order,
            cases::rollups_out_of_order_split_and_duplicated,
            cases::concurrent_batches_keep_rollups,
            cases::root_status_wins_and_provisional_name_is_earliest,
            cases::pagination_and_filters,
            cases::grouped_bodies_read_back,
            cases::bodies_read_only_when_asked,
            cases::client_info_and_spans_merge_in_either_order,
            cases::tags_assessments_and_deletes,
            cases::assessments_replace_list_and_delete,
            cases::assessments_keep_every_field_and_overrides_invalidate,
            cases::events_join_their_spans,
            cases::experiments,
            cases::sessions,
            cases::trace_models,
            cases::recompute_reprices_and_reindexes,
            cases::runs,
            cases::datasets,
            cases::scorers,
            query::query_boolean_logic,
            query::query_operators,
            query::query_trace_fields,
            query::query_tags_metadata_feedback,
            query::query_span_fields,
            query::query_span_attributes,
            query::query_order_and_paging,
            query::query_list_spans,
            query::query_stats,
            query::query_full_text,
        );
    };
    (@cases $make:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _guard) = $make.await;
                $crate::$module::$case(&store).await;
            }
        )*
    };
}

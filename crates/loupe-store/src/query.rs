//! Trace listing: the simple filters, and opaque cursors for keyset pagination.

use loupe_model::{SpanStatus, TraceSummary};

use crate::StoreError;

/// Where the next page starts: the (start time, insertion sequence) of the last trace returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Start time of the last trace on the previous page, ns.
    pub start_ns: i64,
    /// Store-internal tie breaker.
    pub seq: i64,
}

impl Cursor {
    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        format!("{:x}.{:x}", self.start_ns, self.seq)
    }

    /// Parses what [`Cursor::encode`] produced.
    pub fn decode(s: &str) -> Result<Self, StoreError> {
        let bad = || {
            StoreError::invalid(format!(
                "invalid cursor {s:?}: pass back a next_cursor value unchanged"
            ))
        };
        let (a, b) = s.split_once('.').ok_or_else(bad)?;
        Ok(Cursor {
            start_ns: i64::from_str_radix(a, 16).map_err(|_| bad())?,
            seq: i64::from_str_radix(b, 16).map_err(|_| bad())?,
        })
    }
}

/// Filters for listing traces. Every field is optional; they combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    /// Only this project.
    pub project: Option<String>,
    /// Only this status.
    pub status: Option<SpanStatus>,
    /// Only traces at least this long, ms.
    pub min_duration_ms: Option<u64>,
    /// Only traces with exactly this name.
    pub name: Option<String>,
    /// Only traces starting at or after this time, ms since the epoch.
    pub start_from_ms: Option<i64>,
    /// Only traces starting before this time, ms since the epoch.
    pub start_to_ms: Option<i64>,
    /// Page size.
    pub limit: usize,
    /// Continue after this point.
    pub cursor: Option<Cursor>,
}

/// One page of traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TracePage {
    /// Newest first.
    pub traces: Vec<TraceSummary>,
    /// Set when more traces may follow.
    pub next_cursor: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let c = Cursor {
            start_ns: 1_700_000_000_000_000_000,
            seq: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in [
            "",
            "x",
            "1.",
            ".1",
            "zz.1",
            "1.1.1",
            "'; drop table traces; --",
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}

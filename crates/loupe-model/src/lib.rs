//! Loupe's canonical trace model.
//!
//! Every ingest door (OTLP over HTTP or gRPC, the MLflow REST API, the Rust SDK) turns what it
//! receives into these types; every store and every reader works with them. The crate does no
//! I/O: it holds identifiers ([`TraceId`], [`SpanId`]), the [`Span`] as ingested, the roll-up
//! rules of a [`TraceSummary`], and [`normalize`], which lifts the LLM fields (span type, model,
//! token usage, inputs and outputs) out of the attribute conventions clients use.

mod assessment;
mod ids;
pub mod normalize;
pub mod pricing;
mod span;
pub mod text;

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1–12, `day` 1–31).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date; `None` unless it has that shape.
pub fn days_from_date(date: &str) -> Option<i64> {
    let mut it = date.splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// The proleptic Gregorian date (year, month 1–12, day 1–31) of a day count since 1970-01-01;
/// the inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

pub use assessment::{
    Assessment, AssessmentError, AssessmentKind, AssessmentSource, AssessmentValue, SourceType,
};
pub use ids::{IdError, SpanId, TraceId, new_assessment_id, random_hex};
pub use span::{Span, SpanEvent, SpanLink, SpanStatus, TraceStatus, TraceSummary};

/// Longest trace tag key, in bytes (MLflow's limit, which its clients expect).
pub const MAX_TAG_KEY: usize = 250;
/// Longest trace tag value, in bytes (MLflow's limit).
pub const MAX_TAG_VALUE: usize = 8_000;

/// Why a trace tag cannot be set, if it cannot: every door that sets tags checks this.
pub fn check_tag(key: &str, value: &str) -> Result<(), String> {
    if key.trim().is_empty() {
        return Err("tag keys must not be empty".into());
    }
    if key.len() > MAX_TAG_KEY {
        return Err(format!("tag keys are at most {MAX_TAG_KEY} characters"));
    }
    if value.len() > MAX_TAG_VALUE {
        return Err("tag values are at most 8,000 characters".into());
    }
    Ok(())
}

/// The project a trace belongs to when the sender names none.
pub const DEFAULT_PROJECT: &str = "default";

#[cfg(test)]
mod civil_tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        for days in [-719_468, -1, 11_016, 20_781, 100_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

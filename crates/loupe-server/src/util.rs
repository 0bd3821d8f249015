//! Small helpers every front door shares: the time now, RFC 3339 times, random ids, the pages
//! of lists kept in memory.

pub(crate) use crate::mlflow::rfc3339_ms as rfc3339;
pub(crate) use loupe_model::now_ms;
pub(crate) use loupe_model::{new_assessment_id, random_hex};

/// The offset of the page after `limit` items from `offset` of a list of `len`, unless that
/// page is empty (an offset from the caller may be anything, so this cannot overflow).
pub(crate) fn next_offset(offset: usize, limit: usize, len: usize) -> Option<usize> {
    let next = offset.saturating_add(limit);
    (next < len).then_some(next)
}

#[cfg(test)]
mod tests {
    #[test]
    fn next_offset_stops_at_the_end_and_never_overflows() {
        assert_eq!(super::next_offset(0, 10, 25), Some(10));
        assert_eq!(super::next_offset(20, 10, 25), None);
        assert_eq!(super::next_offset(usize::MAX, 10, 25), None);
    }

    #[test]
    fn random_ids_differ() {
        let a = super::random_hex();
        assert_eq!(a.len(), 32);
        assert_ne!(a, super::random_hex());
    }
}

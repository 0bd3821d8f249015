//! Flattened attribute lists: `prefix.{i}.rest` keys, as OpenInference and OpenLLMetry write
//! lists of messages, tool calls and documents.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Index → (rest of the key → value), for every key `prefix{i}.{rest}`.
pub(crate) fn indexed<'a>(
    a: &'a Map<String, Value>,
    prefix: &str,
) -> BTreeMap<usize, BTreeMap<&'a str, &'a Value>> {
    let mut out: BTreeMap<usize, BTreeMap<&str, &Value>> = BTreeMap::new();
    for (k, v) in a {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let (idx, tail) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(i) = idx.parse::<usize>() {
            out.entry(i).or_default().insert(tail, v);
        }
    }
    out
}

/// The same grouping over an already-split map (for nested lists such as tool calls).
pub(crate) fn sub_indexed<'a>(
    m: &BTreeMap<&'a str, &'a Value>,
    prefix: &str,
) -> BTreeMap<usize, BTreeMap<&'a str, &'a Value>> {
    let mut out: BTreeMap<usize, BTreeMap<&str, &Value>> = BTreeMap::new();
    for (k, v) in m {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let (idx, tail) = rest.split_once('.').unwrap_or((rest, ""));
        if let Ok(i) = idx.parse::<usize>() {
            out.entry(i).or_default().insert(tail, *v);
        }
    }
    out
}

/// A string field of a group.
pub(crate) fn s(m: &BTreeMap<&str, &Value>, key: &str) -> Option<String> {
    m.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

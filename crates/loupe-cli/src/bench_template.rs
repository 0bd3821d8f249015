//! Requests for `loupe bench ingest`, built and encoded once and sent many times with fresh
//! trace ids, span ids, times and session ids written into their bytes.
//!
//! The client shares the machine with the server it measures. Building and encoding each
//! request took most of the client's CPU, taken from the server (figures: docs/performance.md,
//! "How we measure"). A fresh copy of a template costs a copy of its bytes and a
//! few writes per span, and the server gets the same thing: new traces at new times, with the
//! same texts, attributes and shapes as a request built from scratch.

use std::collections::HashMap;

use anyhow::{Context, bail};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;
use rand::Rng;

/// Session ids are `session-` and this many digits, so a fresh one fits the same bytes.
pub(crate) const SESSION_DIGITS: usize = 5;
const SESSION_PREFIX: &[u8] = b"session-";

/// An encoded request, and where each of its traces' varying fields is in its bytes.
pub(crate) struct Template {
    bytes: Vec<u8>,
    traces: Vec<TraceAt>,
}

/// Where one trace's varying fields are in a template's bytes.
#[derive(Default)]
struct TraceAt {
    /// The trace id (16 bytes), once per span.
    trace_id: Vec<usize>,
    /// Span ids and parent ids (8 bytes each), with the index of the span they name.
    span_ids: Vec<(usize, usize)>,
    /// Number of spans.
    spans: usize,
    /// Start and end times (fixed64), with their offset from the trace's start.
    times: Vec<(usize, u64)>,
    /// The digits of session ids.
    sessions: Vec<usize>,
}

/// Protobuf tags of the `Span` fields written over (field number << 3 | wire type), each with
/// the length prefix of its value where it has one.
const TRACE_ID_TAG: [u8; 2] = [1 << 3 | 2, 16];
const SPAN_ID_TAG: [u8; 2] = [2 << 3 | 2, 8];
const PARENT_ID_TAG: [u8; 2] = [4 << 3 | 2, 8];
const START_TAG: [u8; 1] = [7 << 3 | 1];
const END_TAG: [u8; 1] = [8 << 3 | 1];

/// Where `tag` followed by `value` first is in `bytes[from..]`: the position of the value.
fn find(bytes: &[u8], from: usize, tag: &[u8], value: &[u8]) -> anyhow::Result<usize> {
    let n = tag.len() + value.len();
    bytes
        .get(from..)
        .and_then(|rest| {
            rest.windows(n)
                .position(|w| w[..tag.len()] == *tag && w[tag.len()..] == *value)
        })
        .map(|p| from + p + tag.len())
        .context("a field of the request is not where its encoding puts it")
}

impl Template {
    /// Encodes `req` and finds its traces' fields in the bytes.
    pub(crate) fn new(req: &ExportTraceServiceRequest) -> anyhow::Result<Self> {
        let bytes = req.encode_to_vec();
        let spans = || {
            req.resource_spans
                .iter()
                .flat_map(|r| &r.scope_spans)
                .flat_map(|s| &s.spans)
        };
        // Each trace's start, and each span's index in its trace.
        let mut trace_of: HashMap<&[u8], usize> = HashMap::new();
        let mut starts: Vec<u64> = Vec::new();
        let mut span_index: HashMap<(&[u8], &[u8]), usize> = HashMap::new();
        let mut traces: Vec<TraceAt> = Vec::new();
        for s in spans() {
            let t = *trace_of.entry(&s.trace_id).or_insert_with(|| {
                traces.push(TraceAt::default());
                starts.push(u64::MAX);
                traces.len() - 1
            });
            starts[t] = starts[t].min(s.start_time_unix_nano);
            span_index.insert((&s.trace_id, &s.span_id), traces[t].spans);
            traces[t].spans += 1;
        }
        // Fields are encoded in the order of their numbers, and spans in request order: each
        // search starts where the one before matched.
        let mut at = 0;
        for s in spans() {
            let t = trace_of[&s.trace_id[..]];
            let trace = &mut traces[t];
            at = find(&bytes, at, &TRACE_ID_TAG, &s.trace_id)?;
            trace.trace_id.push(at);
            at = find(&bytes, at, &SPAN_ID_TAG, &s.span_id)?;
            trace
                .span_ids
                .push((at, span_index[&(&s.trace_id[..], &s.span_id[..])]));
            if !s.parent_span_id.is_empty() {
                let Some(&k) = span_index.get(&(&s.trace_id[..], &s.parent_span_id[..])) else {
                    bail!("a span's parent is not in the request");
                };
                at = find(&bytes, at, &PARENT_ID_TAG, &s.parent_span_id)?;
                trace.span_ids.push((at, k));
            }
            at = find(
                &bytes,
                at,
                &START_TAG,
                &s.start_time_unix_nano.to_le_bytes(),
            )?;
            trace.times.push((at, s.start_time_unix_nano - starts[t]));
            at = find(&bytes, at, &END_TAG, &s.end_time_unix_nano.to_le_bytes())?;
            trace.times.push((at, s.end_time_unix_nano - starts[t]));
            for kv in &s.attributes {
                if kv.key != "session.id" {
                    continue;
                }
                let Some(any_value::Value::StringValue(v)) =
                    kv.value.as_ref().and_then(|v| v.value.as_ref())
                else {
                    continue;
                };
                if v.len() != SESSION_PREFIX.len() + SESSION_DIGITS {
                    bail!("session ids must be `session-` and {SESSION_DIGITS} digits");
                }
                at = find(&bytes, at, &[], v.as_bytes())?;
                trace.sessions.push(at + SESSION_PREFIX.len());
            }
        }
        Ok(Self { bytes, traces })
    }

    /// A copy of the request with new ids for every trace and span, each trace starting at a
    /// random point of the last `spread_ns` before `now_ns` (its spans keep their offsets),
    /// and new session ids. The new trace ids are pushed onto `trace_ids`.
    pub(crate) fn fresh(
        &self,
        rng: &mut impl Rng,
        now_ns: u64,
        spread_ns: u64,
        trace_ids: &mut Vec<[u8; 16]>,
    ) -> Vec<u8> {
        let mut b = self.bytes.clone();
        let mut ids: Vec<[u8; 8]> = Vec::new();
        for t in &self.traces {
            let trace_id: [u8; 16] = rng.random();
            trace_ids.push(trace_id);
            for &p in &t.trace_id {
                b[p..p + 16].copy_from_slice(&trace_id);
            }
            ids.clear();
            ids.extend((0..t.spans).map(|_| rng.random::<[u8; 8]>()));
            for &(p, k) in &t.span_ids {
                b[p..p + 8].copy_from_slice(&ids[k]);
            }
            let start = now_ns - rng.random_range(0..spread_ns.max(1));
            for &(p, offset) in &t.times {
                b[p..p + 8].copy_from_slice(&(start + offset).to_le_bytes());
            }
            let session = format!(
                "{:0width$}",
                rng.random_range(0..50_000u32),
                width = SESSION_DIGITS
            );
            for &p in &t.sessions {
                b[p..p + SESSION_DIGITS].copy_from_slice(session.as_bytes());
            }
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::Span;
    use rand::SeedableRng;

    fn spans(req: &ExportTraceServiceRequest) -> Vec<Span> {
        req.resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .flat_map(|s| s.spans.clone())
            .collect()
    }

    fn session(s: &Span) -> Option<String> {
        s.attributes
            .iter()
            .find(|kv| kv.key == "session.id")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(v) => Some(v.clone()),
                _ => None,
            })
    }

    #[test]
    fn a_fresh_copy_is_the_same_request_with_new_ids_times_and_sessions() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let req = crate::bench::build_request(
            &mut rng,
            40,
            64,
            crate::bench::Shape::recent(60_000_000_000),
        );
        let template = Template::new(&req).unwrap();
        let now = 1_900_000_000_000_000_000;
        let spread = 1_000_000_000;
        let fresh = ExportTraceServiceRequest::decode(
            &template.fresh(&mut rng, now, spread, &mut Vec::new())[..],
        )
        .unwrap();
        let (before, after) = (spans(&req), spans(&fresh));
        assert_eq!(before.len(), 200);
        assert_eq!(after.len(), before.len());
        assert!(
            before.iter().any(|s| session(s).is_some()),
            "some traces have sessions"
        );
        let mut sessions_changed = 0;
        for (trace_before, trace_after) in before.chunks(5).zip(after.chunks(5)) {
            let root = &trace_after[0];
            let shift =
                root.start_time_unix_nano as i128 - trace_before[0].start_time_unix_nano as i128;
            assert!(
                root.start_time_unix_nano <= now && root.start_time_unix_nano >= now - spread,
                "the trace starts within the spread"
            );
            for (b, a) in trace_before.iter().zip(trace_after) {
                assert_eq!(a.trace_id, root.trace_id, "one trace id per trace");
                assert_ne!(a.trace_id, b.trace_id, "a new trace id");
                assert_ne!(a.span_id, b.span_id, "a new span id");
                if b.parent_span_id.is_empty() {
                    assert!(a.parent_span_id.is_empty());
                } else {
                    assert_eq!(
                        a.parent_span_id, root.span_id,
                        "the parent follows its span"
                    );
                }
                assert_eq!(
                    a.start_time_unix_nano as i128 - b.start_time_unix_nano as i128,
                    shift
                );
                assert_eq!(
                    a.end_time_unix_nano as i128 - b.end_time_unix_nano as i128,
                    shift
                );
                match (session(b), session(a)) {
                    (Some(sb), Some(sa)) => {
                        assert!(sa.starts_with("session-") && sa.len() == sb.len());
                        sessions_changed += usize::from(sa != sb);
                    }
                    (None, None) => {}
                    other => panic!("session id appeared or vanished: {other:?}"),
                }
                // Everything else is as built.
                let mut a = a.clone();
                a.trace_id.clone_from(&b.trace_id);
                a.span_id.clone_from(&b.span_id);
                a.parent_span_id.clone_from(&b.parent_span_id);
                a.start_time_unix_nano = b.start_time_unix_nano;
                a.end_time_unix_nano = b.end_time_unix_nano;
                for (ka, kb) in a.attributes.iter_mut().zip(&b.attributes) {
                    if ka.key == "session.id" {
                        ka.value.clone_from(&kb.value);
                    }
                }
                assert_eq!(&a, b);
            }
        }
        assert!(sessions_changed > 0, "session ids are drawn again");
        // Two copies differ from each other.
        let again = ExportTraceServiceRequest::decode(
            &template.fresh(&mut rng, now, spread, &mut Vec::new())[..],
        )
        .unwrap();
        assert_ne!(spans(&again)[0].trace_id, after[0].trace_id);
    }
}

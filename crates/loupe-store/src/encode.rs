//! The one serialized form of a span's bulky parts, shared by every backend.

use std::sync::Arc;

use loupe_model::{Span, SpanEvent, SpanId, SpanLink, SpanStatus, TraceId};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{SpanColumns, StoreError};

/// What a store keeps of a span besides its indexed columns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpanBody {
    /// OTLP span kind.
    #[serde(default)]
    pub kind: i32,
    /// Every attribute, as sent.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<SpanEvent>,
    /// Links.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<SpanLink>,
    /// Resource attributes.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub resource: Map<String, Value>,
    /// Instrumentation scope (name, version).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<(String, String)>,
}

/// A span's body inside its group: the compressed group blob, shared by the spans of one trace
/// that arrived together, and the span's place in it.
#[derive(Debug, Clone)]
pub struct BodyPart {
    /// LZ4-compressed MessagePack array of [`SpanBody`] (one frame, with a content checksum;
    /// see [`encode_spans`]).
    pub group: Arc<Vec<u8>>,
    /// Index of this span's body in the array.
    pub index: u32,
}

impl BodyPart {
    /// A stable identity for the group while the blob is alive (spans of a group share it).
    pub fn group_key(&self) -> usize {
        Arc::as_ptr(&self.group) as usize
    }
}

/// A span ready for the writer: columns plus its place in a compressed body group.
#[derive(Debug, Clone)]
pub struct EncodedSpan {
    /// Trace id.
    pub trace_id: TraceId,
    /// Span id.
    pub span_id: SpanId,
    /// Parent, `None` for a root.
    pub parent_id: Option<SpanId>,
    /// Name.
    pub name: String,
    /// Start, ns.
    pub start_ns: u64,
    /// End, ns.
    pub end_ns: u64,
    /// Status.
    pub status: SpanStatus,
    /// Status message.
    pub status_message: String,
    /// Type, model, tokens and cost.
    pub columns: SpanColumns,
    /// Session id the span names.
    pub session_id: Option<String>,
    /// User id the span names.
    pub user_id: Option<String>,
    /// Project.
    pub project: String,
    /// Trace metadata this span contributes when it is the first of its trace. Only the first
    /// span of each trace in a call to [`encode_spans`] carries it (the others leave it empty):
    /// the stores read it from the first span of a trace in a batch.
    pub trace_metadata: Map<String, Value>,
    /// The compressed body.
    pub body: BodyPart,
}

/// Resource keys copied into a trace's metadata.
const METADATA_RESOURCE_KEYS: &[&str] = &[
    "service.name",
    "service.version",
    "deployment.environment",
    "deployment.environment.name",
    "telemetry.sdk.name",
    "telemetry.sdk.language",
    "telemetry.sdk.version",
];

/// Spans of one trace compressed together at most (bounds what reading one span decompresses).
const MAX_GROUP_SPANS: usize = 64;
/// Uncompressed bytes per group at most.
const MAX_GROUP_BYTES: usize = 256 * 1024;

/// Serializes and compresses spans: the bodies of the spans of one trace are compressed together
/// (one LZ4 frame per trace and request), which costs less than compressing them one by one and
/// compresses better, since spans of a trace repeat keys, resource and much text. The result
/// keeps the order of `spans`. CPU work: run it off the async executor.
///
/// A group is a MessagePack array of bodies (maps, as JSON would have them), not JSON: strings
/// go in as they are instead of escaped one byte at a time (inputs and outputs are often JSON
/// inside a string, all quotes), and read back without unescaping, so both writing a group and
/// reading it (the text indexer and every read) cost less (figures: docs/performance.md, "Body
/// storage and encoding"). Groups written as JSON before are still read (see
/// [`decode_bodies`]).
pub fn encode_spans(spans: Vec<Span>) -> Vec<EncodedSpan> {
    // Which spans go into which group: spans of a trace in request order, split by the caps.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut open: std::collections::HashMap<TraceId, usize> = std::collections::HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        let g = *open.entry(s.trace_id).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
        if groups[g].len() >= MAX_GROUP_SPANS {
            open.remove(&s.trace_id);
        }
    }
    let mut slots: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    let mut out: Vec<Option<EncodedSpan>> = (0..slots.len()).map(|_| None).collect();
    let mut buf = Vec::with_capacity(8 * 1024);
    let mut described: std::collections::HashSet<TraceId> = std::collections::HashSet::new();
    for members in groups {
        let mut pending: Vec<(usize, EncodedSpan)> = Vec::with_capacity(members.len());
        start_group(&mut buf);
        for i in members {
            let Some(span) = slots[i].take() else {
                continue;
            };
            if buf.len() > MAX_GROUP_BYTES && !pending.is_empty() {
                flush_group(&mut buf, &mut pending, &mut out);
                start_group(&mut buf);
            }
            // Only a trace's first span gives it metadata (see `EncodedSpan::trace_metadata`).
            let first = described.insert(span.trace_id);
            let (encoded, body) = split(span, first);
            // Serializing maps of JSON values into a vector cannot fail.
            let _ = rmp_serde::encode::write_named(&mut buf, &body);
            pending.push((i, encoded));
        }
        flush_group(&mut buf, &mut pending, &mut out);
    }
    out.into_iter().flatten().collect()
}

/// MessagePack's marker of an array with a 32-bit length.
const MSGPACK_ARRAY32: u8 = 0xdd;

/// Starts a group: an array whose length [`flush_group`] fills in.
fn start_group(buf: &mut Vec<u8>) {
    buf.clear();
    buf.push(MSGPACK_ARRAY32);
    buf.extend_from_slice(&[0; 4]);
}

/// Compresses the open group and hands each of its spans its part.
fn flush_group(
    buf: &mut Vec<u8>,
    pending: &mut Vec<(usize, EncodedSpan)>,
    out: &mut [Option<EncodedSpan>],
) {
    if pending.is_empty() {
        buf.clear();
        return;
    }
    let n = u32::try_from(pending.len()).unwrap_or(u32::MAX);
    buf[1..5].copy_from_slice(&n.to_be_bytes());
    let group = Arc::new(compress(buf));
    buf.clear();
    for (index, (i, mut span)) in pending.drain(..).enumerate() {
        span.body = BodyPart {
            group: group.clone(),
            index: u32::try_from(index).unwrap_or(u32::MAX),
        };
        out[i] = Some(span);
    }
}

/// Serializes and compresses one span (a group of one).
pub fn encode_span(span: Span) -> EncodedSpan {
    let mut v = encode_spans(vec![span]);
    v.pop()
        .unwrap_or_else(|| unreachable!("one span in, one out"))
}

/// The columns of a span, and its body (the body part is filled in by the group).
fn split(span: Span, with_metadata: bool) -> (EncodedSpan, SpanBody) {
    let mut trace_metadata = Map::new();
    if with_metadata {
        for key in METADATA_RESOURCE_KEYS {
            if let Some(v) = span.resource.get(*key) {
                trace_metadata.insert((*key).to_string(), v.clone());
            }
        }
        if let Some(c) = span.derived.convention {
            trace_metadata.insert("loupe.convention".into(), Value::String(c.into()));
        }
    }
    let body = SpanBody {
        kind: span.kind,
        attributes: span.attributes,
        events: span.events,
        links: span.links,
        resource: span.resource,
        scope: span.scope,
    };
    let encoded = EncodedSpan {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_id: span.parent_id,
        name: span.name,
        start_ns: span.start_ns,
        end_ns: span.end_ns.max(span.start_ns),
        status: span.status,
        status_message: span.status_message,
        columns: SpanColumns::of(&span.derived),
        session_id: span.derived.session_id,
        user_id: span.derived.user_id,
        project: span.project,
        trace_metadata,
        body: BodyPart {
            group: Arc::new(Vec::new()),
            index: 0,
        },
    };
    (encoded, body)
}

/// Compresses a group as one LZ4 frame (the standard frame format: independent blocks of at
/// most 64 KiB, the content size, and an xxHash32 content checksum), so a body that did not
/// reach the disk whole reads as an error, never as wrong data.
///
/// LZ4, not zstd: compression was the largest single cost of ingest, and LZ4 takes about half
/// the CPU of zstd level 1, for bodies about half as large again (figures: docs/performance.md,
/// "Body storage and encoding"). Bodies written as zstd frames before are still read (see
/// [`decode_bodies`]).
///
/// The frame is written here around `lz4_flex`'s block compressor rather than with its frame
/// encoder, which allocates ~150 KiB of buffers per frame: for frames of a few KiB that cost
/// as much as the compression.
fn compress(content: &[u8]) -> Vec<u8> {
    thread_local! {
        // Scratch space for one compressed block, reused by every frame of the thread.
        static BLOCK: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(
            vec![0; lz4_flex::block::get_maximum_output_size(LZ4_BLOCK)]
        );
    }
    let mut out = Vec::with_capacity(content.len() / 2 + 64);
    out.extend_from_slice(&LZ4_MAGIC);
    let descriptor_at = out.len();
    // Version 1, independent blocks, content size and content checksum present.
    out.push(0b0110_1100);
    // Blocks of at most 64 KiB.
    out.push(0x40);
    out.extend_from_slice(&(content.len() as u64).to_le_bytes());
    let hc = (twox_hash::XxHash32::oneshot(0, &out[descriptor_at..]) >> 8) as u8;
    out.push(hc);
    BLOCK.with(|b| {
        let mut block = b.borrow_mut();
        for chunk in content.chunks(LZ4_BLOCK) {
            match lz4_flex::block::compress_into(chunk, &mut block) {
                Ok(n) if n < chunk.len() => {
                    out.extend_from_slice(&(n as u32).to_le_bytes());
                    out.extend_from_slice(&block[..n]);
                }
                // Incompressible (or, never expected, an error): the block goes in as is,
                // marked by the size's high bit.
                _ => {
                    out.extend_from_slice(&(chunk.len() as u32 | 1 << 31).to_le_bytes());
                    out.extend_from_slice(chunk);
                }
            }
        }
    });
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&twox_hash::XxHash32::oneshot(0, content).to_le_bytes());
    out
}

/// Largest LZ4 block written (the frame descriptor says 64 KiB).
const LZ4_BLOCK: usize = 64 * 1024;

/// The first four bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// The first four bytes of an LZ4 frame.
const LZ4_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

/// Decompresses and parses a stored body blob: a group (an array of bodies, in MessagePack or,
/// as written before, JSON) or, as written before groups, a single JSON body. The blob is an
/// LZ4 frame, a zstd frame (as written before LZ4) or raw JSON (marked by its `[` or `{`).
pub fn decode_bodies(bytes: &[u8]) -> Result<Vec<SpanBody>, StoreError> {
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::internal(format!("corrupt span body: {e}"));
    let owned;
    let content = match bytes.first() {
        Some(b'[' | b'{') => bytes,
        _ if bytes.starts_with(&LZ4_MAGIC) => {
            use std::io::Read;
            let mut out = Vec::with_capacity(bytes.len() * 3);
            lz4_flex::frame::FrameDecoder::new(bytes)
                .read_to_end(&mut out)
                .map_err(|e| corrupt(&e))?;
            owned = out;
            &owned[..]
        }
        _ if bytes.starts_with(&ZSTD_MAGIC) => {
            owned = zstd::stream::decode_all(bytes).map_err(|e| corrupt(&e))?;
            &owned[..]
        }
        _ => return Err(corrupt(&"neither an LZ4 nor a zstd frame")),
    };
    match content.first().copied() {
        Some(b'[') => serde_json::from_slice(content).map_err(|e| corrupt(&e)),
        Some(b'{') => serde_json::from_slice(content)
            .map(|b| vec![b])
            .map_err(|e| corrupt(&e)),
        // MessagePack arrays: fixarray, array 16, array 32.
        Some(0x90..=0x9f | 0xdc | MSGPACK_ARRAY32) => {
            rmp_serde::from_slice(content).map_err(|e| corrupt(&e))
        }
        _ => Err(corrupt(&"not an array of span bodies")),
    }
}

/// The body at `index` of a stored blob (see [`decode_bodies`]).
pub fn decode_body_at(bytes: &[u8], index: usize) -> Result<SpanBody, StoreError> {
    decode_bodies(bytes)?
        .into_iter()
        .nth(index)
        .ok_or_else(|| StoreError::internal(format!("corrupt span body: no body at index {index}")))
}

/// Decompresses and parses a stored single body (or the first of a group).
pub fn decode_body(bytes: &[u8]) -> Result<SpanBody, StoreError> {
    decode_body_at(bytes, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_model::normalize;
    use serde_json::json;

    #[test]
    fn body_round_trips_and_compresses() {
        let mut attributes = Map::new();
        attributes.insert("mlflow.spanType".into(), json!("LLM"));
        attributes.insert(
            "mlflow.spanInputs".into(),
            json!({"q": "hello ".repeat(100)}),
        );
        let derived = normalize::derive(&attributes);
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            parent_id: None,
            name: "root".into(),
            kind: 1,
            start_ns: 10,
            end_ns: 5,
            status: SpanStatus::Ok,
            status_message: String::new(),
            attributes: attributes.clone(),
            events: vec![],
            links: vec![],
            resource: Map::from_iter([("service.name".to_string(), json!("svc"))]),
            scope: None,
            project: "p".into(),
            derived,
        };
        let e = encode_span(span);
        let blob = e.body.group.clone();
        assert_eq!(e.end_ns, 10, "end is clamped to start");
        assert_eq!(e.columns.span_type, "LLM");
        assert_eq!(e.trace_metadata.get("service.name"), Some(&json!("svc")));
        assert!(blob.len() < 300, "compressed to {} bytes", blob.len());
        let body = decode_body(&blob).unwrap();
        assert_eq!(body.attributes, attributes);
        assert_eq!(body.kind, 1);
        assert!(decode_body(b"garbage").is_err());
    }

    fn span(trace: u8, id: u8, text: &str) -> Span {
        let mut attributes = Map::new();
        attributes.insert("mlflow.spanInputs".into(), json!({ "q": text }));
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            parent_id: None,
            name: format!("s{id}"),
            kind: 1,
            start_ns: 1,
            end_ns: 2,
            status: SpanStatus::Unset,
            status_message: String::new(),
            derived: normalize::derive(&attributes),
            attributes,
            events: vec![],
            links: vec![],
            resource: Map::new(),
            scope: None,
            project: "p".into(),
        }
    }

    #[test]
    fn spans_of_a_trace_share_one_group_and_keep_their_order() {
        let spans = vec![
            span(1, 1, "one"),
            span(2, 2, "two"),
            span(1, 3, "three"),
            span(2, 4, "four"),
            span(1, 5, "five"),
        ];
        let e = encode_spans(spans);
        let names: Vec<&str> = e.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["s1", "s2", "s3", "s4", "s5"]);
        assert_eq!(e[0].body.group_key(), e[2].body.group_key());
        assert_eq!(e[0].body.group_key(), e[4].body.group_key());
        assert_eq!(e[1].body.group_key(), e[3].body.group_key());
        assert_ne!(e[0].body.group_key(), e[1].body.group_key());
        assert_eq!(
            (e[0].body.index, e[2].body.index, e[4].body.index),
            (0, 1, 2)
        );
        for (s, text) in e.iter().zip(["one", "two", "three", "four", "five"]) {
            let body = decode_body_at(&s.body.group, s.body.index as usize).unwrap();
            assert_eq!(body.attributes["mlflow.spanInputs"]["q"], json!(text));
        }
        assert!(decode_body_at(&e[1].body.group, 2).is_err());
    }

    #[test]
    fn the_first_span_of_each_trace_carries_its_metadata() {
        let with_service = |trace, id| {
            let mut s = span(trace, id, "x");
            s.resource = Map::from_iter([("service.name".to_string(), json!("svc"))]);
            s
        };
        let e = encode_spans(vec![
            with_service(1, 1),
            with_service(2, 2),
            with_service(1, 3),
        ]);
        assert_eq!(e[0].trace_metadata.get("service.name"), Some(&json!("svc")));
        assert_eq!(e[1].trace_metadata.get("service.name"), Some(&json!("svc")));
        assert!(
            e[2].trace_metadata.is_empty(),
            "a trace's later spans carry none"
        );
        let body = decode_body_at(&e[2].body.group, e[2].body.index as usize).unwrap();
        assert_eq!(
            body.resource.get("service.name"),
            Some(&json!("svc")),
            "bodies keep it"
        );
    }

    #[test]
    fn big_traces_split_into_bounded_groups() {
        let spans: Vec<Span> = (0..150u8).map(|i| span(7, i + 1, "x")).collect();
        let e = encode_spans(spans);
        let groups: std::collections::HashSet<usize> =
            e.iter().map(|s| s.body.group_key()).collect();
        assert_eq!(groups.len(), 3, "150 spans in groups of at most 64");
        let last = &e[149];
        let body = decode_body_at(&last.body.group, last.body.index as usize).unwrap();
        assert_eq!(body.kind, 1);
    }

    #[test]
    fn frames_are_standard_lz4_frames_whatever_their_size() {
        use std::io::Read;
        let big: String = (0..200_000u32).map(|i| format!("{} ", i % 977)).collect();
        let random: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for input in [&b""[..], b"[]", big.as_bytes(), &random] {
            let frame = compress(input);
            let mut back = Vec::new();
            lz4_flex::frame::FrameDecoder::new(&frame[..])
                .read_to_end(&mut back)
                .expect("a valid LZ4 frame");
            assert_eq!(back, input);
        }
        let mut frame = compress(big.as_bytes());
        let n = frame.len();
        frame[n - 2] ^= 1;
        let mut back = Vec::new();
        assert!(
            lz4_flex::frame::FrameDecoder::new(&frame[..])
                .read_to_end(&mut back)
                .is_err(),
            "a wrong content checksum is detected"
        );
    }

    #[test]
    fn groups_are_lz4_frames_and_older_zstd_frames_still_read() {
        let e = encode_span(span(1, 1, "hello"));
        assert!(e.body.group.starts_with(&LZ4_MAGIC));
        let json = br#"[{"kind":2,"attributes":{"a":"zstd"}}]"#;
        let old = zstd::bulk::compress(json, 1).unwrap();
        let bodies = decode_bodies(&old).unwrap();
        assert_eq!(bodies[0].kind, 2);
        assert_eq!(bodies[0].attributes["a"], json!("zstd"));
    }

    #[test]
    fn every_kind_of_value_reads_back_from_messagepack() {
        let mut s = span(3, 1, "<script>alert(\"x\")</script> 退款 \u{1F600}");
        s.attributes.insert(
            "values".into(),
            json!({
                "null": null, "t": true, "f": false, "small": 7, "neg": -42,
                "big": u64::MAX, "min": i64::MIN, "float": 0.25, "whole_float": 3.0,
                "nested": [[1, "two", {"three": [3.5]}], {}],
                "empty": "", "quotes": "{\"question\": \"a\\\"b\"}"
            }),
        );
        s.events = vec![SpanEvent {
            name: "exception".into(),
            time_ns: u64::MAX - 1,
            attributes: Map::from_iter([("exception.message".to_string(), json!("boom"))]),
        }];
        s.links = vec![SpanLink {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([8; 8]),
            attributes: Map::new(),
        }];
        s.resource = Map::from_iter([("service.name".to_string(), json!("svc"))]);
        s.scope = Some(("lib".into(), "1.2".into()));
        s.kind = 3;
        let want = SpanBody {
            kind: s.kind,
            attributes: s.attributes.clone(),
            events: s.events.clone(),
            links: s.links.clone(),
            resource: s.resource.clone(),
            scope: s.scope.clone(),
        };
        let e = encode_spans(vec![s, span(3, 2, "second")]);
        let bodies = decode_bodies(&e[0].body.group).unwrap();
        assert_eq!(bodies.len(), 2);
        assert_eq!(
            bodies[0], want,
            "field for field, numbers keeping their kind"
        );
        assert_eq!(
            bodies[1].attributes["mlflow.spanInputs"]["q"],
            json!("second")
        );
        assert_eq!(bodies[1].scope, None);
    }

    #[test]
    fn groups_written_as_json_before_still_read() {
        let json = br#"[{"kind":2,"attributes":{"a":"json"}},{"kind":1,"scope":["l","1"]}]"#;
        let bodies = decode_bodies(&compress(json)).unwrap();
        assert_eq!(bodies[0].attributes["a"], json!("json"));
        assert_eq!(bodies[1].scope, Some(("l".into(), "1".into())));
        let single = decode_bodies(&compress(br#"{"kind":4}"#)).unwrap();
        assert_eq!(single[0].kind, 4);
        assert!(decode_bodies(&compress(b"\x01\x02")).is_err());
    }

    #[test]
    fn a_damaged_blob_is_an_error() {
        let e = encode_span(span(1, 1, "hello"));
        let mut blob = e.body.group.to_vec();
        let n = blob.len();
        blob[n - 6] ^= 0xff;
        assert!(decode_bodies(&blob).is_err());
        assert!(decode_bodies(&blob[..n / 2]).is_err());
        assert!(decode_bodies(&[0u8; 64]).is_err());
    }
}

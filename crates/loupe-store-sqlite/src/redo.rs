//! The redo log: span batches that were acknowledged but are not committed to SQLite yet.
//!
//! Every commit copies each page it touched into the WAL whole, and trace ids and starts arrive
//! in scattered order: at full ingest a commit per batch copied several pages per new trace, a
//! large share of the server's CPU with the checkpoints that copy them back (figures:
//! docs/performance.md, "SQLite writer and commit interval"). So the writer keeps one SQLite
//! transaction open across batches (see `writer.rs`) and commits it every
//! [`crate::writer::COMMIT_EVERY`], or at once when a read, or any other kind of write, needs
//! it. A hot index page is then copied once per commit instead of once per batch.
//!
//! A batch is acknowledged before its transaction commits, so each batch also goes here, as a
//! compact record of the rows it wrote and where its bodies are in the body log, and is flushed
//! to disk with the bodies before anyone is told it is stored. Records are numbered; the number
//! of the last batch a commit holds is written in the same commit (`loupe_meta.redo_applied`).
//! After a crash, opening the store applies again, in order, the records past that number
//! ([`replay`]). The log has two files: a commit sends the next batches to the other one, and
//! the file it leaves is emptied once that commit is on disk (the body log, then the WAL,
//! flushed), off the writer lock. Records that survive an emptying lost in a crash are
//! skipped by their number.
//!
//! Assessments take the same path: a batch of them is applied in the open transaction and
//! logged as a record of its own, so writing them joins the next commit instead of forcing one
//! (a commit per `put_assessments` copied every hot index page into the WAL each time).
//!
//! Record: a magic (`LRD1` for spans, `LRA1` for assessments), batch number (u64), payload
//! length (u32), xxHash32 of the payload, payload. A record that is cut short or fails its
//! checksum ends the log: it was never acknowledged.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_model::{Assessment, SpanId, SpanStatus, TraceId};
use loupe_store::{BodyPart, EncodedSpan, SpanColumns, StoreError};
use rusqlite::Connection;

use crate::bodylog::{LogReader, io_err};
use crate::db_err;
use crate::write;
use crate::writer::set_batch_mark;

/// File names of the redo log inside the data directory. Batches go to one file; a commit
/// switches to the other, and the first is emptied once that commit is on disk (see
/// `writer::PendingFlush`), away from the writer lock: emptying a file while batches are
/// appended to it could drop them.
pub const REDO_FILES: [&str; 2] = ["redo.log", "redo.1.log"];

/// What a record holds, told by its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// A span batch ([`put_trace`] per trace).
    Spans,
    /// A batch of assessments (JSON).
    Assessments,
}

impl RecordKind {
    fn magic(self) -> [u8; 4] {
        match self {
            RecordKind::Spans => *b"LRD1",
            RecordKind::Assessments => *b"LRA1",
        }
    }

    fn of_magic(magic: &[u8]) -> Option<RecordKind> {
        [RecordKind::Spans, RecordKind::Assessments]
            .into_iter()
            .find(|k| k.magic() == magic)
    }
}

/// A record: batch number, kind, payload.
pub(crate) type Record = (u64, RecordKind, Vec<u8>);
const HEADER: usize = 4 + 8 + 4 + 4;
/// Records larger than this are refused as corrupt (a batch holds at most ~20,000 spans).
const MAX_RECORD: usize = 1 << 30;

/// One of the log's two files.
struct RedoFile {
    path: PathBuf,
    file: Arc<File>,
    len: u64,
}

/// The appending side; owned by the writer (under its lock).
pub(crate) struct RedoLog {
    files: [RedoFile; 2],
    /// The file batches go to.
    active: usize,
    buf: Vec<u8>,
}

impl RedoLog {
    pub(crate) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let open = |name: &str| -> Result<RedoFile, StoreError> {
            let path = data_dir.join(name);
            let (file, len) = crate::bodylog::open_for_append(&path)?;
            Ok(RedoFile {
                path,
                file: Arc::new(file),
                len,
            })
        };
        Ok(Self {
            files: [open(REDO_FILES[0])?, open(REDO_FILES[1])?],
            active: 0,
            buf: Vec::new(),
        })
    }

    /// Appends batch `n` (one `write`). Not yet on disk: see [`RedoLog::file`].
    pub(crate) fn append(
        &mut self,
        n: u64,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        self.buf.clear();
        self.buf.extend_from_slice(&kind.magic());
        self.buf.extend_from_slice(&n.to_le_bytes());
        self.buf.extend_from_slice(
            &u32::try_from(payload.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        self.buf
            .extend_from_slice(&twox_hash::XxHash32::oneshot(0, payload).to_le_bytes());
        self.buf.extend_from_slice(payload);
        let f = &mut self.files[self.active];
        if let Err(e) = (&*f.file).write_all(&self.buf) {
            // Leave no torn record in front of the next one.
            let _ = f.file.set_len(f.len);
            return Err(io_err("cannot write", &f.path, e));
        }
        f.len += self.buf.len() as u64;
        Ok(())
    }

    /// The file batches go to, to flush outside the writer lock.
    pub(crate) fn file(&self) -> Arc<File> {
        self.files[self.active].file.clone()
    }

    /// Sends the next batches to the other file, which the caller has emptied (see
    /// [`empty`]); returns the file left, to empty once the commit that holds its batches is
    /// on disk.
    pub(crate) fn switch(&mut self) -> Result<Arc<File>, StoreError> {
        let left = self.files[self.active].file.clone();
        self.active ^= 1;
        let f = &mut self.files[self.active];
        f.len = f
            .file
            .metadata()
            .map_err(|e| io_err("cannot stat", &f.path, e))?
            .len();
        Ok(left)
    }

    /// Empties both files: call only once every record in them is committed and the WAL is on
    /// disk.
    pub(crate) fn clear(&mut self) -> Result<(), StoreError> {
        for f in &mut self.files {
            if f.len > 0 {
                empty(&f.file)?;
                f.len = 0;
            }
        }
        Ok(())
    }
}

/// Empties a file of the log (see [`RedoLog::switch`]).
pub(crate) fn empty(file: &File) -> Result<(), StoreError> {
    file.set_len(0)
        .map_err(|e| StoreError::io("cannot empty the redo log", &e))
}

/// The records of the log in `data_dir`, in batch order: each file's, up to the first one cut
/// short or corrupt.
pub(crate) fn read_records(data_dir: &Path) -> Result<Vec<Record>, StoreError> {
    let mut out = Vec::new();
    for name in REDO_FILES {
        read_file(&data_dir.join(name), &mut out)?;
    }
    out.sort_by_key(|(n, _, _)| *n);
    Ok(out)
}

fn read_file(path: &Path, out: &mut Vec<Record>) -> Result<(), StoreError> {
    let mut bytes = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .map_err(|e| io_err("cannot read", path, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("cannot open", path, e)),
    }
    records_in(&bytes, out);
    Ok(())
}

/// The records of one file's bytes, up to the first one cut short or corrupt.
pub(crate) fn records_in(bytes: &[u8], out: &mut Vec<Record>) {
    let mut at = 0usize;
    while bytes.len() - at >= HEADER {
        let h = &bytes[at..at + HEADER];
        let Some(kind) = RecordKind::of_magic(&h[..4]) else {
            break;
        };
        let n = u64::from_le_bytes(h[4..12].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(h[12..16].try_into().unwrap_or_default()) as usize;
        let sum = u32::from_le_bytes(h[16..20].try_into().unwrap_or_default());
        if len > MAX_RECORD || bytes.len() - at - HEADER < len {
            break;
        }
        let payload = &bytes[at + HEADER..at + HEADER + len];
        if twox_hash::XxHash32::oneshot(0, payload) != sum {
            break;
        }
        out.push((n, kind, payload.to_vec()));
        at += HEADER + len;
    }
}

/// Where a stored span's body is in the body log: position and length.
pub(crate) type BodyAt = (i64, i64);

/// Appends one trace of a batch to a record's payload: the trace id, the trace metadata (JSON,
/// as written to the row), and each span of the batch for it, in order, with where its body
/// went (`None` for a span that was already stored).
pub(crate) fn put_trace(
    out: &mut Vec<u8>,
    trace_id: TraceId,
    metadata: &str,
    spans: &[(&EncodedSpan, Option<BodyAt>)],
) {
    out.extend_from_slice(&trace_id.0);
    put_str(out, metadata);
    put_u64(out, spans.len() as u64);
    for (s, body) in spans {
        out.extend_from_slice(&s.span_id.0);
        put_opt_u64(out, s.parent_id.map(|p| u64::from_le_bytes(p.0)));
        put_str(out, &s.name);
        let c = &s.columns;
        put_str(out, &c.span_type);
        put_u64(out, s.start_ns);
        put_u64(out, s.end_ns);
        out.push(s.status.code() as u8);
        put_str(out, &s.status_message);
        put_opt_str(out, c.model.as_deref());
        put_opt_u64(out, c.input_tokens);
        put_opt_u64(out, c.output_tokens);
        put_opt_u64(out, c.total_tokens);
        put_opt_str(out, c.provider.as_deref());
        put_opt_u64(out, c.cache_read_tokens);
        put_opt_u64(out, c.cache_write_tokens);
        put_opt_u64(out, c.reasoning_tokens);
        put_opt_u64(out, c.cost_usd.map(f64::to_bits));
        put_opt_str(out, s.session_id.as_deref());
        put_opt_str(out, s.user_id.as_deref());
        put_str(out, &s.project);
        put_u64(out, u64::from(s.body.index));
        match body {
            Some((pos, len)) => {
                out.push(1);
                put_u64(out, *pos as u64);
                put_u64(out, *len as u64);
            }
            None => out.push(0),
        }
    }
}

/// A span read back from a record, and where its body is.
pub(crate) struct ReplaySpan {
    pub(crate) span: EncodedSpan,
    pub(crate) body: Option<BodyAt>,
}

/// Reads a record's payload back: the batch's spans, trace by trace, in the order written.
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<ReplaySpan>, StoreError> {
    let mut r = Reader { b: payload, at: 0 };
    let mut out = Vec::new();
    while r.at < payload.len() {
        let trace_id = TraceId(r.array()?);
        let metadata: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r.string()?).map_err(corrupt)?;
        let n = r.u64()?;
        for i in 0..n {
            let span_id = SpanId(r.array()?);
            let parent_id = r.opt_u64()?.map(|p| SpanId(p.to_le_bytes()));
            let name = r.string()?;
            // The record's field order, which the columns' struct order does not follow.
            let span_type = r.string()?;
            let start_ns = r.u64()?;
            let end_ns = r.u64()?;
            let status = SpanStatus::from_code(i64::from(r.byte()?));
            let status_message = r.string()?;
            let model = r.opt_string()?;
            let input_tokens = r.opt_u64()?;
            let output_tokens = r.opt_u64()?;
            let total_tokens = r.opt_u64()?;
            let provider = r.opt_string()?;
            let columns = SpanColumns {
                span_type,
                model,
                provider,
                input_tokens,
                output_tokens,
                total_tokens,
                cache_read_tokens: r.opt_u64()?,
                cache_write_tokens: r.opt_u64()?,
                reasoning_tokens: r.opt_u64()?,
                cost_usd: r.opt_u64()?.map(f64::from_bits),
            };
            let session_id = r.opt_string()?;
            let user_id = r.opt_string()?;
            let project = r.string()?;
            let index = u32::try_from(r.u64()?).map_err(corrupt)?;
            let body = match r.byte()? {
                0 => None,
                _ => Some((r.u64()? as i64, r.u64()? as i64)),
            };
            out.push(ReplaySpan {
                span: EncodedSpan {
                    trace_id,
                    span_id,
                    parent_id,
                    name,
                    start_ns,
                    end_ns,
                    status,
                    status_message,
                    columns,
                    session_id,
                    user_id,
                    project,
                    // Only the first span of a trace in a batch gives the trace its metadata.
                    trace_metadata: if i == 0 {
                        metadata.clone()
                    } else {
                        serde_json::Map::new()
                    },
                    body: BodyPart {
                        group: Arc::new(Vec::new()),
                        index,
                    },
                },
                body,
            });
        }
    }
    Ok(out)
}

/// Applies again the redo log's batches that no commit holds, in one transaction; returns the
/// number of the last batch the database now holds. A batch whose bodies are not whole on
/// disk, and every batch after it, was never acknowledged: replay stops there.
pub(crate) fn replay(
    conn: &Connection,
    bodies: &LogReader,
    data_dir: &Path,
) -> Result<u64, StoreError> {
    let mark: i64 = conn
        .query_row(
            "SELECT value FROM loupe_meta WHERE key = 'redo_applied'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let mut last = u64::try_from(mark).unwrap_or(0);
    let records: Vec<Record> = read_records(data_dir)?
        .into_iter()
        .filter(|(n, _, _)| *n > last)
        .collect();
    if records.is_empty() {
        return Ok(last);
    }
    let started = std::time::Instant::now();
    let mut spans_in = 0usize;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)?;
    for (n, kind, payload) in records {
        if n != last + 1 {
            tracing::warn!(
                expected = last + 1,
                found = n,
                "redo log: a batch is missing; replay stops"
            );
            break;
        }
        conn.execute_batch("SAVEPOINT replay").map_err(db_err)?;
        let applied = match kind {
            RecordKind::Spans => replay_spans(conn, bodies, &payload),
            RecordKind::Assessments => decode_assessments(&payload)
                .map_err(Replay::Unreadable)
                .and_then(|a| {
                    crate::annotate::apply_assessments(conn, &a)
                        .map(|()| 0)
                        .map_err(Replay::Failed)
                }),
        }
        .and_then(|spans| {
            set_batch_mark(conn, n)
                .map(|()| spans)
                .map_err(Replay::Failed)
        });
        match applied {
            Ok(spans) => {
                conn.execute_batch("RELEASE replay").map_err(db_err)?;
                spans_in += spans;
                last = n;
            }
            // A full disk stops the whole replay, to be tried again: what it could not apply
            // is still needed, and batches after it must not take its numbers.
            Err(Replay::Failed(e)) if e.kind == loupe_store::ErrorKind::StorageFull => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            Err(stop) => {
                conn.execute_batch("ROLLBACK TO replay; RELEASE replay")
                    .map_err(db_err)?;
                match stop {
                    Replay::Unreadable(e) => {
                        tracing::warn!(batch = n, error = %e, "redo log: unreadable batch; replay stops")
                    }
                    Replay::NotWhole => tracing::warn!(
                        batch = n,
                        "redo log: a body of the batch is not whole on disk (never acknowledged); replay stops"
                    ),
                    Replay::Failed(e) => {
                        tracing::error!(batch = n, error = %e, "redo log: replay failed; replay stops")
                    }
                }
                break;
            }
        }
    }
    conn.execute_batch("COMMIT").map_err(db_err)?;
    tracing::info!(batches = last.saturating_sub(u64::try_from(mark).unwrap_or(0)), spans = spans_in, took = ?started.elapsed(), "redo log replayed");
    Ok(last)
}

/// Why replay stops at a record.
enum Replay {
    Unreadable(StoreError),
    NotWhole,
    Failed(StoreError),
}

/// Applies a span batch's record again; returns its spans.
fn replay_spans(conn: &Connection, bodies: &LogReader, payload: &[u8]) -> Result<usize, Replay> {
    let decoded = decode(payload).map_err(Replay::Unreadable)?;
    if !bodies_whole(bodies, &decoded) {
        return Err(Replay::NotWhole);
    }
    let (rows, at): (Vec<EncodedSpan>, Vec<Option<BodyAt>>) =
        decoded.into_iter().map(|r| (r.span, r.body)).unzip();
    write::apply_spans(
        conn,
        write::Place::Replay,
        &rows,
        Some(&at),
        &mut Vec::new(),
        &mut 0,
    )
    .map_err(Replay::Failed)?;
    Ok(rows.len())
}

/// A record of assessments: their JSON.
pub(crate) fn encode_assessments(assessments: &[Assessment]) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(assessments)
        .map_err(|e| StoreError::internal(format!("cannot encode assessments: {e}")))
}

/// Reads a record of assessments back.
pub(crate) fn decode_assessments(payload: &[u8]) -> Result<Vec<Assessment>, StoreError> {
    serde_json::from_slice(payload).map_err(corrupt)
}

/// Whether every body group a replayed batch points at reads back whole from the body log
/// (each group checked once).
fn bodies_whole(bodies: &LogReader, decoded: &[ReplaySpan]) -> bool {
    let mut checked = std::collections::HashSet::new();
    decoded.iter().filter_map(|r| r.body).all(|(pos, len)| {
        !checked.insert(pos)
            || bodies
                .read(pos, len)
                .and_then(|b| loupe_store::decode_bodies(&b))
                .is_ok()
    })
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::internal(format!("corrupt redo record: {e}"))
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_u64(out: &mut Vec<u8>, v: Option<u64>) {
    match v {
        Some(v) => {
            out.push(1);
            put_u64(out, v);
        }
        None => out.push(0),
    }
}

fn put_opt_str(out: &mut Vec<u8>, v: Option<&str>) {
    match v {
        Some(v) => {
            out.push(1);
            put_str(out, v);
        }
        None => out.push(0),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], StoreError> {
        if self.b.len() - self.at < n {
            return Err(corrupt("cut short"));
        }
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        self.take(N)?.try_into().map_err(corrupt)
    }

    fn byte(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let n = usize::try_from(self.u64()?).map_err(corrupt)?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(corrupt)
    }

    fn opt_u64(&mut self) -> Result<Option<u64>, StoreError> {
        match self.byte()? {
            0 => Ok(None),
            _ => self.u64().map(Some),
        }
    }

    fn opt_string(&mut self) -> Result<Option<String>, StoreError> {
        match self.byte()? {
            0 => Ok(None),
            _ => self.string().map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loupe_store_conformance::fixtures::span;

    #[test]
    fn a_record_reads_back_field_for_field() {
        let mut full = span(9, 2, Some(1), 10, 20, SpanStatus::Error, Some((300, 40)));
        full.status_message = "boom — ✗".into();
        full.columns.provider = Some("openai".into());
        full.columns.cache_read_tokens = Some(5);
        full.columns.cache_write_tokens = Some(6);
        full.columns.reasoning_tokens = Some(7);
        full.columns.cost_usd = Some(0.012_5);
        full.session_id = Some("s-1".into());
        full.user_id = Some("u-1".into());
        full.body.index = 3;
        let bare = span(9, 1, None, 5, 25, SpanStatus::Unset, None);
        let mut payload = Vec::new();
        put_trace(
            &mut payload,
            TraceId([9; 16]),
            r#"{"service.name":"svc"}"#,
            &[(&bare, Some((1 << 40 | 77, 123))), (&full, None)],
        );
        let back = decode(&payload).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].body, Some((1 << 40 | 77, 123)));
        assert_eq!(back[1].body, None);
        assert_eq!(
            back[0].span.trace_metadata.get("service.name"),
            Some(&serde_json::json!("svc")),
            "the first span of the trace carries its metadata"
        );
        for (a, b) in [(&bare, &back[0].span), (&full, &back[1].span)] {
            assert_eq!(
                format!("{:?}", (a.trace_id, a.span_id, a.parent_id)),
                format!("{:?}", (b.trace_id, b.span_id, b.parent_id))
            );
            assert_eq!(
                (&a.name, a.start_ns, a.end_ns),
                (&b.name, b.start_ns, b.end_ns)
            );
            assert_eq!((a.status, &a.status_message), (b.status, &b.status_message));
            assert_eq!(a.columns, b.columns);
            assert_eq!(
                (&a.session_id, &a.user_id, &a.project, a.body.index),
                (&b.session_id, &b.user_id, &b.project, b.body.index)
            );
        }
        assert!(
            decode(&payload[..payload.len() - 3]).is_err(),
            "a payload cut short is an error"
        );
    }
}

//! Span bodies in append-only segment files beside the database.
//!
//! A span's body (attributes, events, resource …; compressed per trace group, see
//! [`loupe_store::encode_spans`]) is most of what a span weighs. Kept in SQLite it was written
//! three times (WAL, checkpoint into the database, B-tree page splits), and its checkpoint copy
//! alone was a large share of the server's CPU under load (figures: docs/performance.md, "Body
//! storage and encoding"). Here each batch's new bodies are appended to the current segment
//! with one `write`, before the batch's redo record (see `redo.rs`), and the segment is flushed
//! to disk with the redo log before the batch is acknowledged. A span row holds the body's
//! position (segment and offset packed in one integer), length and index in its group.
//!
//! Every blob is an LZ4 frame (zstd before) with a content checksum: a body torn by a power cut
//! (only possible for a batch that was never acknowledged) reads as an error, never as wrong
//! data. Space of deleted spans is not reclaimed yet (a compaction that rewrites mostly-dead
//! segments would).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use loupe_store::StoreError;

/// Directory of the segments, inside the data directory.
pub const BODIES_DIR: &str = "bodies";

/// A segment is closed and a new one started past this size.
const SEGMENT_BYTES: u64 = 1 << 30;

/// Bits of a position that hold the offset; the segment number sits above them.
const OFFSET_BITS: u32 = 40;

/// The error of a failed operation on a file of the store (see [`StoreError::io`]).
pub(crate) fn io_err(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(format_args!("{what} {}", path.display()), &e)
}

fn segment_path(dir: &Path, seg: u64) -> PathBuf {
    dir.join(format!("{seg:08}.log"))
}

/// Packs a segment number and an offset into one position.
pub(crate) fn pack(seg: u64, offset: u64) -> i64 {
    i64::try_from((seg << OFFSET_BITS) | offset).unwrap_or(i64::MAX)
}

fn unpack(pos: i64) -> (u64, u64) {
    let pos = u64::try_from(pos).unwrap_or(0);
    (pos >> OFFSET_BITS, pos & ((1 << OFFSET_BITS) - 1))
}

/// The appending side; owned by the writer (under its lock).
pub(crate) struct LogWriter {
    dir: PathBuf,
    seg: u64,
    file: Arc<File>,
    len: u64,
    /// Bodies of the batch being written, appended at [`LogWriter::flush_pending`].
    pending: Vec<u8>,
}

impl LogWriter {
    /// Opens the newest segment for appending (creating the first one).
    pub(crate) fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join(BODIES_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        let newest = std::fs::read_dir(&dir)
            .map_err(|e| io_err("cannot list", &dir, e))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".log")?.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(1);
        let (file, len) = open_append(&dir, newest)?;
        Ok(Self {
            dir,
            seg: newest,
            file: Arc::new(file),
            len,
            pending: Vec::with_capacity(1 << 20),
        })
    }

    /// Starts a batch: moves to a new segment when the current one is full. The old segment is
    /// flushed first, because the batch's flush only covers the segment it wrote to.
    pub(crate) fn begin(&mut self) -> Result<(), StoreError> {
        self.pending.clear();
        if self.len < SEGMENT_BYTES {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.seg);
        self.file
            .sync_data()
            .map_err(|e| io_err("cannot flush", &path, e))?;
        let (file, len) = open_append(&self.dir, self.seg + 1)?;
        self.seg += 1;
        self.file = Arc::new(file);
        self.len = len;
        Ok(())
    }

    /// The position the next appended blob gets.
    pub(crate) fn next_position(&self) -> i64 {
        pack(self.seg, self.len + self.pending.len() as u64)
    }

    /// Where `blob` will be once the batch is flushed; queues it.
    pub(crate) fn append(&mut self, blob: &[u8]) -> i64 {
        let pos = pack(self.seg, self.len + self.pending.len() as u64);
        self.pending.extend_from_slice(blob);
        pos
    }

    /// Writes the batch's bodies (one `write`), before its transaction commits, so a committed
    /// row never points past what the file holds. Not yet flushed to the disk: see
    /// [`LogWriter::file`].
    pub(crate) fn flush_pending(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.seg);
        let mut f: &File = &self.file;
        if let Err(e) = f.write_all(&self.pending) {
            // Leave the file as it was, so positions stay right for the next batch.
            let _ = self.file.set_len(self.len);
            self.pending.clear();
            return Err(io_err("cannot write", &path, e));
        }
        self.len += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// The current segment, to flush outside the writer lock.
    pub(crate) fn file(&self) -> Arc<File> {
        self.file.clone()
    }
}

fn open_append(dir: &Path, seg: u64) -> Result<(File, u64), StoreError> {
    open_for_append(&segment_path(dir, seg))
}

/// Opens (creating) a file to append to, and its length.
pub(crate) fn open_for_append(path: &Path) -> Result<(File, u64), StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
        .map_err(|e| io_err("cannot open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| io_err("cannot stat", path, e))?
        .len();
    Ok((file, len))
}

/// The reading side: positioned reads through cached read-only handles, from any thread.
pub(crate) struct LogReader {
    dir: PathBuf,
    files: Mutex<HashMap<u64, Arc<File>>>,
}

/// Blobs bigger than this are refused as corrupt (a group is cut at ~256 KiB of serialized
/// bodies, or holds one larger span).
const MAX_BLOB: i64 = 64 << 20;

impl LogReader {
    pub(crate) fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join(BODIES_DIR),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the blob at `pos`, `len` bytes long.
    pub(crate) fn read(&self, pos: i64, len: i64) -> Result<Vec<u8>, StoreError> {
        if !(0..=MAX_BLOB).contains(&len) {
            return Err(StoreError::internal(format!(
                "corrupt span body reference: length {len}"
            )));
        }
        let (seg, offset) = unpack(pos);
        let file = self.file(seg)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        file.read_exact_at(&mut buf, offset).map_err(|e| {
            StoreError::internal(format!(
                "cannot read span body at {}:{offset}: {e}",
                segment_path(&self.dir, seg).display()
            ))
        })?;
        Ok(buf)
    }

    fn file(&self, seg: u64) -> Result<Arc<File>, StoreError> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| StoreError::internal("body log handles poisoned"))?;
        if let Some(f) = files.get(&seg) {
            return Ok(f.clone());
        }
        let path = segment_path(&self.dir, seg);
        let f =
            Arc::new(File::open(&path).map_err(|e| {
                StoreError::internal(format!("cannot open {}: {e}", path.display()))
            })?);
        files.insert(seg, f.clone());
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_pack_and_unpack() {
        assert_eq!(unpack(pack(3, 12_345)), (3, 12_345));
        assert_eq!(
            unpack(pack(1, (1 << OFFSET_BITS) - 1)),
            (1, (1 << OFFSET_BITS) - 1)
        );
    }

    #[test]
    fn appends_read_back_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.begin().unwrap();
        let a = w.append(b"hello");
        let b = w.append(b"world!");
        w.flush_pending().unwrap();
        let r = LogReader::new(dir.path());
        assert_eq!(r.read(a, 5).unwrap(), b"hello");
        assert_eq!(r.read(b, 6).unwrap(), b"world!");
        drop(w);
        let mut w = LogWriter::open(dir.path()).unwrap();
        w.begin().unwrap();
        let c = w.append(b"again");
        w.flush_pending().unwrap();
        assert_eq!(unpack(c), (1, 11));
        assert_eq!(r.read(c, 5).unwrap(), b"again");
        assert!(r.read(c, 500).is_err(), "reading past the end is an error");
        assert!(r.read(c, -1).is_err());
    }
}

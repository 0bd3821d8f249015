//! A disk that fills up (a small ext4 filesystem on a loop device): writes are refused with a
//! clear, retryable error, nothing acknowledged is lost or damaged, and ingest resumes once
//! space is freed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::*;

/// A small ext4 filesystem mounted from an image file; unmounted on drop.
struct LoopMount {
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl LoopMount {
    /// Mounts a `mb`-megabyte filesystem, or says why it cannot (not root, no loop devices).
    fn new(mb: u64) -> Result<LoopMount, String> {
        let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
        let image = tmp.path().join("disk.img");
        let dir = tmp.path().join("mnt");
        std::fs::create_dir(&dir).map_err(|e| e.to_string())?;
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mb << 20))
            .map_err(|e| e.to_string())?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        // No blocks reserved for root: the test runs as root and must see the disk fill.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&image))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&dir))?;
        Ok(LoopMount { dir, _tmp: tmp })
    }

    fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A trace of 5 spans whose inputs are `bytes` of text that does not compress.
fn bulky_trace(t: u32, bytes: usize) -> Vec<Span> {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&t.to_be_bytes());
    id[15] = 1;
    let mut state = u64::from(t).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (1..=5u8)
        .map(|i| {
            let mut s = pspan(id, i, (i > 1).then_some(1), 0, 10);
            let text: String = (0..bytes)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'a' + (state % 26) as u8)
                })
                .collect();
            s.attributes.push(KeyValue {
                key: "input.value".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(text)),
                }),
                ..Default::default()
            });
            s
        })
        .collect()
}

fn trace_hex(t: u32) -> String {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&t.to_be_bytes());
    id[15] = 1;
    hex(&id)
}

/// Sends traces `from..` (20 per request, at most `requests`) until one is refused; returns
/// the acknowledged ones and the refusal, if there was one.
async fn send_until_refused(
    url: &str,
    from: u32,
    requests: usize,
) -> (Vec<u32>, Option<reqwest::Response>) {
    let mut acked = Vec::new();
    let mut t = from;
    for _ in 0..requests {
        let traces: Vec<u32> = (t..t + 20).collect();
        t += 20;
        let spans = traces.iter().flat_map(|&t| bulky_trace(t, 2_048)).collect();
        let resp = post_pb(url, &request(spans)).await;
        if resp.status() != 200 {
            return (acked, Some(resp));
        }
        acked.extend(traces);
    }
    (acked, None)
}

async fn span_count(url: &str, t: u32) -> Option<u64> {
    let resp = reqwest::get(format!("{url}/api/v1/traces/{}", trace_hex(t)))
        .await
        .unwrap();
    if resp.status() == 404 {
        return None;
    }
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["trace"]["span_count"].as_u64()
}

fn integrity(data: &Path) -> String {
    let c = rusqlite::Connection::open(data.join("loupe.db")).unwrap();
    c.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_ingest_resumes_when_space_is_freed() {
    let mount = match LoopMount::new(96) {
        Ok(m) => m,
        Err(why) => {
            // Needs root and a loop device (CI has both); say so rather than pass silently.
            eprintln!("NOTE: disk-full test not run: cannot mount a small filesystem: {why}");
            return;
        }
    };
    let data = mount.dir.join("data");
    let server = ChildServer::start(&data).await;
    // One request committed before the disk fills (the group commit is timed, so wait for it):
    // what must stay readable while it is full.
    let (committed, first) = send_until_refused(&server.url, 1, 1).await;
    assert!(first.is_none(), "the empty disk took the first request");
    for _ in 0..100 {
        if span_count(&server.url, committed[0]).await == Some(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(span_count(&server.url, committed[0]).await, Some(5));
    // Leave a little room, so that some traces are stored before the disk fills.
    let ballast = mount.dir.join("ballast");
    let keep = 12u64 << 20;
    let fill = mount.free_bytes().saturating_sub(keep);
    std::fs::File::create(&ballast)
        .and_then(|f| f.set_len(0).map(|()| f))
        .and_then(|f| {
            use std::io::Write;
            let chunk = vec![0x5au8; 1 << 20];
            let mut f = std::io::BufWriter::new(f);
            for _ in 0..fill >> 20 {
                f.write_all(&chunk)?;
            }
            f.flush()?;
            f.get_ref().sync_all()
        })
        .unwrap();

    let (mut acked, refused) = send_until_refused(&server.url, 21, 2_000).await;
    let refused = refused.expect("the disk never filled");
    assert!(!acked.is_empty(), "some traces fit before the disk filled");
    acked.splice(0..0, committed);
    assert_eq!(refused.status(), 503, "a full disk is a retryable refusal");
    assert!(refused.headers().contains_key("retry-after"));
    let st = rpc_status(&refused.bytes().await.unwrap());
    assert_eq!(st.code, 14, "UNAVAILABLE");
    assert!(
        st.message.contains("disk is full"),
        "the client is told why: {}",
        st.message
    );

    // The server still answers, and reads what it committed before the disk filled. Batches
    // acknowledged since the last commit are safe in the redo log but cannot be committed
    // until there is room again; they become visible then (checked below).
    let health = reqwest::get(format!("{}/healthz", server.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(span_count(&server.url, acked[0]).await, Some(5));

    // Space freed: ingest resumes.
    std::fs::remove_file(&ballast).unwrap();
    let next = acked.last().unwrap() + 1_000;
    let mut resumed = None;
    for attempt in 0..50u32 {
        let t = next + attempt * 20;
        let spans = (t..t + 20).flat_map(|t| bulky_trace(t, 2_048)).collect();
        if post_pb(&server.url, &request(spans)).await.status() == 200 {
            resumed = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let resumed = resumed.expect("ingest resumes once space is freed");
    assert_eq!(span_count(&server.url, resumed).await, Some(5));
    for &t in &acked {
        assert_eq!(span_count(&server.url, t).await, Some(5), "trace {t}");
    }

    // A clean stop and a restart: everything acknowledged is there, whole, and the database
    // passes SQLite's integrity check.
    signal(server.pid(), "TERM");
    let mut server = server;
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), server.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(integrity(&data), "ok");
    let server = ChildServer::start(&data).await;
    for &t in &acked {
        assert_eq!(span_count(&server.url, t).await, Some(5), "trace {t}");
    }
    assert_eq!(span_count(&server.url, resumed).await, Some(5));
    drop(server);
}

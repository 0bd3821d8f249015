//! A tiny HTTP endpoint for the exporter tests.

#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An endpoint answering with the given statuses in turn (then 200), counting requests; with
/// `stall`, it accepts connections but never answers.
pub fn endpoint_for_tests(statuses: Vec<u16>, stall: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(Mutex::new(statuses));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (queue, counter) = (queue.clone(), counter.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut out = stream;
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    if stall {
                        std::thread::sleep(Duration::from_secs(3600));
                    }
                    let status = {
                        let mut q = queue.lock().unwrap();
                        if q.is_empty() { 200 } else { q.remove(0) }
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n"
                    );
                    if out.write_all(reply.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

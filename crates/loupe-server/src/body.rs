//! Bounded request bodies: a size cap on the wire and another on the decompressed bytes.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};

/// Why a body could not be read.
#[derive(Debug)]
pub struct BodyError {
    /// The status to answer.
    pub status: StatusCode,
    /// What happened.
    pub message: String,
}

fn too_large(limit: usize, what: &str) -> BodyError {
    BodyError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!("request body {what} exceeds the limit of {limit} bytes"),
    }
}

/// The body's length as its `Content-Length` declares it, if it does.
pub fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads the whole body (chunked or not), refusing more than `limit` bytes, then undoes any
/// `Content-Encoding` (gzip, deflate), refusing output larger than `limit` too.
pub async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    if declared_length(headers).is_some_and(|n| n > limit) {
        return Err(too_large(limit, "size"));
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
        .unwrap_or_default();
    if !matches!(
        encoding.as_str(),
        "" | "identity" | "gzip" | "x-gzip" | "deflate"
    ) {
        return Err(BodyError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "unsupported Content-Encoding {encoding:?}: use gzip, deflate or none"
            ),
        });
    }
    let raw = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large(limit, "size")
            } else {
                BodyError {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("failed to read the request body: {e}"),
                }
            }
        })?
        .to_bytes();
    match encoding.as_str() {
        "gzip" | "x-gzip" => inflate(flate2::read::MultiGzDecoder::new(&raw[..]), limit, "gzip"),
        "deflate" => inflate(flate2::read::ZlibDecoder::new(&raw[..]), limit, "deflate"),
        _ => Ok(raw),
    }
}

/// Decompresses at most `limit` bytes: a small bomb never becomes a big allocation.
pub fn inflate(reader: impl Read, limit: usize, what: &str) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    let mut capped = reader.take(limit as u64 + 1);
    capped.read_to_end(&mut out).map_err(|e| BodyError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid {what} body: {e}"),
    })?;
    if out.len() > limit {
        return Err(too_large(limit, "after decompression"));
    }
    Ok(Bytes::from(out))
}

/// Reads and drops up to `limit` bytes of a body that is refused unread, so that the client,
/// still sending it, gets the answer instead of a reset connection. Holds one frame at a time.
pub async fn discard(body: Body, limit: usize) {
    let mut body = Limited::new(body, limit);
    while let Some(Ok(_)) = body.frame().await {}
}

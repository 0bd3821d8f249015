//! Errors → responses, in one place per protocol.
//!
//! The JSON API answers `{"error": {"code": ..., "message": ...}}`. OTLP answers a
//! `google.rpc.Status` in the request's own encoding, as the OTLP/HTTP specification asks; its
//! JSON form also carries the `error` object, so every JSON error Loupe sends has that shape.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use loupe_ingest::{Encoding, IngestError};
use loupe_store::{ErrorKind, StoreError};
use prost::Message;
use serde_json::json;

/// An error of the JSON API.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `NOT_FOUND`.
    pub code: &'static str,
    /// What went wrong, for a human.
    pub message: String,
}

impl ApiError {
    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_ARGUMENT",
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            message: message.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind {
            ErrorKind::InvalidInput => Self::bad_request(e.message),
            ErrorKind::Unavailable => Self {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: "UNAVAILABLE",
                message: e.message,
            },
            _ => {
                tracing::error!(error = %e, "store error");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "INTERNAL",
                    message: "internal error; see the server log".into(),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// `google.rpc.Status`, the body OTLP/HTTP requires on errors.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Message.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error of the OTLP/HTTP endpoint.
#[derive(Debug)]
pub struct OtlpError {
    /// HTTP status.
    pub status: StatusCode,
    /// Message.
    pub message: String,
    /// Encoding of the response body.
    pub encoding: Encoding,
    /// Seconds to wait before a retry, for 429/503.
    pub retry_after: Option<u32>,
}

impl OtlpError {
    /// An error with no retry hint.
    pub fn new(status: StatusCode, message: impl Into<String>, encoding: Encoding) -> Self {
        Self {
            status,
            message: message.into(),
            encoding,
            retry_after: None,
        }
    }

    /// Maps an ingest failure, keeping its class.
    pub fn from_ingest(e: IngestError, encoding: Encoding, retry_after: u32) -> Self {
        let status = match &e {
            IngestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            IngestError::Overloaded | IngestError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Store(s) if s.kind == ErrorKind::Unavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::Store(s) => {
                tracing::error!(error = %s, "ingest write failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Self {
            status,
            message: e.to_string(),
            encoding,
            retry_after: e.is_retryable().then_some(retry_after),
        }
    }

    fn grpc_code(&self) -> i32 {
        match self.status {
            StatusCode::BAD_REQUEST => 3,            // INVALID_ARGUMENT
            StatusCode::PAYLOAD_TOO_LARGE => 8,      // RESOURCE_EXHAUSTED
            StatusCode::UNSUPPORTED_MEDIA_TYPE => 3, // INVALID_ARGUMENT
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => 14, // UNAVAILABLE
            _ => 13,                                 // INTERNAL
        }
    }

    fn code_name(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "INVALID_ARGUMENT",
            StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS => "UNAVAILABLE",
            _ => "INTERNAL",
        }
    }
}

impl IntoResponse for OtlpError {
    fn into_response(self) -> Response {
        let mut resp = match self.encoding {
            Encoding::Protobuf => {
                let body = RpcStatus {
                    code: self.grpc_code(),
                    message: self.message.clone(),
                }
                .encode_to_vec();
                (
                    self.status,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    body,
                )
                    .into_response()
            }
            Encoding::Json => {
                let body = json!({
                    "code": self.grpc_code(),
                    "message": self.message,
                    "error": {"code": self.code_name(), "message": self.message},
                });
                (self.status, axum::Json(body)).into_response()
            }
        };
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

//! Errors → responses, in one place per protocol.
//!
//! [`Failure`] is what a store or ingest error means to a client, decided once here; each
//! protocol then has one table from it to its own status: the JSON API (`ApiError`), OTLP/HTTP
//! (`OtlpError`), gRPC (`grpc::to_status`), MLflow (`mlflow::errors`) and the UI
//! (`ui::failure_page`). No client ever sees an internal message: an internal failure is logged
//! with an error id, and the client gets only that id.
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

/// What a failure means to a client, whatever the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The request is wrong; the message says how (it was written for the client).
    BadRequest(String),
    /// What the request names does not exist.
    NotFound(String),
    /// What the request would create exists already.
    AlreadyExists(String),
    /// Retry later: the queue is full, the store is busy, or the server is stopping.
    Unavailable(&'static str),
    /// A bug or a broken disk: logged under this id, which is all the client sees.
    Internal(String),
}

impl Failure {
    /// Logs an internal error under a new id.
    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        let id = crate::util::random_hex()[..16].to_string();
        tracing::error!(error_id = %id, error = %e, "internal error");
        Failure::Internal(id)
    }

    /// The message a client sees.
    pub fn message(&self) -> String {
        match self {
            Failure::BadRequest(m) | Failure::NotFound(m) | Failure::AlreadyExists(m) => m.clone(),
            Failure::Unavailable(m) => (*m).to_string(),
            Failure::Internal(id) => {
                format!("internal error {id}; the server log has the details")
            }
        }
    }

    /// Whether retrying the same request later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Failure::Unavailable(_))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e.kind {
            ErrorKind::InvalidInput => Failure::BadRequest(e.message),
            ErrorKind::NotFound => Failure::NotFound(e.message),
            ErrorKind::AlreadyExists => Failure::AlreadyExists(e.message),
            ErrorKind::Unavailable | ErrorKind::Conflict => {
                tracing::warn!(error = %e, "store unavailable");
                Failure::Unavailable("the store is busy; retry later")
            }
            ErrorKind::StorageFull => {
                tracing::error!(error = %e, "the disk is full");
                Failure::Unavailable("the server's disk is full; retry once space is freed")
            }
            _ => Failure::internal(&e),
        }
    }
}

impl From<IngestError> for Failure {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::BadRequest(m) => Failure::BadRequest(m),
            IngestError::Overloaded => Failure::Unavailable("the write queue is full; retry later"),
            IngestError::ShuttingDown => Failure::Unavailable("the server is shutting down"),
            IngestError::Store(s) => s.into(),
        }
    }
}

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

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let (status, code) = match &f {
            Failure::BadRequest(_) => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
            Failure::NotFound(_) => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Failure::AlreadyExists(_) => (StatusCode::CONFLICT, "ALREADY_EXISTS"),
            Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Failure::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        };
        Self {
            status,
            code,
            message: f.message(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Failure::from(e).into()
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        Failure::from(e).into()
    }
}

/// The body of every JSON API error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// `INVALID_ARGUMENT`, `INVALID_QUERY`, `NOT_FOUND`, `ALREADY_EXISTS`, `UNAVAILABLE`,
    /// `PAYLOAD_TOO_LARGE` or `INTERNAL`.
    pub code: &'static str,
    /// For people; an internal error names only its id, which the server log also prints.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
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
        let f = Failure::from(e);
        let status = match &f {
            Failure::BadRequest(_) => StatusCode::BAD_REQUEST,
            Failure::NotFound(_) => StatusCode::NOT_FOUND,
            Failure::AlreadyExists(_) => StatusCode::CONFLICT,
            Failure::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Failure::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self {
            status,
            message: f.message(),
            encoding,
            retry_after: f.is_retryable().then_some(retry_after),
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

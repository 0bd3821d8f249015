//! MLflow's errors: `{"error_code", "message"}` with MLflow's status for each code, and the one
//! table that maps store and ingest failures to them.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use loupe_ingest::IngestError;
use loupe_store::StoreError;

use crate::error::Failure;
use serde_json::json;

/// An MLflow error: `{"error_code", "message"}` with MLflow's status for the code.
#[derive(Debug)]
pub(crate) struct MlflowError {
    pub(super) status: StatusCode,
    pub(super) code: &'static str,
    pub(super) message: String,
}

impl MlflowError {
    pub(super) fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER_VALUE",
            message: message.into(),
        }
    }

    pub(super) fn missing(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "RESOURCE_DOES_NOT_EXIST",
            message: message.into(),
        }
    }

    /// 404 `ENDPOINT_NOT_FOUND`, what the client's fallbacks key on.
    pub(crate) fn no_endpoint(method: &str, path: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "ENDPOINT_NOT_FOUND",
            message: format!("Loupe does not implement {method} {path}"),
        }
    }
}

impl From<Failure> for MlflowError {
    fn from(f: Failure) -> Self {
        let (status, code) = match &f {
            Failure::BadRequest(_) => (StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE"),
            Failure::NotFound(_) => (StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST"),
            // MLflow's own status for this code.
            Failure::AlreadyExists(_) => (StatusCode::BAD_REQUEST, "RESOURCE_ALREADY_EXISTS"),
            Failure::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE"),
            Failure::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR"),
        };
        Self {
            status,
            code,
            message: f.message(),
        }
    }
}

impl From<StoreError> for MlflowError {
    fn from(e: StoreError) -> Self {
        Failure::from(e).into()
    }
}

impl From<IngestError> for MlflowError {
    fn from(e: IngestError) -> Self {
        Failure::from(e).into()
    }
}

impl IntoResponse for MlflowError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.code, "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

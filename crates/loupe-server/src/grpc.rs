//! OTLP/gRPC `TraceService`: the same ingest path as HTTP, gzip accepted.
//!
//! tonic reads and decodes a message before the handler runs, so admission comes in two steps:
//! an interceptor refuses a request before its message is read when the span budget is spent,
//! and the handler admits the decoded message's size against the decoding budget before it
//! waits for a decode thread (as HTTP does before reading the body).

use loupe_ingest::{IngestError, IngestQueue};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tonic::codec::CompressionEncoding;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use crate::AppState;
use crate::error::Failure;
use crate::otlp_http::project_from;

pub(crate) struct Otlp {
    state: AppState,
}

pub(crate) fn service(state: AppState) -> InterceptedService<TraceServiceServer<Otlp>, Admit> {
    let limit = state.config.max_request_bytes;
    let admit = Admit(state.queue.clone());
    let server = TraceServiceServer::new(Otlp { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    InterceptedService::new(server, admit)
}

/// Refuses a request before its message is read when the queue would refuse its spans.
#[derive(Clone)]
pub(crate) struct Admit(IngestQueue);

impl Interceptor for Admit {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.0.admit(0, None).map_err(to_status)?;
        Ok(request)
    }
}

/// Converts a decoded message on ingest's decode threads, admitted against the decoding
/// budget while it waits for them and is converted (as HTTP holds a body's admission until it
/// is decoded, not while its spans are written).
async fn convert<R: Message + Send + 'static, T: Send + 'static>(
    state: &AppState,
    req: R,
    f: impl FnOnce(R) -> Result<T, IngestError> + Send + 'static,
) -> Result<T, Status> {
    let _admitted = state
        .queue
        .admit(req.encoded_len(), None)
        .map_err(to_status)?;
    state
        .queue
        .cpu(move || f(req))
        .await
        .map_err(to_status)?
        .map_err(to_status)
}

/// gRPC's table of failures.
fn to_status(e: IngestError) -> Status {
    let f = Failure::from(e);
    match &f {
        Failure::BadRequest(_) => Status::invalid_argument(f.message()),
        Failure::NotFound(_) => Status::not_found(f.message()),
        Failure::AlreadyExists(_) => Status::already_exists(f.message()),
        Failure::Unavailable(_) => Status::unavailable(f.message()),
        Failure::Internal(_) => Status::internal(f.message()),
    }
}

#[tonic::async_trait]
impl TraceService for Otlp {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let project = project_from(&self.state, |h| {
            request
                .metadata()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .await;
        let prices = self.state.prices.clone();
        let prepared = convert(&self.state, request.into_inner(), move |req| {
            loupe_ingest::convert_request(req, project.as_deref(), &prices)
        })
        .await?;
        self.state
            .queue
            .submit(prepared.spans)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: (prepared.rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(prepared.rejected).unwrap_or(i64::MAX),
                error_message: prepared.reject_reason.unwrap_or_default(),
            }),
        }))
    }
}

pub(crate) struct OtlpLogs {
    state: AppState,
}

pub(crate) fn logs_service(
    state: AppState,
) -> InterceptedService<LogsServiceServer<OtlpLogs>, Admit> {
    let limit = state.config.max_request_bytes;
    let admit = Admit(state.queue.clone());
    let server = LogsServiceServer::new(OtlpLogs { state })
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(limit);
    InterceptedService::new(server, admit)
}

#[tonic::async_trait]
impl LogsService for OtlpLogs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let prepared = convert(
            &self.state,
            request.into_inner(),
            loupe_ingest::convert_logs,
        )
        .await?;
        self.state
            .queue
            .submit_events(prepared.events)
            .await
            .map_err(to_status)?;
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: (prepared.rejected > 0).then(|| ExportLogsPartialSuccess {
                rejected_log_records: i64::try_from(prepared.rejected).unwrap_or(i64::MAX),
                error_message: prepared.reject_reason.unwrap_or_default(),
            }),
        }))
    }
}

//! A traced wrapper for the `async-openai` client (feature `async-openai`, on by default):
//! chat completions (streaming included, the stream recorded as it is read), and embeddings,
//! each a `CHAT_MODEL` / `EMBEDDING` span under the caller's current span with the GenAI
//! conventions (model, parameters, messages, tool calls, token usage).
//!
//! ```no_run
//! # async fn demo() -> Result<(), async_openai::error::OpenAIError> {
//! use async_openai::config::OpenAIConfig;
//! let client = loupe_sdk::async_openai::Traced::new(async_openai::Client::with_config(
//!     OpenAIConfig::new().with_api_base("http://127.0.0.1:8000/v1"),
//! ));
//! let request = serde_json::from_value(serde_json::json!({
//!     "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
//! })).expect("a valid request");
//! let reply = client.chat(request).await?;
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionResponseStream, CreateChatCompletionRequest, CreateChatCompletionResponse,
    CreateChatCompletionStreamResponse,
};
use async_openai::types::embeddings::{CreateEmbeddingRequest, CreateEmbeddingResponse};
use futures_core::Stream;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::openai::{fold_chunks, record_response, start_span};
use crate::span::{ActiveSpan, Instrumented};

/// An `async_openai::Client` whose calls are traced.
#[derive(Debug, Clone)]
pub struct Traced<C: Config> {
    inner: async_openai::Client<C>,
}

fn body_of(req: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(req) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

impl<C: Config> Traced<C> {
    /// Wraps a client.
    pub fn new(inner: async_openai::Client<C>) -> Self {
        Self { inner }
    }

    /// The wrapped client, for calls this wrapper does not trace.
    pub fn inner(&self) -> &async_openai::Client<C> {
        &self.inner
    }

    /// `chat().create(request)`, traced.
    pub async fn chat(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, OpenAIError> {
        let mut s = start_span("chat", "CHAT_MODEL", &body_of(&request));
        let ctx = s.context();
        let out = Instrumented::new(self.inner.chat().create(request), ctx).await;
        match &out {
            Ok(r) => record_response(&mut s, &serde_json::to_value(r).unwrap_or(Value::Null)),
            Err(e) => s.record_error(e),
        }
        out
    }

    /// `chat().create_stream(request)`, traced: the span ends when the stream does (or is
    /// dropped), with the reply assembled from its chunks and the usage of the last one.
    pub async fn chat_stream(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<TracedStream, OpenAIError> {
        let mut body = body_of(&request);
        body.insert("stream".into(), Value::Bool(true));
        let mut s = start_span("chat", "CHAT_MODEL", &body);
        let ctx = s.context();
        match Instrumented::new(self.inner.chat().create_stream(request), ctx).await {
            Ok(inner) => Ok(TracedStream {
                inner,
                span: Some(s),
                chunks: Vec::new(),
            }),
            Err(e) => {
                s.record_error(&e);
                Err(e)
            }
        }
    }

    /// `embeddings().create(request)`, traced.
    pub async fn embeddings(
        &self,
        request: CreateEmbeddingRequest,
    ) -> Result<CreateEmbeddingResponse, OpenAIError> {
        let mut s = start_span("embeddings", "EMBEDDING", &body_of(&request));
        let ctx = s.context();
        let out = Instrumented::new(self.inner.embeddings().create(request), ctx).await;
        match &out {
            Ok(r) => {
                // The vectors are the bulk of the response and tell a reader nothing.
                let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
                if let Some(data) = v.get_mut("data").and_then(Value::as_array_mut) {
                    for d in data {
                        if let Some(n) = d.get("embedding").and_then(Value::as_array).map(Vec::len)
                        {
                            d["embedding"] = Value::String(format!("<{n} dimensions>"));
                        }
                    }
                }
                record_response(&mut s, &v);
            }
            Err(e) => s.record_error(e),
        }
        out
    }
}

/// A chat stream that records what passes through it.
pub struct TracedStream {
    inner: ChatCompletionResponseStream,
    span: Option<ActiveSpan>,
    chunks: Vec<Value>,
}

impl TracedStream {
    fn finish(&mut self) {
        if let Some(mut s) = self.span.take() {
            let folded = fold_chunks(self.chunks.drain(..));
            record_response(&mut s, &folded);
        }
    }
}

impl Stream for TracedStream {
    type Item = Result<CreateChatCompletionStreamResponse, OpenAIError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.span.as_ref().is_some_and(ActiveSpan::is_recording) {
                    let v = serde_json::to_value(chunk).unwrap_or(Value::Null);
                    self.chunks.push(v);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                let message = e.to_string();
                if let Some(s) = self.span.as_mut() {
                    s.fail("OpenAIError", message);
                }
            }
            Poll::Ready(None) => self.finish(),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for TracedStream {
    fn drop(&mut self) {
        self.finish();
    }
}

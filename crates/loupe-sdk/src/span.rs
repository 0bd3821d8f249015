//! Spans: the manual guard API, the current-span context (which follows `.await` through
//! [`Instrumented`]), and what a finished span hands to the exporter.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use serde::Serialize;
use serde_json::Value;

use crate::export;

/// Where a span sits: its trace, itself, and whether it is recorded (sampling is decided once
/// per trace, at its root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanContext {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Whether the trace is recorded.
    pub sampled: bool,
}

impl SpanContext {
    /// The trace id as 32 hex characters (what Loupe's API and UI use).
    pub fn trace_id_hex(&self) -> String {
        self.trace_id.iter().map(|b| format!("{b:02x}")).collect()
    }
}

thread_local! {
    static CURRENT: Cell<Option<SpanContext>> = const { Cell::new(None) };
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(now_ns().into());
    h.finish() | 1
}

/// A fast per-thread generator for ids (xorshift64*); ids need uniqueness, not secrecy.
fn next_u64() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn nonzero_u64() -> u64 {
    loop {
        let v = next_u64();
        if v != 0 {
            return v;
        }
    }
}

pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The span the calling code runs in, if any.
pub fn current() -> Option<SpanContext> {
    CURRENT.with(Cell::get)
}

/// Makes `ctx` current until the returned guard drops.
pub(crate) fn set_current(ctx: Option<SpanContext>) -> Entered {
    let previous = CURRENT.with(|c| c.replace(ctx));
    Entered {
        previous,
        _not_send: std::marker::PhantomData,
    }
}

/// Makes `ctx` current and returns the span that was (for a caller that restores it itself).
pub(crate) fn replace_current(ctx: Option<SpanContext>) -> Option<SpanContext> {
    CURRENT.with(|c| c.replace(ctx))
}

/// Restores the previous current span when dropped. Not `Send`: it belongs to the thread
/// whose context it changed.
pub struct Entered {
    previous: Option<SpanContext>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.previous));
    }
}

/// A value recorded on a span.
pub type AttrValue = Value;

/// Attributes of a span or an event.
pub(crate) type Attrs = Vec<(Cow<'static, str>, AttrValue)>;

/// An event: name, time (ns), attributes.
pub(crate) type Event = (Cow<'static, str>, u64, Attrs);

/// An `exception` event, as OpenTelemetry records errors, with `extra` attributes after.
pub(crate) fn exception_event(kind: &str, message: &str, extra: Attrs) -> Event {
    let mut attrs = Vec::with_capacity(2 + extra.len());
    attrs.push(("exception.type".into(), Value::String(kind.into())));
    attrs.push(("exception.message".into(), Value::String(message.into())));
    attrs.extend(extra);
    ("exception".into(), now_ns(), attrs)
}

/// Events recorded (by the `tracing` layer) inside a span this crate's caller owns, such as a
/// `#[trace]` call: they wait here, by span id, until that span ends and takes them.
pub(crate) mod adopted {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Event;

    /// Events waiting at most; more are dropped (a span that never ends cannot grow this).
    const CAPACITY: usize = 65_536;

    /// An event, and the failure it reports (the span's status message) if it is an error.
    type Waiting = Vec<(Event, Option<String>)>;

    static WAITING: Mutex<Option<HashMap<[u8; 8], Waiting>>> = Mutex::new(None);
    /// How many wait, read without the lock so spans end for free when none do.
    static COUNT: AtomicUsize = AtomicUsize::new(0);

    pub(crate) fn put(span_id: [u8; 8], event: Event, failure: Option<String>) {
        if COUNT.load(Ordering::Relaxed) >= CAPACITY {
            return;
        }
        if let Ok(mut w) = WAITING.lock() {
            w.get_or_insert_with(HashMap::new)
                .entry(span_id)
                .or_default()
                .push((event, failure));
            COUNT.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn take(span_id: [u8; 8]) -> Waiting {
        if COUNT.load(Ordering::Relaxed) == 0 {
            return Vec::new();
        }
        let Ok(mut w) = WAITING.lock() else {
            return Vec::new();
        };
        let events = w
            .as_mut()
            .and_then(|m| m.remove(&span_id))
            .unwrap_or_default();
        COUNT.fetch_sub(events.len(), Ordering::Relaxed);
        events
    }
}

/// A finished span, on its way to the exporter.
#[derive(Debug, Clone)]
pub(crate) struct SpanData {
    pub ctx: SpanContext,
    pub parent: Option<[u8; 8]>,
    pub name: Cow<'static, str>,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Attrs,
    pub events: Vec<Event>,
    pub error: Option<String>,
    pub ok: bool,
}

/// Starts describing a span: `loupe_sdk::span("retrieve").span_type("RETRIEVER").start()`.
pub fn span(name: impl Into<Cow<'static, str>>) -> SpanBuilder {
    SpanBuilder {
        name: name.into(),
        span_type: "UNKNOWN",
        inputs: None,
        attributes: Vec::new(),
        parent: None,
    }
}

/// A span about to start.
#[must_use = "call .start() to begin the span"]
pub struct SpanBuilder {
    name: Cow<'static, str>,
    span_type: &'static str,
    inputs: Option<Value>,
    attributes: Vec<(Cow<'static, str>, AttrValue)>,
    parent: Option<Option<SpanContext>>,
}

impl SpanBuilder {
    /// The span type: `LLM`, `CHAT_MODEL`, `EMBEDDING`, `RETRIEVER`, `RERANKER`, `TOOL`,
    /// `AGENT`, `CHAIN`, `PARSER`, `GUARDRAIL`, `EVALUATOR`, `MEMORY` or `UNKNOWN`.
    pub fn span_type(mut self, span_type: &'static str) -> Self {
        self.span_type = span_type;
        self
    }

    /// Inputs (any `Serialize` value; one that fails to serialize is recorded as its error).
    pub fn inputs(mut self, inputs: &impl Serialize) -> Self {
        self.inputs = Some(to_value(inputs));
        self
    }

    /// An attribute.
    pub fn attribute(mut self, key: impl Into<Cow<'static, str>>, value: impl Serialize) -> Self {
        self.attributes.push((key.into(), to_value(&value)));
        self
    }

    /// Starts under this parent instead of the current span (`None`: a new trace).
    pub fn parent(mut self, parent: Option<SpanContext>) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Starts the span (a child of the current span, else the root of a new trace). It ends
    /// when the guard drops; [`ActiveSpan::enter`] makes it current for synchronous code,
    /// [`ActiveSpan::in_scope`] for a future.
    pub fn start(self) -> ActiveSpan {
        let mut s = ActiveSpan::begin(self.name, Some(self.span_type), self.parent);
        if s.is_recording() {
            if let Some(i) = self.inputs {
                s.attributes.push(("mlflow.spanInputs".into(), i));
            }
            s.attributes.extend(self.attributes);
        }
        s
    }
}

pub(crate) fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap_or_else(|e| Value::String(format!("<not serializable: {e}>")))
}

/// A running span; it ends, and is queued for export, when dropped. A panic unwinding through
/// it marks it `ERROR`.
pub struct ActiveSpan {
    ctx: SpanContext,
    parent: Option<[u8; 8]>,
    name: Cow<'static, str>,
    start_ns: u64,
    attributes: Attrs,
    events: Vec<Event>,
    error: Option<String>,
    ok: bool,
    ended: bool,
}

impl ActiveSpan {
    /// Starts a span under `parent` (`None`: the current span). Without a `span_type` the
    /// server derives one from the attributes (a `tracing` span's `gen_ai.operation.name`).
    pub(crate) fn begin(
        name: Cow<'static, str>,
        span_type: Option<&'static str>,
        parent: Option<Option<SpanContext>>,
    ) -> Self {
        let parent = parent.unwrap_or_else(current);
        let ctx = match parent {
            Some(p) => SpanContext {
                trace_id: p.trace_id,
                span_id: nonzero_u64().to_be_bytes(),
                sampled: p.sampled,
            },
            None => {
                let hi = nonzero_u64();
                let lo = next_u64();
                let mut trace_id = [0u8; 16];
                trace_id[..8].copy_from_slice(&hi.to_be_bytes());
                trace_id[8..].copy_from_slice(&lo.to_be_bytes());
                SpanContext {
                    trace_id,
                    span_id: nonzero_u64().to_be_bytes(),
                    sampled: export::sample(next_u64()),
                }
            }
        };
        let mut attributes = Vec::new();
        if ctx.sampled {
            attributes.reserve(4);
            if let Some(t) = span_type {
                attributes.push(("mlflow.spanType".into(), Value::String(t.into())));
            }
        }
        Self {
            ctx,
            parent: parent.map(|p| p.span_id),
            name,
            start_ns: if ctx.sampled { now_ns() } else { 0 },
            attributes,
            events: Vec::new(),
            error: None,
            ok: true,
            ended: false,
        }
    }

    /// Whether this span is recorded (its trace was sampled and an exporter is running).
    pub fn is_recording(&self) -> bool {
        self.ctx.sampled
    }

    /// This span's context, to carry elsewhere (see [`crate::spawn`]).
    pub fn context(&self) -> SpanContext {
        self.ctx
    }

    /// Makes this span current on this thread until the returned guard drops.
    pub fn enter(&self) -> Entered {
        set_current(Some(self.ctx))
    }

    /// Runs a future with this span current whenever it is polled.
    pub fn in_scope<F: Future>(&self, fut: F) -> Instrumented<F> {
        Instrumented::new(fut, self.ctx)
    }

    /// Sets the inputs.
    pub fn set_inputs(&mut self, inputs: &impl Serialize) {
        if self.ctx.sampled {
            self.set("mlflow.spanInputs", to_value(inputs));
        }
    }

    /// Sets the outputs.
    pub fn set_outputs(&mut self, outputs: &impl Serialize) {
        if self.ctx.sampled {
            self.set("mlflow.spanOutputs", to_value(outputs));
        }
    }

    /// Sets an attribute (replacing one of the same key).
    pub fn set_attribute(&mut self, key: impl Into<Cow<'static, str>>, value: impl Serialize) {
        if self.ctx.sampled {
            let v = to_value(&value);
            self.set(key, v);
        }
    }

    /// Sets a tag of the trace (shown and searchable as `tags.<key>`).
    pub fn set_tag(&mut self, key: &str, value: &str) {
        if self.ctx.sampled {
            self.set(
                format!("mlflow.traceTag.{key}"),
                Value::String(value.into()),
            );
        }
    }

    pub(crate) fn set(&mut self, key: impl Into<Cow<'static, str>>, value: Value) {
        let key = key.into();
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.attributes.push((key, value)),
        }
    }

    /// Marks the span failed, with an exception event carrying the error's message.
    pub fn record_error(&mut self, error: &dyn std::fmt::Display) {
        self.fail("Error", error.to_string());
    }

    pub(crate) fn fail(&mut self, kind: &str, message: String) {
        self.ok = false;
        if !self.ctx.sampled {
            return;
        }
        let event = exception_event(kind, &message, Vec::new());
        self.add_event(event, Some(format!("{kind}: {message}")));
    }

    /// Adds an event; with `failure` (the status message) the span is marked failed too.
    pub(crate) fn add_event(&mut self, event: Event, failure: Option<String>) {
        if let Some(f) = failure {
            self.ok = false;
            self.error = Some(f);
        }
        if self.ctx.sampled {
            self.events.push(event);
        }
    }

    /// Renames the span.
    pub(crate) fn set_name(&mut self, name: impl Into<Cow<'static, str>>) {
        self.name = name.into();
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if !self.ctx.sampled {
            return;
        }
        for (event, failure) in adopted::take(self.ctx.span_id) {
            self.add_event(event, failure);
        }
        if std::thread::panicking() && self.ok {
            self.fail("panic", "the traced code panicked".into());
        }
        export::submit(SpanData {
            ctx: self.ctx,
            parent: self.parent,
            name: std::mem::take(&mut self.name),
            start_ns: self.start_ns,
            end_ns: now_ns(),
            attributes: std::mem::take(&mut self.attributes),
            events: std::mem::take(&mut self.events),
            error: self.error.take(),
            ok: self.ok,
        });
    }
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        self.finish();
    }
}

pin_project_lite::pin_project! {
    /// A future that makes a span current each time it is polled, so the span follows the
    /// future across `.await` points and threads.
    pub struct Instrumented<F> {
        #[pin]
        inner: F,
        ctx: SpanContext,
    }
}

impl<F> Instrumented<F> {
    /// Wraps `inner`.
    pub fn new(inner: F, ctx: SpanContext) -> Self {
        Self { inner, ctx }
    }
}

impl<F: Future> Future for Instrumented<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = set_current(Some(*this.ctx));
        this.inner.poll(cx)
    }
}

/// Runs `fut` on the tokio runtime with the current span carried into it, so the spans it
/// starts nest under the caller's.
pub fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match current() {
        Some(ctx) => tokio::spawn(Instrumented::new(fut, ctx)),
        None => tokio::spawn(fut),
    }
}

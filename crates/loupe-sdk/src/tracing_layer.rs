//! `tracing` spans as Loupe spans: a `tracing_subscriber` layer, so code instrumented with
//! `#[tracing::instrument]` (yours, or a library's such as `rig`) is traced into Loupe and nests
//! with `#[loupe_sdk::trace]` spans both ways.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let _guard = loupe_sdk::init();
//! tracing_subscriber::registry().with(loupe_sdk::tracing_layer()).init();
//! ```
//!
//! - A span's fields are its attributes; the fields without a dot in their name (a
//!   `#[tracing::instrument]` function's arguments) are its inputs too. `gen_ai.*` fields are
//!   read by Loupe as the OpenTelemetry GenAI conventions, so a span that records
//!   `gen_ai.operation.name = "chat"` and its usage is a `CHAT_MODEL` span with tokens and cost.
//! - Events are span events (`level` and `target` among their attributes). An `ERROR` event, an
//!   `error`/`err` field recorded on the span, or `otel.status_code = "ERROR"` marks the span
//!   failed; `#[instrument(err)]` and `#[instrument(ret)]` therefore record failures and outputs.
//! - `otel.name` renames a span; `mlflow.spanType = "TOOL"` sets its type.
//! - The current span is shared: a `tracing` span entered inside a `#[trace]` call is its child
//!   (even one its library started as a root, which only means it has no `tracing` parent), a
//!   `#[trace]` call inside an entered `tracing` span is that span's child, and `tracing` events
//!   inside a `#[trace]` call are that call's events.
//! - Spans and events above the layer's level (INFO unless [`TracingLayer::with_max_level`]) are
//!   left out, so the `DEBUG`/`TRACE` spans of HTTP and runtime libraries do not flood a trace.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::export;
use crate::span::{
    ActiveSpan, Attrs, SpanContext, adopted, current, exception_event, now_ns, replace_current,
};

/// The layer (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct TracingLayer {
    max_level: Level,
}

/// A layer that records `tracing` spans and events into Loupe.
pub fn tracing_layer() -> TracingLayer {
    TracingLayer {
        max_level: Level::INFO,
    }
}

impl TracingLayer {
    /// Records spans and events up to this level of detail (`Level::TRACE`: everything).
    pub fn with_max_level(mut self, level: Level) -> Self {
        self.max_level = level;
        self
    }

    fn wants(&self, level: &Level) -> bool {
        *level <= self.max_level && !export::on_export_thread()
    }
}

/// What the layer keeps in a `tracing` span's extensions.
struct Recorded(ActiveSpan);

thread_local! {
    /// Each entered `tracing` span's context, and the current span before it (restored on exit).
    static ENTERED: RefCell<Vec<(SpanContext, Option<SpanContext>)>> =
        const { RefCell::new(Vec::new()) };
}

/// The parent of a span `tracing` calls a root. `tracing` cannot see `#[trace]` and manual
/// spans, so a root started inside one of those (not inside a `tracing` span) joins it.
fn root_parent() -> Option<SpanContext> {
    let innermost_tracing = ENTERED.with(|e| e.borrow().last().map(|(ctx, _)| *ctx));
    current().filter(|c| Some(*c) != innermost_tracing)
}

/// Field values as attributes.
#[derive(Default)]
struct Fields {
    attrs: Attrs,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        self.attrs.push((Cow::Borrowed(field.name()), value));
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        let i = self.attrs.iter().position(|(k, _)| k == name)?;
        Some(self.attrs.remove(i).1)
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(
            field,
            serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number),
        );
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, v);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value).map_or_else(|_| value.to_string().into(), Value::from);
        self.put(field, v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

/// Applies recorded fields to a span: the special keys act, the rest become attributes.
fn apply(span: &mut ActiveSpan, fields: Fields) {
    for (key, value) in fields.attrs {
        match &*key {
            "otel.name" => span.set_name(text(&value)),
            "otel.kind" => {}
            "otel.status_code" if text(&value).eq_ignore_ascii_case("error") => {
                span.fail("Error", String::new());
            }
            "error" | "err" => span.fail("Error", text(&value)),
            _ => span.set(key, value),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The nearest span at or above `span` that the layer records.
fn recorded_context<S>(span: Option<SpanRef<'_, S>>) -> Option<SpanContext>
where
    S: for<'a> LookupSpan<'a>,
{
    span?
        .scope()
        .find_map(|s| s.extensions().get::<Recorded>().map(|r| r.0.context()))
}

impl<S> tracing_subscriber::Layer<S> for TracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// Lets `tracing` skip more detailed callsites entirely when no other layer wants them.
    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max_level))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if !self.wants(meta.level()) {
            return;
        }
        let parent = if attrs.is_root() {
            root_parent()
        } else if let Some(p) = attrs.parent() {
            recorded_context(ctx.span(p))
        } else {
            // The current span, `tracing`'s or a `#[trace]` call's: entering a recorded
            // `tracing` span makes it Loupe's current span too.
            current()
        };
        let mut span = ActiveSpan::begin(Cow::Borrowed(meta.name()), None, Some(parent));
        if span.is_recording() {
            let mut fields = Fields::default();
            attrs.record(&mut fields);
            let inputs: Map<String, Value> = fields
                .attrs
                .iter()
                .filter(|(k, _)| !k.contains('.') && !matches!(&**k, "error" | "err"))
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            if !inputs.is_empty() {
                span.set("mlflow.spanInputs", Value::Object(inputs));
            }
            apply(&mut span, fields);
        }
        if let Some(s) = ctx.span(id) {
            s.extensions_mut().insert(Recorded(span));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(id) else { return };
        let mut ext = s.extensions_mut();
        let Some(Recorded(span)) = ext.get_mut::<Recorded>() else {
            return;
        };
        if span.is_recording() {
            let mut fields = Fields::default();
            values.record(&mut fields);
            apply(span, fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !self.wants(meta.level()) {
            return;
        }
        let in_tracing_span = recorded_context(ctx.event_span(event));
        // Inside a `#[trace]` call (current, and not the `tracing` span) the event is the call's.
        let target = match (event.is_contextual(), current(), in_tracing_span) {
            (true, Some(cur), t) if t.is_none_or(|t| t.span_id != cur.span_id) => Some(cur),
            (_, _, t) => t,
        };
        let Some(target) = target.filter(|t| t.sampled) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let returned = fields.take("return");
        let message = fields.take("message").map(|m| text(&m));
        let (recorded_event, failure) = if *meta.level() == Level::ERROR {
            let detail = fields.take("error").or_else(|| fields.take("err"));
            let message = match (detail, message) {
                (Some(d), _) => text(&d),
                (None, Some(m)) => m,
                (None, None) => meta.name().to_string(),
            };
            let event = exception_event("Error", &message, fields.attrs);
            (Some(event), Some(format!("Error: {message}")))
        } else if returned.is_some() && fields.attrs.is_empty() {
            (None, None)
        } else {
            let mut attrs = fields.attrs;
            attrs.push(("level".into(), meta.level().as_str().into()));
            attrs.push(("target".into(), meta.target().to_string().into()));
            let name: Cow<'static, str> = match message {
                Some(m) => m.into(),
                None => meta.name().into(),
            };
            (Some((name, now_ns(), attrs)), None)
        };
        let own_span = in_tracing_span.filter(|t| t.span_id == target.span_id);
        match own_span.and_then(|_| ctx.event_span(event)) {
            Some(s) => {
                let scope = s.scope();
                for s in scope {
                    let mut ext = s.extensions_mut();
                    if let Some(Recorded(span)) = ext.get_mut::<Recorded>() {
                        if let Some(out) = returned {
                            span.set_outputs(&out);
                        }
                        if let Some(e) = recorded_event {
                            span.add_event(e, failure);
                        }
                        break;
                    }
                }
            }
            None => {
                if let Some(e) = recorded_event {
                    adopted::put(target.span_id, e, failure);
                }
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(id) else { return };
        let Some(ctx) = s.extensions().get::<Recorded>().map(|r| r.0.context()) else {
            return;
        };
        let previous = replace_current(Some(ctx));
        ENTERED.with(|e| e.borrow_mut().push((ctx, previous)));
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(id) else { return };
        if s.extensions().get::<Recorded>().is_none() {
            return;
        }
        if let Some((_, previous)) = ENTERED.with(|e| e.borrow_mut().pop()) {
            replace_current(previous);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(s) = ctx.span(&id) else { return };
        // Dropping the span ends it and queues it for export.
        drop(s.extensions_mut().remove::<Recorded>());
    }
}

//! What `#[trace]` expands to. Not a public API: names here may change at any release.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::span::Instrumented;
use crate::span::{ActiveSpan, to_value};

/// Starts the span of a traced function call.
#[inline]
pub fn start(name: &'static str, span_type: &'static str) -> ActiveSpan {
    ActiveSpan::begin(Cow::Borrowed(name), span_type, None)
}

/// A traced function's arguments, by name.
pub struct Inputs(Map<String, Value>);

impl Inputs {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Map::new())
    }

    pub fn add(&mut self, name: &str, value: Value) {
        self.0.insert(name.to_string(), value);
    }
}

/// An argument's recorded value. The bound is what gives a clear error, at the argument, when a
/// type cannot be recorded: derive or implement `Serialize`, or name it in `skip(…)`.
#[inline]
pub fn recordable<T: Serialize + ?Sized>(value: &T) -> Value {
    to_value(&value)
}

impl ActiveSpan {
    #[doc(hidden)]
    pub fn __record_inputs(&mut self, inputs: Inputs) {
        self.set("mlflow.spanInputs", Value::Object(inputs.0));
    }
}

/// The return value of a traced call, recorded by [`RecordResult`] when it is a `Result` and
/// by [`RecordValue`] otherwise (method resolution tries the former first).
pub struct Out<'a, T>(pub &'a T);

/// `Ok` values become outputs; an `Err` marks the span failed.
pub trait RecordResult {
    fn record(&self, span: &mut ActiveSpan);
}

impl<T: Serialize, E: std::fmt::Display> RecordResult for &Out<'_, Result<T, E>> {
    fn record(&self, span: &mut ActiveSpan) {
        match self.0 {
            Ok(v) => span.set_outputs(v),
            Err(e) => span.fail(short_type_name::<E>(), e.to_string()),
        }
    }
}

/// Any other value becomes the outputs.
pub trait RecordValue {
    fn record(&self, span: &mut ActiveSpan);
}

impl<T: Serialize> RecordValue for Out<'_, T> {
    fn record(&self, span: &mut ActiveSpan) {
        span.set_outputs(self.0);
    }
}

fn short_type_name<E>() -> &'static str {
    let full = std::any::type_name::<E>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

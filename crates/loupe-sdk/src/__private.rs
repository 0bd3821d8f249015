//! What `#[trace]` expands to. Not a public API: names here may change at any release.

use std::borrow::Cow;
use std::fmt::{Debug, Display};

use serde::Serialize;
use serde_json::{Map, Value};

pub use crate::span::Instrumented;
use crate::span::{ActiveSpan, to_value};

/// Starts the span of a traced function call.
#[inline]
pub fn start(name: &'static str, span_type: &'static str) -> ActiveSpan {
    ActiveSpan::begin(Cow::Borrowed(name), Some(span_type), None)
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

/// The return value of a traced call. The macro calls `(&&&&Out(&value)).record(..)`, and method
/// resolution takes the first of these that applies, peeling one `&` per step: a `Result` whose
/// error is `Display`, then `Debug`, then `Serialize` (so any `Err` marks the span failed), and
/// only then any other `Serialize` value as the outputs. The impls sit on `&&&Out` … `Out` in
/// that order; a `Result` must never reach the last, which would record `{"Err": …}` as output.
pub struct Out<'a, T>(pub &'a T);

/// `Ok` values become outputs; an `Err` with a `Display` message marks the span failed.
pub trait RecordDisplayError {
    fn record(&self, span: &mut ActiveSpan);
}

impl<T: Serialize, E: Display> RecordDisplayError for &&&Out<'_, Result<T, E>> {
    fn record(&self, span: &mut ActiveSpan) {
        record_result(self.0, span, |e| e.to_string());
    }
}

/// An `Err` that is only `Debug` (a derived error enum) marks the span failed with its `Debug`.
pub trait RecordDebugError {
    fn record(&self, span: &mut ActiveSpan);
}

impl<T: Serialize, E: Debug> RecordDebugError for &&Out<'_, Result<T, E>> {
    fn record(&self, span: &mut ActiveSpan) {
        record_result(self.0, span, |e| format!("{e:?}"));
    }
}

/// An `Err` that is only `Serialize` marks the span failed with its JSON.
pub trait RecordSerializeError {
    fn record(&self, span: &mut ActiveSpan);
}

impl<T: Serialize, E: Serialize> RecordSerializeError for &Out<'_, Result<T, E>> {
    fn record(&self, span: &mut ActiveSpan) {
        record_result(self.0, span, |e| to_value(e).to_string());
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

fn record_result<T: Serialize, E>(
    result: &Result<T, E>,
    span: &mut ActiveSpan,
    message: impl FnOnce(&E) -> String,
) {
    match result {
        Ok(v) => span.set_outputs(v),
        Err(e) => span.fail(&short_type_name::<E>(), message(e)),
    }
}

/// A type's name without module paths: `Box<dyn Error + Send + Sync>`, not
/// `alloc::boxed::Box<dyn core::error::Error + …>`.
fn short_type_name<E: ?Sized>() -> String {
    let full = std::any::type_name::<E>();
    let mut short = String::with_capacity(full.len());
    let mut segment_start = 0;
    let mut rest = full;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            short.truncate(segment_start);
            rest = after;
            continue;
        }
        if !(c.is_alphanumeric() || c == '_') {
            segment_start = short.len() + c.len_utf8();
        }
        short.push(c);
        rest = &rest[c.len_utf8()..];
    }
    short
}

#[cfg(test)]
mod tests {
    use super::short_type_name;

    #[test]
    fn type_names_lose_their_paths() {
        assert_eq!(short_type_name::<String>(), "String");
        assert_eq!(short_type_name::<&str>(), "&str");
        assert_eq!(short_type_name::<std::io::Error>(), "Error");
        assert_eq!(
            short_type_name::<Box<dyn std::error::Error + Send + Sync>>(),
            "Box<dyn Error + Send + Sync>"
        );
    }
}

//! Every `Err` marks its span ERROR with an exception event, whatever the error type; `Ok`
//! values are the outputs. One traced function per error shape, sync and async, free functions
//! and methods, read back from a real Loupe.

#![allow(clippy::unwrap_used)]

mod loupe;

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug, Serialize)]
enum Refusal {
    TooBig { limit: u32 },
}

#[derive(Serialize)]
enum OnlySerialize {
    Busy,
}

#[derive(Debug, thiserror::Error)]
enum LookupError {
    #[error("order {0} not found")]
    NotFound(u32),
}

#[loupe_sdk::trace]
async fn string_error(n: u32) -> Result<u32, String> {
    if n > 10 { Err("too big".into()) } else { Ok(n) }
}

#[loupe_sdk::trace]
fn str_error(n: u32) -> Result<u32, &'static str> {
    if n > 10 { Err("too big") } else { Ok(n) }
}

#[loupe_sdk::trace]
fn serde_enum_error(n: u32) -> Result<u32, Refusal> {
    if n > 10 {
        Err(Refusal::TooBig { limit: 10 })
    } else {
        Ok(n)
    }
}

#[loupe_sdk::trace]
fn serialize_only_error(n: u32) -> Result<u32, OnlySerialize> {
    if n > 10 {
        Err(OnlySerialize::Busy)
    } else {
        Ok(n)
    }
}

#[loupe_sdk::trace]
async fn thiserror_error(n: u32) -> Result<u32, LookupError> {
    if n > 10 {
        Err(LookupError::NotFound(n))
    } else {
        Ok(n)
    }
}

#[loupe_sdk::trace]
fn anyhow_error(n: u32) -> anyhow::Result<u32> {
    if n > 10 {
        Err(anyhow::anyhow!("too big: {n}"))
    } else {
        Ok(n)
    }
}

#[loupe_sdk::trace]
async fn boxed_error(n: u32) -> Result<u32, Box<dyn std::error::Error + Send + Sync>> {
    if n > 10 { Err("too big".into()) } else { Ok(n) }
}

#[loupe_sdk::trace]
fn io_error(n: u32) -> std::io::Result<u32> {
    if n > 10 {
        Err(std::io::Error::other("too big"))
    } else {
        Ok(n)
    }
}

/// The outer `Result` decides: `Ok(Err(..))` is a success whose output is the inner error.
#[loupe_sdk::trace]
fn nested(n: u32) -> Result<Result<u32, String>, String> {
    match n {
        0..=10 => Ok(Ok(n)),
        11..=20 => Ok(Err("inner".into())),
        _ => Err("outer".into()),
    }
}

struct Checker;

impl Checker {
    #[loupe_sdk::trace]
    fn method_error(&self, n: u32) -> Result<u32, String> {
        if n > 10 { Err("too big".into()) } else { Ok(n) }
    }

    #[loupe_sdk::trace]
    async fn async_method_error(&self, n: u32) -> Result<u32, LookupError> {
        if n > 10 {
            Err(LookupError::NotFound(n))
        } else {
            Ok(n)
        }
    }
}

/// Calls each shape once failing (99) and once succeeding (1).
#[loupe_sdk::trace]
async fn every_shape() -> u32 {
    for n in [1, 99] {
        let _ = string_error(n).await;
        let _ = str_error(n);
        let _ = serde_enum_error(n);
        let _ = serialize_only_error(n);
        let _ = thiserror_error(n).await;
        let _ = anyhow_error(n);
        let _ = boxed_error(n).await;
        let _ = io_error(n);
        let _ = Checker.method_error(n);
        let _ = Checker.async_method_error(n).await;
    }
    let _ = nested(15);
    let _ = nested(25);
    0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_err_marks_its_span_failed() {
    let (url, _dir) = loupe::start().await;
    let guard = loupe_sdk::Config::default()
        .endpoint(url.clone())
        .project("errors")
        .init();
    every_shape().await;
    assert!(loupe_sdk::flush(Duration::from_secs(10)), "flush timed out");
    drop(guard);

    let list = loupe::get(&format!("{url}/api/v1/traces?project=errors")).await;
    let id = list["traces"][0]["trace_id"].as_str().unwrap().to_string();
    let detail = loupe::get(&format!("{url}/api/v1/traces/{id}")).await;
    let spans = detail["spans"].as_array().unwrap();
    let call = |name: &str, n: u32| -> &Value {
        spans
            .iter()
            .find(|s| s["name"] == name && s["inputs"]["n"] == n)
            .unwrap_or_else(|| panic!("no span {name}({n})"))
    };
    let shapes = [
        ("string_error", "String", "too big"),
        ("str_error", "&str", "too big"),
        ("serde_enum_error", "Refusal", "TooBig { limit: 10 }"),
        ("serialize_only_error", "OnlySerialize", "\"Busy\""),
        ("thiserror_error", "LookupError", "order 99 not found"),
        ("anyhow_error", "Error", "too big: 99"),
        ("boxed_error", "Box<dyn Error + Send + Sync>", "too big"),
        ("io_error", "Error", "too big"),
        ("method_error", "String", "too big"),
        ("async_method_error", "LookupError", "order 99 not found"),
    ];
    for (name, kind, message) in shapes {
        let failed = call(name, 99);
        assert_eq!(failed["status"], "ERROR", "{name}: {failed}");
        assert_eq!(failed["exceptions"][0]["type"], kind, "{name}");
        assert_eq!(failed["exceptions"][0]["message"], message, "{name}");
        assert_eq!(
            failed["outputs"],
            Value::Null,
            "{name}: an Err is not an output"
        );
        let fine = call(name, 1);
        assert_eq!(fine["status"], "OK", "{name}: {fine}");
        assert_eq!(
            fine["outputs"],
            json!(1),
            "{name}: the Ok value is the output"
        );
    }
    let inner = call("nested", 15);
    assert_eq!(
        (inner["status"].as_str(), &inner["outputs"]),
        (Some("OK"), &json!({"Err": "inner"})),
        "the outer Ok decides"
    );
    let outer = call("nested", 25);
    assert_eq!(outer["status"], "ERROR");
    assert_eq!(outer["exceptions"][0]["message"], "outer");
}

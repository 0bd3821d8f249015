//! Terminal rendering: the trace table and the span tree.

use std::collections::HashMap;
use std::fmt::Write;

use serde_json::Value;

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Removes control characters so span content cannot move the cursor or recolour the terminal.
fn clean(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        out.push('…');
    }
    out
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn fmt_time(ms: u64) -> String {
    // UTC wall-clock time without a date library: days since the epoch to a civil date.
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = loupe_model::civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The trace list as a table.
pub fn trace_table(body: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let traces = body["traces"].as_array().unwrap_or(&empty);
    let _ = writeln!(
        out,
        "{:<19}  {:<32}  {:<24}  {:<6}  {:>10}  {:>5}  {:>8}",
        "START (UTC)", "TRACE ID", "NAME", "STATUS", "DURATION", "SPANS", "TOKENS"
    );
    for t in traces {
        let _ = writeln!(
            out,
            "{:<19}  {:<32}  {:<24}  {:<6}  {:>10}  {:>5}  {:>8}",
            fmt_time(n(&t["start_time_ms"])),
            s(&t["trace_id"]),
            clean(s(&t["name"]), 24),
            s(&t["status"]),
            fmt_ms(n(&t["duration_ms"]) as f64),
            n(&t["span_count"]),
            n(&t["total_tokens"]),
        );
    }
    if traces.is_empty() {
        out.push_str("(no traces)\n");
    }
    if let Some(c) = body["next_cursor"].as_str() {
        let _ = writeln!(out, "more: --cursor {c}");
    }
    out
}

/// Statistics as a table: one row per group.
pub fn stats_table(body: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let names: Vec<&str> = body["group_by"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for n in &names {
        let _ = write!(out, "{:<28}  ", n.to_uppercase());
    }
    let _ = writeln!(
        out,
        "{:>8}  {:>6}  {:>10}  {:>10}  {:>10}  {:>10}  {:>10}",
        "COUNT", "ERR%", "P50", "P95", "P99", "TOKENS", "COST $"
    );
    for g in body["groups"].as_array().unwrap_or(&empty) {
        for n in &names {
            let v = &g["key"][*n];
            let text = match (n, v) {
                (&"time", Value::Number(ms)) => fmt_time(ms.as_u64().unwrap_or(0)),
                (_, Value::String(s)) => clean(s, 28),
                (_, Value::Null) => "(none)".to_string(),
                (_, other) => clean(&other.to_string(), 28),
            };
            let _ = write!(out, "{text:<28}  ");
        }
        let _ = writeln!(
            out,
            "{:>8}  {:>5.1}%  {:>10}  {:>10}  {:>10}  {:>10}  {:>10.4}",
            n(&g["count"]),
            g["error_rate"].as_f64().unwrap_or(0.0) * 100.0,
            fmt_ms(g["p50_ms"].as_f64().unwrap_or(0.0)),
            fmt_ms(g["p95_ms"].as_f64().unwrap_or(0.0)),
            fmt_ms(g["p99_ms"].as_f64().unwrap_or(0.0)),
            n(&g["total_tokens"]),
            g["cost_usd"].as_f64().unwrap_or(0.0),
        );
    }
    out
}

/// One trace as an indented tree: names, types, durations, models, tokens and errors.
pub fn span_tree(body: &Value) -> String {
    let t = &body["trace"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {}  {}  {}  {}  {} spans, {} errors, tokens {} (in {} / out {})",
        s(&t["trace_id"]),
        clean(s(&t["name"]), 60),
        s(&t["status"]),
        fmt_ms(n(&t["duration_ms"]) as f64),
        n(&t["span_count"]),
        n(&t["error_count"]),
        n(&t["total_tokens"]),
        n(&t["input_tokens"]),
        n(&t["output_tokens"]),
    );
    let empty = Vec::new();
    let spans = body["spans"].as_array().unwrap_or(&empty);
    let ids: std::collections::HashSet<&str> = spans.iter().map(|sp| s(&sp["span_id"])).collect();
    let mut children: HashMap<&str, Vec<&Value>> = HashMap::new();
    let mut roots = Vec::new();
    for sp in spans {
        match sp["parent_id"].as_str() {
            Some(p) if ids.contains(p) => children.entry(p).or_default().push(sp),
            _ => roots.push(sp),
        }
    }
    let count = roots.len();
    for (i, r) in roots.into_iter().enumerate() {
        render(&mut out, r, &children, "", i + 1 == count);
    }
    out
}

fn render(
    out: &mut String,
    sp: &Value,
    children: &HashMap<&str, Vec<&Value>>,
    prefix: &str,
    last: bool,
) {
    let branch = if last { "└─ " } else { "├─ " };
    let mut line = format!(
        "{prefix}{branch}{}  [{}]  {}",
        clean(s(&sp["name"]), 60),
        s(&sp["span_type"]),
        fmt_ms(sp["duration_ms"].as_f64().unwrap_or(0.0)),
    );
    if let Some(m) = sp["model"].as_str() {
        let _ = write!(line, "  {}", clean(m, 40));
    }
    if let Some(tok) = sp["total_tokens"].as_u64() {
        let _ = write!(line, "  tokens {tok}");
    }
    if s(&sp["status"]) == "ERROR" {
        let _ = write!(line, "  ✗ ERROR {}", clean(s(&sp["status_message"]), 80));
    }
    out.push_str(&line);
    out.push('\n');
    let next = format!("{prefix}{}", if last { "   " } else { "│  " });
    if let Some(kids) = children.get(s(&sp["span_id"])) {
        for (i, k) in kids.iter().enumerate() {
            render(out, k, children, &next, i + 1 == kids.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tree_nests_and_flags_errors() {
        let body = json!({
            "trace": {"trace_id": "ab", "name": "agent", "status": "ERROR", "duration_ms": 1500, "span_count": 3, "error_count": 1, "total_tokens": 30, "input_tokens": 20, "output_tokens": 10},
            "spans": [
                {"span_id": "1", "parent_id": null, "name": "agent", "span_type": "AGENT", "duration_ms": 1500.0, "status": "OK"},
                {"span_id": "2", "parent_id": "1", "name": "llm", "span_type": "CHAT_MODEL", "duration_ms": 900.5, "status": "OK", "model": "gpt-4o", "total_tokens": 30},
                {"span_id": "3", "parent_id": "1", "name": "tool\u{1b}[31m", "span_type": "TOOL", "duration_ms": 3.0, "status": "ERROR", "status_message": "boom"}
            ]
        });
        let text = span_tree(&body);
        assert!(text.contains("└─ agent  [AGENT]  1.50 s"), "{text}");
        assert!(
            text.contains("   ├─ llm  [CHAT_MODEL]  900.5 ms  gpt-4o  tokens 30"),
            "{text}"
        );
        assert!(
            text.contains("   └─ tool [31m  [TOOL]  3.0 ms  ✗ ERROR boom"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'));
    }

    #[test]
    fn civil_time() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00");
        assert_eq!(fmt_time(1_795_468_826_482), "2026-11-23 21:20:26");
    }
}

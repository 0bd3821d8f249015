#!/usr/bin/env python3
"""Prints a compact view of a fixture file (or a capture dump): spans as a tree, with attributes.

    python summarize.py crates/loupe-ingest/tests/fixtures/openinference.json [--width 160]
"""

from __future__ import annotations

import argparse
import json
import sys


def any_value(value: dict):
    if not value:
        return None
    (kind, inner), = value.items()
    if kind == "arrayValue":
        return [any_value(v) for v in inner.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: any_value(kv.get("value", {})) for kv in inner.get("values", [])}
    if kind == "intValue":
        return int(inner)
    return inner


def spans_of(requests: list) -> list[dict]:
    out = []
    for request in requests:
        for resource_spans in request.get("resourceSpans", []):
            for scope_spans in resource_spans.get("scopeSpans", []):
                scope = scope_spans.get("scope", {})
                for span in scope_spans.get("spans", []):
                    out.append(dict(span, _scope=f"{scope.get('name', '')} {scope.get('version', '')}"))
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("path")
    parser.add_argument("--width", type=int, default=200)
    args = parser.parse_args()
    with open(args.path) as f:
        data = json.load(f)
    spans = spans_of(data.get("requests", []))
    by_parent: dict[str, list] = {}
    ids = {s["spanId"] for s in spans}
    for span in sorted(spans, key=lambda s: int(s.get("startTimeUnixNano", 0))):
        parent = span.get("parentSpanId") or ""
        by_parent.setdefault(parent if parent in ids else "", []).append(span)

    def show(span: dict, depth: int) -> None:
        pad = "  " * depth
        status = span.get("status", {})
        print(
            f"{pad}- {span['name']!r} kind={span.get('kind')} scope=({span['_scope']}) "
            f"trace={span['traceId'][:8]} status={status.get('code', 0)}"
        )
        for kv in span.get("attributes", []):
            text = json.dumps(any_value(kv.get("value", {})), ensure_ascii=False)
            if len(text) > args.width:
                text = text[: args.width] + "…"
            print(f"{pad}    {kv['key']} = {text}")
        for event in span.get("events", []):
            attrs = {kv["key"]: any_value(kv.get("value", {})) for kv in event.get("attributes", [])}
            text = json.dumps(attrs, ensure_ascii=False)
            if len(text) > args.width:
                text = text[: args.width] + "…"
            print(f"{pad}    [event] {event.get('name')} {text}")
        for child in by_parent.get(span["spanId"], []):
            show(child, depth + 1)

    for root in by_parent.get("", []):
        show(root, 0)
    for request in data.get("log_requests", []):
        for resource_logs in request.get("resourceLogs", []):
            for scope_logs in resource_logs.get("scopeLogs", []):
                for record in scope_logs.get("logRecords", []):
                    attrs = {kv["key"]: any_value(kv.get("value", {})) for kv in record.get("attributes", [])}
                    body = any_value(record.get("body", {}))
                    text = json.dumps({"eventName": record.get("eventName"), "attributes": attrs, "body": body}, ensure_ascii=False)
                    if len(text) > args.width * 3:
                        text = text[: args.width * 3] + "…"
                    print(f"[log span={record.get('spanId', '')[:8]}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

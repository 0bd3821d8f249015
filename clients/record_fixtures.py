#!/usr/bin/env python3
"""Records what each real client convention sends, as OTLP/JSON fixture files.

Starts the mock OpenAI server and the OTLP capture server in this process, runs every driver
against them, and writes crates/loupe-ingest/tests/fixtures/<convention>.json:

    {"requests": [ExportTraceServiceRequest as OTLP/JSON, ...],
     "log_requests": [ExportLogsServiceRequest as OTLP/JSON, ...],   # only when logs were sent
     "recorded_with": {"package": "version", ...}}

Run it through ``clients/record-fixtures``, which prepares the virtualenv and node_modules.
Usage: record_fixtures.py [CONVENTION ...]   (default: all)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "mock_openai"))
sys.path.insert(0, str(HERE / "otlp_capture"))

import capture  # noqa: E402
import server as mock_server  # noqa: E402
from conventions import CONVENTIONS, FIXTURES_DIR, run_driver  # noqa: E402


def main(argv: list[str]) -> int:
    names = argv or list(CONVENTIONS)
    unknown = [n for n in names if n not in CONVENTIONS]
    if unknown:
        print(f"unknown convention(s): {unknown}; known: {list(CONVENTIONS)}", file=sys.stderr)
        return 2
    FIXTURES_DIR.mkdir(parents=True, exist_ok=True)
    capture_url, store, stop_capture = capture.start()
    failures = []
    try:
        for name in names:
            conv = CONVENTIONS[name]
            mock_url, stop_mock = mock_server.start()
            try:
                with tempfile.TemporaryDirectory(prefix=f"loupe-record-{name}-") as cwd:
                    started = time.monotonic()
                    proc, result = run_driver(
                        conv,
                        mock_url,
                        f"{capture_url}/{name}/v1/traces",
                        logs_endpoint=f"{capture_url}/{name}/v1/logs",
                        cwd=cwd,
                    )
                    elapsed = time.monotonic() - started
            finally:
                stop_mock()
            captured = store.get(name)
            spans = store.span_count(name)
            if proc.returncode != 0 or result is None or spans == 0:
                failures.append(name)
                print(f"FAIL {name}: exit {proc.returncode}, {spans} spans captured", file=sys.stderr)
                print(proc.stdout[-4000:], file=sys.stderr)
                print(proc.stderr[-4000:], file=sys.stderr)
                continue
            fixture = {"requests": captured["requests"]}
            if captured["log_requests"]:
                fixture["log_requests"] = captured["log_requests"]
            fixture["recorded_with"] = conv.recorded_with()
            path = FIXTURES_DIR / f"{name}.json"
            path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
            logs = sum(
                len(sl.get("logRecords", []))
                for r in captured["log_requests"]
                for rl in r.get("resourceLogs", [])
                for sl in rl.get("scopeLogs", [])
            )
            print(
                f"ok   {name}: {len(captured['requests'])} trace requests, {spans} spans, "
                f"{logs} log records in {elapsed:.1f}s -> {path.relative_to(FIXTURES_DIR.parents[3])}"
            )
        if store.errors:
            print(f"capture errors: {store.errors}", file=sys.stderr)
            return 1
    finally:
        stop_capture()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""A tiny OTLP/HTTP capture server: it accepts every export request and keeps it as OTLP/JSON.

Python standard library plus the ``opentelemetry-proto`` package (to decode protobuf bodies).

Requests are grouped by a label taken from the URL: ``POST /<label>/v1/traces`` and
``POST /<label>/v1/logs`` (``/v1/traces`` without a label files under ``default``). Protobuf and
JSON bodies are accepted, gzip- or deflate-compressed or not, and every request is answered
``200`` with an empty ``Export*ServiceResponse`` in the request's encoding.

``GET /<label>/captured`` answers ``{"requests": [...], "log_requests": [...]}``: every request
received so far, converted to canonical OTLP/JSON as the OTLP specification defines it
(lowerCamelCase keys, trace and span ids as lowercase hex, 64-bit integers as decimal strings,
enums as integers, other ``bytes`` values as base64).

Use ``start()`` (returns ``(base_url, store, stop)``) or run
``python capture.py --port 0`` (prints ``OTLP_CAPTURE_URL=http://127.0.0.1:PORT``).
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

# Fields holding ids, which OTLP/JSON writes as hex rather than protobuf-JSON base64.
ID_FIELDS = {"traceId", "spanId", "parentSpanId"}


def _ids_to_hex(value):
    """Rewrites, in place, every id field of a MessageToDict result from base64 to hex."""
    if isinstance(value, dict):
        for key, item in list(value.items()):
            if key in ID_FIELDS and isinstance(item, str):
                value[key] = base64.b64decode(item).hex()
            else:
                _ids_to_hex(item)
    elif isinstance(value, list):
        for item in value:
            _ids_to_hex(item)
    return value


def message_to_otlp_json(message) -> dict:
    """A protobuf OTLP message as an OTLP/JSON object (see the module docstring)."""
    as_dict = json_format.MessageToDict(
        message,
        preserving_proto_field_name=False,
        use_integers_for_enums=True,
        always_print_fields_with_no_presence=False,
    )
    return _ids_to_hex(as_dict)


def decode_body(raw: bytes, content_type: str, encoding: str, signal: str) -> dict:
    encoding = (encoding or "").lower().strip()
    if encoding == "gzip":
        raw = gzip.decompress(raw)
    elif encoding == "deflate":
        raw = zlib.decompress(raw)
    if "json" in (content_type or "").lower():
        # Already OTLP/JSON (ids in hex): keep it as sent.
        return json.loads(raw or b"{}")
    if signal == "traces":
        message = trace_service_pb2.ExportTraceServiceRequest()
    else:
        message = logs_service_pb2.ExportLogsServiceRequest()
    message.ParseFromString(raw)
    return message_to_otlp_json(message)


class CaptureStore:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_label: dict[str, dict[str, list]] = {}
        self.errors: list[str] = []

    def add(self, label: str, signal: str, request: dict) -> None:
        key = "requests" if signal == "traces" else "log_requests"
        with self.lock:
            entry = self.by_label.setdefault(label, {"requests": [], "log_requests": []})
            entry[key].append(request)

    def get(self, label: str) -> dict:
        with self.lock:
            entry = self.by_label.get(label, {"requests": [], "log_requests": []})
            return {"requests": list(entry["requests"]), "log_requests": list(entry["log_requests"])}

    def span_count(self, label: str) -> int:
        count = 0
        for request in self.get(label)["requests"]:
            for resource_spans in request.get("resourceSpans", []):
                for scope_spans in resource_spans.get("scopeSpans", []):
                    count += len(scope_spans.get("spans", []))
        return count


def _split_path(path: str) -> tuple[str, str | None]:
    """``/label/v1/traces`` -> (label, "traces"); unknown -> (label, None)."""
    path = path.split("?", 1)[0].strip("/")
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] == "v1" and parts[-1] in ("traces", "logs", "metrics"):
        label = "/".join(parts[:-2]) or "default"
        return label, parts[-1]
    return "/".join(parts), None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    @property
    def store(self) -> CaptureStore:
        return self.server.store  # type: ignore[attr-defined]

    def log_message(self, format, *args):  # noqa: A002
        if getattr(self.server, "verbose", False):
            sys.stderr.write("otlp_capture: " + (format % args) + "\n")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = bytearray()
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):  # noqa: N802
        label, signal = _split_path(self.path)
        raw = self._read_body()
        content_type = self.headers.get("Content-Type", "application/x-protobuf")
        is_json = "json" in content_type.lower()
        if signal == "metrics":
            # Accepted and dropped: the fixtures hold traces and logs only.
            self._reply(200, b"{}" if is_json else b"", content_type)
            return
        if signal is None:
            self._reply(404, b"not found", "text/plain")
            return
        try:
            request = decode_body(raw, content_type, self.headers.get("Content-Encoding", ""), signal)
        except Exception as exc:  # noqa: BLE001 - report any decoding failure to the client
            self.store.errors.append(f"{self.path}: {exc!r}")
            self._reply(400, f"cannot decode: {exc}".encode(), "text/plain")
            return
        self.store.add(label, signal, request)
        self._reply(200, b"{}" if is_json else b"", content_type)

    def do_GET(self):  # noqa: N802
        path = self.path.split("?", 1)[0].strip("/")
        if path.endswith("captured"):
            label = path[: -len("captured")].strip("/") or "default"
            body = json.dumps(self.store.get(label)).encode()
            self._reply(200, body, "application/json")
        elif path == "errors":
            self._reply(200, json.dumps(self.store.errors).encode(), "application/json")
        else:
            self._reply(404, b"not found", "text/plain")


def start(port: int = 0, host: str = "127.0.0.1", verbose: bool = False):
    """Starts the capture server in a thread. Returns ``(base_url, store, stop)``."""
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.store = CaptureStore()  # type: ignore[attr-defined]
    server.verbose = verbose  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="otlp-capture", daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return f"http://{host}:{server.server_address[1]}", server.store, stop  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description="OTLP/HTTP capture server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    server.store = CaptureStore()  # type: ignore[attr-defined]
    server.verbose = args.verbose  # type: ignore[attr-defined]
    print(f"OTLP_CAPTURE_URL=http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

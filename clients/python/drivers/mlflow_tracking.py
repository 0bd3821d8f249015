#!/usr/bin/env python3
"""MLflow tracking-server scenarios: the real ``mlflow`` client against a tracking server.

Unlike the other drivers (which export OTLP to Loupe), this one points the mlflow client at a
tracking server with ``mlflow.set_tracking_uri(URI)`` and exercises the MLflow REST API: the
server is either ``loupe serve`` or a real ``mlflow server`` (the oracle). One scenario per
process, because mlflow keeps global state (tracer provider, async export queue, the
``/version`` cache, autolog patches).

    python mlflow_tracking.py --tracking-uri http://127.0.0.1:5000 --scenario write \
        --experiment my-exp [--mode async|sync] [--mock-url http://127.0.0.1:PORT/v1] \
        [--args '{"race": "start_first"}'] [--log-bodies]

Logging mode: ``--mode async`` (mlflow's default: BatchSpanProcessor + a thread pool, so the
OTLP ``/v1/traces`` and StartTraceV3 requests of a trace race) or ``--mode sync``
(``MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false``: each span is exported as it ends, root last, then
StartTraceV3). Async scenarios call ``mlflow.flush_trace_async_logging()`` before reading.

The driver prints one line ``DRIVER_RESULT=<json>`` with:

  result     what the scenario observed through the client (trace and span summaries, search
             results, error codes), see each ``scenario_*`` function
  warnings   every Python warning raised from an mlflow module, and every record of the
             ``mlflow`` / ``opentelemetry`` loggers at WARNING or above, plus mlflow's DEBUG-only
             export failures ("Failed to log span ..."), so tests can assert there are none
  requests   every HTTP request the process sent to the tracking server, in order: method, path
             (with query), status, the trace ids it concerns (decoded from OTLP protobuf bodies,
             StartTraceV3 bodies and artifact paths), and with ``--log-bodies`` the bodies
  marks      phase markers: index into ``requests`` where each phase of the scenario started
  error      a traceback if the scenario itself raised

Client settings for fast failures (the harness sets them; defaults here):
MLFLOW_HTTP_REQUEST_MAX_RETRIES=0, MLFLOW_HTTP_REQUEST_TIMEOUT=15, telemetry off.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import sys
import threading
import time
import traceback
import warnings
from typing import Any
from urllib.parse import urlsplit

# ----------------------------------------------------------------------------------------------
# Arguments and environment (before mlflow is imported: it reads its env vars at use time, but
# the OTLP exporter choice is made when the tracer provider is first built).

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--tracking-uri", required=True)
parser.add_argument("--scenario", required=True)
parser.add_argument("--experiment", default=None, help="experiment name the scenario uses")
parser.add_argument("--mode", choices=["async", "sync"], default="async")
parser.add_argument("--mock-url", default=os.environ.get("MOCK_OPENAI_URL"))
parser.add_argument("--args", default="{}", help="scenario arguments, a JSON object")
parser.add_argument("--log-bodies", action="store_true", help="keep request/response bodies in the log")
ARGS = parser.parse_args()
SCENARIO_ARGS: dict = json.loads(ARGS.args)
TRACKING_URI = ARGS.tracking_uri.rstrip("/")

for key in list(os.environ):
    # A driver-level OTLP endpoint would replace MLflow's own export with the OTel exporter.
    if key.startswith("OTEL_EXPORTER_OTLP"):
        del os.environ[key]
os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true" if ARGS.mode == "async" else "false"
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_TRACKING_URI", TRACKING_URI)
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

# ----------------------------------------------------------------------------------------------
# Warnings and logged errors.

WARNINGS: list[dict] = []
_warn_lock = threading.Lock()


def _record_warning(kind: str, text: str, where: str = "") -> None:
    with _warn_lock:
        WARNINGS.append({"kind": kind, "text": text[:2000], "where": where})


_orig_showwarning = warnings.showwarning


def _showwarning(message, category, filename, lineno, file=None, line=None):
    if "mlflow" in str(filename) or "mlflow" in str(message).lower():
        _record_warning(f"python:{category.__name__}", str(message), f"{filename}:{lineno}")
    return _orig_showwarning(message, category, filename, lineno, file, line)


warnings.showwarning = _showwarning
warnings.simplefilter("default")

# mlflow logs export failures of the OTLP path at DEBUG only ("Failed to log span to MLflow
# backend"); those count as failures too.
DEBUG_FAILURE_MARKERS = ("Failed to log span", "Failed to retrieve server version", "Failed to log")


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING or any(m in message for m in DEBUG_FAILURE_MARKERS):
            if record.exc_info and record.levelno >= logging.WARNING:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))[-1500:]
            _record_warning(f"log:{record.name}:{record.levelname}", message)


def _install_log_capture() -> None:
    for name in ("mlflow", "opentelemetry"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            # keep mlflow's own stderr output at its usual level
            if handler.level < logging.INFO:
                handler.setLevel(logging.INFO)
        logger.addHandler(_Capture(level=logging.DEBUG))
        logger.setLevel(logging.DEBUG)


# ----------------------------------------------------------------------------------------------
# HTTP request log: every request mlflow (or the OTLP exporter) sends through `requests`.

import requests  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

REQUESTS: list[dict] = []
MARKS: dict[str, int] = {}
_req_lock = threading.Lock()
_TRACKING = urlsplit(TRACKING_URI)
_orig_request = requests.Session.request


def mark(name: str) -> None:
    with _req_lock:
        MARKS[name] = len(REQUESTS)


def _trace_ids_of(method: str, path: str, kwargs: dict) -> list[str]:
    ids: list[str] = []
    data = kwargs.get("data")
    body = kwargs.get("json")
    if path.startswith("/v1/traces") and isinstance(data, (bytes, bytearray)):
        try:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

            req = ExportTraceServiceRequest()
            req.ParseFromString(bytes(data))
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        tid = "tr-" + span.trace_id.hex()
                        if tid not in ids:
                            ids.append(tid)
        except Exception:  # noqa: BLE001 - best effort
            pass
    if body is None and isinstance(data, (str, bytes)) and not path.startswith("/v1/"):
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            body = None
    if isinstance(body, dict):
        info = (body.get("trace") or {}).get("trace_info") or {}
        if info.get("trace_id"):
            ids.append(info["trace_id"])
    for part in path.split("?")[0].split("/"):
        if part.startswith("tr-") and part not in ids:
            ids.append(part)
    return ids


def _body_for_log(kwargs: dict) -> Any:
    if kwargs.get("json") is not None:
        return kwargs["json"]
    data = kwargs.get("data")
    if isinstance(data, (bytes, bytearray)):
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return f"<{len(data)} bytes>"
    if isinstance(data, str):
        try:
            return json.loads(data)
        except ValueError:
            return data[:4000]
    if data is not None:
        return f"<{type(data).__name__}>"
    return None


def _logged_request(self, method, url, *args, **kwargs):
    parts = urlsplit(url)
    ours = parts.netloc == _TRACKING.netloc
    started = time.monotonic()
    entry: dict[str, Any] = {}
    if ours:
        query = parts.query
        params = kwargs.get("params")
        if params:
            from urllib.parse import urlencode

            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        path = parts.path + (f"?{query}" if query else "")
        entry = {"method": method.upper(), "path": path, "thread": threading.current_thread().name}
        try:
            entry["trace_ids"] = _trace_ids_of(method.upper(), parts.path, kwargs)
        except Exception:  # noqa: BLE001
            entry["trace_ids"] = []
        if ARGS.log_bodies:
            entry["request"] = _body_for_log(kwargs)
        with _req_lock:
            REQUESTS.append(entry)
    try:
        response = _orig_request(self, method, url, *args, **kwargs)
    except Exception as exc:
        if ours:
            entry["status"] = None
            entry["error"] = repr(exc)[:500]
            entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        raise
    if ours:
        entry["status"] = response.status_code
        entry["ms"] = round((time.monotonic() - started) * 1000, 1)
        if not kwargs.get("stream"):
            text = None
            try:
                text = response.text
            except Exception:  # noqa: BLE001
                pass
            if text is not None:
                if response.status_code >= 400:
                    entry["response"] = text[:1000]
                elif parts.path == "/api/3.0/mlflow/traces" and method.upper() == "POST":
                    try:
                        tags = json.loads(text)["trace"]["trace_info"].get("tags", {})
                        entry["response_tags"] = tags
                    except (ValueError, KeyError, TypeError):
                        entry["response"] = text[:1000]
                elif ARGS.log_bodies:
                    try:
                        entry["response"] = json.loads(text) if text else text
                    except ValueError:
                        entry["response"] = text[:4000]
    return response


requests.Session.request = _logged_request

# ----------------------------------------------------------------------------------------------

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import AssessmentSource, Metric, Param, RunTag, SpanType, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

_install_log_capture()
mlflow.set_tracking_uri(TRACKING_URI)

READ_WAIT_S = float(SCENARIO_ARGS.get("read_wait_s", 15))
RACE_DELAY_S = float(SCENARIO_ARGS.get("race_delay_s", 1.5))


# ----------------------------------------------------------------------------------------------
# Summaries (JSON-friendly views of client objects).


def jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [jsonable(v) for v in value]
        return repr(value)


def assessment_summary(a) -> dict:
    out = {
        "assessment_id": a.assessment_id,
        "name": a.name,
        "kind": "feedback" if a.feedback is not None else "expectation" if a.expectation is not None else "other",
        "value": jsonable(a.feedback.value if a.feedback is not None else a.expectation.value if a.expectation is not None else None),
        "rationale": a.rationale,
        "source": {"source_type": a.source.source_type, "source_id": a.source.source_id} if a.source else None,
        "span_id": a.span_id,
        "metadata": a.metadata,
        "trace_id": a.trace_id,
        "valid": a.valid,
        "overrides": a.overrides,
        "create_time_ms": a.create_time_ms,
        "last_update_time_ms": a.last_update_time_ms,
    }
    return out


def info_summary(info) -> dict:
    return {
        "trace_id": info.trace_id,
        "experiment_id": info.experiment_id,
        "state": info.state.value if hasattr(info.state, "value") else str(info.state),
        "request_time": info.request_time,
        "execution_duration": info.execution_duration,
        "client_request_id": info.client_request_id,
        "request_preview": info.request_preview,
        "response_preview": info.response_preview,
        "tags": dict(info.tags),
        "metadata": dict(info.trace_metadata),
        "token_usage": jsonable(info.token_usage),
        "assessments": [assessment_summary(a) for a in info.assessments],
    }


def span_summary(span, names: dict) -> dict:
    status = span.status
    return {
        "name": span.name,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "parent_name": names.get(span.parent_id),
        "span_type": span.span_type,
        "status": status.status_code.value if hasattr(status.status_code, "value") else str(status.status_code),
        "status_description": status.description,
        "inputs": jsonable(span.inputs),
        "outputs": jsonable(span.outputs),
        "attributes": jsonable(dict(span.attributes)),
        "events": [{"name": e.name, "attributes": jsonable(dict(e.attributes or {}))} for e in span.events],
        "start_time_ns": span.start_time_ns,
        "end_time_ns": span.end_time_ns,
    }


def trace_summary(trace) -> dict:
    if trace is None:
        return None
    names = {s.span_id: s.name for s in trace.data.spans}
    return {
        "info": info_summary(trace.info),
        "spans": [span_summary(s, names) for s in trace.data.spans],
    }


def error_of(exc: BaseException) -> dict:
    return {"type": type(exc).__name__, "error_code": getattr(exc, "error_code", None), "message": str(exc)[:1000]}


def flush() -> None:
    if ARGS.mode == "async":
        mlflow.flush_trace_async_logging(terminate=False)


def wait_trace(trace_id: str, spans: int | None = None) -> Any:
    """MlflowClient().get_trace until it answers (with at least `spans` spans), READ_WAIT_S at most.

    The real server answers at once after a flushed write; the polling only keeps the suite from
    failing on a server that acknowledges a write before it is readable. `attempts` is reported.
    """
    client = MlflowClient()
    deadline = time.monotonic() + READ_WAIT_S
    attempts = 0
    last_error = None
    while True:
        attempts += 1
        try:
            trace = client.get_trace(trace_id)
            if spans is None or len(trace.data.spans) >= spans:
                READ_ATTEMPTS[trace_id] = attempts
                return trace
            last_error = f"{len(trace.data.spans)} spans"
        except MlflowException as exc:
            last_error = error_of(exc)
        if time.monotonic() > deadline:
            READ_ATTEMPTS[trace_id] = attempts
            raise AssertionError(f"trace {trace_id} not readable after {READ_WAIT_S}s: {last_error}")
        time.sleep(0.25)


READ_ATTEMPTS: dict[str, int] = {}


def search_ids(locations: list[str], **kwargs) -> list[str]:
    traces = mlflow.search_traces(locations=locations, return_type="list", include_spans=False, **kwargs)
    return [t.info.trace_id for t in traces]


def wait_count(locations: list[str], count: int) -> None:
    deadline = time.monotonic() + READ_WAIT_S
    while True:
        found = search_ids(locations)
        if len(found) >= count or time.monotonic() > deadline:
            return
        time.sleep(0.25)


def experiment_id() -> str:
    if not ARGS.experiment:
        raise SystemExit("--experiment is required for this scenario")
    return mlflow.set_experiment(ARGS.experiment).experiment_id


# ----------------------------------------------------------------------------------------------
# The sample application (the shape of MLflow's own @mlflow.trace examples).

TOKEN_USAGE = {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}


@mlflow.trace(span_type=SpanType.RETRIEVER)
def retrieve(query: str, k: int = 2) -> list[dict]:
    return [{"doc_id": f"doc-{i}", "text": f"passage {i} about {query}", "score": round(1 - 0.1 * i, 2)} for i in range(k)]


@mlflow.trace(span_type=SpanType.TOOL)
def flaky_tool(x: int) -> int:
    raise ValueError("tool failed")


@mlflow.trace(name="llm_call", span_type=SpanType.CHAT_MODEL)
def llm(messages: list[dict]) -> dict:
    span = mlflow.get_current_active_span()
    span.set_attribute("mlflow.chat.tokenUsage", TOKEN_USAGE)
    return {"role": "assistant", "content": "hello back"}


@mlflow.trace(span_type=SpanType.AGENT, attributes={"agent.version": "1.0"})
def agent(question: str, k: int = 2) -> str:
    mlflow.update_current_trace(
        tags={"env": "test", "app": "loupe-suite"},
        metadata={"customer": "acme"},
        client_request_id="client-req-1",
        session_id="sess-1",
        user="user-1",
    )
    docs = retrieve(question, k)
    try:
        flaky_tool(1)
    except ValueError:
        pass
    with mlflow.start_span(name="manual_step", span_type=SpanType.CHAIN) as span:
        span.set_inputs({"docs": len(docs), "ids": [d["doc_id"] for d in docs]})
        span.set_attribute("custom.number", 42)
        span.set_attribute("custom.flag", True)
        span.set_outputs({"ok": True})
    reply = llm([{"role": "user", "content": question}])
    return reply["content"]


@mlflow.trace(span_type=SpanType.AGENT)
def failing(question: str) -> str:
    raise RuntimeError("boom")


def apply_race(race: str) -> None:
    """Forces the order of the two requests each trace produces (see the module docstring).

    natural      no change (async: either order, sync: OTLP first)
    otlp_first   StartTraceV3 waits RACE_DELAY_S on its worker thread: OTLP spans arrive first
    start_first  OTLP span logging waits RACE_DELAY_S: StartTraceV3 arrives before any span of
                 its trace, so a server that mirrors MLflow answers without spansLocation and the
                 client also uploads traces.json; the spans follow over OTLP
    no_otlp      the client's `/version` probe is treated as failed (what it does when /version
                 is unreachable or older than 3.4): no OTLP at all, spans go only in traces.json
    """
    from mlflow.tracing.client import TracingClient

    if race == "natural":
        return
    if race == "otlp_first":
        original = TracingClient.start_trace

        def start_trace(self, *a, **kw):
            time.sleep(RACE_DELAY_S)
            return original(self, *a, **kw)

        TracingClient.start_trace = start_trace
    elif race == "start_first":
        original_log = TracingClient.log_spans

        def log_spans(self, *a, **kw):
            time.sleep(RACE_DELAY_S)
            return original_log(self, *a, **kw)

        TracingClient.log_spans = log_spans
    elif race == "no_otlp":
        from mlflow.store.tracking.rest_store import RestStore

        RestStore._get_server_version = staticmethod(lambda host_creds: None)
    else:
        raise SystemExit(f"unknown race {race!r}")


# ----------------------------------------------------------------------------------------------
# Scenarios. Each returns a JSON-able dict.


def scenario_experiments() -> dict:
    """set_experiment create / get-by-name, experiment 0, and a trace logged to experiment 0."""
    client = MlflowClient()
    out: dict[str, Any] = {}
    mark("create")
    created = mlflow.set_experiment(ARGS.experiment)
    out["created"] = {"experiment_id": created.experiment_id, "name": created.name, "lifecycle_stage": created.lifecycle_stage, "artifact_location": created.artifact_location}
    mark("get_by_name")
    again = mlflow.set_experiment(ARGS.experiment)
    out["again_id"] = again.experiment_id
    mark("client_reads")
    e0 = client.get_experiment("0")
    out["exp0"] = {"experiment_id": e0.experiment_id, "name": e0.name, "lifecycle_stage": e0.lifecycle_stage, "artifact_location": e0.artifact_location}
    out["default_by_name"] = getattr(client.get_experiment_by_name("Default"), "experiment_id", None)
    out["missing_by_name"] = client.get_experiment_by_name(ARGS.experiment + "-does-not-exist")
    by_id = client.get_experiment(created.experiment_id)
    out["by_id"] = {"experiment_id": by_id.experiment_id, "name": by_id.name}
    try:
        client.get_experiment("987654321")
        out["missing_by_id"] = None
    except MlflowException as exc:
        out["missing_by_id"] = error_of(exc)
    mark("create_with_tags")
    tagged_id = client.create_experiment(ARGS.experiment + "-tagged", tags={"team": "loupe"})
    tagged = client.get_experiment(tagged_id)
    out["tagged"] = {"experiment_id": tagged_id, "tags": dict(tagged.tags)}
    try:
        client.create_experiment(ARGS.experiment)
        out["duplicate_create"] = None
    except MlflowException as exc:
        out["duplicate_create"] = error_of(exc)

    mark("trace_in_exp0")
    mlflow.set_experiment(experiment_id="0")
    marker = SCENARIO_ARGS.get("marker", "exp0-trace")
    with mlflow.start_span(name=marker, span_type=SpanType.CHAIN) as span:
        span.set_inputs({"where": "experiment 0"})
        span.set_outputs({"ok": True})
        trace_id = span.trace_id
    flush()
    wait_trace(trace_id, 1)
    mark("search_exp0")
    found = search_ids(["0"], filter_string=f"name = '{marker}'")
    out["exp0_trace"] = {"trace_id": trace_id, "found": found, "experiment_id": MlflowClient().get_trace(trace_id).info.experiment_id}
    return out


def scenario_write() -> dict:
    """The sample app: a nested 5-span OK trace and a 1-span ERROR trace, then read back."""
    race = SCENARIO_ARGS.get("race", "natural")
    exp_id = experiment_id()
    apply_race(race)
    mark("write")
    answer = agent("hi there", k=2)
    ok_id = mlflow.get_last_active_trace_id()
    try:
        failing("will it fail?")
        raise AssertionError("failing() did not raise")
    except RuntimeError:
        pass
    error_id = mlflow.get_last_active_trace_id()
    flush()
    mark("read")
    wait_trace(ok_id, 5)
    wait_trace(error_id, 1)
    mark("fluent_get_trace")
    ok = mlflow.get_trace(ok_id)
    err = mlflow.get_trace(error_id)
    return {
        "experiment_id": exp_id,
        "race": race,
        "answer": answer,
        "ok_trace": trace_summary(ok),
        "error_trace": trace_summary(err),
        "read_attempts": READ_ATTEMPTS,
    }


def _mock_client():
    from openai import OpenAI

    if not ARGS.mock_url:
        raise SystemExit("--mock-url is required for this scenario")
    return OpenAI(base_url=ARGS.mock_url, api_key="test", max_retries=0)


WEATHER_TOOL = _common.WEATHER_TOOL  # the tool every client suite offers the mock


def scenario_openai() -> dict:
    """mlflow.openai.autolog() with the real openai client, as in MLflow's tracing docs."""
    exp_id = experiment_id()
    mlflow.openai.autolog()
    client = _mock_client()
    ids: dict[str, str] = {}
    received: dict[str, Any] = {}

    mark("chat")
    response = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "What is the capital of France?"},
        ],
        temperature=0.2,
        max_tokens=50,
    )
    ids["chat"] = mlflow.get_last_active_trace_id()
    received["chat"] = {"text": response.choices[0].message.content, "usage": response.usage.model_dump()}

    mark("stream")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Count from one to three."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = [], None
    for chunk in stream:
        for choice in chunk.choices:
            if choice.delta and choice.delta.content:
                text.append(choice.delta.content)
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
    ids["stream"] = mlflow.get_last_active_trace_id()
    received["stream"] = {"text": "".join(text), "usage": usage}

    mark("tool")

    @mlflow.trace(span_type=SpanType.TOOL)
    def get_weather(city: str) -> str:
        return json.dumps({"city": city, "forecast": "sunny", "temperature_c": 22})

    tool_usages: list[dict] = []
    tool_calls: list[dict] = []

    @mlflow.trace(span_type=SpanType.AGENT)
    def run_tool_agent(question: str) -> str:
        messages: list[Any] = [{"role": "user", "content": question}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        tool_usages.append(first.usage.model_dump())
        message = first.choices[0].message
        messages.append(message)
        for call in message.tool_calls or []:
            tool_calls.append({"id": call.id, "name": call.function.name, "arguments": call.function.arguments})
            result = get_weather(**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        second = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
        tool_usages.append(second.usage.model_dump())
        return second.choices[0].message.content

    received["tool"] = {"text": run_tool_agent("What is the weather in Paris today?"), "usages": tool_usages, "tool_calls": tool_calls}
    ids["tool"] = mlflow.get_last_active_trace_id()

    mark("embedding")
    emb = client.embeddings.create(model="text-embedding-3-small", input="Loupe traces every LLM call.")
    ids["embedding"] = mlflow.get_last_active_trace_id()
    received["embedding"] = {"dimensions": len(emb.data[0].embedding), "usage": emb.usage.model_dump()}

    flush()
    mark("read")
    expected_spans = {"chat": 1, "stream": 1, "tool": 4, "embedding": 1}
    traces = {}
    for name, trace_id in ids.items():
        traces[name] = trace_summary(wait_trace(trace_id, expected_spans[name]))
    return {"experiment_id": exp_id, "ids": ids, "received": received, "traces": traces, "read_attempts": READ_ATTEMPTS}


def scenario_langchain() -> dict:
    """mlflow.langchain.autolog() with a LangChain v1 tool-calling agent (LangGraph underneath)."""
    exp_id = experiment_id()
    if not ARGS.mock_url:
        raise SystemExit("--mock-url is required for this scenario")
    mlflow.langchain.autolog()
    from langchain.agents import create_agent
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    @tool
    def get_weather(city: str) -> str:
        """Get the current weather for a city."""
        return json.dumps({"city": city, "forecast": "sunny", "temperature_c": 22})

    model = ChatOpenAI(model="gpt-4o-mini", base_url=ARGS.mock_url, api_key="test", max_retries=0, temperature=0)
    graph = create_agent(model, tools=[get_weather], system_prompt="You are a helpful assistant.")
    mark("invoke")
    result = graph.invoke({"messages": [{"role": "user", "content": "What is the weather in Paris today?"}]})
    trace_id = mlflow.get_last_active_trace_id()
    flush()
    mark("read")
    final = result["messages"][-1]
    trace = wait_trace(trace_id, 1)
    # wait until the span count is stable (all spans of the graph arrived)
    expected = SCENARIO_ARGS.get("expected_spans")
    if expected:
        trace = wait_trace(trace_id, int(expected))
    return {
        "experiment_id": exp_id,
        "trace_id": trace_id,
        "final_text": final.content,
        "message_types": [m.type for m in result["messages"]],
        "trace": trace_summary(trace),
        "read_attempts": READ_ATTEMPTS,
    }


# The seed traces of the search scenario. Each label's trace is written in this order.
SEEDS = [
    {"label": "s1", "name": "alpha", "tags": {"team": "red", "tier": "gold"}, "metadata": {"customer": "acme"},
     "child": ("lookup", SpanType.RETRIEVER, {"db.system": "pg"}), "sleep": 0.0, "fail": False},
    {"label": "s2", "name": "beta", "tags": {"team": "blue"}, "metadata": {"customer": "globex"},
     "child": ("generate", SpanType.CHAT_MODEL, {"llm.model": "gpt-x"}), "sleep": 0.6, "fail": False},
    {"label": "s3", "name": "alpha", "tags": {"team": "red"}, "metadata": {"customer": "initech"},
     "child": ("lookup", SpanType.RETRIEVER, {"db.system": "mysql"}), "sleep": 0.0, "fail": True},
    {"label": "s4", "name": "gamma", "tags": {"team": "green"}, "metadata": {},
     "child": ("rerank", SpanType.RERANKER, {"rerank.top_n": 3}), "sleep": 0.0, "fail": False},
]


def write_seed(seed: dict) -> str:
    trace_id = None
    try:
        with mlflow.start_span(name=seed["name"], span_type=SpanType.CHAIN) as root:
            trace_id = root.trace_id
            root.set_inputs({"query": f"question for {seed['label']}", "options": {"k": 2, "filters": ["a", "b"]}})
            mlflow.update_current_trace(tags={**seed["tags"], "seed": seed["label"]}, metadata=seed["metadata"])
            name, span_type, attributes = seed["child"]
            with mlflow.start_span(name=name, span_type=span_type) as child:
                child.set_inputs({"q": seed["label"]})
                for key, value in attributes.items():
                    child.set_attribute(key, value)
                if seed["sleep"]:
                    time.sleep(seed["sleep"])
                child.set_outputs([{"id": 1, "text": "result"}])
            if seed["fail"]:
                raise RuntimeError(f"seed {seed['label']} failed")
            root.set_outputs({"answer": f"answer for {seed['label']}", "sources": [1, 2]})
    except RuntimeError:
        pass
    return trace_id


def seed_traces(exp_id: str, pause: float = 0.05) -> dict[str, str]:
    ids = {}
    for seed in SEEDS:
        ids[seed["label"]] = write_seed(seed)
        time.sleep(pause)
    flush()
    for trace_id in ids.values():
        wait_trace(trace_id, 2)
    wait_count([exp_id], len(ids))
    return ids


def scenario_search() -> dict:
    """Seeds SEEDS, then runs the given queries and the client's paging/batch paths."""
    exp_id = experiment_id()
    client = MlflowClient()
    mark("seed")
    ids = seed_traces(exp_id)
    label_of = {v: k for k, v in ids.items()}
    infos = {label: client.get_trace(tid).info for label, tid in ids.items()}
    values = {f"ts_{label}": info.request_time for label, info in infos.items()}
    values.update({f"dur_{label}": info.execution_duration for label, info in infos.items()})

    def labels(trace_ids):
        return [label_of.get(t, t) for t in trace_ids]

    out: dict[str, Any] = {"experiment_id": exp_id, "ids": ids, "values": values, "queries": {}}
    mark("queries")
    for name, query in SCENARIO_ARGS.get("queries", {}).items():
        kwargs = {}
        if query.get("filter"):
            kwargs["filter_string"] = query["filter"].format(**values)
        if query.get("order_by"):
            kwargs["order_by"] = query["order_by"]
        if query.get("max_results"):
            kwargs["max_results"] = query["max_results"]
        try:
            out["queries"][name] = {"labels": labels(search_ids([exp_id], **kwargs)), "filter": kwargs.get("filter_string")}
        except MlflowException as exc:
            out["queries"][name] = {"error": error_of(exc), "filter": kwargs.get("filter_string")}

    mark("pages")
    pages = []
    token = None
    for _ in range(5):
        page = client.search_traces(locations=[exp_id], max_results=3, order_by=["timestamp_ms ASC"], page_token=token, include_spans=False)
        pages.append({"labels": labels([t.info.trace_id for t in page]), "token": page.token})
        token = page.token
        if not token:
            break
    out["pages"] = pages

    mark("search_with_spans")
    full = mlflow.search_traces(locations=[exp_id], return_type="list", order_by=["timestamp_ms ASC"])
    out["with_spans"] = {
        label_of.get(t.info.trace_id, t.info.trace_id): {
            "span_names": [s.name for s in t.data.spans],
            "root_inputs": jsonable(t.data.spans[0].inputs) if t.data.spans else None,
            "root_outputs": jsonable(t.data.spans[0].outputs) if t.data.spans else None,
            "state": t.info.state.value,
            "tags": dict(t.info.tags),
        }
        for t in full
    }

    mark("search_no_spans")
    bare = client.search_traces(locations=[exp_id], include_spans=False, max_results=10)
    out["no_spans"] = {label_of.get(t.info.trace_id): len(t.data.spans) for t in bare}

    mark("dataframe")
    frame = mlflow.search_traces(locations=[exp_id])
    out["dataframe"] = {
        "rows": len(frame),
        "columns": sorted(map(str, frame.columns)),
        "request_types": sorted({type(v).__name__ for v in frame["request"]}),
    }

    mark("get_trace")
    s1 = client.get_trace(ids["s1"])
    out["get_trace_s1"] = trace_summary(s1)
    fluent = mlflow.get_trace(ids["s2"])
    out["fluent_get_trace_s2"] = trace_summary(fluent)

    mark("batch_get")
    from mlflow.tracing.client import TracingClient

    batch = TracingClient().batch_get_traces([ids["s1"], ids["s2"], ids["s4"]])
    out["batch_get"] = sorted((label_of.get(t.info.trace_id), len(t.data.spans)) for t in batch)

    mark("missing")
    try:
        client.get_trace("tr-" + "0" * 31 + "1")
        out["missing_get_trace"] = None
    except MlflowException as exc:
        out["missing_get_trace"] = error_of(exc)
    out["fluent_missing"] = mlflow.get_trace("tr-" + "0" * 31 + "2", silent=True)
    return out


def scenario_tags() -> dict:
    exp_id = experiment_id()
    client = MlflowClient()
    with mlflow.start_span(name="tagged", span_type=SpanType.CHAIN) as span:
        span.set_inputs({"x": 1})
        mlflow.update_current_trace(tags={"keep": "1", "drop": "x"})
        trace_id = span.trace_id
    flush()
    wait_trace(trace_id, 1)
    out: dict[str, Any] = {"trace_id": trace_id, "experiment_id": exp_id}
    mark("set")
    mlflow.set_trace_tag(trace_id, "reviewed", "yes")
    client.set_trace_tag(trace_id, "score", "7")
    client.set_trace_tag(trace_id, "keep", "2")  # overwrite
    out["after_set"] = dict(client.get_trace(trace_id).info.tags)
    out["search_reviewed"] = search_ids([exp_id], filter_string="tags.reviewed = 'yes'")
    mark("delete")
    mlflow.delete_trace_tag(trace_id, "drop")
    client.delete_trace_tag(trace_id, "reviewed")
    out["after_delete"] = dict(client.get_trace(trace_id).info.tags)
    out["search_reviewed_after"] = search_ids([exp_id], filter_string="tags.reviewed = 'yes'")
    mark("delete_missing")
    try:
        client.delete_trace_tag(trace_id, "never-set")
        out["delete_missing"] = None
    except MlflowException as exc:
        out["delete_missing"] = error_of(exc)
    mark("missing_trace")
    try:
        client.set_trace_tag("tr-" + "0" * 31 + "3", "k", "v")
        out["set_on_missing_trace"] = None
    except MlflowException as exc:
        out["set_on_missing_trace"] = error_of(exc)
    return out


def scenario_delete() -> dict:
    exp_id = experiment_id()
    client = MlflowClient()
    ids = []
    for i in range(5):
        with mlflow.start_span(name=f"del-{i}", span_type=SpanType.CHAIN) as span:
            span.set_inputs({"i": i})
            ids.append(span.trace_id)
        time.sleep(0.03)
    flush()
    for trace_id in ids:
        wait_trace(trace_id, 1)
    wait_count([exp_id], 5)
    times = [client.get_trace(t).info.request_time for t in ids]
    out: dict[str, Any] = {"ids": ids, "times": times}
    mark("by_ids")
    out["deleted_by_ids"] = client.delete_traces(experiment_id=exp_id, trace_ids=ids[:2])
    out["after_ids"] = search_ids([exp_id])
    mark("by_time")
    out["deleted_by_time"] = client.delete_traces(experiment_id=exp_id, max_timestamp_millis=times[3])
    out["after_time"] = search_ids([exp_id])
    mark("by_time_max_traces")
    out["deleted_none"] = client.delete_traces(experiment_id=exp_id, max_timestamp_millis=times[0] - 1000, max_traces=10)
    mark("read_deleted")
    try:
        client.get_trace(ids[0])
        out["get_deleted"] = None
    except MlflowException as exc:
        out["get_deleted"] = error_of(exc)
    out["fluent_get_deleted"] = mlflow.get_trace(ids[0], silent=True)
    return out


def scenario_assessments() -> dict:
    exp_id = experiment_id()
    client = MlflowClient()
    with mlflow.start_span(name="judged", span_type=SpanType.AGENT) as root:
        root.set_inputs({"question": "q"})
        with mlflow.start_span(name="judged_child", span_type=SpanType.TOOL) as child:
            child.set_inputs({"x": 1})
            child_span_id = child.span_id
        root.set_outputs({"answer": "a"})
        trace_id = root.trace_id
    flush()
    wait_trace(trace_id, 2)
    out: dict[str, Any] = {"trace_id": trace_id, "child_span_id": child_span_id, "experiment_id": exp_id}
    mark("log")
    fb = mlflow.log_feedback(
        trace_id=trace_id, name="quality", value=0.9, rationale="good",
        source=AssessmentSource(source_type="HUMAN", source_id="alice"), metadata={"k": "v"},
    )
    span_fb = mlflow.log_feedback(
        trace_id=trace_id, name="tool_ok", value=True, span_id=child_span_id,
        source=AssessmentSource(source_type="LLM_JUDGE", source_id="judge-1"),
    )
    exp_dict = mlflow.log_expectation(trace_id=trace_id, name="expected_answer", value={"answer": "a", "facts": ["x", "y"]})
    exp_scalar = mlflow.log_expectation(trace_id=trace_id, name="expected_len", value=3)
    out["logged"] = {k: assessment_summary(v) for k, v in
                     {"quality": fb, "tool_ok": span_fb, "expected_answer": exp_dict, "expected_len": exp_scalar}.items()}
    mark("get")
    out["got_quality"] = assessment_summary(mlflow.get_assessment(trace_id, fb.assessment_id))
    mark("update")
    from mlflow.entities import Feedback

    updated = mlflow.update_assessment(trace_id, fb.assessment_id, Feedback(name="quality", value=0.5, rationale="revised"))
    out["updated"] = assessment_summary(updated)
    mark("delete")
    mlflow.delete_assessment(trace_id, exp_scalar.assessment_id)
    mark("read")
    out["final"] = [assessment_summary(a) for a in client.get_trace(trace_id).info.assessments]
    try:
        mlflow.get_assessment(trace_id, exp_scalar.assessment_id)
        out["get_deleted"] = None
    except MlflowException as exc:
        out["get_deleted"] = error_of(exc)
    mark("search")
    out["search_gt_04"] = search_ids([exp_id], filter_string="feedback.quality > 0.4")
    out["search_gt_08"] = search_ids([exp_id], filter_string="feedback.quality > 0.8")
    out["search_searched_assessments"] = [
        sorted(a.name for a in t.info.assessments)
        for t in mlflow.search_traces(locations=[exp_id], return_type="list", include_spans=False)
    ]
    mark("missing_trace")
    try:
        mlflow.log_feedback(trace_id="tr-" + "0" * 31 + "4", name="quality", value=1.0)
        out["log_on_missing_trace"] = None
    except MlflowException as exc:
        out["log_on_missing_trace"] = error_of(exc)
    return out


def scenario_otlp() -> dict:
    """Plain OpenTelemetry SDK -> POST /v1/traces with x-mlflow-experiment-id, then MLflow search."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import Status, StatusCode

    client = MlflowClient()
    exp_id = client.create_experiment(ARGS.experiment)
    out: dict[str, Any] = {"experiment_id": exp_id}

    def send(headers: dict, root_name: str, fail: bool = False) -> str:
        provider = TracerProvider(resource=Resource.create({"service.name": "loupe-otlp-plain", "deployment.environment": "test"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{TRACKING_URI}/v1/traces", headers=headers, timeout=10)))
        tracer = provider.get_tracer("loupe.suite", "1.0")
        with tracer.start_as_current_span(root_name) as root:
            root.set_attribute("app.request", "hello")
            with tracer.start_as_current_span("otlp-child") as child:
                child.set_attribute("gen_ai.operation.name", "chat")
                child.set_attribute("custom.count", 3)
                if fail:
                    child.set_status(Status(StatusCode.ERROR, "child broke"))
            if fail:
                root.set_status(Status(StatusCode.ERROR, "root broke"))
            else:
                root.set_status(Status(StatusCode.OK))
            hex_id = format(root.get_span_context().trace_id, "032x")
        provider.force_flush()
        provider.shutdown()
        return hex_id

    mark("send")
    ok_hex = send({"x-mlflow-experiment-id": exp_id}, "otlp-root")
    err_hex = send({"x-mlflow-experiment-id": exp_id}, "otlp-root-error", fail=True)
    out["ok_hex"], out["err_hex"] = ok_hex, err_hex
    if SCENARIO_ARGS.get("no_header_marker"):
        out["no_header_hex"] = send({}, SCENARIO_ARGS["no_header_marker"])
    mark("search")
    wait_count([exp_id], 2)
    found = mlflow.search_traces(locations=[exp_id], return_type="list")
    out["found"] = {t.info.trace_id: {"state": t.info.state.value, "span_names": sorted(s.name for s in t.data.spans), "tags": dict(t.info.tags)} for t in found}
    mark("get")
    out["ok_trace"] = trace_summary(wait_trace("tr-" + ok_hex, 2))
    out["status_ok"] = search_ids([exp_id], filter_string="status = 'OK'")
    out["status_error"] = search_ids([exp_id], filter_string="status = 'ERROR'")
    out["span_name"] = search_ids([exp_id], filter_string="span.name = 'otlp-child'")
    if SCENARIO_ARGS.get("no_header_marker"):
        mark("search_default")
        wait_count(["0"], 1)
        out["default_found"] = ["tr-" + out["no_header_hex"] in search_ids(["0"])]
    return out


def scenario_unimplemented() -> dict:
    """Client calls outside the tracing API: they must fail fast with a clean error code."""
    client = MlflowClient()
    out: dict[str, Any] = {}
    for name, call in {
        "search_registered_models": lambda: client.search_registered_models(),
        "create_registered_model": lambda: client.create_registered_model("loupe-unimplemented"),
    }.items():
        started = time.monotonic()
        try:
            call()
            out[name] = {"ok": True}
        except MlflowException as exc:
            out[name] = error_of(exc)
        out[name]["seconds"] = round(time.monotonic() - started, 2)
    return out


def run_summary(run) -> dict:
    return {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "lifecycle_stage": run.info.lifecycle_stage,
        "start_time": run.info.start_time,
        "end_time": run.info.end_time,
        "user_id": run.info.user_id,
        "metrics": run.data.metrics,
        "params": run.data.params,
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.source") and k != "mlflow.user"},
        "datasets": sorted(d.dataset.name for d in (run.inputs.dataset_inputs if run.inputs else [])),
    }


def scenario_runs() -> dict:
    """Everyday experiment tracking: fluent start_run/log_*/set_tag(s), MlflowClient calls,
    search with filters, order and pages, metric history, delete/restore, errors."""
    import pandas as pd

    client = MlflowClient()
    exp_id = experiment_id()
    out: dict[str, Any] = {}
    mark("fluent")
    with mlflow.start_run(run_name="baseline") as run:
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"batch": 32, "model": "gpt-4o-mini"})
        for step, acc in enumerate([0.5, 0.7, 0.9]):
            mlflow.log_metric("accuracy", acc, step=step)
        mlflow.log_metrics({"loss": 0.25, "latency_ms": 120.0})
        mlflow.set_tag("team", "search")
        mlflow.set_tags({"stage": "dev", "owner": "alice"})
        mlflow.log_input(mlflow.data.from_pandas(pd.DataFrame({"q": ["a", "b"]}), name="questions"), context="eval")
        baseline = run.info.run_id
    with mlflow.start_run(run_name="tuned") as run:
        mlflow.log_params({"lr": 0.001, "batch": 64})
        mlflow.log_metric("accuracy", 0.95)
        mlflow.set_tag("team", "search")
        tuned = run.info.run_id
    failed = client.create_run(exp_id, run_name="broken", tags={"team": "infra"})
    client.log_metric(failed.info.run_id, "accuracy", float("nan"))
    client.log_batch(failed.info.run_id, metrics=[Metric("loss", 2.0, 1700000000000, 0)], params=[Param("lr", "0.1")], tags=[RunTag("why", "oom")])
    client.set_terminated(failed.info.run_id, status="FAILED")
    out["ids"] = {"baseline": baseline, "tuned": tuned, "broken": failed.info.run_id}
    mark("read")
    out["baseline"] = run_summary(client.get_run(baseline))
    out["broken"] = run_summary(client.get_run(failed.info.run_id))
    out["history"] = [(m.step, m.value) for m in client.get_metric_history(baseline, "accuracy")]

    def search(filter_string="", order_by=None, **kw):
        return [r.info.run_name for r in client.search_runs([exp_id], filter_string=filter_string, order_by=order_by, **kw)]

    mark("search")
    out["search"] = {
        "all": search(),
        "acc_gt_0.8": search("metrics.accuracy > 0.8", ["metrics.accuracy DESC"]),
        "lr_param": search("params.lr = '0.01'"),
        "team_and_status": search("tags.team = 'search' and attributes.status = 'FINISHED'", ["attributes.start_time ASC"]),
        "name_like": search("attributes.run_name LIKE 'b%'"),
        "failed": search("attributes.status = 'FAILED'"),
    }
    page1 = client.search_runs([exp_id], max_results=2, order_by=["attributes.start_time ASC"])
    page2 = client.search_runs([exp_id], max_results=2, order_by=["attributes.start_time ASC"], page_token=page1.token)
    out["pages"] = [[r.info.run_name for r in page1], [r.info.run_name for r in page2], page2.token]
    out["fluent_search"] = sorted(mlflow.search_runs([exp_id], filter_string="params.batch = '64'")["tags.mlflow.runName"].tolist())
    mark("errors")
    errors = {}
    for name, call in {
        "bad_filter": lambda: client.search_runs([exp_id], filter_string="metrics.accuracy >> 1"),
        "change_param": lambda: client.log_param(baseline, "lr", 0.5),
        "missing_run": lambda: client.get_run("0" * 32),
    }.items():
        try:
            call()
            errors[name] = {"ok": True}
        except MlflowException as exc:
            errors[name] = error_of(exc)
    out["errors"] = errors
    mark("delete")
    client.delete_tag(tuned, "team")
    client.delete_run(failed.info.run_id)
    out["after_delete"] = search()
    out["deleted_only"] = search(run_view_type=ViewType.DELETED_ONLY)
    client.restore_run(failed.info.run_id)
    out["after_restore"] = search()
    out["tuned_tags"] = run_summary(client.get_run(tuned))["tags"]
    return out


def _evaluation(run_id: str) -> dict:
    """What one evaluation left behind: the run (metrics, tags), and per trace its assessments."""
    client = MlflowClient()
    run = client.get_run(run_id)
    traces = mlflow.search_traces(run_id=run_id, return_type="list")
    return {
        "run_id": run_id,
        "status": run.info.status,
        "metrics": run.data.metrics,
        "is_evaluation": run.data.tags.get("mlflow.runIsEvaluation"),
        "datasets": sorted(d.dataset.name for d in (run.inputs.dataset_inputs if run.inputs else [])),
        "traces": sorted(
            (
                {
                    "trace_id": t.info.trace_id,
                    "source_run": t.info.trace_metadata.get("mlflow.sourceRun"),
                    "request": t.info.request_preview,
                    "assessments": sorted(
                        (
                            {
                                "name": a.name,
                                "value": jsonable(a.feedback.value if a.feedback else a.expectation.value if a.expectation else None),
                                "error": a.feedback.error.error_message[:200] if a.feedback and a.feedback.error else None,
                                "source_type": a.source.source_type if a.source else None,
                                "rationale": (a.rationale or "")[:200],
                                "source_run": (a.metadata or {}).get("mlflow.assessment.sourceRunId"),
                            }
                            for a in t.info.assessments
                        ),
                        key=lambda a: a["name"],
                    ),
                }
                for t in traces
            ),
            key=lambda t: t["request"] or "",
        ),
    }


def scenario_evaluate() -> dict:
    """mlflow.genai.evaluate unchanged: code scorers over predict_fn, a DataFrame of
    inputs/outputs/expectations, a DataFrame of existing traces, and the built-in LLM judges
    (the shared mock as the judge model)."""
    import pandas as pd
    from mlflow.genai.judges import make_judge
    from mlflow.genai.scorers import Correctness, Guidelines, RelevanceToQuery, scorer

    if ARGS.mock_url:
        os.environ["OPENAI_BASE_URL"] = ARGS.mock_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-mock")
    experiment_id()
    out: dict[str, Any] = {}

    @scorer
    def exact_match(outputs, expectations) -> bool:
        return outputs == expectations["expected_response"]

    @scorer
    def answer_length(outputs) -> int:
        return len(str(outputs))

    @mlflow.trace
    def predict_fn(question: str) -> str:
        return "4" if "2+2" in question else "I do not know"

    data = [
        {"inputs": {"question": "What is 2+2?"}, "expectations": {"expected_response": "4"}},
        {"inputs": {"question": "What is the capital of Mars?"}, "expectations": {"expected_response": "none"}},
    ]
    mark("predict_fn")
    res = mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[exact_match, answer_length])
    out["predict_fn"] = _evaluation(res.run_id)
    out["predict_fn"]["result_metrics"] = {k: float(v) for k, v in res.metrics.items()}

    mark("dataframe")
    frame = pd.DataFrame(
        {
            "inputs": [{"question": "Name a color"}, {"question": "Name a fruit"}],
            "outputs": ["blue", "rock"],
            "expectations": [{"expected_response": "blue"}, {"expected_response": "apple"}],
        }
    )
    res = mlflow.genai.evaluate(data=frame, scorers=[exact_match])
    out["dataframe"] = _evaluation(res.run_id)

    mark("traces")
    existing = mlflow.search_traces(run_id=out["predict_fn"]["run_id"])
    res = mlflow.genai.evaluate(data=existing, scorers=[answer_length])
    out["traces"] = _evaluation(res.run_id)

    if ARGS.mock_url:
        mark("judges")
        judge_model = "openai:/gpt-4o-mini"
        polite = make_judge(
            name="polite",
            instructions="Is the answer in {{ outputs }} polite? Answer true or false.",
            model=judge_model,
            feedback_value_type=bool,
        )
        judged = [
            {"inputs": {"question": "What is 2+2?"}, "outputs": "4", "expectations": {"expected_response": "4"}},
            {"inputs": {"question": "What is 3+3?"}, "outputs": "[[mock:no]] 7", "expectations": {"expected_response": "6"}},
        ]
        res = mlflow.genai.evaluate(
            data=judged,
            scorers=[
                Correctness(model=judge_model),
                Guidelines(name="short", guidelines="Answer in one word.", model=judge_model),
                RelevanceToQuery(model=judge_model),
                polite,
            ],
        )
        out["judges"] = _evaluation(res.run_id)
    return out


def scenario_datasets() -> dict:
    """Evaluation datasets stored in the tracking server: create, merge_records from dicts and
    from traces, get, search, records, tags, delete, and a dataset as evaluate's data."""
    from mlflow.genai import datasets
    from mlflow.genai.scorers import scorer

    exp_id = experiment_id()
    out: dict[str, Any] = {}
    mark("create")
    ds = datasets.create_dataset(name=f"{ARGS.experiment}-qa", experiment_id=exp_id, tags={"team": "search", "stage": "draft"})
    other = datasets.create_dataset(name=f"{ARGS.experiment}-other", experiment_id=exp_id)
    ds.merge_records([
        {"inputs": {"question": "What is 2+2?"}, "expectations": {"expected_response": "4"}},
        {"inputs": {"question": "What is 3+3?"}, "expectations": {"expected_response": "6"}},
    ])
    # The same inputs again: merged into the record, not a new one.
    ds.merge_records([{"inputs": {"question": "What is 2+2?"}, "expectations": {"facts": ["arithmetic"]}}])

    @mlflow.trace
    def answer(question: str) -> str:
        return "10"

    answer("What is 5+5?")
    flush()
    traced = mlflow.search_traces(locations=[exp_id], return_type="list", max_results=5)
    ds.merge_records(traced)
    mark("read")
    got = datasets.get_dataset(dataset_id=ds.dataset_id)
    frame = got.to_df()
    out["records"] = sorted(
        ({"inputs": r["inputs"], "expectations": r["expectations"]} for r in frame.to_dict("records")),
        key=lambda r: json.dumps(r["inputs"], sort_keys=True),
    )
    out["record_sources"] = sorted(str(s.get("source_type") if isinstance(s, dict) else s) for s in frame["source"].tolist()) if "source" in frame else []
    out["got"] = {"name": got.name, "tags": got.tags, "experiment_ids": got.experiment_ids, "num": len(frame)}
    out["by_name"] = datasets.get_dataset(name=f"{ARGS.experiment}-qa").dataset_id == ds.dataset_id
    mark("search")
    out["search_all"] = sorted(d.name for d in datasets.search_datasets(experiment_ids=[exp_id]))
    out["search_like"] = [d.name for d in datasets.search_datasets(experiment_ids=[exp_id], filter_string="name LIKE '%-qa'")]
    out["search_tag"] = [d.name for d in datasets.search_datasets(experiment_ids=[exp_id], filter_string="tags.team = 'search'")]
    mark("tags")
    datasets.set_dataset_tags(dataset_id=ds.dataset_id, tags={"stage": "final", "owner": "ann"})
    datasets.delete_dataset_tag(dataset_id=ds.dataset_id, key="team")
    out["tags_after"] = datasets.get_dataset(dataset_id=ds.dataset_id).tags

    @scorer
    def exact_match(outputs, expectations) -> bool:
        return outputs == expectations.get("expected_response")

    mark("evaluate")
    plain = datasets.get_dataset(dataset_id=ds.dataset_id)
    res = mlflow.genai.evaluate(data=plain, predict_fn=lambda question: "4" if "2+2" in question else "?", scorers=[exact_match])
    out["evaluate"] = _evaluation(res.run_id)
    mark("delete")
    datasets.delete_dataset(dataset_id=other.dataset_id)
    out["after_delete"] = sorted(d.name for d in datasets.search_datasets(experiment_ids=[exp_id]))
    try:
        datasets.get_dataset(dataset_id=other.dataset_id)
        out["get_deleted"] = {"ok": True}
    except MlflowException as exc:
        out["get_deleted"] = error_of(exc)
    return out


def scenario_scorers() -> dict:
    """Registered scorers: register (versions), list, get, delete; online configurations
    (start/update/stop) for a judge on a gateway endpoint when SCENARIO_ARGS["gateway"] (a real
    mlflow server needs that endpoint configured in its AI gateway), and MLflow's refusal to
    start a judge that is not on one."""
    from mlflow.genai.judges import make_judge
    from mlflow.genai.scorers import Guidelines, ScorerSamplingConfig, delete_scorer, get_scorer, list_scorers

    exp_id = experiment_id()
    out: dict[str, Any] = {}
    mark("register")
    registered = Guidelines(name="polite", guidelines="Be polite.", model="openai:/gpt-4o-mini").register(experiment_id=exp_id)
    Guidelines(name="polite", guidelines="Be polite and brief.", model="openai:/gpt-4o-mini").register(experiment_id=exp_id)
    # A make_judge scorer too (a @scorer's code the client itself refuses to load back outside
    # Databricks unless MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS is set, whatever the server).
    make_judge(name="grounded", instructions="Is {{ outputs }} grounded?", model="openai:/gpt-4o-mini", feedback_value_type=bool).register(experiment_id=exp_id)
    out["registered"] = registered.name
    mark("list")
    out["listed"] = sorted(s.name for s in list_scorers(experiment_id=exp_id))
    got = get_scorer(name="polite", experiment_id=exp_id)
    out["got_guidelines"] = getattr(got, "guidelines", None)
    mark("online")
    try:
        got.start(name="polite", experiment_id=exp_id, sampling_config=ScorerSamplingConfig(sample_rate=0.5))
        out["start_not_gateway"] = {"ok": True}
    except MlflowException as exc:
        out["start_not_gateway"] = error_of(exc)
    if SCENARIO_ARGS.get("gateway"):
        judge = Guidelines(name="concise", guidelines="Be brief.", model="gateway:/judge").register(experiment_id=exp_id)
        started = judge.start(name="concise", experiment_id=exp_id, sampling_config=ScorerSamplingConfig(sample_rate=0.25, filter_string="trace.status = 'OK'"))
        out["started"] = {"sample_rate": started.sample_rate, "filter": started.filter_string}
        updated = started.update(name="concise", experiment_id=exp_id, sampling_config=ScorerSamplingConfig(sample_rate=0.5))
        out["updated"] = {"sample_rate": updated.sample_rate}
        out["listed_rate"] = {s.name: s.sample_rate for s in list_scorers(experiment_id=exp_id)}["concise"]
        out["stopped"] = {"sample_rate": updated.stop(name="concise", experiment_id=exp_id).sample_rate}
        out["restarted"] = judge.start(name="concise", experiment_id=exp_id, sampling_config=ScorerSamplingConfig(sample_rate=0.1)).sample_rate
    mark("delete")
    delete_scorer(name="polite", experiment_id=exp_id, version="all")
    out["after_delete"] = sorted(s.name for s in list_scorers(experiment_id=exp_id))
    try:
        get_scorer(name="polite", experiment_id=exp_id)
        out["get_deleted"] = {"ok": True}
    except MlflowException as exc:
        out["get_deleted"] = error_of(exc)
    return out


SCENARIOS = {
    "experiments": scenario_experiments,
    "write": scenario_write,
    "openai": scenario_openai,
    "langchain": scenario_langchain,
    "search": scenario_search,
    "tags": scenario_tags,
    "delete": scenario_delete,
    "assessments": scenario_assessments,
    "otlp": scenario_otlp,
    "unimplemented": scenario_unimplemented,
    "runs": scenario_runs,
    "evaluate": scenario_evaluate,
    "datasets": scenario_datasets,
    "scorers": scenario_scorers,
}


def main() -> None:
    if ARGS.scenario not in SCENARIOS:
        raise SystemExit(f"unknown scenario {ARGS.scenario!r}; one of {', '.join(SCENARIOS)}")
    output: dict[str, Any] = {"scenario": ARGS.scenario, "mode": ARGS.mode}
    try:
        output["result"] = SCENARIOS[ARGS.scenario]()
    except BaseException as exc:  # noqa: BLE001 - reported, the test decides
        output["error"] = "".join(traceback.format_exception(exc))[-6000:]
    try:
        flush()
    except Exception as exc:  # noqa: BLE001
        output.setdefault("error", f"flush failed: {exc!r}")
    output["warnings"] = WARNINGS
    output["requests"] = REQUESTS
    output["marks"] = MARKS
    print("DRIVER_RESULT=" + json.dumps(output, default=repr), flush=True)
    sys.stdout.flush()
    # mlflow's atexit flush may block on an unreachable server; the result is out already.
    os._exit(1 if "error" in output else 0)


if __name__ == "__main__":
    main()

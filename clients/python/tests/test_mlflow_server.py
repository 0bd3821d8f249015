"""Loupe as a drop-in MLflow tracking server for tracing (issue #3), checked with the real client.

Every test drives the pinned ``mlflow`` client (and openai / LangChain / OpenTelemetry where it
says so) in a subprocess, drivers/mlflow_tracking.py, against one tracking server per session:

* default: ``loupe serve`` (LOUPE_BIN), and Loupe's own ``/api/v1`` is checked as well;
* ``LOUPE_MLFLOW_TARGET=mlflow``: the real ``mlflow server`` (SQLite) started by the suite, the
  oracle proving that every expectation here is what MLflow's own server does. Tests that read
  Loupe's ``/api/v1`` (or that only make sense for Loupe) are skipped there, with the reason.

Each scenario runs once per session (the ``mlflow_driver`` fixture caches runs); the tests then
assert on what the client observed (trace and span summaries, search results, error codes), on
the captured client warnings / logged errors (there must be none), and on the request log (which
HTTP calls the client made and how they were answered).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from conftest import ORACLE, MlflowRun, TrackingServer, mock_openai

RUN_TAG = uuid.uuid4().hex[:8]
LOUPE_ONLY = pytest.mark.skipif(ORACLE, reason="checks Loupe's own /api/v1 (oracle mode: the real mlflow server has none)")


def experiment(name: str) -> str:
    """A fresh experiment name per scenario and session."""
    return f"loupe-{name}-{RUN_TAG}"


# ------------------------------------------------------------------------------------------------
# Loupe's own JSON API: every field name the MLflow suite relies on lives in these helpers.

LOUPE_DEFAULT_PROJECT = "default"  # MLflow experiment "0"


def loupe_project(experiment_name: str) -> str:
    """The Loupe project an MLflow experiment maps to: named after the experiment."""
    return experiment_name


def loupe_trace_id(mlflow_trace_id: str) -> str:
    """MLflow 'tr-<32 hex>' -> Loupe's 32 lowercase hex."""
    return mlflow_trace_id[3:] if mlflow_trace_id.startswith("tr-") else mlflow_trace_id


def loupe_traces(server: TrackingServer, project: str) -> dict[str, dict]:
    """GET /api/v1/traces?project=..., every page; {loupe trace id: trace item}."""
    out: dict[str, dict] = {}
    cursor = None
    for _ in range(50):
        query = {"project": project, "limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        status, body = server.loupe.get("/api/v1/traces?" + urllib.parse.urlencode(query))
        assert status == 200 and isinstance(body, dict), f"GET /api/v1/traces?project={project} answered {status}: {body!r}"[:2000]
        for item in body.get("traces", []):
            out[item["trace_id"]] = item
        cursor = body.get("next_cursor")
        if not cursor:
            break
    return out


def loupe_trace(server: TrackingServer, mlflow_trace_id: str) -> dict:
    """GET /api/v1/traces/{id}: {"trace": {...}, "spans": [...], "assessments": [...]}."""
    status, body = server.loupe.get(f"/api/v1/traces/{loupe_trace_id(mlflow_trace_id)}")
    assert status == 200 and isinstance(body, dict), f"GET /api/v1/traces/{loupe_trace_id(mlflow_trace_id)} answered {status}: {body!r}"[:2000]
    return body


def loupe_trace_status(server: TrackingServer, mlflow_trace_id: str) -> int:
    status, _ = server.loupe.get(f"/api/v1/traces/{loupe_trace_id(mlflow_trace_id)}")
    return status


def loupe_spans_by_name(detail: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for span in detail.get("spans", []):
        out.setdefault(span.get("name"), []).append(span)
    return out


def loupe_assessments(detail: dict) -> list[dict]:
    """Each {assessment_id, name, kind "feedback"|"expectation", value, rationale, source{source_type, source_id}, span_id, ...}."""
    return detail.get("assessments") or []


# ------------------------------------------------------------------------------------------------
# Shared assertions.


def assert_no_client_warnings(run: MlflowRun) -> None:
    """No Python warning from mlflow, no mlflow/opentelemetry log record >= WARNING, and none of
    mlflow's DEBUG-only export failures."""
    assert not run.warnings, "the mlflow client warned or logged errors:\n" + json.dumps(run.warnings, indent=1)[:4000]


def assert_requests_ok(run: MlflowRun, allowed: tuple[tuple[str, str, int], ...] = ()) -> None:
    """Every request the client sent was answered 200, except the (method, path-prefix, status)
    triples in `allowed` (the scenario's deliberate misses). Never a 5xx or a transport error."""
    bad = []
    for r in run.requests:
        status = r.get("status")
        if status == 200:
            continue
        path = r.get("path", "")
        if status is not None and any(r["method"] == m and path.startswith(p) and status == s for m, p, s in allowed):
            continue
        bad.append(f"{r['method']} {path[:160]} -> {status} {str(r.get('response') or r.get('error') or '')[:300]}")
    assert not bad, "unexpected answers to the mlflow client:\n" + "\n".join(bad)


def requests_matching(requests: list[dict], method: str, prefix: str) -> list[dict]:
    return [r for r in requests if r["method"] == method and r["path"].split("?")[0].startswith(prefix)]


def spans_by_name(trace: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for span in trace["spans"]:
        out.setdefault(span["name"], []).append(span)
    return out


def one(trace: dict, name: str) -> dict:
    found = spans_by_name(trace).get(name, [])
    assert len(found) == 1, f"expected one span named {name!r}, found {len(found)}; spans: {[s['name'] for s in trace['spans']]}"
    return found[0]


def roots(trace: dict) -> list[dict]:
    return [s for s in trace["spans"] if not s["parent_id"]]


GET_BY_NAME_MISS = ("GET", "/api/2.0/mlflow/experiments/get-by-name", 404)  # set_experiment on a new name


# ================================================================================================
# 1. Experiments


@pytest.fixture(scope="module")
def experiments_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("experiments", experiment("exp"), marker=f"exp0-{RUN_TAG}")


def test_set_experiment_creates_then_gets_by_name(experiments_run: MlflowRun):
    r = experiments_run.result
    assert r["created"]["name"] == experiment("exp")
    assert r["created"]["lifecycle_stage"] == "active"
    assert r["created"]["experiment_id"] not in ("", "0")
    assert r["again_id"] == r["created"]["experiment_id"], "set_experiment on an existing name must find the same id"
    assert r["by_id"] == {"experiment_id": r["created"]["experiment_id"], "name": experiment("exp")}
    create = [(q["method"], q["path"].split("?")[0], q["status"]) for q in experiments_run.phase("create")]
    assert create == [
        ("GET", "/api/2.0/mlflow/experiments/get-by-name", 404),
        ("POST", "/api/2.0/mlflow/experiments/create", 200),
        ("GET", "/api/2.0/mlflow/experiments/get", 200),
    ]
    again = [(q["method"], q["path"].split("?")[0], q["status"]) for q in experiments_run.phase("get_by_name")]
    assert again == [("GET", "/api/2.0/mlflow/experiments/get-by-name", 200)]


def test_experiment_zero_is_default(experiments_run: MlflowRun):
    r = experiments_run.result
    assert r["exp0"]["experiment_id"] == "0"
    assert r["exp0"]["name"] == "Default"
    assert r["exp0"]["lifecycle_stage"] == "active"
    assert r["default_by_name"] == "0"
    assert r["created"]["artifact_location"].startswith("mlflow-artifacts:/"), r["created"]


def test_experiment_lookup_errors_and_tags(experiments_run: MlflowRun):
    r = experiments_run.result
    assert r["missing_by_name"] is None
    assert r["missing_by_id"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r["duplicate_create"]["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert r["tagged"]["tags"] == {"team": "loupe"}


def test_trace_logged_to_experiment_zero(experiments_run: MlflowRun):
    r = experiments_run.result["exp0_trace"]
    assert r["experiment_id"] == "0"
    assert r["found"] == [r["trace_id"]]


def test_experiments_no_warnings(experiments_run: MlflowRun):
    experiments_run.result
    assert_no_client_warnings(experiments_run)
    assert_requests_ok(
        experiments_run,
        allowed=(
            GET_BY_NAME_MISS,
            ("GET", "/api/2.0/mlflow/experiments/get", 404),  # the missing id probe
            ("POST", "/api/2.0/mlflow/experiments/create", 400),  # the duplicate name probe
        ),
    )


@LOUPE_ONLY
def test_loupe_experiment_zero_is_default_project(experiments_run: MlflowRun, tracking_server: TrackingServer):
    trace_id = experiments_run.result["exp0_trace"]["trace_id"]
    traces = loupe_traces(tracking_server, LOUPE_DEFAULT_PROJECT)
    assert loupe_trace_id(trace_id) in traces, f"trace of experiment 0 not in Loupe project {LOUPE_DEFAULT_PROJECT!r}"
    assert traces[loupe_trace_id(trace_id)]["name"] == f"exp0-{RUN_TAG}"


# ================================================================================================
# 2. The write path: @mlflow.trace / start_span, exceptions, sync and async, both race orders,
#    and the traces.json artifact path.

WRITE_VARIANTS = {
    # id: (mode, race) -- see apply_race in the driver
    "async": ("async", "natural"),
    "sync": ("sync", "natural"),
    "async-otlp-first": ("async", "otlp_first"),
    "async-start-first": ("async", "start_first"),
    "async-no-otlp": ("async", "no_otlp"),
    "sync-no-otlp": ("sync", "no_otlp"),
}


@pytest.fixture(scope="module", params=list(WRITE_VARIANTS))
def write_run(request, mlflow_driver) -> MlflowRun:
    mode, race = WRITE_VARIANTS[request.param]
    return mlflow_driver("write", experiment(f"write-{request.param}"), mode=mode, race=race)


def test_write_nested_spans_and_types(write_run: MlflowRun):
    trace = write_run.result["ok_trace"]
    assert [s["name"] for s in roots(trace)] == ["agent"]
    assert sorted(s["name"] for s in trace["spans"]) == ["agent", "flaky_tool", "llm_call", "manual_step", "retrieve"]
    expected_types = {"agent": "AGENT", "retrieve": "RETRIEVER", "flaky_tool": "TOOL", "manual_step": "CHAIN", "llm_call": "CHAT_MODEL"}
    for name, span_type in expected_types.items():
        span = one(trace, name)
        assert span["span_type"] == span_type, f"{name}: {span['span_type']!r}"
        if name != "agent":
            assert span["parent_name"] == "agent", f"{name} parent {span['parent_name']!r}"
            assert span["parent_id"] == one(trace, "agent")["span_id"]
    # spans come back in start order, root first
    assert [s["name"] for s in trace["spans"]] == ["agent", "retrieve", "flaky_tool", "manual_step", "llm_call"]
    for span in trace["spans"]:
        assert span["end_time_ns"] >= span["start_time_ns"] > 0


def test_write_inputs_outputs_and_attributes_are_typed(write_run: MlflowRun):
    trace = write_run.result["ok_trace"]
    agent = one(trace, "agent")
    assert agent["inputs"] == {"question": "hi there", "k": 2}
    assert agent["outputs"] == "hello back"
    assert agent["attributes"]["agent.version"] == "1.0"
    retrieve = one(trace, "retrieve")
    assert retrieve["inputs"] == {"query": "hi there", "k": 2}
    assert retrieve["outputs"] == [
        {"doc_id": "doc-0", "text": "passage 0 about hi there", "score": 1.0},
        {"doc_id": "doc-1", "text": "passage 1 about hi there", "score": 0.9},
    ]
    manual = one(trace, "manual_step")
    assert manual["inputs"] == {"docs": 2, "ids": ["doc-0", "doc-1"]}
    assert manual["outputs"] == {"ok": True}
    assert manual["attributes"]["custom.number"] == 42
    assert manual["attributes"]["custom.flag"] is True
    llm = one(trace, "llm_call")
    assert llm["inputs"] == {"messages": [{"role": "user", "content": "hi there"}]}
    assert llm["outputs"] == {"role": "assistant", "content": "hello back"}
    assert llm["attributes"]["mlflow.chat.tokenUsage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}


def test_write_exception_recorded_on_span(write_run: MlflowRun):
    trace = write_run.result["ok_trace"]
    tool = one(trace, "flaky_tool")
    assert tool["status"] == "ERROR"
    assert "tool failed" in tool["status_description"]
    events = [e for e in tool["events"] if e["name"] == "exception"]
    assert len(events) == 1, tool["events"]
    assert events[0]["attributes"]["exception.type"] == "ValueError"
    assert events[0]["attributes"]["exception.message"] == "tool failed"
    assert "Traceback" in events[0]["attributes"]["exception.stacktrace"]
    for name in ("agent", "retrieve", "manual_step", "llm_call"):
        assert one(trace, name)["status"] == "OK", name
    assert trace["info"]["state"] == "OK"  # a caught child exception does not fail the trace


def test_write_failed_trace_is_error(write_run: MlflowRun):
    trace = write_run.result["error_trace"]
    assert trace["info"]["state"] == "ERROR"
    (root,) = trace["spans"]
    assert root["name"] == "failing" and root["span_type"] == "AGENT"
    assert root["status"] == "ERROR"
    assert root["inputs"] == {"question": "will it fail?"}
    (event,) = [e for e in root["events"] if e["name"] == "exception"]
    assert event["attributes"]["exception.type"] == "RuntimeError"
    assert event["attributes"]["exception.message"] == "boom"


def test_write_trace_info(write_run: MlflowRun):
    info = write_run.result["ok_trace"]["info"]
    assert info["trace_id"].startswith("tr-") and len(info["trace_id"]) == 35
    assert info["experiment_id"] == write_run.result["experiment_id"]
    assert info["state"] == "OK"
    assert info["client_request_id"] == "client-req-1"
    for key, value in {"env": "test", "app": "loupe-suite", "mlflow.traceName": "agent"}.items():
        assert info["tags"].get(key) == value, (key, info["tags"])
    # the two server-set tags the client routes on
    assert info["tags"]["mlflow.artifactLocation"].endswith(f"/traces/{info['trace_id']}/artifacts")
    for key, value in {"customer": "acme", "mlflow.trace.session": "sess-1", "mlflow.trace.user": "user-1", "mlflow.trace_schema.version": "3"}.items():
        assert info["metadata"].get(key) == value, (key, info["metadata"])
    assert json.loads(info["metadata"]["mlflow.trace.sizeStats"])["num_spans"] == 5
    assert info["token_usage"] == {"input_tokens": 10, "output_tokens": 5, "total_tokens": 15}
    assert json.loads(info["request_preview"]) == {"question": "hi there", "k": 2}
    assert json.loads(info["response_preview"]) == "hello back"
    agent = one(write_run.result["ok_trace"], "agent")
    assert info["request_time"] == agent["start_time_ns"] // 1_000_000
    assert abs(info["execution_duration"] - (agent["end_time_ns"] - agent["start_time_ns"]) / 1e6) <= 1


def test_write_no_client_warnings(write_run: MlflowRun):
    write_run.result
    assert_no_client_warnings(write_run)
    assert_requests_ok(write_run, allowed=(GET_BY_NAME_MISS,))


def test_write_wire_path(write_run: MlflowRun):
    """Which requests carried each trace, per variant (see apply_race in the driver)."""
    r = write_run.result
    race, mode = r["race"], write_run.mode
    writes = write_run.phase("write", "read")
    ids = [r["ok_trace"]["info"]["trace_id"], r["error_trace"]["info"]["trace_id"]]
    for trace_id in ids:
        starts = [i for i, q in enumerate(writes) if q["method"] == "POST" and q["path"] == "/api/3.0/mlflow/traces" and trace_id in q["trace_ids"]]
        otlp = [i for i, q in enumerate(writes) if q["method"] == "POST" and q["path"] == "/v1/traces" and trace_id in q["trace_ids"]]
        puts = [i for i, q in enumerate(writes) if q["method"] == "PUT" and q["path"].endswith(f"/traces/{trace_id}/artifacts/traces.json")]
        assert len(starts) == 1, f"{trace_id}: expected one StartTraceV3, got {len(starts)}"
        if race == "no_otlp":
            assert not otlp, "no_otlp: the client must not send OTLP"
            assert len(puts) == 1, f"{trace_id}: the spans must go up as traces.json"
            assert writes[puts[0]]["path"].startswith("/api/2.0/mlflow-artifacts/artifacts/")
            continue
        assert otlp, f"{trace_id}: no POST /v1/traces carried its spans"
        if race == "otlp_first" or mode == "sync":
            assert max(otlp) < starts[0], f"{trace_id}: OTLP should precede StartTraceV3"
            tags = writes[starts[0]].get("response_tags") or {}
            assert tags.get("mlflow.trace.spansLocation") == "TRACKING_STORE", (
                "StartTraceV3 after the spans arrived must answer spansLocation=TRACKING_STORE", tags)
            assert not puts, "spans already in the tracking store: no traces.json upload expected"
        elif race == "start_first":
            assert starts[0] < min(otlp), f"{trace_id}: StartTraceV3 should precede OTLP"
            assert len(puts) == 1, (
                f"{trace_id}: StartTraceV3 arrived before any span, so the server must not claim "
                "spansLocation=TRACKING_STORE and the client uploads traces.json")
    if race != "no_otlp":
        version = requests_matching(writes, "GET", "/version")
        assert version and all(q["status"] == 200 for q in version)


@pytest.fixture(scope="module", params=[k for k, (_, race) in WRITE_VARIANTS.items() if race == "no_otlp"])
def no_otlp_run(request, mlflow_driver) -> MlflowRun:
    """The write variants whose client never sends OTLP (the same cached runs as write_run)."""
    mode, race = WRITE_VARIANTS[request.param]
    return mlflow_driver("write", experiment(f"write-{request.param}"), mode=mode, race=race)


def test_write_read_back_from_artifact_when_no_otlp(no_otlp_run: MlflowRun):
    assert no_otlp_run.result["race"] == "no_otlp"
    reads = no_otlp_run.phase("read")
    tags = no_otlp_run.result["ok_trace"]["info"]["tags"]
    if tags.get("mlflow.trace.spansLocation") == "TRACKING_STORE":
        # a server may ingest traces.json into its store; then spans come from GetTrace
        assert requests_matching(reads, "GET", "/api/3.0/mlflow/traces/get")
    else:
        gets = requests_matching(reads, "GET", "/api/2.0/mlflow-artifacts/artifacts/")
        assert gets and all(q["status"] == 200 for q in gets)


@LOUPE_ONLY
def test_write_visible_in_loupe_api(write_run: MlflowRun, tracking_server: TrackingServer):
    r = write_run.result
    traces = loupe_traces(tracking_server, loupe_project(experiment(f"write-{_variant_of(write_run)}")))
    ok_id, err_id = r["ok_trace"]["info"]["trace_id"], r["error_trace"]["info"]["trace_id"]
    assert set(traces) == {loupe_trace_id(ok_id), loupe_trace_id(err_id)}
    ok, err = traces[loupe_trace_id(ok_id)], traces[loupe_trace_id(err_id)]
    assert (ok["name"], ok["status"], ok["span_count"]) == ("agent", "OK", 5)
    assert (err["name"], err["status"], err["span_count"]) == ("failing", "ERROR", 1)
    assert ok["error_count"] >= 1  # flaky_tool
    assert ok["tags"].get("env") == "test"
    assert ok["metadata"].get("customer") == "acme"
    assert (ok["input_tokens"], ok["output_tokens"], ok["total_tokens"]) == (10, 5, 15)
    detail = loupe_trace(tracking_server, ok_id)
    spans = loupe_spans_by_name(detail)
    assert spans["agent"][0]["inputs"] == {"question": "hi there", "k": 2}
    assert spans["flaky_tool"][0]["status"] == "ERROR"
    assert spans["retrieve"][0]["span_type"] == "RETRIEVER"
    assert spans["retrieve"][0]["parent_id"] == spans["agent"][0]["span_id"]


def _variant_of(run: MlflowRun) -> str:
    return run.experiment.removeprefix("loupe-write-").rsplit("-", 1)[0]


# ================================================================================================
# 3. mlflow.openai.autolog() with the real openai client against the mock, over real HTTP.


@pytest.fixture(scope="module")
def openai_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("openai", experiment("openai"))


def _usage_of(received_usage: dict) -> dict:
    return {
        "input_tokens": received_usage["prompt_tokens"],
        "output_tokens": received_usage.get("completion_tokens") or 0,
        "total_tokens": received_usage["total_tokens"],
    }


def test_openai_chat_completion(openai_run: MlflowRun):
    r = openai_run.result
    trace = r["traces"]["chat"]
    (span,) = trace["spans"]
    assert span["name"] == "Completions" and span["span_type"] == "CHAT_MODEL"
    assert span["inputs"]["messages"] == [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    assert span["outputs"]["choices"][0]["message"]["content"] == r["received"]["chat"]["text"]
    attrs = span["attributes"]
    assert attrs["model"] == "gpt-4o-mini" and attrs["temperature"] == 0.2 and attrs["max_tokens"] == 50
    assert attrs["mlflow.message.format"] == "openai"
    usage = _usage_of(r["received"]["chat"]["usage"])
    assert attrs["mlflow.chat.tokenUsage"] == usage
    assert trace["info"]["token_usage"] == usage
    assert trace["info"]["state"] == "OK"
    assert trace["info"]["tags"]["mlflow.traceName"] == "Completions"


def test_openai_streaming_with_usage(openai_run: MlflowRun):
    r = openai_run.result
    (span,) = r["traces"]["stream"]["spans"]
    assert span["span_type"] == "CHAT_MODEL"
    assert span["inputs"]["stream"] is True
    chunks = [e for e in span["events"] if e["name"].startswith("mlflow.chunk.item.")]
    assert len(chunks) >= 3, [e["name"] for e in span["events"]]
    assert span["outputs"]["choices"][0]["message"]["content"] == r["received"]["stream"]["text"]
    usage = _usage_of(r["received"]["stream"]["usage"])
    assert span["attributes"]["mlflow.chat.tokenUsage"] == usage
    assert r["traces"]["stream"]["info"]["token_usage"] == usage


def test_openai_tool_calls(openai_run: MlflowRun):
    r = openai_run.result
    trace = r["traces"]["tool"]
    names = [(s["name"], s["span_type"], s["parent_name"]) for s in trace["spans"]]
    assert names == [
        ("run_tool_agent", "AGENT", None),
        ("Completions", "CHAT_MODEL", "run_tool_agent"),
        ("get_weather", "TOOL", "run_tool_agent"),
        ("Completions", "CHAT_MODEL", "run_tool_agent"),
    ]
    first, tool, second = trace["spans"][1:]
    call = first["outputs"]["choices"][0]["message"]["tool_calls"][0]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == ("call_mock_1", "get_weather", {"city": "Paris"})
    assert [t["function"]["name"] for t in first["attributes"]["mlflow.chat.tools"]] == ["get_weather"]
    assert tool["inputs"] == {"city": "Paris"}
    # the tool returned a JSON string; MLflow's server hands it back parsed (a dict), so either is accepted
    tool_output = json.loads(tool["outputs"]) if isinstance(tool["outputs"], str) else tool["outputs"]
    assert tool_output == {"city": "Paris", "forecast": "sunny", "temperature_c": 22}
    tool_message = second["inputs"]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_mock_1"
    assert second["outputs"]["choices"][0]["message"]["content"] == r["received"]["tool"]["text"]
    usages = [_usage_of(u) for u in r["received"]["tool"]["usages"]]
    assert [first["attributes"]["mlflow.chat.tokenUsage"], second["attributes"]["mlflow.chat.tokenUsage"]] == usages
    assert trace["info"]["token_usage"] == {k: usages[0][k] + usages[1][k] for k in usages[0]}


def test_openai_embeddings(openai_run: MlflowRun):
    r = openai_run.result
    (span,) = r["traces"]["embedding"]["spans"]
    assert span["name"] == "Embeddings" and span["span_type"] == "EMBEDDING"
    assert span["inputs"] == {"model": "text-embedding-3-small", "input": "Loupe traces every LLM call."}
    assert len(span["outputs"]["data"][0]["embedding"]) == r["received"]["embedding"]["dimensions"] == mock_openai.EMBEDDING_DIMENSIONS
    assert span["outputs"]["usage"]["prompt_tokens"] == r["received"]["embedding"]["usage"]["prompt_tokens"]


def test_openai_server_adds_model_and_cost(openai_run: MlflowRun):
    """For an http tracking URI the client sets neither mlflow.llm.model nor mlflow.llm.cost on
    autologged OpenAI spans; MLflow's server derives them when it stores the spans (and the trace
    metadata mlflow.trace.cost), so GetTrace returns them. A drop-in should do the same (Loupe
    has its own price book: only presence and consistency are checked, not MLflow's prices)."""
    for name in ("chat", "stream"):
        (span,) = openai_run.result["traces"][name]["spans"]
        attrs = span["attributes"]
        assert attrs.get("mlflow.llm.model") == "gpt-4o-mini", (name, attrs.get("mlflow.llm.model"))
        cost = attrs.get("mlflow.llm.cost") or {}
        assert cost.get("total_cost", 0) > 0 and set(cost) >= {"input_cost", "output_cost", "total_cost"}, (name, cost)
        trace_cost = json.loads(openai_run.result["traces"][name]["info"]["metadata"].get("mlflow.trace.cost") or "{}")
        assert trace_cost.get("total_cost") == pytest.approx(cost["total_cost"]), (name, trace_cost)


def test_openai_no_warnings(openai_run: MlflowRun):
    openai_run.result
    assert_no_client_warnings(openai_run)
    assert_requests_ok(openai_run, allowed=(GET_BY_NAME_MISS,))


@LOUPE_ONLY
def test_openai_traces_in_loupe_api(openai_run: MlflowRun, tracking_server: TrackingServer):
    r = openai_run.result
    traces = loupe_traces(tracking_server, loupe_project(experiment("openai")))
    assert set(traces) == {loupe_trace_id(t) for t in r["ids"].values()}
    chat = traces[loupe_trace_id(r["ids"]["chat"])]
    usage = r["received"]["chat"]["usage"]
    assert (chat["input_tokens"], chat["output_tokens"]) == (usage["prompt_tokens"], usage["completion_tokens"])
    detail = loupe_trace(tracking_server, r["ids"]["chat"])
    (span,) = detail["spans"]
    assert span["span_type"] == "CHAT_MODEL" and span["model"] == "gpt-4o-mini"
    assert [m["role"] for m in span["input_messages"]] == ["system", "user"]
    assert span["output_messages"][0]["content"] == r["received"]["chat"]["text"]
    tool = loupe_trace(tracking_server, r["ids"]["tool"])
    calls = [c for s in tool["spans"] for c in (s.get("tool_calls") or [])]
    assert any(c.get("id") == "call_mock_1" and c.get("name") == "get_weather" for c in calls), calls


# ================================================================================================
# 4. mlflow.langchain.autolog() with a LangChain v1 tool-calling agent (LangGraph) on the mock.


@pytest.fixture(scope="module")
def langchain_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("langchain", experiment("langchain"), expected_spans=7)


def _mock_usage(messages: list[dict], completion_tokens: int) -> dict:
    prompt = sum(mock_openai.words(mock_openai.message_text(m)) for m in messages) + mock_openai.PROMPT_OVERHEAD_TOKENS
    return {"input_tokens": prompt, "output_tokens": completion_tokens, "total_tokens": prompt + completion_tokens}


def test_langchain_agent_span_tree(langchain_run: MlflowRun):
    r = langchain_run.result
    assert r["final_text"] == "Mock answer to: What is the weather in Paris today?"
    assert r["message_types"] == ["human", "ai", "tool", "ai"]
    trace = r["trace"]
    shape = [(s["name"], s["span_type"], s["parent_name"]) for s in trace["spans"]]
    assert shape == [
        ("LangGraph", "CHAIN", None),
        ("model", "CHAIN", "LangGraph"),
        ("ChatOpenAI", "CHAT_MODEL", "model"),
        ("tools", "CHAIN", "LangGraph"),
        ("get_weather", "TOOL", "tools"),
        ("model", "CHAIN", "LangGraph"),
        ("ChatOpenAI", "CHAT_MODEL", "model"),
    ]
    assert trace["info"]["state"] == "OK"
    assert trace["info"]["tags"]["mlflow.traceName"] == "LangGraph"
    assert trace["spans"][0]["inputs"] == {"messages": [{"role": "user", "content": "What is the weather in Paris today?"}]}


def test_langchain_chat_model_messages_and_tool_call(langchain_run: MlflowRun):
    trace = langchain_run.result["trace"]
    first, second = spans_by_name(trace)["ChatOpenAI"]
    assert [(m["role"], m["content"]) for m in first["inputs"]["messages"]] == [
        ("system", "You are a helpful assistant."),
        ("user", "What is the weather in Paris today?"),
    ]
    (call,) = first["outputs"]["choices"][0]["message"]["tool_calls"]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == ("call_mock_1", "get_weather", {"city": "Paris"})
    assert second["inputs"]["messages"][-1]["role"] == "tool"
    assert second["outputs"]["choices"][0]["message"]["content"] == langchain_run.result["final_text"]
    tool = one(trace, "get_weather")
    assert tool["inputs"] == {"city": "Paris"}
    assert tool["attributes"]["tool_call_id"] == "call_mock_1"


def test_langchain_token_usage(langchain_run: MlflowRun):
    trace = langchain_run.result["trace"]
    first, second = spans_by_name(trace)["ChatOpenAI"]
    tool_result = json.dumps({"city": "Paris", "forecast": "sunny", "temperature_c": 22})
    expected_first = _mock_usage(
        [{"content": "You are a helpful assistant."}, {"content": "What is the weather in Paris today?"}],
        mock_openai.TOOL_CALL_COMPLETION_TOKENS,
    )
    expected_second = _mock_usage(
        [{"content": "You are a helpful assistant."}, {"content": "What is the weather in Paris today?"}, {"content": None}, {"content": tool_result}],
        mock_openai.words(langchain_run.result["final_text"]),
    )
    assert first["attributes"]["mlflow.chat.tokenUsage"] == expected_first
    assert second["attributes"]["mlflow.chat.tokenUsage"] == expected_second
    assert trace["info"]["token_usage"] == {k: expected_first[k] + expected_second[k] for k in expected_first}


def test_langchain_no_warnings(langchain_run: MlflowRun):
    langchain_run.result
    assert_no_client_warnings(langchain_run)
    assert_requests_ok(langchain_run, allowed=(GET_BY_NAME_MISS,))


@LOUPE_ONLY
def test_langchain_trace_in_loupe_api(langchain_run: MlflowRun, tracking_server: TrackingServer):
    r = langchain_run.result
    item = loupe_traces(tracking_server, loupe_project(experiment("langchain")))[loupe_trace_id(r["trace_id"])]
    assert item["span_count"] == 7 and item["status"] == "OK"
    assert item["total_tokens"] == r["trace"]["info"]["token_usage"]["total_tokens"]
    spans = loupe_spans_by_name(loupe_trace(tracking_server, r["trace_id"]))
    assert [s["span_type"] for s in spans["ChatOpenAI"]] == ["CHAT_MODEL", "CHAT_MODEL"]
    assert spans["get_weather"][0]["span_type"] == "TOOL"
    assert spans["get_weather"][0]["parent_id"] == spans["tools"][0]["span_id"]


# ================================================================================================
# 5. Search, get_trace, batch get.
#
# The driver writes four traces, in this order (see SEEDS in the driver):
#   s1 "alpha" OK    tags team=red tier=gold  metadata customer=acme     child lookup  RETRIEVER db.system=pg
#   s2 "beta"  OK    tags team=blue           metadata customer=globex   child generate CHAT_MODEL llm.model=gpt-x, 0.6 s
#   s3 "alpha" ERROR tags team=red            metadata customer=initech  child lookup  RETRIEVER db.system=mysql
#   s4 "gamma" OK    tags team=green          (no customer)              child rerank  RERANKER

SEARCH_FILTERS = {
    # name: (filter, expected traces); {ts_sN} / {dur_sN} are the traces' timestamp_ms / execution_time_ms
    "status_eq": ("attributes.status = 'OK'", {"s1", "s2", "s4"}),
    "status_error": ("status = 'ERROR'", {"s3"}),
    "status_ne": ("trace.status != 'OK'", {"s3"}),
    "status_in": ("status IN ('ERROR')", {"s3"}),
    "timestamp_ge": ("timestamp_ms >= {ts_s3}", {"s3", "s4"}),
    "timestamp_lt": ("attributes.timestamp_ms < {ts_s3}", {"s1", "s2"}),
    "timestamp_eq": ("timestamp = {ts_s2}", {"s2"}),
    "execution_time_gt": ("execution_time_ms > 500", {"s2"}),
    "execution_time_lt": ("execution_time_ms < 500", {"s1", "s3", "s4"}),
    "end_time_gt": ("end_time_ms > {ts_s3}", {"s3", "s4"}),
    "name_eq": ("name = 'alpha'", {"s1", "s3"}),
    "name_like": ("name LIKE 'al%'", {"s1", "s3"}),
    "name_as_tag": ("tags.`mlflow.traceName` = 'beta'", {"s2"}),
    "tag_eq": ("tags.team = 'red'", {"s1", "s3"}),
    "tag_ne": ("tags.team != 'red'", {"s2", "s4"}),
    "tag_like": ("tag.team LIKE 'gr%'", {"s4"}),
    "tag_not_null": ("tags.tier IS NOT NULL", {"s1"}),
    "metadata_eq": ("metadata.customer = 'acme'", {"s1"}),
    "metadata_ilike": ("request_metadata.customer ILIKE 'GLO%'", {"s2"}),
    "metadata_null": ("metadata.customer IS NULL", {"s4"}),
    "span_name": ("span.name = 'lookup'", {"s1", "s3"}),
    "span_name_like": ("span.name LIKE 'look%'", {"s1", "s3"}),
    "span_type": ("span.type = 'CHAT_MODEL'", {"s2"}),
    "span_type_in": ("span.type IN ('RERANKER', 'CHAT_MODEL')", {"s2", "s4"}),
    "span_status": ("span.status = 'ERROR'", {"s3"}),
    # span.attributes.<key>: the real server matches LIKE/ILIKE/RLIKE against the span's JSON
    # (`=` compares the whole span content and never matches there, so it is not used here)
    "span_attribute_like": ("span.attributes.`db.system` LIKE '%pg%'", {"s1"}),
    "span_attribute_ilike": ("span.attributes.`db.system` ILIKE '%SQL%'", {"s3"}),
    "span_attribute_rlike": ("span.attributes.`llm.model` RLIKE 'gpt'", {"s2"}),
    "and": ("status = 'OK' AND tags.team = 'red'", {"s1"}),
    "and3": ("timestamp_ms > {ts_s1} AND status = 'OK' AND span.type = 'RERANKER'", {"s4"}),
    "none": ("tags.team = 'purple'", set()),
}

SEARCH_ORDERS = {
    # name: (order_by, max_results, filter, expected labels in order)
    "default_newest_first": (None, None, None, ["s4", "s3", "s2", "s1"]),
    "timestamp_asc": (["timestamp_ms ASC"], None, None, ["s1", "s2", "s3", "s4"]),
    "timestamp_desc": (["timestamp_ms DESC"], None, None, ["s4", "s3", "s2", "s1"]),
    "execution_time_desc_max1": (["execution_time_ms DESC"], 1, None, ["s2"]),
    "name_then_time": (["name ASC", "timestamp_ms ASC"], None, None, ["s1", "s3", "s2", "s4"]),
    "max_results_2": (None, 2, None, ["s4", "s3"]),
    "filtered_ordered": (["timestamp_ms ASC"], None, "tags.team = 'red'", ["s1", "s3"]),
}

SEARCH_INVALID = {
    # MLflow's grammar has no OR; Loupe's is a superset that has it (checked below).
    "or": "status = 'OK' OR status = 'ERROR'",
    "unknown_field": "colour = 'red'",
    "unclosed_quote": "name = 'alpha",
}


@pytest.fixture(scope="module")
def search_run(mlflow_driver) -> MlflowRun:
    queries = {f"filter:{k}": {"filter": f} for k, (f, _) in SEARCH_FILTERS.items()}
    for k, (order, limit, flt, _) in SEARCH_ORDERS.items():
        queries[f"order:{k}"] = {"order_by": order, "max_results": limit, "filter": flt}
    queries.update({f"invalid:{k}": {"filter": f} for k, f in SEARCH_INVALID.items()})
    return mlflow_driver("search", experiment("search"), queries=queries)


def _query(run: MlflowRun, name: str) -> dict:
    return run.result["queries"][name]


@pytest.mark.parametrize("name", list(SEARCH_FILTERS))
def test_search_filter(search_run: MlflowRun, name: str):
    got = _query(search_run, f"filter:{name}")
    assert "error" not in got, got
    assert set(got["labels"]) == SEARCH_FILTERS[name][1], got
    assert len(got["labels"]) == len(set(got["labels"])), f"duplicates: {got}"


@pytest.mark.parametrize("name", list(SEARCH_ORDERS))
def test_search_order_and_max_results(search_run: MlflowRun, name: str):
    got = _query(search_run, f"order:{name}")
    assert "error" not in got, got
    assert got["labels"] == SEARCH_ORDERS[name][3], got


@pytest.mark.parametrize("name", list(SEARCH_INVALID))
def test_search_invalid_filter(search_run: MlflowRun, name: str):
    got = _query(search_run, f"invalid:{name}")
    if name == "or" and not ORACLE:
        # Loupe's query language is a superset of MLflow's: OR works.
        assert "error" not in got, got
        assert set(got["labels"]) == {"s1", "s2", "s3", "s4"}, got
        return
    assert got.get("error", {}).get("error_code") == "INVALID_PARAMETER_VALUE", got
    assert got["error"].get("message"), got


def test_search_page_tokens(search_run: MlflowRun):
    pages = search_run.result["pages"]
    assert [p["labels"] for p in pages] == [["s1", "s2", "s3"], ["s4"]]
    assert isinstance(pages[0]["token"], str) and pages[0]["token"]
    assert pages[1]["token"] is None, "the last page must carry no next_page_token"
    searches = requests_matching(search_run.phase("pages"), "POST", "/api/3.0/mlflow/traces/search")
    assert len(searches) == 2


def test_search_loads_spans_with_batch_get(search_run: MlflowRun):
    r = search_run.result
    assert sorted(r["with_spans"]) == ["s1", "s2", "s3", "s4"]
    for label, seen in r["with_spans"].items():
        assert len(seen["span_names"]) == 2, (label, seen)
        assert seen["root_inputs"] == {"query": f"question for {label}", "options": {"k": 2, "filters": ["a", "b"]}}
        if label != "s3":
            assert seen["root_outputs"] == {"answer": f"answer for {label}", "sources": [1, 2]}
    assert r["with_spans"]["s3"]["state"] == "ERROR"
    assert r["with_spans"]["s1"]["tags"]["team"] == "red"
    phase = search_run.phase("search_with_spans")
    batch = requests_matching(phase, "GET", "/api/3.0/mlflow/traces/batchGet")
    assert batch, "search_traces(include_spans=True) loads TRACKING_STORE spans with batchGet"
    ids = {q for req in batch for q in urllib.parse.parse_qs(urllib.parse.urlsplit(req["path"]).query).get("trace_ids", [])}
    assert ids == set(r["ids"].values())


def test_search_without_spans_makes_no_span_calls(search_run: MlflowRun):
    assert search_run.result["no_spans"] == {"s1": 0, "s2": 0, "s3": 0, "s4": 0}
    calls = [(q["method"], q["path"].split("?")[0]) for q in search_run.phase("search_no_spans")]
    assert calls == [("POST", "/api/3.0/mlflow/traces/search")]


def test_search_dataframe(search_run: MlflowRun):
    frame = search_run.result["dataframe"]
    assert frame["rows"] == 4
    assert {"trace_id", "request", "response", "spans", "state", "tags", "assessments"} <= set(frame["columns"])
    assert frame["request_types"] == ["dict"]


def test_get_trace_inputs_outputs_are_dicts(search_run: MlflowRun):
    r = search_run.result
    s1 = r["get_trace_s1"]
    root = roots(s1)[0]
    assert root["inputs"] == {"query": "question for s1", "options": {"k": 2, "filters": ["a", "b"]}}
    assert root["outputs"] == {"answer": "answer for s1", "sources": [1, 2]}
    child = one(s1, "lookup")
    assert child["inputs"] == {"q": "s1"} and child["outputs"] == [{"id": 1, "text": "result"}]
    assert child["attributes"]["db.system"] == "pg"
    s2 = r["fluent_get_trace_s2"]
    assert roots(s2)[0]["inputs"]["options"] == {"k": 2, "filters": ["a", "b"]}
    assert one(s2, "generate")["span_type"] == "CHAT_MODEL"
    assert s1["info"]["tags"]["tier"] == "gold" and s1["info"]["metadata"]["customer"] == "acme"


def test_batch_get_traces(search_run: MlflowRun):
    assert search_run.result["batch_get"] == [["s1", 2], ["s2", 2], ["s4", 2]]
    calls = [(q["method"], q["path"].split("?")[0]) for q in search_run.phase("batch_get")]
    assert ("POST", "/api/3.0/mlflow/traces/batchGetInfos") in calls
    assert ("GET", "/api/3.0/mlflow/traces/batchGet") in calls


def test_get_missing_trace(search_run: MlflowRun):
    assert search_run.result["missing_get_trace"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert search_run.result["fluent_missing"] is None


def test_search_no_warnings(search_run: MlflowRun):
    search_run.result
    assert_no_client_warnings(search_run)
    assert_requests_ok(
        search_run,
        allowed=(
            GET_BY_NAME_MISS,
            ("POST", "/api/3.0/mlflow/traces/search", 400),  # the invalid filters
            ("GET", "/api/3.0/mlflow/traces/tr-0000000000000000000000000000000", 404),  # missing-trace probes
        ),
    )


@LOUPE_ONLY
def test_search_traces_in_loupe_api(search_run: MlflowRun, tracking_server: TrackingServer):
    r = search_run.result
    traces = loupe_traces(tracking_server, loupe_project(experiment("search")))
    by_label = {label: traces.get(loupe_trace_id(tid)) for label, tid in r["ids"].items()}
    assert all(by_label.values()), f"missing in Loupe: {[k for k, v in by_label.items() if not v]}"
    assert {k: v["name"] for k, v in by_label.items()} == {"s1": "alpha", "s2": "beta", "s3": "alpha", "s4": "gamma"}
    assert {k: v["status"] for k, v in by_label.items()} == {"s1": "OK", "s2": "OK", "s3": "ERROR", "s4": "OK"}
    assert by_label["s1"]["tags"].get("team") == "red" and by_label["s1"]["metadata"].get("customer") == "acme"


# ================================================================================================
# 6. Trace tags, deletes, assessments.


@pytest.fixture(scope="module")
def tags_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("tags", experiment("tags"))


def test_set_and_delete_trace_tags(tags_run: MlflowRun):
    r = tags_run.result
    assert {k: r["after_set"].get(k) for k in ("reviewed", "score", "keep", "drop")} == {"reviewed": "yes", "score": "7", "keep": "2", "drop": "x"}
    assert r["search_reviewed"] == [r["trace_id"]]
    assert "drop" not in r["after_delete"] and "reviewed" not in r["after_delete"]
    assert r["after_delete"]["keep"] == "2" and r["after_delete"]["mlflow.traceName"] == "tagged"
    assert "mlflow.artifactLocation" in r["after_delete"]
    assert r["search_reviewed_after"] == []
    sets = requests_matching(tags_run.phase("set"), "PATCH", f"/api/2.0/mlflow/traces/{r['trace_id']}/tags")
    deletes = requests_matching(tags_run.phase("delete"), "DELETE", f"/api/2.0/mlflow/traces/{r['trace_id']}/tags")
    assert len(sets) == 3 and len(deletes) == 2


def test_trace_tag_errors(tags_run: MlflowRun):
    r = tags_run.result
    assert r["delete_missing"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # the real server answers 400 BAD_REQUEST (a foreign-key failure); a 404 is as good
    assert r["set_on_missing_trace"] is not None
    assert r["set_on_missing_trace"]["error_code"] in ("RESOURCE_DOES_NOT_EXIST", "BAD_REQUEST", "INVALID_PARAMETER_VALUE")


def test_tags_no_warnings(tags_run: MlflowRun):
    tags_run.result
    assert_no_client_warnings(tags_run)
    assert_requests_ok(tags_run, allowed=(
        GET_BY_NAME_MISS,
        ("DELETE", "/api/2.0/mlflow/traces/", 404),
        ("PATCH", "/api/2.0/mlflow/traces/tr-0000", 400),
        ("PATCH", "/api/2.0/mlflow/traces/tr-0000", 404),
    ))


@LOUPE_ONLY
def test_tags_in_loupe_api(tags_run: MlflowRun, tracking_server: TrackingServer):
    r = tags_run.result
    tags = loupe_traces(tracking_server, loupe_project(experiment("tags")))[loupe_trace_id(r["trace_id"])]["tags"]
    assert tags.get("keep") == "2" and tags.get("score") == "7"
    assert "drop" not in tags and "reviewed" not in tags


@pytest.fixture(scope="module")
def delete_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("delete", experiment("delete"))


def test_delete_traces_by_ids_and_timestamp(delete_run: MlflowRun):
    r = delete_run.result
    ids = r["ids"]
    assert r["deleted_by_ids"] == 2
    assert sorted(r["after_ids"]) == sorted(ids[2:])
    assert r["deleted_by_time"] == 2, "max_timestamp_millis is inclusive: traces 3 and 4 go"
    assert r["after_time"] == [ids[4]]
    assert r["deleted_none"] == 0
    assert r["get_deleted"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r["fluent_get_deleted"] is None
    deletes = requests_matching(delete_run.requests, "POST", "/api/2.0/mlflow/traces/delete-traces")
    assert len(deletes) == 3


def test_delete_no_warnings(delete_run: MlflowRun):
    delete_run.result
    assert_no_client_warnings(delete_run)
    assert_requests_ok(delete_run, allowed=(GET_BY_NAME_MISS, ("GET", "/api/3.0/mlflow/traces/tr-", 404)))


@LOUPE_ONLY
def test_deleted_traces_gone_from_loupe_api(delete_run: MlflowRun, tracking_server: TrackingServer):
    ids = delete_run.result["ids"]
    assert set(loupe_traces(tracking_server, loupe_project(experiment("delete")))) == {loupe_trace_id(ids[4])}
    assert loupe_trace_status(tracking_server, ids[0]) == 404


@pytest.fixture(scope="module")
def assessments_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("assessments", experiment("assessments"))


def test_log_feedback_and_expectation(assessments_run: MlflowRun):
    r = assessments_run.result
    logged = r["logged"]
    ids = [a["assessment_id"] for a in logged.values()]
    assert all(ids) and len(set(ids)) == 4, ids
    q = logged["quality"]
    assert (q["kind"], q["value"], q["rationale"], q["source"], q["metadata"], q["trace_id"]) == (
        "feedback", 0.9, "good", {"source_type": "HUMAN", "source_id": "alice"}, {"k": "v"}, r["trace_id"])
    t = logged["tool_ok"]
    assert (t["kind"], t["value"], t["span_id"], t["source"]) == ("feedback", True, r["child_span_id"], {"source_type": "LLM_JUDGE", "source_id": "judge-1"})
    e = logged["expected_answer"]
    assert (e["kind"], e["value"], e["source"]) == ("expectation", {"answer": "a", "facts": ["x", "y"]}, {"source_type": "HUMAN", "source_id": "default"})
    assert logged["expected_len"]["value"] == 3
    assert r["got_quality"] == q


def test_update_and_delete_assessment(assessments_run: MlflowRun):
    r = assessments_run.result
    q = r["logged"]["quality"]
    up = r["updated"]
    assert up["assessment_id"] == q["assessment_id"]
    assert (up["value"], up["rationale"]) == (0.5, "revised")
    assert up["source"] == q["source"] and up["create_time_ms"] == q["create_time_ms"]
    assert up["last_update_time_ms"] >= q["last_update_time_ms"]
    final = {a["name"]: a for a in r["final"]}
    assert set(final) == {"quality", "tool_ok", "expected_answer"}
    assert (final["quality"]["value"], final["quality"]["rationale"]) == (0.5, "revised")
    assert final["expected_answer"]["value"] == {"answer": "a", "facts": ["x", "y"]}
    assert r["get_deleted"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r["log_on_missing_trace"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    patch = requests_matching(assessments_run.phase("update"), "PATCH", f"/api/3.0/mlflow/traces/{r['trace_id']}/assessments/")
    delete = requests_matching(assessments_run.phase("delete"), "DELETE", f"/api/3.0/mlflow/traces/{r['trace_id']}/assessments/")
    assert len(patch) == 1 and len(delete) == 1


def test_assessments_in_search(assessments_run: MlflowRun):
    r = assessments_run.result
    assert r["search_gt_04"] == [r["trace_id"]]
    assert r["search_gt_08"] == []
    assert r["search_searched_assessments"] == [["expected_answer", "quality", "tool_ok"]]


def test_assessments_no_warnings(assessments_run: MlflowRun):
    assessments_run.result
    assert_no_client_warnings(assessments_run)
    assert_requests_ok(assessments_run, allowed=(
        GET_BY_NAME_MISS,
        ("GET", "/api/3.0/mlflow/traces/tr-", 404),  # the deleted assessment
        ("POST", "/api/3.0/mlflow/traces/tr-0000", 404),  # feedback on a missing trace
    ))


@LOUPE_ONLY
def test_assessments_in_loupe_api(assessments_run: MlflowRun, tracking_server: TrackingServer):
    r = assessments_run.result
    got = {a["name"]: a for a in loupe_assessments(loupe_trace(tracking_server, r["trace_id"]))}
    assert set(got) == {"quality", "tool_ok", "expected_answer"}
    assert (got["quality"]["kind"], got["quality"]["value"], got["quality"]["rationale"]) == ("feedback", 0.5, "revised")
    assert got["quality"]["source"] == {"source_type": "HUMAN", "source_id": "alice"}
    assert got["quality"]["assessment_id"] == r["logged"]["quality"]["assessment_id"]
    assert got["tool_ok"]["span_id"] == r["child_span_id"]
    assert (got["expected_answer"]["kind"], got["expected_answer"]["value"]) == ("expectation", {"answer": "a", "facts": ["x", "y"]})


# ================================================================================================
# 7. Endpoints Loupe does not implement: 404 ENDPOINT_NOT_FOUND JSON, never 5xx.


def raw_request(url: str, method: str, body: dict | None = None) -> tuple[int, str, str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode(errors="replace")


# MLflow endpoints neither server has (the real server answers them with an HTML 404).
UNKNOWN_ENDPOINTS = [
    ("GET", "/api/2.0/mlflow/registered-models/list", None),
    ("POST", "/api/2.0/mlflow/no-such-endpoint", {}),
    ("GET", "/api/3.0/mlflow/no-such-endpoint", None),
]
# MLflow endpoints outside tracing that the real server implements and Loupe does not.
LOUPE_UNIMPLEMENTED = [
    ("GET", "/api/2.0/mlflow/registered-models/search", None),
    ("POST", "/api/2.0/mlflow/model-versions/create", {"name": "m", "source": "s"}),
    ("POST", "/api/2.0/mlflow/registered-models/create", {"name": "m"}),
]


def _check_not_found(tracking_server: TrackingServer, method: str, path: str, body) -> None:
    status, content_type, text = raw_request(tracking_server.url + path, method, body)
    assert status == 404, f"{method} {path}: {status} {text[:300]}"
    if tracking_server.is_loupe:
        parsed = json.loads(text)
        assert parsed.get("error_code") == "ENDPOINT_NOT_FOUND", f"{method} {path}: {text[:300]}"
        assert isinstance(parsed.get("message"), str) and parsed["message"]


@pytest.mark.parametrize("method,path,body", UNKNOWN_ENDPOINTS, ids=[p for _, p, _ in UNKNOWN_ENDPOINTS])
def test_unknown_endpoint_is_404(tracking_server: TrackingServer, method, path, body):
    """404, never 5xx (the client retries 5xx for minutes). Loupe answers JSON
    ENDPOINT_NOT_FOUND; the real server answers an HTML 404, which the client also maps to
    ENDPOINT_NOT_FOUND (that is what its V2 fallbacks key on)."""
    _check_not_found(tracking_server, method, path, body)


@LOUPE_ONLY
@pytest.mark.parametrize("method,path,body", LOUPE_UNIMPLEMENTED, ids=[p.split("?")[0] for _, p, _ in LOUPE_UNIMPLEMENTED])
def test_loupe_unimplemented_endpoint_is_endpoint_not_found(tracking_server: TrackingServer, method, path, body):
    _check_not_found(tracking_server, method, path, body)


@LOUPE_ONLY
def test_client_fails_fast_on_unimplemented_endpoints(mlflow_driver):
    run = mlflow_driver("unimplemented")
    for name, got in run.result.items():
        assert got.get("error_code") == "ENDPOINT_NOT_FOUND", (name, got)
        assert got["seconds"] < 5, (name, got)
    assert all(r["status"] == 404 for r in run.requests), run.describe()


# ================================================================================================
# 8. Plain OTLP <-> MLflow.


@pytest.fixture(scope="module")
def otlp_run(mlflow_driver) -> MlflowRun:
    args = {} if ORACLE else {"no_header_marker": f"otlp-no-header-{RUN_TAG}"}
    return mlflow_driver("otlp", experiment("otlp"), **args)


def test_plain_otlp_traces_found_by_mlflow_search(otlp_run: MlflowRun):
    r = otlp_run.result
    ok_id, err_id = "tr-" + r["ok_hex"], "tr-" + r["err_hex"]
    assert set(r["found"]) == {ok_id, err_id}
    assert r["found"][ok_id]["state"] == "OK" and r["found"][err_id]["state"] == "ERROR"
    assert r["found"][ok_id]["span_names"] == ["otlp-child", "otlp-root"]
    assert r["status_ok"] == [ok_id] and r["status_error"] == [err_id]
    assert sorted(r["span_name"]) == sorted([ok_id, err_id])
    trace = r["ok_trace"]
    assert trace["info"]["experiment_id"] == r["experiment_id"]
    root, child = trace["spans"]
    assert (root["name"], root["parent_id"], root["status"]) == ("otlp-root", None, "OK")
    assert (child["name"], child["parent_id"]) == ("otlp-child", root["span_id"])
    assert root["attributes"]["app.request"] == "hello"
    assert child["attributes"]["custom.count"] == 3
    assert "mlflow.artifactLocation" in trace["info"]["tags"]
    assert trace["info"]["tags"].get("mlflow.trace.spansLocation") == "TRACKING_STORE"


def test_plain_otlp_no_warnings(otlp_run: MlflowRun):
    otlp_run.result
    assert_no_client_warnings(otlp_run)
    assert_requests_ok(otlp_run)


@LOUPE_ONLY
def test_plain_otlp_without_experiment_header_lands_in_default(otlp_run: MlflowRun, tracking_server: TrackingServer):
    """The real server rejects OTLP without x-mlflow-experiment-id (422); Loupe files it under its
    default project, which is experiment 0."""
    r = otlp_run.result
    assert r["default_found"] == [True], "the header-less OTLP trace is not in experiment 0"
    assert r["no_header_hex"] in loupe_traces(tracking_server, LOUPE_DEFAULT_PROJECT)


@LOUPE_ONLY
def test_plain_otlp_traces_in_loupe_project(otlp_run: MlflowRun, tracking_server: TrackingServer):
    r = otlp_run.result
    traces = loupe_traces(tracking_server, loupe_project(experiment("otlp")))
    assert set(traces) == {r["ok_hex"], r["err_hex"]}
    assert traces[r["ok_hex"]]["name"] == "otlp-root" and traces[r["err_hex"]]["status"] == "ERROR"


# ================================================================================================
# 9. Runs: everyday experiment tracking (issue #19, point 1), the same against the oracle.


@pytest.fixture(scope="module")
def runs_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("runs", experiment("runs"))


def test_runs_logged_and_read_back(runs_run: MlflowRun):
    r = runs_run.result
    b = r["baseline"]
    assert (b["run_name"], b["status"], b["lifecycle_stage"]) == ("baseline", "FINISHED", "active")
    assert b["end_time"] and b["end_time"] >= b["start_time"]
    assert b["params"] == {"lr": "0.01", "batch": "32", "model": "gpt-4o-mini"}
    assert b["metrics"] == {"accuracy": 0.9, "loss": 0.25, "latency_ms": 120.0}, "the latest step's value"
    assert b["tags"] == {"team": "search", "stage": "dev", "owner": "alice", "mlflow.runName": "baseline"}
    assert b["datasets"] == ["questions"]
    assert r["history"] == [[0, 0.5], [1, 0.7], [2, 0.9]]
    broken = r["broken"]
    assert broken["status"] == "FAILED" and broken["params"] == {"lr": "0.1"}
    assert broken["metrics"]["loss"] == 2.0 and broken["metrics"]["accuracy"] != broken["metrics"]["accuracy"], "NaN kept"
    assert broken["tags"]["why"] == "oom"


def test_runs_search(runs_run: MlflowRun):
    s = runs_run.result["search"]
    assert s["all"] == ["broken", "tuned", "baseline"], "newest first"
    assert s["acc_gt_0.8"] == ["tuned", "baseline"]
    assert s["lr_param"] == ["baseline"]
    assert s["team_and_status"] == ["baseline", "tuned"]
    assert s["name_like"] == ["broken", "baseline"]
    assert s["failed"] == ["broken"]
    page1, page2, token = runs_run.result["pages"]
    assert (page1, page2, token) == (["baseline", "tuned"], ["broken"], None)
    assert runs_run.result["fluent_search"] == ["tuned"]


def test_runs_errors_delete_and_restore(runs_run: MlflowRun):
    r = runs_run.result
    e = r["errors"]
    assert e["bad_filter"]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert e["change_param"]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert e["missing_run"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert r["after_delete"] == ["tuned", "baseline"]
    assert r["deleted_only"] == ["broken"]
    assert r["after_restore"] == ["broken", "tuned", "baseline"]
    assert "team" not in r["tuned_tags"]


def test_runs_no_warnings(runs_run: MlflowRun):
    runs_run.result
    # mlflow's dataset digest calls pandas in a way pandas 4 deprecates: the client's own warning,
    # raised against the real mlflow server too, whatever the server answers.
    own = [w for w in runs_run.warnings if w["kind"] == "python:Pandas4Warning" and "digest_utils" in w.get("where", "")]
    others = [w for w in runs_run.warnings if w not in own]
    assert len(own) <= 1 and not others, "the mlflow client warned or logged errors:\n" + json.dumps(others, indent=1)[:4000]
    assert_requests_ok(runs_run, allowed=(
        GET_BY_NAME_MISS,
        ("POST", "/api/2.0/mlflow/runs/search", 400),  # the bad filter
        ("POST", "/api/2.0/mlflow/runs/log-parameter", 400),  # changing a param
        ("POST", "/api/2.0/mlflow/runs/log-batch", 400),  # (some clients log a param as a batch)
        ("GET", "/api/2.0/mlflow/runs/get", 404),  # the missing run
    ))


# ================================================================================================
# 10. mlflow.genai.evaluate, unchanged (issue #19, point 2), the same against the oracle.


@pytest.fixture(scope="module")
def evaluate_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("evaluate", experiment("evaluate"))


def _scores(evaluation: dict, name: str) -> list:
    """The values of one scorer's assessments, by trace (ordered by request)."""
    return [[a["value"] for a in t["assessments"] if a["name"] == name] for t in evaluation["traces"]]


def test_evaluate_predict_fn_with_code_scorers(evaluate_run: MlflowRun):
    e = evaluate_run.result["predict_fn"]
    assert e["status"] == "FINISHED"
    assert e["metrics"] == {"exact_match/mean": 0.5, "answer_length/mean": 7.0} == e["result_metrics"]
    assert len(e["traces"]) == 2 and all(t["source_run"] == e["run_id"] for t in e["traces"])
    assert _scores(e, "exact_match") == [[True], [False]]
    assert _scores(e, "answer_length") == [[1], [13]]
    assert _scores(e, "expected_response") == [["4"], ["none"]]
    for t in e["traces"]:
        for a in t["assessments"]:
            assert a["source_run"] == e["run_id"] and a["error"] is None, a
            assert a["source_type"] == ("HUMAN" if a["name"] == "expected_response" else "CODE"), a
    assert e["datasets"], "the evaluation data is logged as the run's input"


def test_evaluate_dataframe_of_outputs(evaluate_run: MlflowRun):
    e = evaluate_run.result["dataframe"]
    assert e["metrics"] == {"exact_match/mean": 0.5}
    assert [t["request"] for t in e["traces"]] == ['{"question": "Name a color"}', '{"question": "Name a fruit"}']
    assert _scores(e, "exact_match") == [[True], [False]]


def test_evaluate_existing_traces(evaluate_run: MlflowRun):
    """Traces of one evaluation scored again by another: linked to both runs, scored by both."""
    first = evaluate_run.result["predict_fn"]
    e = evaluate_run.result["traces"]
    assert e["metrics"] == {"answer_length/mean": 7.0}
    assert sorted(t["trace_id"] for t in e["traces"]) == sorted(t["trace_id"] for t in first["traces"])
    for t in e["traces"]:
        runs = {a["source_run"] for a in t["assessments"] if a["name"] == "answer_length"}
        assert runs == {first["run_id"], e["run_id"]}, t


def test_evaluate_no_warnings(evaluate_run: MlflowRun):
    evaluate_run.result
    own = [w for w in evaluate_run.warnings if w["kind"] == "python:Pandas4Warning" and "digest_utils" in w.get("where", "")]
    others = [w for w in evaluate_run.warnings if w not in own]
    assert not others, "the mlflow client warned or logged errors:\n" + json.dumps(others, indent=1)[:4000]
    assert_requests_ok(evaluate_run, allowed=(GET_BY_NAME_MISS,))


def test_evaluate_builtin_llm_judges(evaluate_run: MlflowRun):
    """Correctness, Guidelines, RelevanceToQuery and make_judge, the shared mock as the judge
    model: every verdict is an LLM_JUDGE assessment on its trace, the means are on the run."""
    e = evaluate_run.result["judges"]
    assert len(e["traces"]) == 2
    for t in e["traces"]:
        for a in t["assessments"]:
            assert a["error"] is None, a
            if a["name"] != "expected_response":
                assert a["source_type"] == "LLM_JUDGE" and a["rationale"].startswith("Mock rationale: "), a
    assert _scores(e, "correctness") == [["yes"], ["no"]], "[[mock:no]] in the second answer"
    assert _scores(e, "short") == [["yes"], ["no"]]
    assert _scores(e, "relevance_to_query") == [["yes"], ["no"]]
    assert _scores(e, "polite") == [[True], [False]]
    for name in ("correctness", "short", "relevance_to_query", "polite"):
        assert e["metrics"][f"{name}/mean"] == 0.5, e["metrics"]


# ================================================================================================
# 11. Evaluation datasets (issue #19, point 3), the same against the oracle.


@pytest.fixture(scope="module")
def datasets_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("datasets", experiment("datasets"))


def test_datasets_records_merge_by_inputs(datasets_run: MlflowRun):
    r = datasets_run.result
    assert r["got"]["num"] == 3 and r["by_name"]
    two, three, five = r["records"]
    assert two == {"inputs": {"question": "What is 2+2?"}, "expectations": {"expected_response": "4", "facts": ["arithmetic"]}}
    assert three["expectations"] == {"expected_response": "6"}
    assert five["inputs"] == {"question": "What is 5+5?"}, "a record from a trace"
    assert any("TRACE" in s for s in r["record_sources"])
    assert {k: v for k, v in r["got"]["tags"].items() if k != "mlflow.user"} == {"team": "search", "stage": "draft"}
    assert len(r["got"]["experiment_ids"]) == 1


def test_datasets_search_tags_and_delete(datasets_run: MlflowRun):
    r = datasets_run.result
    name = experiment("datasets")
    assert r["search_all"] == [f"{name}-other", f"{name}-qa"]
    assert r["search_like"] == [f"{name}-qa"] and r["search_tag"] == [f"{name}-qa"]
    assert {k: v for k, v in r["tags_after"].items() if k != "mlflow.user"} == {"stage": "final", "owner": "ann"}
    assert r["after_delete"] == [f"{name}-qa"]
    assert r["get_deleted"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_datasets_as_evaluation_data(datasets_run: MlflowRun):
    e = datasets_run.result["evaluate"]
    assert e["metrics"] == {"exact_match/mean": pytest.approx(1 / 3)}
    assert len(e["traces"]) == 3 and all(t["source_run"] == e["run_id"] for t in e["traces"])


def test_datasets_no_warnings(datasets_run: MlflowRun):
    datasets_run.result
    own = [w for w in datasets_run.warnings if w["kind"] == "python:Pandas4Warning" and "digest_utils" in w.get("where", "")]
    others = [w for w in datasets_run.warnings if w not in own]
    assert not others, "the mlflow client warned or logged errors:\n" + json.dumps(others, indent=1)[:4000]
    assert_requests_ok(datasets_run, allowed=(GET_BY_NAME_MISS, ("GET", "/api/3.0/mlflow/datasets/", 404)))


# ================================================================================================
# 12. Loupe's own API sees runs and evaluations (issue #19, point 5).


@LOUPE_ONLY
def test_runs_in_loupe_api(runs_run: MlflowRun, tracking_server: TrackingServer):
    project = loupe_project(experiment("runs"))
    status, page = tracking_server.loupe.get("/api/v1/runs?" + urllib.parse.urlencode({"project": project}))
    assert status == 200, page
    by_name = {r["name"]: r for r in page["runs"]}
    assert [r["name"] for r in page["runs"]] == ["broken", "tuned", "baseline"]
    b = by_name["baseline"]
    assert (b["status"], b["params"]["lr"], b["metrics"]["accuracy"], b["tags"]["team"]) == ("FINISHED", "0.01", 0.9, "search")
    assert b["datasets"] == ["questions"] and b["project"] == project
    assert by_name["broken"]["metrics"]["accuracy"] is None, "NaN is null"
    query = urllib.parse.urlencode({"project": project, "filter": "metrics.accuracy > 0.8", "order_by": "metrics.accuracy DESC"})
    status, page = tracking_server.loupe.get("/api/v1/runs?" + query)
    assert status == 200 and [r["name"] for r in page["runs"]] == ["tuned", "baseline"]
    status, page = tracking_server.loupe.get("/api/v1/runs?" + urllib.parse.urlencode({"project": project, "limit": "2"}))
    assert status == 200 and len(page["runs"]) == 2 and page["next_offset"] == 2
    status, body = tracking_server.loupe.get("/api/v1/runs?" + urllib.parse.urlencode({"filter": "metrics.accuracy >> 1"}))
    assert status == 400 and body["error"]["code"], body
    status, body = tracking_server.loupe.get("/api/v1/runs/" + "0" * 32)
    assert status == 404, body


@LOUPE_ONLY
def test_evaluation_runs_in_loupe_api(evaluate_run: MlflowRun, tracking_server: TrackingServer):
    first = evaluate_run.result["predict_fn"]
    status, detail = tracking_server.loupe.get(f"/api/v1/runs/{first['run_id']}")
    assert status == 200, detail
    assert sorted(t["trace_id"] for t in detail["traces"]) == sorted(loupe_trace_id(t["trace_id"]) for t in first["traces"])
    scores = {s["name"]: s for s in detail["scores"]}
    assert (scores["exact_match"]["count"], scores["exact_match"]["mean"]) == (2, 0.5)
    # The later evaluation of the same traces scored answer_length on them again.
    assert scores["answer_length"]["count"] == 4 and scores["answer_length"]["mean"] == 7.0
    assert scores["expected_response"]["kind"] == "expectation"
    judged = evaluate_run.result["judges"]
    status, detail = tracking_server.loupe.get(f"/api/v1/runs/{judged['run_id']}")
    scores = {s["name"]: s for s in detail["scores"]}
    assert scores["correctness"]["values"] == {"yes": 1, "no": 1} and scores["correctness"]["errors"] == 0
    assert scores["polite"]["mean"] == 0.5
    # run_id in the query language: the run's traces, linked ones included.
    later = evaluate_run.result["traces"]
    query = urllib.parse.urlencode({"q": f"run_id = '{later['run_id']}'", "limit": "100"})
    status, page = tracking_server.loupe.get("/api/v1/traces?" + query)
    assert status == 200 and len(page["traces"]) == 2, page


@LOUPE_ONLY
def test_runs_pages_compare_side_by_side(evaluate_run: MlflowRun, runs_run: MlflowRun, tracking_server: TrackingServer):
    """The runs list, a run's page and the comparison of two evaluations (server-rendered)."""
    import html as html_lib
    import re

    base = tracking_server.loupe.url
    project = loupe_project(experiment("runs"))
    status, _, page = raw_request(f"{base}/runs?" + urllib.parse.urlencode({"project": project}), "GET")
    assert status == 200 and all(n in page for n in ("baseline", "tuned", "broken")), page[:2000]
    assert 'name="ids"' in page and "accuracy" in page
    first, judged = evaluate_run.result["predict_fn"], evaluate_run.result["dataframe"]
    status, _, page = raw_request(f"{base}/runs/{first['run_id']}", "GET")
    assert status == 200 and "exact_match" in page and "/traces/" in page, page[:2000]
    query = urllib.parse.urlencode([("ids", first["run_id"]), ("ids", evaluate_run.result["traces"]["run_id"])])
    status, _, page = raw_request(f"{base}/runs/compare?{query}", "GET")
    assert status == 200, page[:2000]
    text = html_lib.unescape(page)
    assert '{"question": "What is 2+2?"}' in text, "inputs are matched across runs"
    # answer_length/mean is the same (7) in both runs; exact_match/mean only in the first: a diff.
    rows = dict((name, cls) for cls, name in re.findall(r'<tr(?: class="(\w*)")?><th>([^<]+)</th>', page))
    assert rows["answer_length/mean"] == "" and rows["exact_match/mean"] == "diff", rows
    status, _, page = raw_request(f"{base}/runs/compare?ids={judged['run_id']}", "GET")
    assert status == 400, "one run is not a comparison"
    status, _, page = raw_request(f"{base}/runs/" + "0" * 32, "GET")
    assert status == 404


# ================================================================================================
# 13. Registered scorers (issue #19, point 4), the same against the oracle; online
#     configurations of gateway judges on Loupe only (the oracle would need an AI-gateway endpoint).


@pytest.fixture(scope="module")
def scorers_run(mlflow_driver) -> MlflowRun:
    return mlflow_driver("scorers", experiment("scorers"), **({} if ORACLE else {"gateway": True}))


def test_scorers_registered_listed_and_deleted(scorers_run: MlflowRun):
    r = scorers_run.result
    assert r["registered"] == "polite" and r["listed"] == ["grounded", "polite"]
    assert r["got_guidelines"] == "Be polite and brief.", "get_scorer returns the latest version"
    assert r["start_not_gateway"]["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "gateway" in r["start_not_gateway"]["message"]
    assert r["get_deleted"]["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_scorers_no_warnings(scorers_run: MlflowRun):
    scorers_run.result
    assert_no_client_warnings(scorers_run)
    assert_requests_ok(scorers_run, allowed=(
        GET_BY_NAME_MISS,
        ("GET", "/api/3.0/mlflow/scorers/get", 404),  # the deleted scorer
        ("PUT", "/api/3.0/mlflow/scorers/online-config", 400),  # starting a judge not on a gateway
    ))


@LOUPE_ONLY
def test_scorers_online_configs_stored_and_shown_as_not_run(scorers_run: MlflowRun, tracking_server: TrackingServer):
    r = scorers_run.result
    assert r["started"] == {"sample_rate": 0.25, "filter": "trace.status = 'OK'"}
    assert r["updated"] == {"sample_rate": 0.5} and r["listed_rate"] == 0.5
    assert r["stopped"] == {"sample_rate": 0.0} and r["restarted"] == 0.1
    assert r["after_delete"] == ["concise", "grounded"]
    project = loupe_project(experiment("scorers"))
    status, _, page = raw_request(f"{tracking_server.loupe.url}/runs?" + urllib.parse.urlencode({"project": project}), "GET")
    assert status == 200 and "concise" in page and "grounded" in page, page[:3000]
    assert "not run on this server" in page

"""Real clients, real Loupe: does every LLM-tracing convention come out the same in the API?

Each convention's driver (see clients/python/drivers and clients/node/vercel_ai.mjs) runs four
scenarios against the mock OpenAI server and sends its spans to a fresh `loupe serve`. The
expected values are never typed in here: they come from the run itself, from the requests the
mock received (their usage follows the rules in mock_openai/server.py, applied by the very
functions the mock used to answer) and from what the driver's client got back.

The contract checked (per span of GET /api/v1/traces/{id}):
  span_type     CHAT_MODEL for a chat call, EMBEDDING for an embeddings call, TOOL for a tool run
  model         the response model, else the request model (the mock echoes the request's)
  provider      "openai"
  input_tokens, output_tokens, total_tokens   the mock's usage, as ints
  cost_usd      tokens x the price book (gpt-5.2 $1.75 / $14 per 1M input / output tokens,
                text-embedding-3-small $0.02 per 1M input tokens), within 1e-12
  input_messages, output_messages   [{"role", "content" (a string), "tool_calls"?: [{"id",
                "name", "arguments" (a JSON string)}], "tool_call_id"?}]
  tool_calls    the tool calls the model asked for in this span
  request_params  e.g. {"temperature": 0.2, "max_tokens": 50}
and per trace (detail and list item): cost_usd, session_id, user_id, input/output/total tokens;
and GET /api/v1/sessions, GET /api/v1/sessions/{id}.

Every mismatch of a test is listed in its failure message, not only the first.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse

import pytest
from conftest import SCENARIOS, ConventionRun, driver_common, mock_openai

CHAT_MODEL = driver_common.CHAT_MODEL
EMBEDDING_MODEL = driver_common.EMBEDDING_MODEL
COST_TOLERANCE = 1e-12

# USD per token: (input, output).
PRICE_BOOK = {
    "gpt-5.2": (1.75 / 1_000_000, 14.0 / 1_000_000),
    "gpt-4o-mini": (0.15 / 1_000_000, 0.60 / 1_000_000),
    "text-embedding-3-small": (0.02 / 1_000_000, 0.0),
}


class Mismatches:
    """Collects every mismatch of a test, then fails once listing them all."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, text: str) -> None:
        self.items.append(text)

    def equal(self, what: str, actual, expected) -> None:
        if actual != expected or type(actual) is not type(expected):
            self.add(f"{what}: got {actual!r}, expected {expected!r}")

    def cost(self, what: str, actual, expected: float) -> None:
        if not isinstance(actual, (int, float)) or isinstance(actual, bool) or not math.isclose(
            actual, expected, rel_tol=0, abs_tol=COST_TOLERANCE
        ):
            self.add(f"{what}: got {actual!r}, expected {expected!r} (±{COST_TOLERANCE})")

    def check(self) -> None:
        if self.items:
            pytest.fail(
                f"{self.where}: {len(self.items)} mismatch(es)\n  - " + "\n  - ".join(self.items),
                pytrace=False,
            )


# ---------------------------------------------------------------------------------------------
# What the run says should be there.


def mock_calls(run: ConventionRun) -> dict[str, list[dict]]:
    """The requests the mock received, per scenario (the drivers run them in order)."""
    chats = [r["body"] for r in run.mock_requests if r["path"] == "/v1/chat/completions"]
    embeddings = [r["body"] for r in run.mock_requests if r["path"] == "/v1/embeddings"]
    return {
        "chat_scenario": chats[0:1],
        "stream_scenario": chats[1:2],
        "tool_scenario": chats[2:4],
        "embedding_scenario": embeddings[0:1],
    }


def unwrap_json(text):
    """A string that holds JSON (maybe JSON-encoded more than once) as the value it holds."""
    value = text
    for _ in range(3):
        if not isinstance(value, str):
            return value
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return value


def same_text(actual, expected: str) -> bool:
    return actual == expected or (isinstance(actual, str) and unwrap_json(actual) == unwrap_json(expected))


def request_message(message: dict) -> dict:
    """A chat request message in the contract's shape."""
    out = {"role": message["role"], "content": mock_openai.message_text(message) if message.get("content") is not None else None}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in message["tool_calls"]
        ]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    return out


def reply_message(body: dict) -> tuple[dict, list[dict], dict]:
    """(output message, tool calls, usage) the mock answered ``body`` with."""
    plan = mock_openai.plan_chat_reply(body)
    calls = [
        {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
        for c in plan["tool_calls"] or []
    ]
    message = {"role": "assistant", "content": plan["text"]}
    if calls:
        message["tool_calls"] = calls
    return message, calls, plan["usage"]


def chat_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    price_in, price_out = PRICE_BOOK[model]
    return input_tokens * price_in + output_tokens * price_out


def compare_tool_calls(m: Mismatches, what: str, actual, expected: list[dict]) -> None:
    if not expected:
        if actual not in (None, []):
            m.add(f"{what}: got {actual!r}, expected none")
        return
    if not isinstance(actual, list) or len(actual) != len(expected):
        m.add(f"{what}: got {actual!r}, expected {expected!r}")
        return
    for i, (got, want) in enumerate(zip(actual, expected)):
        if not isinstance(got, dict):
            m.add(f"{what}[{i}]: got {got!r}, expected an object")
            continue
        m.equal(f"{what}[{i}].id", got.get("id"), want["id"])
        m.equal(f"{what}[{i}].name", got.get("name"), want["name"])
        arguments = got.get("arguments")
        if not isinstance(arguments, str):
            m.add(f"{what}[{i}].arguments: got {arguments!r}, expected a JSON string like {want['arguments']!r}")
        elif unwrap_json(arguments) != json.loads(want["arguments"]):
            m.add(f"{what}[{i}].arguments: got {arguments!r}, expected the JSON of {want['arguments']!r}")


def compare_messages(m: Mismatches, what: str, actual, expected: list[dict]) -> None:
    if not isinstance(actual, list):
        m.add(f"{what}: got {actual!r}, expected a list of {len(expected)} messages")
        return
    if len(actual) != len(expected):
        m.add(
            f"{what}: got {len(actual)} messages {actual!r}, expected {len(expected)}: {expected!r}"
        )
        return
    for i, (got, want) in enumerate(zip(actual, expected)):
        where = f"{what}[{i}]"
        if not isinstance(got, dict):
            m.add(f"{where}: got {got!r}, expected an object")
            continue
        m.equal(f"{where}.role", got.get("role"), want["role"])
        content = got.get("content")
        if want["content"] is None:
            # An assistant message that only calls tools has no text. The contract says content
            # is a string; "" and null are both accepted here.
            if content not in (None, ""):
                m.add(f"{where}.content: got {content!r}, expected no text")
        elif not isinstance(content, str) or not same_text(content, want["content"]):
            m.add(f"{where}.content: got {content!r}, expected {want['content']!r}")
        compare_tool_calls(m, f"{where}.tool_calls", got.get("tool_calls"), want.get("tool_calls", []))
        if want.get("tool_call_id"):
            m.equal(f"{where}.tool_call_id", got.get("tool_call_id"), want["tool_call_id"])


def spans_named(detail: dict, names) -> list[dict]:
    return [s for s in detail.get("spans", []) if s.get("name") in names]


def check_chat_span(m: Mismatches, label: str, span: dict, body: dict, check_messages: bool = True) -> tuple[int, int, float]:
    """Checks one chat-call span against the request the mock got; returns (in, out, cost)."""
    message, calls, usage = reply_message(body)
    m.equal(f"{label}.span_type", span.get("span_type"), "CHAT_MODEL")
    m.equal(f"{label}.model", span.get("model"), body["model"])
    m.equal(f"{label}.provider", span.get("provider"), "openai")
    m.equal(f"{label}.input_tokens", span.get("input_tokens"), usage["prompt_tokens"])
    m.equal(f"{label}.output_tokens", span.get("output_tokens"), usage["completion_tokens"])
    m.equal(f"{label}.total_tokens", span.get("total_tokens"), usage["total_tokens"])
    cost = chat_cost(body["model"], usage["prompt_tokens"], usage["completion_tokens"])
    m.cost(f"{label}.cost_usd", span.get("cost_usd"), cost)
    if check_messages:
        compare_messages(m, f"{label}.input_messages", span.get("input_messages"), [request_message(x) for x in body["messages"]])
        compare_messages(m, f"{label}.output_messages", span.get("output_messages"), [message])
    compare_tool_calls(m, f"{label}.tool_calls", span.get("tool_calls"), calls)
    return usage["prompt_tokens"], usage["completion_tokens"], cost


def one_span(m: Mismatches, detail: dict, names, what: str) -> dict | None:
    found = spans_named(detail, names)
    if len(found) != 1:
        m.add(
            f"expected exactly one {what} span named {list(names)}, found {len(found)} "
            f"(spans: {[s.get('name') for s in detail.get('spans', [])]})"
        )
        return None
    return found[0]


# ---------------------------------------------------------------------------------------------
# The tests. Each is parametrized over the conventions by the `run` fixture.


def test_driver_ran_every_scenario(run: ConventionRun):
    run.require()
    m = Mismatches(f"{run.conv.name} run")
    calls = mock_calls(run)
    m.equal("chat requests the mock received", len([r for r in run.mock_requests if r["path"] == "/v1/chat/completions"]), 4)
    m.equal("embeddings requests the mock received", len(calls["embedding_scenario"]), 1)
    if len(calls["stream_scenario"]) == 1:
        m.equal("the stream request's stream", calls["stream_scenario"][0].get("stream"), True)
        m.equal(
            "the stream request's stream_options",
            calls["stream_scenario"][0].get("stream_options"),
            {"include_usage": True},
        )
    if len(calls["tool_scenario"]) == 2:
        m.equal("the second tool-scenario request ends with a tool message", calls["tool_scenario"][1]["messages"][-1].get("role"), "tool")
    m.equal("scenarios with a trace", sorted(run.by_scenario), sorted(SCENARIOS))
    # What the client itself received agrees with the mock's rules (a check of the harness).
    result = run.driver_result
    if run.conv.python_driver and len(calls["chat_scenario"]) == 1:
        expected_usage = mock_openai.plan_chat_reply(calls["chat_scenario"][0])["usage"]
        m.equal("usage the OpenAI client got for chat_scenario", result["chat_scenario"]["usage"], expected_usage)
    m.check()


def test_chat_completion(run: ConventionRun):
    detail = run.scenario("chat_scenario")
    body = mock_calls(run)["chat_scenario"][0]
    m = Mismatches(f"{run.conv.name} chat_scenario")
    span = one_span(m, detail, run.conv.chat_spans, "chat")
    if span is not None:
        check_chat_span(m, "chat span", span, body)
        params = span.get("request_params")
        if not isinstance(params, dict):
            m.add(f"chat span.request_params: got {params!r}, expected an object")
        else:
            # Subset check: a convention may record more (e.g. OpenInference's
            # llm.invocation_parameters also holds "model").
            m.equal("chat span.request_params.temperature", params.get("temperature"), 0.2)
            m.equal("chat span.request_params.max_tokens", params.get("max_tokens"), 50)
    m.check()


def test_streaming_chat_completion(run: ConventionRun):
    detail = run.scenario("stream_scenario")
    body = mock_calls(run)["stream_scenario"][0]
    m = Mismatches(f"{run.conv.name} stream_scenario")
    span = one_span(m, detail, run.conv.chat_spans, "streaming chat")
    if span is not None:
        # Every recorded version captures the final usage chunk (stream_options.include_usage):
        # openinference-instrumentation-openai 0.1.66, opentelemetry-instrumentation-openai
        # 0.62.4, openai-v2 2.4b0, mlflow 3.17.2 and ai 6.0.325 all put the usage on the span.
        check_chat_span(m, "stream span", span, body)
    m.check()


def test_tool_calls_and_tool_run(run: ConventionRun):
    detail = run.scenario("tool_scenario")
    first, second = mock_calls(run)["tool_scenario"]
    m = Mismatches(f"{run.conv.name} tool_scenario")
    chat_spans = spans_named(detail, run.conv.chat_spans)
    if len(chat_spans) != 2:
        m.add(f"expected 2 chat spans named {list(run.conv.chat_spans)}, found {len(chat_spans)}")
    else:
        check_chat_span(m, "first chat span (asks for the tool)", chat_spans[0], first)
        check_chat_span(m, "second chat span (gets the tool result)", chat_spans[1], second)
    tool = one_span(m, detail, run.conv.tool_spans, "tool")
    if tool is not None:
        m.equal("tool span.span_type", tool.get("span_type"), "TOOL")
        if len(chat_spans) == 2:
            # The tool runs between the call that asked for it and the one that got its result.
            if not (chat_spans[0].get("start_time_ns", 0) <= tool.get("start_time_ns", 0) <= chat_spans[1].get("start_time_ns", 0)):
                m.add("the tool span does not start between the two chat spans")
    m.check()


def test_embedding(run: ConventionRun):
    detail = run.scenario("embedding_scenario")
    body = mock_calls(run)["embedding_scenario"][0]
    usage = mock_openai.embedding_usage(body)
    m = Mismatches(f"{run.conv.name} embedding_scenario")
    span = one_span(m, detail, run.conv.embedding_spans, "embedding")
    if span is not None:
        m.equal("embedding span.span_type", span.get("span_type"), "EMBEDDING")
        m.equal("embedding span.model", span.get("model"), body["model"])
        if run.conv.name == "mlflow":
            # mlflow 3.17.2 records no provider on its "Embeddings" span (chat spans have only
            # mlflow.message.format="openai"): "openai" can only be inferred, so null is accepted.
            if span.get("provider") not in (None, "openai"):
                m.add(f"embedding span.provider: got {span.get('provider')!r}, expected 'openai' or null")
        else:
            m.equal("embedding span.provider", span.get("provider"), "openai")
        # mlflow 3.17.2 puts no mlflow.chat.tokenUsage on "Embeddings" spans; the usage is only
        # inside mlflow.spanOutputs (the OpenAI response's "usage"). It is still asserted here.
        m.equal("embedding span.input_tokens", span.get("input_tokens"), usage["prompt_tokens"])
        if span.get("output_tokens") not in (None, 0):
            m.add(f"embedding span.output_tokens: got {span.get('output_tokens')!r}, expected 0 or null")
        m.equal("embedding span.total_tokens", span.get("total_tokens"), usage["total_tokens"])
        m.cost("embedding span.cost_usd", span.get("cost_usd"), chat_cost(body["model"], usage["prompt_tokens"], 0))
    m.check()


def expected_trace_totals(run: ConventionRun, scenario: str) -> dict:
    bodies = mock_calls(run)[scenario]
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0, "cost_usd": 0.0}
    for body in bodies:
        if scenario == "embedding_scenario":
            usage = mock_openai.embedding_usage(body)
            tokens_in, tokens_out = usage["prompt_tokens"], 0
        else:
            usage = mock_openai.plan_chat_reply(body)["usage"]
            tokens_in, tokens_out = usage["prompt_tokens"], usage["completion_tokens"]
        totals["input_tokens"] += tokens_in
        totals["output_tokens"] += tokens_out
        totals["total_tokens"] += tokens_in + tokens_out
        totals["cost_usd"] += chat_cost(body["model"], tokens_in, tokens_out)
    return totals


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_trace_rollups(run: ConventionRun, scenario: str):
    detail = run.scenario(scenario)
    trace = detail.get("trace", {})
    m = Mismatches(f"{run.conv.name} {scenario} trace {trace.get('trace_id')}")
    totals = expected_trace_totals(run, scenario)
    # Only the calls count: wrappers that repeat their children's usage (the Vercel AI SDK's
    # ai.generateText / ai.streamText / ai.embed spans) must not be counted twice.
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        m.equal(f"trace.{key}", trace.get(key), totals[key])
    m.cost("trace.cost_usd", trace.get("cost_usd"), totals["cost_usd"])
    m.equal("trace.session_id", trace.get("session_id"), run.conv.session_id)
    m.equal("trace.user_id", trace.get("user_id"), run.conv.user_id)
    listed = [t for t in run.traces if t.get("trace_id") == trace.get("trace_id")]
    if len(listed) != 1:
        m.add("the trace is not in GET /api/v1/traces exactly once")
    else:
        for key in ("cost_usd", "session_id", "user_id", "input_tokens", "output_tokens", "total_tokens"):
            m.equal(f"GET /api/v1/traces item.{key} (vs the trace detail)", listed[0].get(key), trace.get(key))
    m.check()


def test_sessions(run: ConventionRun):
    run.require()
    m = Mismatches(f"{run.conv.name} sessions")
    session_id = run.conv.session_id
    traces = sorted(run.traces, key=lambda t: (t.get("start_time_ms") or 0, t.get("trace_id")))
    expected_tokens = sum(expected_trace_totals(run, s)["total_tokens"] for s in SCENARIOS)
    expected_cost = sum(expected_trace_totals(run, s)["cost_usd"] for s in SCENARIOS)

    status, body = run.loupe.get("/api/v1/sessions")
    if status != 200 or not isinstance(body, dict):
        m.add(f"GET /api/v1/sessions answered {status}: {body!r}"[:1000])
        m.check()
    if "next_cursor" not in body:
        m.add("GET /api/v1/sessions: no next_cursor")
    sessions = [s for s in body.get("sessions", []) if s.get("session_id") == session_id]
    if len(sessions) != 1:
        m.add(f"GET /api/v1/sessions lists {len(sessions)} sessions {session_id!r}: {body.get('sessions')!r}"[:1500])
    else:
        item = sessions[0]
        m.equal("session.trace_count", item.get("trace_count"), len(SCENARIOS))
        m.equal("session.total_tokens", item.get("total_tokens"), expected_tokens)
        m.cost("session.cost_usd", item.get("cost_usd"), expected_cost)
        if traces:
            m.equal("session.first_start_time_ms", item.get("first_start_time_ms"), traces[0].get("start_time_ms"))
            m.equal("session.last_start_time_ms", item.get("last_start_time_ms"), traces[-1].get("start_time_ms"))

    status, body = run.loupe.get(f"/api/v1/sessions/{session_id}")
    if status != 200 or not isinstance(body, dict):
        m.add(f"GET /api/v1/sessions/{session_id} answered {status}: {body!r}"[:1000])
    else:
        session = body.get("session") or {}
        m.equal("sessions/{id} session.session_id", session.get("session_id"), session_id)
        m.equal("sessions/{id} session.trace_count", session.get("trace_count"), len(SCENARIOS))
        m.equal("sessions/{id} session.total_tokens", session.get("total_tokens"), expected_tokens)
        m.cost("sessions/{id} session.cost_usd", session.get("cost_usd"), expected_cost)
        listed = [t.get("trace_id") for t in body.get("traces", [])]
        m.equal("sessions/{id} traces (in start order)", listed, [t.get("trace_id") for t in traces])
    m.check()


def test_full_text_search_finds_each_scenario(run: ConventionRun):
    """`text ~` over what each real client recorded: the index is filled in the background, so
    the first search waits for it; then the words of one scenario find that trace alone."""
    chat_id = run.scenario("chat_scenario")["trace"]["trace_id"]
    stream_id = run.scenario("stream_scenario")["trace"]["trace_id"]

    def search(q: str, wait: bool = True) -> set:
        deadline = time.monotonic() + 10
        while True:
            status, body = run.loupe.get("/api/v1/traces?" + urllib.parse.urlencode({"q": q, "limit": 50}))
            assert status == 200, f"{q}: {status} {body!r}"
            ids = {t["trace_id"] for t in body["traces"]}
            if ids or not wait or time.monotonic() > deadline:
                return ids
            time.sleep(0.2)

    # The question (an input) and the mock's answer (an output) are both searchable.
    assert search("text ~ 'capital of France'") == {chat_id}
    assert search("text ~ 'MOCK ANSWER capital'") == {chat_id}
    assert stream_id in search("text ~ 'count from one'")
    assert search("text ~ 'zanzibar'", wait=False) == set()
    assert search("text ~ 'capital' AND NOT text ~ 'france'", wait=False) == set()

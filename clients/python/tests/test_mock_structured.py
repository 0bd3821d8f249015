"""The mock's structured outputs (chat ``response_format``) against the real `openai` client.

The expected JSON texts and token counts are worked out here by hand from the rules in the
module docstring of mock_openai/server.py (the value built from the schema; the content is
``json.dumps`` of it with Python's default separators; ``[[mock:no]]`` in any message makes
booleans false and ``result`` "no"; completion_tokens = words of the JSON text; prompt_tokens =
words of every message + 10), and cross-checked against mock_openai.plan_chat_reply, the
function the mock answers with.
"""

from __future__ import annotations

import enum
import json
from typing import Literal, Optional

import openai
import pytest
from conftest import http_json, mock_openai
from pydantic import BaseModel, Field

MODEL = "gpt-4o-mini"
SYSTEM = "You are a judge."  # 4 words
QUESTION = "Is the answer to 2+2 equal to 4?"  # 8 words
RATIONALE = "Mock rationale: " + QUESTION
LONG_QUESTION = "one  two three four five six seven eight nine\tten eleven twelve thirteen fourteen"  # 14 words
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

# What mlflow.genai's judges (Correctness, Guidelines, RelevanceToQuery) send.
JUDGE_SCHEMA = {
    "properties": {
        "result": {"description": "The evaluation rating/result", "title": "Result", "type": "string"},
        "rationale": {
            "description": "Detailed explanation for the evaluation",
            "title": "Rationale",
            "type": "string",
        },
    },
    "required": ["result", "rationale"],
    "title": "JudgeEvaluation",
    "type": "object",
    "additionalProperties": False,
}
# What make_judge(feedback_value_type=bool) sends.
BOOL_JUDGE_SCHEMA = json.loads(json.dumps(JUDGE_SCHEMA))
BOOL_JUDGE_SCHEMA["properties"]["result"] = {"type": "boolean"}


def json_schema_format(schema: dict, name: str = "JudgeEvaluation") -> dict:
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def judge_messages(question: str = QUESTION, system: str = SYSTEM) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


def words(text: str) -> int:
    return len(text.split())


@pytest.fixture(scope="module")
def client(mock_openai_url) -> openai.OpenAI:
    with openai.OpenAI(base_url=mock_openai_url, api_key="test", max_retries=0) as c:
        yield c


def last_request(mock_openai_url: str) -> dict:
    status, body = http_json(mock_openai_url.rsplit("/v1", 1)[0] + "/mock/requests")
    assert status == 200
    sent = [r for r in body["requests"] if r["path"] == "/v1/chat/completions"]
    assert sent
    return sent[-1]["body"]


def test_judge_string_result(client, mock_openai_url):
    completion = client.chat.completions.create(
        model=MODEL, messages=judge_messages(), response_format=json_schema_format(JUDGE_SCHEMA)
    )
    choice = completion.choices[0]
    expected = '{"result": "yes", "rationale": "Mock rationale: Is the answer to 2+2 equal to 4?"}'
    assert choice.message.content == expected
    assert json.loads(choice.message.content) == {"result": "yes", "rationale": RATIONALE}
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage.prompt_tokens == 4 + 8 + 10
    assert completion.usage.completion_tokens == 13 == words(expected)
    assert completion.usage.total_tokens == 22 + 13

    body = last_request(mock_openai_url)
    assert body["response_format"] == json_schema_format(JUDGE_SCHEMA)
    plan = mock_openai.plan_chat_reply(body)
    assert plan["text"] == expected
    assert plan["usage"] == {"prompt_tokens": 22, "completion_tokens": 13, "total_tokens": 35}


def test_judge_bool_result(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=judge_messages(), response_format=json_schema_format(BOOL_JUDGE_SCHEMA)
    )
    content = completion.choices[0].message.content
    assert content == json.dumps({"result": True, "rationale": RATIONALE})
    assert json.loads(content) == {"result": True, "rationale": RATIONALE}
    assert completion.usage.completion_tokens == words(content) == 13


@pytest.mark.parametrize("where", ["system", "user", "assistant"])
def test_no_marker_flips_the_verdict(client, where):
    messages = judge_messages()
    if where == "system":
        messages[0]["content"] = "[[mock:no]] " + SYSTEM
    elif where == "user":
        messages[1]["content"] = [{"type": "text", "text": "Outputs:"}, {"type": "text", "text": "[[mock:no]] 7"}]
    else:
        messages += [{"role": "assistant", "content": "The outputs were [[mock:no]]."}]
    for schema, verdict in ((JUDGE_SCHEMA, "no"), (BOOL_JUDGE_SCHEMA, False)):
        completion = client.chat.completions.create(
            model=MODEL, messages=messages, response_format=json_schema_format(schema)
        )
        value = json.loads(completion.choices[0].message.content)
        assert value["result"] == verdict
        # the rationale still quotes the last user message
        expected_rationale = "Mock rationale: Outputs: [[mock:no]] 7" if where == "user" else RATIONALE
        assert value["rationale"] == expected_rationale


def test_marker_must_be_exact(client):
    messages = judge_messages("[[mock:No]] [mock:no] mock:no")
    completion = client.chat.completions.create(
        model=MODEL, messages=messages, response_format=json_schema_format(BOOL_JUDGE_SCHEMA)
    )
    assert json.loads(completion.choices[0].message.content)["result"] is True


def test_rationale_is_cut_to_twelve_words(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "user", "content": "An earlier question that is not quoted"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": LONG_QUESTION},
        ],
        response_format=json_schema_format(JUDGE_SCHEMA),
    )
    value = json.loads(completion.choices[0].message.content)
    assert value["rationale"] == "Mock rationale: one two three four five six seven eight nine ten eleven twelve"
    assert completion.usage.prompt_tokens == 7 + 1 + 14 + 10


def test_json_schema_never_calls_tools(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=judge_messages(),
        tools=[WEATHER_TOOL],
        response_format=json_schema_format(JUDGE_SCHEMA),
    )
    choice = completion.choices[0]
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert json.loads(choice.message.content) == {"result": "yes", "rationale": RATIONALE}


def test_schema_keywords(client):
    schema = {
        "type": "object",
        "properties": {
            "flag": {"type": ["null", "boolean"]},
            "count": {"type": "integer"},
            "score": {"type": "number"},
            "nothing": {"type": "null"},
            "label": {"type": "string"},
            "why": {"type": "string", "description": "The REASONING behind it"},
            "mode": {"enum": ["fast", "slow"]},
            "fixed": {"const": "v1"},
            "fixed_flag": {"const": True},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}, {"type": "string"}]},
            "either": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
            "only_null": {"anyOf": [{"type": "null"}]},
            "wrapped": {"allOf": [{"$ref": "#/definitions/Inner"}], "description": "Explanation holder"},
            "inner": {"$ref": "#/$defs/Inner"},
            "untyped_obj": {"properties": {"a": {"type": "integer"}}},
            "untyped": {},
            "empty_obj": {"type": "object"},
            "no_items": {"type": "array"},
            "reasons": {"type": "array", "description": "reasons", "items": {"type": "string"}},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "dangling": {"$ref": "#/$defs/Missing"},
            "tree": {"$ref": "#/$defs/Node"},
        },
        "$defs": {
            "Inner": {"type": "object", "properties": {"result": {"type": "string"}, "note": {"type": "string"}}},
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
            },
        },
        "definitions": {"Inner": {"type": "object", "properties": {"rationale": {"type": "string"}}}},
    }
    expected = {
        "flag": True,
        "count": 1,
        "score": 1,
        "nothing": None,
        "label": "mock",
        "why": RATIONALE,
        "mode": "fast",
        "fixed": "v1",
        "fixed_flag": True,
        "maybe": 1,
        "either": True,
        "only_null": None,
        "wrapped": {"rationale": RATIONALE},
        "inner": {"result": "yes", "note": "mock"},
        "untyped_obj": {"a": 1},
        "untyped": None,
        "empty_obj": {},
        "no_items": [],
        "reasons": [RATIONALE],
        "pair": [1, "mock"],
        "matrix": [[1]],
        "dangling": None,
        "tree": {"name": "mock", "children": [], "parent": None},
    }
    completion = client.chat.completions.create(
        model=MODEL, messages=judge_messages(), response_format=json_schema_format(schema, "Everything")
    )
    content = completion.choices[0].message.content
    assert content == json.dumps(expected)
    assert list(json.loads(content)) == list(schema["properties"])  # schema order
    assert completion.usage.completion_tokens == words(content)

    flipped = client.chat.completions.create(
        model=MODEL,
        messages=judge_messages(QUESTION + " [[mock:no]]"),
        response_format=json_schema_format(schema, "Everything"),
    )
    value = json.loads(flipped.choices[0].message.content)
    assert value["flag"] is False and value["either"] is False
    assert value["fixed_flag"] is True  # const wins
    assert value["inner"]["result"] == "no"
    assert value["mode"] == "fast"


def test_root_schemas(client):
    cases = [
        ({"type": "string"}, "mock"),
        ({"type": "array", "items": {"type": "boolean"}}, [True]),
        ({"$ref": "#/$defs/R", "$defs": {"R": {"type": "object", "properties": {"me": {"$ref": "#"}}}}}, {"me": None}),
        ({"enum": [False, True]}, False),
    ]
    for schema, expected in cases:
        completion = client.chat.completions.create(
            model=MODEL, messages=judge_messages(), response_format=json_schema_format(schema, "Root")
        )
        assert json.loads(completion.choices[0].message.content) == expected, schema
    # a json_schema without a schema counts as {}
    completion = client.chat.completions.create(
        model=MODEL,
        messages=judge_messages(),
        response_format={"type": "json_schema", "json_schema": {"name": "Anything"}},
    )
    assert completion.choices[0].message.content == "null"


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


class Step(BaseModel):
    explanation: str = Field(description="Explanation of the step")
    ok: bool
    count: int
    score: float


class Report(BaseModel):
    result: Literal["yes", "no"]
    rationale: str
    passed: bool
    steps: list[Step]
    tags: list[str]
    color: Color
    note: Optional[str]
    kind: Literal["report"]


def report_value(no: bool = False) -> dict:
    return {
        "result": "no" if no else "yes",
        "rationale": RATIONALE,
        "passed": not no,
        "steps": [{"explanation": RATIONALE, "ok": not no, "count": 1, "score": 1}],
        "tags": ["mock"],
        "color": "red",
        "note": "mock",
        "kind": "report",
    }


def parse(client, **kwargs):
    completions = client.chat.completions
    return (completions.parse if hasattr(completions, "parse") else client.beta.chat.completions.parse)(**kwargs)


def test_parse_into_pydantic_model(client, mock_openai_url):
    completion = parse(client, model=MODEL, messages=judge_messages(), response_format=Report)
    message = completion.choices[0].message
    assert message.content == json.dumps(report_value())
    report = message.parsed
    assert isinstance(report, Report)
    assert report == Report(**report_value())
    assert report.color is Color.RED
    assert report.steps[0] == Step(explanation=RATIONALE, ok=True, count=1, score=1.0)
    assert report.note == "mock"
    assert completion.usage.completion_tokens == words(message.content)

    body = last_request(mock_openai_url)
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "Report"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert mock_openai.plan_chat_reply(body)["text"] == message.content

    flipped = parse(
        client, model=MODEL, messages=judge_messages(QUESTION + " [[mock:no]]"), response_format=Report
    ).choices[0].message.parsed
    assert flipped.result == "no"
    assert flipped.passed is False and flipped.steps[0].ok is False
    assert flipped.rationale == RATIONALE + " [[mock:no]]"


def test_stream_matches_non_streaming(client):
    kwargs = {
        "model": MODEL,
        "messages": judge_messages(),
        "response_format": json_schema_format(JUDGE_SCHEMA),
    }
    plain = client.chat.completions.create(**kwargs)
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    content = plain.choices[0].message.content
    assert "".join(pieces) == content
    assert pieces == [content[i : i + 16] for i in range(0, len(content), 16)]
    assert all(len(p) == 16 for p in pieces[:-1]) and 0 < len(pieces[-1]) <= 16
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
    assert chunks[-1].choices == []
    for use in (chunks[-1].usage, plain.usage):
        assert (use.prompt_tokens, use.completion_tokens, use.total_tokens) == (22, 13, 35)


def test_stream_parse_into_pydantic_model(client):
    completions = client.chat.completions
    stream_fn = completions.stream if hasattr(completions, "stream") else client.beta.chat.completions.stream
    with stream_fn(model=MODEL, messages=judge_messages(), response_format=Report) as stream:
        events = list(stream)
        final = stream.get_final_completion()
    deltas = [e.delta for e in events if e.type == "content.delta"]
    assert "".join(deltas) == json.dumps(report_value())
    assert all(len(d) <= 16 for d in deltas)
    assert final.choices[0].message.parsed == Report(**report_value())


def test_json_object(client):
    kwargs = {"model": MODEL, "messages": judge_messages(), "response_format": {"type": "json_object"}}
    completion = client.chat.completions.create(**kwargs)
    content = completion.choices[0].message.content
    assert content == '{"answer": "Mock answer to: Is the answer to 2+2 equal to 4?"}'
    assert json.loads(content) == {"answer": "Mock answer to: " + QUESTION}
    assert completion.usage.completion_tokens == words(content) == 12
    assert completion.usage.prompt_tokens == 22

    chunks = list(client.chat.completions.create(**kwargs, stream=True))
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == content
    assert all(len(p) <= 16 for p in pieces)

    # the tool-call rule still applies with json_object; the reply after the tool is JSON
    with_tools = client.chat.completions.create(**kwargs, tools=[WEATHER_TOOL])
    call = with_tools.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_mock_1", "get_weather", '{"city": "Paris"}')
    assert with_tools.choices[0].finish_reason == "tool_calls"
    after = client.chat.completions.create(
        **dict(
            kwargs,
            messages=[
                *judge_messages(),
                {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                {"role": "tool", "tool_call_id": call.id, "content": "Sunny"},
            ],
        ),
        tools=[WEATHER_TOOL],
    )
    assert json.loads(after.choices[0].message.content) == {"answer": "Mock answer to: " + QUESTION}


def test_text_format_changes_nothing(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=judge_messages(), response_format={"type": "text"}
    )
    assert completion.choices[0].message.content == "Mock answer to: " + QUESTION
    assert completion.usage.completion_tokens == 3 + 8

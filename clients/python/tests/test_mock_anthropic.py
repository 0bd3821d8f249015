"""The mock's Anthropic Messages API (POST /v1/messages) against the real `anthropic` client.

The expected texts and token counts are worked out here by hand from the rules in the module
docstring of mock_openai/server.py (words(s) = len(s.split()); input_tokens = words of every
message + words of system + 10; output_tokens = words of the reply, or 7 for a tool_use reply),
and cross-checked against mock_openai.plan_anthropic_reply, the function the mock answers with.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import anthropic
import pytest
from conftest import http_json, mock_openai

MODEL = "claude-sonnet-4-5"
QUESTION = "What is the capital of France?"  # 6 words
SYSTEM = "You are terse."  # 3 words
ANSWER = "Mock answer to: " + QUESTION  # 9 words
WEATHER_QUESTION = "What is the weather in Paris?"  # 6 words
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TOOL_SYSTEM = [{"type": "text", "text": "Use tools."}]  # 2 words
TOOL_RESULT = "Sunny, 22 C"  # 3 words


@pytest.fixture(scope="module")
def mock_root(mock_openai_url) -> str:
    """The mock's root: Anthropic clients add /v1/messages themselves."""
    return mock_openai_url.rsplit("/v1", 1)[0]


@pytest.fixture(scope="module")
def client(mock_root) -> anthropic.Anthropic:
    with anthropic.Anthropic(base_url=mock_root, api_key="test", max_retries=0) as c:
        yield c


def text_request() -> dict:
    return {
        "model": MODEL,
        "max_tokens": 64,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": QUESTION}],
    }


def post(url: str, body: dict):
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type"), response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type"), err.read().decode()


def test_text_reply(client, mock_root):
    message = client.messages.create(**text_request())
    assert re.fullmatch(r"msg_mock_\d+", message.id)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == MODEL
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == ANSWER
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert message.usage.input_tokens == 6 + 3 + 10
    assert message.usage.output_tokens == 9
    plan = mock_openai.plan_anthropic_reply(text_request())
    assert plan["usage"] == {"input_tokens": 19, "output_tokens": 9}

    status, body = http_json(mock_root + "/mock/requests")
    assert status == 200
    sent = [r for r in body["requests"] if r["path"] == "/v1/messages"]
    assert sent and sent[-1]["method"] == "POST"
    assert sent[-1]["body"] == text_request()


def test_text_blocks_and_system_blocks(client):
    message = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system=[{"type": "text", "text": "Be"}, {"type": "text", "text": "brief."}],  # 2 words
        messages=[
            {"role": "user", "content": "Hi there"},  # 2 words
            {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},  # 1 word
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "something"}],
            },  # 2 words
        ],
    )
    assert message.content[0].text == "Mock answer to: Say something"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2 + 1 + 2 + 2 + 10, 5)


def test_tool_use_round_trip(client):
    first_messages = [{"role": "user", "content": WEATHER_QUESTION}]
    first = client.messages.create(
        model=MODEL, max_tokens=64, system=TOOL_SYSTEM, tools=[WEATHER_TOOL], messages=first_messages
    )
    assert first.stop_reason == "tool_use"
    assert len(first.content) == 1
    call = first.content[0]
    assert call.type == "tool_use"
    assert call.id == "toolu_mock_1"
    assert call.name == "get_weather"
    assert call.input == {"city": "Paris"}
    assert (first.usage.input_tokens, first.usage.output_tokens) == (6 + 2 + 10, 7)

    second = client.messages.create(
        model=MODEL,
        max_tokens=64,
        system=TOOL_SYSTEM,
        tools=[WEATHER_TOOL],
        messages=[
            *first_messages,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call.id, "content": TOOL_RESULT}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    assert [block.type for block in second.content] == ["text"]
    # the tool_result-only user message is skipped for the reply, but its text is counted
    assert second.content[0].text == "Mock answer to: " + WEATHER_QUESTION
    assert (second.usage.input_tokens, second.usage.output_tokens) == (6 + 0 + 3 + 2 + 10, 9)


def test_other_tool_gets_empty_input(client):
    lookup = {"name": "lookup", "description": "Look up.", "input_schema": {"type": "object"}}
    message = client.messages.create(
        model=MODEL, max_tokens=64, tools=[lookup, WEATHER_TOOL], messages=[{"role": "user", "content": "Go"}]
    )
    assert [(b.type, b.name, b.input) for b in message.content] == [("tool_use", "lookup", {})]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1 + 10, 7)


def test_stream_matches_non_streaming(client):
    plain = client.messages.create(**text_request())
    with client.messages.stream(**text_request()) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(pieces) == ANSWER
    assert pieces == ANSWER.split(" ")[:1] + [" " + w for w in ANSWER.split(" ")[1:]]
    assert re.fullmatch(r"msg_mock_\d+", final.id) and final.id != plain.id
    assert final.model == MODEL
    assert [block.type for block in final.content] == ["text"]
    assert final.content[0].text == plain.content[0].text == ANSWER
    assert final.stop_reason == plain.stop_reason == "end_turn"
    assert final.stop_sequence is None
    assert final.usage.input_tokens == plain.usage.input_tokens == 19
    assert final.usage.output_tokens == plain.usage.output_tokens == 9


def test_stream_raw_events(client):
    events = list(client.messages.create(**text_request(), stream=True))
    types = [event.type for event in events]
    words = len(ANSWER.split())
    assert types == (
        ["message_start", "content_block_start"]
        + ["content_block_delta"] * words
        + ["content_block_stop", "message_delta", "message_stop"]
    )
    start = events[0].message
    assert start.content == [] and start.stop_reason is None
    assert (start.usage.input_tokens, start.usage.output_tokens) == (19, 1)
    assert events[1].content_block.type == "text" and events[1].content_block.text == ""
    assert all(e.delta.type == "text_delta" for e in events[2 : 2 + words])
    assert events[-2].delta.stop_reason == "end_turn" and events[-2].delta.stop_sequence is None
    assert events[-2].usage.output_tokens == 9


def test_stream_tool_use(client):
    kwargs = {
        "model": MODEL,
        "max_tokens": 64,
        "system": TOOL_SYSTEM,
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": WEATHER_QUESTION}],
    }
    plain = client.messages.create(**kwargs)
    with client.messages.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_message()
    json_deltas = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(json_deltas) == 2 and all(json_deltas)
    assert json.loads("".join(json_deltas)) == {"city": "Paris"}
    assert [(b.type, b.id, b.name, b.input) for b in final.content] == [
        ("tool_use", "toolu_mock_1", "get_weather", {"city": "Paris"})
    ]
    assert final.stop_reason == plain.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (
        plain.usage.input_tokens,
        plain.usage.output_tokens,
    ) == (18, 7)


def test_sse_wire_format(mock_root):
    status, content_type, text = post(mock_root + "/v1/messages", dict(text_request(), stream=True))
    assert status == 200 and content_type.startswith("text/event-stream")
    frames = [frame for frame in text.split("\n\n") if frame]
    names = []
    for frame in frames:
        lines = frame.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        name = lines[0][len("event: ") :]
        assert json.loads(lines[1][len("data: ") :])["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_errors(client, mock_root):
    for missing in ("model", "max_tokens", "messages"):
        body = text_request()
        del body[missing]
        status, _, text = post(mock_root + "/v1/messages", body)
        assert status == 400, missing
        assert json.loads(text) == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": f"{missing}: Field required"},
        }
    with pytest.raises(anthropic.BadRequestError) as info:
        client.messages.create(model=MODEL, max_tokens=64, messages=[])
    assert info.value.status_code == 400
    assert info.value.body["error"]["type"] == "invalid_request_error"

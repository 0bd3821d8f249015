"""What every convention driver shares: the scenarios, the OpenAI client, the OTLP endpoints.

A driver runs four scenarios against the mock OpenAI server, each inside a parent span (one trace
per scenario) named after the scenario where the convention allows it:

  chat_scenario       a chat completion with a system and a user message, temperature 0.2,
                      max_tokens 50
  stream_scenario     the same kind of chat, streamed, with stream_options.include_usage
  tool_scenario       a chat completion offering the get_weather tool (the mock answers with one
                      tool call), the tool run inside a tool span, then a second chat completion
                      sending the tool result back (the mock answers with text)
  embedding_scenario  one embeddings call

Environment: MOCK_OPENAI_URL (ends with /v1), OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (full URL ending
with /v1/traces), optional OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (full URL ending with /v1/logs; the
driver exports OTLP logs only when it is set), optional OTEL_EXPORTER_OTLP_TRACES_HEADERS.

At the end a driver prints one line ``DRIVER_RESULT=<json>``: what the OpenAI client received
(reply texts, tool calls, usage), so tests can compare traces with the run itself.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

# The model the seed's own example calls, so every instrumentor's spans are priced by its entry.
CHAT_MODEL = "gpt-5.2"
EMBEDDING_MODEL = "text-embedding-3-small"
SYSTEM_PROMPT = "You are a concise assistant."
CHAT_QUESTION = "What is the capital of France?"
STREAM_QUESTION = "Count from one to three."
TOOL_QUESTION = "What is the weather in Paris today?"
EMBEDDING_INPUT = "Loupe traces every LLM call."
CHAT_PARAMS = {"temperature": 0.2, "max_tokens": 50}

SCENARIOS = ["chat_scenario", "stream_scenario", "tool_scenario", "embedding_scenario"]

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name."}},
            "required": ["city"],
        },
    },
}


def get_weather(city: str) -> str:
    """The tool the tool scenario runs: a fixed forecast, as a JSON string."""
    return json.dumps({"city": city, "forecast": "sunny", "temperature_c": 22})


def chat_messages() -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": CHAT_QUESTION},
    ]


def stream_messages() -> list[dict]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": STREAM_QUESTION},
    ]


def tool_first_messages() -> list[dict]:
    return [{"role": "user", "content": TOOL_QUESTION}]


def tool_second_messages(tool_calls: list[dict], tool_results: list[tuple[str, str]]) -> list[dict]:
    """The second request of the tool scenario: the question, the model's tool calls, results."""
    messages = tool_first_messages()
    messages.append({"role": "assistant", "content": None, "tool_calls": tool_calls})
    for call_id, result in tool_results:
        messages.append({"role": "tool", "tool_call_id": call_id, "content": result})
    return messages


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"environment variable {name} is required")
    return value


def mock_url() -> str:
    return env("MOCK_OPENAI_URL")


def traces_endpoint() -> str:
    return env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


def logs_endpoint() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT") or None


def openai_client():
    from openai import OpenAI

    return OpenAI(base_url=mock_url(), api_key="test", max_retries=0)


def span_exporter():
    """An OTLP/HTTP protobuf span exporter to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=traces_endpoint())


def resource(service_name: str):
    from opentelemetry.sdk.resources import Resource

    return Resource.create({"service.name": service_name})


def _tool_call_dict(call) -> dict:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.function.name, "arguments": call.function.arguments},
    }


def _usage_dict(usage) -> dict | None:
    if usage is None:
        return None
    out = {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens}
    if getattr(usage, "completion_tokens", None) is not None:
        out["completion_tokens"] = usage.completion_tokens
    return out


class Convention:
    """How one convention wraps a scenario and a tool run. Subclasses override both."""

    name = "plain"

    def scenario(self, name: str, body: Callable[[], Any]) -> Any:
        return body()

    def tool(self, name: str, call_id: str, arguments: str, run: Callable[[], str]) -> str:
        return run()

    def shutdown(self) -> None:
        pass


def run_scenarios(conv: Convention, client=None) -> dict:
    """Runs the four scenarios through ``conv``; returns what the client received."""
    client = client or openai_client()
    result: dict[str, Any] = {"convention": conv.name}

    def chat():
        response = client.chat.completions.create(
            model=CHAT_MODEL, messages=chat_messages(), **CHAT_PARAMS
        )
        return {
            "model": response.model,
            "text": response.choices[0].message.content,
            "usage": _usage_dict(response.usage),
        }

    def stream():
        chunks = client.chat.completions.create(
            model=CHAT_MODEL,
            messages=stream_messages(),
            stream=True,
            stream_options={"include_usage": True},
        )
        text, usage, model = [], None, None
        for chunk in chunks:
            model = chunk.model or model
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    text.append(choice.delta.content)
            if chunk.usage is not None:
                usage = _usage_dict(chunk.usage)
        return {"model": model, "text": "".join(text), "usage": usage}

    def tool_flow():
        first = client.chat.completions.create(
            model=CHAT_MODEL, messages=tool_first_messages(), tools=[WEATHER_TOOL]
        )
        calls = [_tool_call_dict(c) for c in first.choices[0].message.tool_calls or []]
        results = []
        for call in calls:
            arguments = call["function"]["arguments"]
            city = json.loads(arguments).get("city", "")
            output = conv.tool(
                call["function"]["name"], call["id"], arguments, lambda city=city: get_weather(city)
            )
            results.append((call["id"], output))
        second = client.chat.completions.create(
            model=CHAT_MODEL, messages=tool_second_messages(calls, results), tools=[WEATHER_TOOL]
        )
        return {
            "first": {"tool_calls": calls, "usage": _usage_dict(first.usage)},
            "tool_results": results,
            "second": {
                "text": second.choices[0].message.content,
                "usage": _usage_dict(second.usage),
            },
        }

    def embedding():
        response = client.embeddings.create(model=EMBEDDING_MODEL, input=EMBEDDING_INPUT)
        return {
            "model": response.model,
            "dimensions": len(response.data[0].embedding),
            "usage": _usage_dict(response.usage),
        }

    result["chat_scenario"] = conv.scenario("chat_scenario", chat)
    result["stream_scenario"] = conv.scenario("stream_scenario", stream)
    result["tool_scenario"] = conv.scenario("tool_scenario", tool_flow)
    result["embedding_scenario"] = conv.scenario("embedding_scenario", embedding)
    return result


def main(conv_factory: Callable[[], Convention]) -> None:
    conv = conv_factory()
    try:
        result = run_scenarios(conv)
    finally:
        conv.shutdown()
    print("DRIVER_RESULT=" + json.dumps(result, sort_keys=True), flush=True)

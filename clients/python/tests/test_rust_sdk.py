"""The Rust SDK's examples (crates/loupe-sdk/examples: a RAG pipeline, tool-calling agents over
the OpenAI and Anthropic APIs, async-openai, and an agent built with rig)
run against the shared OpenAI-compatible mock and a `loupe serve` started here; the trees they
produce are checked through Loupe's JSON API: span types, nesting, models, messages, tool calls
and the mock's token counts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import ORACLE, REPO_ROOT, LoupeServer, http_json

pytestmark = pytest.mark.skipif(ORACLE, reason="oracle mode runs only the MLflow-client suite against mlflow server")


def words(s: str) -> int:
    return len(s.split())


@pytest.fixture(scope="module")
def loupe():
    server = LoupeServer("rust-sdk")
    yield server
    server.stop()


def run_example(name: str, loupe: LoupeServer, mock_url: str, question: str) -> tuple[str, dict]:
    """Runs an example of crates/loupe-sdk/examples: a file there, or a project of its own (a
    directory with a Cargo.toml, built into the repository's target directory)."""
    cargo = shutil.which("cargo")
    assert cargo, "cargo is needed to run the Rust SDK examples"
    project = REPO_ROOT / "crates" / "loupe-sdk" / "examples" / name / "Cargo.toml"
    if project.exists():
        target = ["--manifest-path", str(project), "--target-dir", str(REPO_ROOT / "target")]
    else:
        target = ["-p", "loupe-sdk", "--example", name]
    env = {
        **os.environ,
        "LOUPE_ENDPOINT": loupe.url,
        "OPENAI_BASE_URL": mock_url,
        "ANTHROPIC_BASE_URL": mock_url.removesuffix("/v1"),
        "LOUPE_PROJECT": "rust-sdk",
    }
    run = subprocess.run(
        [cargo, "run", "-q", "--locked", *target, "--", question],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, f"example {name} failed:\n{run.stdout}\n{run.stderr}"
    m = re.search(r"trace_id=([0-9a-f]{32})", run.stdout)
    assert m, run.stdout
    status, detail = loupe.get(f"/api/v1/traces/{m.group(1)}")
    assert status == 200, detail
    return run.stdout, detail


def by_name(detail: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for s in detail["spans"]:
        out.setdefault(s["name"], []).append(s)
    return out


def test_rag_example(loupe, mock_openai_url):
    question = "How long do refunds take?"
    out, detail = run_example("rag", loupe, mock_openai_url, question)
    assert f"Mock answer to: {question}" in out
    assert detail["trace"]["project"] == "rust-sdk"
    spans = by_name(detail)
    root = spans["rag-example"][0]
    assert root["parent_id"] is None and root["span_type"] == "AGENT"
    rag = spans["rag"][0]
    assert rag["parent_id"] == root["span_id"] and rag["span_type"] == "CHAIN"
    assert rag["inputs"] == {"question": question}
    retrieve = spans["retrieve"][0]
    assert retrieve["parent_id"] == rag["span_id"] and retrieve["span_type"] == "RETRIEVER"
    assert len(retrieve["outputs"]) == 2
    embeds = spans["embeddings text-embedding-3-small"]
    assert len(embeds) == 2 and all(e["parent_id"] == retrieve["span_id"] for e in embeds)
    assert all(e["span_type"] == "EMBEDDING" for e in embeds)
    (chat,) = spans["chat gpt-4o-mini"]
    assert chat["parent_id"] == rag["span_id"] and chat["span_type"] == "CHAT_MODEL"
    assert chat["model"] == "gpt-4o-mini"
    assert [m["role"] for m in chat["input_messages"]] == ["system", "user"]
    assert chat["output_messages"][0]["content"] == f"Mock answer to: {question}"
    prompt = words(chat["input_messages"][0]["content"]) + words(question) + 10
    assert chat["input_tokens"] == prompt
    assert chat["output_tokens"] == words(f"Mock answer to: {question}")
    assert chat["request_params"].get("temperature") == 0.2


def test_agent_example(loupe, mock_openai_url):
    question = "What is the weather in Paris?"
    out, detail = run_example("agent", loupe, mock_openai_url, question)
    assert f"Mock answer to: {question}" in out
    spans = by_name(detail)
    agent = spans["run_agent"][0]
    assert agent["span_type"] == "AGENT" and agent["parent_id"] == spans["agent-example"][0]["span_id"]
    chats = sorted(spans["chat gpt-4o-mini"], key=lambda s: s["start_time_ns"])
    assert len(chats) == 2 and all(c["parent_id"] == agent["span_id"] for c in chats)
    assert chats[0]["tool_calls"][0]["name"] == "get_weather"
    assert chats[0]["output_tokens"] == 7, "the mock's tool-call completion tokens"
    (tool,) = spans["get_weather"]
    assert tool["span_type"] == "TOOL" and tool["parent_id"] == agent["span_id"]
    assert tool["inputs"] == {"args": {"city": "Paris"}}
    assert tool["outputs"] == "Sunny and 21°C in Paris"
    assert [m["role"] for m in chats[1]["input_messages"]] == ["user", "assistant", "tool"]
    assert detail["trace"]["total_tokens"] == sum(c["total_tokens"] for c in chats)


def test_async_openai_example(loupe, mock_openai_url):
    out, detail = run_example("async_openai", loupe, mock_openai_url, "")
    assert "chat: Mock answer to: Say hello to Loupe" in out
    assert "stream: Mock answer to: Stream a short reply" in out
    spans = by_name(detail)
    root = spans["async-openai-example"][0]
    chats = sorted(spans["chat gpt-4o-mini"], key=lambda s: s["start_time_ns"])
    assert len(chats) == 2 and all(c["parent_id"] == root["span_id"] for c in chats)
    plain, streamed = chats
    assert plain["span_type"] == "CHAT_MODEL" and plain["request_params"].get("temperature") == 0.5
    assert plain["output_messages"][0]["content"] == "Mock answer to: Say hello to Loupe"
    assert plain["input_tokens"] == words("Say hello to Loupe") + 10
    assert streamed["output_messages"][0]["content"] == "Mock answer to: Stream a short reply"
    assert streamed["input_tokens"] == words("Stream a short reply") + 10, "usage from the last chunk"
    assert streamed["output_tokens"] == words("Mock answer to: Stream a short reply")
    (emb,) = spans["embeddings text-embedding-3-small"]
    assert emb["span_type"] == "EMBEDDING" and emb["parent_id"] == root["span_id"]
    assert emb["input_tokens"] == words("Loupe traces every LLM call.")
    assert detail["trace"]["total_tokens"] == sum(s["total_tokens"] or 0 for s in (plain, streamed, emb))


def test_anthropic_example(loupe, mock_openai_url):
    question = "What is the weather in Paris?"
    out, detail = run_example("anthropic", loupe, mock_openai_url, question)
    answer = f"Mock answer to: {question}"
    assert answer in out
    spans = by_name(detail)
    agent = spans["run_agent"][0]
    assert agent["parent_id"] == spans["anthropic-example"][0]["span_id"]
    chats = sorted(spans["chat claude-sonnet-4-5"], key=lambda s: s["start_time_ns"])
    assert len(chats) == 2 and all(c["parent_id"] == agent["span_id"] for c in chats)
    system = "You answer weather questions with the get_weather tool."
    first, streamed = chats
    for c in chats:
        assert c["span_type"] == "CHAT_MODEL" and c["model"] == "claude-sonnet-4-5", c
        assert c["cost_usd"] and c["cost_usd"] > 0, "claude-sonnet-4-5 is in the price book"
    assert first["tool_calls"][0]["name"] == "get_weather"
    assert first["tool_calls"][0]["arguments"] == '{"city":"Paris"}'
    assert first["input_tokens"] == words(question) + words(system) + 10
    assert first["output_tokens"] == 7, "the mock's tool-use output tokens"
    (tool,) = spans["get_weather"]
    assert tool["parent_id"] == agent["span_id"] and tool["outputs"] == "Sunny and 21°C in Paris"
    roles = [m["role"] for m in streamed["input_messages"]]
    assert roles == ["system", "user", "assistant", "tool"], streamed["input_messages"]
    assert streamed["input_messages"][3]["content"] == "Sunny and 21°C in Paris"
    assert streamed["output_messages"][0]["content"] == answer, "the stream folded into one message"
    assert streamed["input_tokens"] == words(question) + words("Sunny and 21°C in Paris") + words(system) + 10
    assert streamed["output_tokens"] == words(answer)
    assert streamed["request_params"].get("max_tokens") == 256


def test_rig_agent_example(loupe, mock_openai_url):
    """An agent built with rig, traced through loupe_sdk::tracing_layer() from rig's own spans."""
    question = "What is the weather in Paris?"
    out, detail = run_example("rig-agent", loupe, mock_openai_url, question)
    answer = f"Mock answer to: {question}"
    assert answer in out
    spans = by_name(detail)
    (run,) = spans["run"]
    assert run["span_type"] == "AGENT" and run["parent_id"] == spans["rig-agent-example"][0]["span_id"]
    (agent,) = spans["invoke_agent"]
    assert agent["span_type"] == "AGENT" and agent["parent_id"] == run["span_id"], "rig's root joins #[trace]"
    chats = sorted(spans["chat"], key=lambda s: s["start_time_ns"])
    assert len(chats) == 2 and all(c["parent_id"] == agent["span_id"] for c in chats)
    preamble = "You are a helpful assistant. Use the get_weather tool for weather questions."
    tool_text = "It is sunny and 22°C in Paris."
    for c in chats:
        assert c["span_type"] == "CHAT_MODEL" and c["model"] == "gpt-4o-mini", c
        assert c["cost_usd"] and c["cost_usd"] > 0
    first, second = chats
    assert first["tool_calls"][0]["name"] == "get_weather"
    assert first["input_tokens"] == words(preamble) + words(question) + 10
    assert first["output_tokens"] == 7, "the mock's tool-call completion tokens"
    assert [m["role"] for m in first["input_messages"]] == ["system", "user"]
    assert second["input_tokens"] == words(preamble) + words(question) + words(tool_text) + 10
    assert second["output_messages"][0]["content"] == answer
    (tool,) = spans["execute_tool"]
    assert tool["span_type"] == "TOOL" and tool["parent_id"] == agent["span_id"]
    assert tool["inputs"] == {"city": "Paris"}
    assert detail["trace"]["total_tokens"] == sum(c["total_tokens"] for c in chats), (
        "the agent span's usage repeats its calls' and is not counted again"
    )

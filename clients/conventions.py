"""The client conventions Loupe is tested against, and how to run each one's driver.

Shared by the fixture recorder (record_fixtures.py) and the live test suite (python/tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

CLIENTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = CLIENTS_DIR.parent
DRIVERS_DIR = CLIENTS_DIR / "python" / "drivers"
NODE_DIR = CLIENTS_DIR / "node"
FIXTURES_DIR = REPO_ROOT / "crates" / "loupe-ingest" / "tests" / "fixtures"

# Python distributions whose versions go into a fixture's "recorded_with", per convention.
_COMMON_PY = ["openai", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"]
_COMMON_NODE: list[str] = []


@dataclass(frozen=True)
class Convention:
    name: str  # fixture file stem and test id
    session_id: str
    user_id: str
    python_driver: str | None = None  # file in DRIVERS_DIR
    node_script: str | None = None  # file in NODE_DIR
    python_packages: tuple[str, ...] = ()
    node_packages: tuple[str, ...] = ()
    # Names of the spans each convention makes for one chat completion call, one embeddings
    # call and one tool run (as observed in the recorded fixtures). The tests use them to find
    # the spans whose normalized fields they check.
    chat_spans: tuple[str, ...] = ()
    embedding_spans: tuple[str, ...] = ()
    tool_spans: tuple[str, ...] = ()

    def command(self) -> list[str]:
        if self.python_driver:
            return [sys.executable, str(DRIVERS_DIR / self.python_driver)]
        return [node_binary(), str(NODE_DIR / self.node_script)]

    def recorded_with(self) -> dict[str, str]:
        versions: dict[str, str] = {}
        if self.python_driver:
            versions["python"] = sys.version.split()[0]
            for dist in list(self.python_packages) + _COMMON_PY:
                try:
                    versions[dist] = metadata.version(dist)
                except metadata.PackageNotFoundError:
                    versions[dist] = "not installed"
        else:
            versions["node"] = node_version()
            for package in list(self.node_packages) + _COMMON_NODE:
                versions[package] = node_package_version(package)
        return dict(sorted(versions.items()))


CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in [
        Convention(
            "openinference",
            "sess-openinference",
            "user-openinference",
            python_driver="openinference_openai.py",
            python_packages=(
                "openinference-instrumentation-openai",
                "openinference-instrumentation",
                "openinference-semantic-conventions",
            ),
            chat_spans=("ChatCompletion",),
            embedding_spans=("CreateEmbeddings",),
            tool_spans=("get_weather",),
        ),
        Convention(
            "openllmetry",
            "sess-openllmetry",
            "user-openllmetry",
            python_driver="openllmetry_openai.py",
            python_packages=(
                "opentelemetry-instrumentation-openai",
                "traceloop-sdk",
                "opentelemetry-semantic-conventions-ai",
            ),
            chat_spans=("openai.chat",),
            embedding_spans=("openai.embeddings",),
            tool_spans=("get_weather.tool",),
        ),
        Convention(
            "gen_ai",
            "sess-gen_ai",
            "user-gen_ai",
            python_driver="genai_openai_v2.py",
            python_packages=(
                "opentelemetry-instrumentation-openai-v2",
                "opentelemetry-util-genai",
                "opentelemetry-semantic-conventions",
            ),
            chat_spans=("chat gpt-5.2",),
            embedding_spans=("embeddings text-embedding-3-small",),
            tool_spans=("execute_tool get_weather",),
        ),
        Convention(
            "mlflow",
            "sess-mlflow",
            "user-mlflow",
            python_driver="mlflow_openai.py",
            python_packages=("mlflow", "mlflow-skinny", "mlflow-tracing"),
            chat_spans=("Completions",),
            embedding_spans=("Embeddings",),
            tool_spans=("get_weather",),
        ),
        Convention(
            "vercel_ai",
            "sess-vercel",
            "user-vercel",
            node_script="vercel_ai.mjs",
            node_packages=(
                "ai",
                "@ai-sdk/openai",
                "@opentelemetry/api",
                "@opentelemetry/sdk-trace-node",
                "@opentelemetry/sdk-trace-base",
                "@opentelemetry/exporter-trace-otlp-proto",
                "@opentelemetry/resources",
            ),
            # The outer ai.generateText / ai.streamText / ai.embed spans wrap these (and also
            # carry usage, summed over steps); the doGenerate/doStream/doEmbed spans are the calls.
            chat_spans=("ai.generateText.doGenerate", "ai.streamText.doStream"),
            embedding_spans=("ai.embed.doEmbed",),
            tool_spans=("ai.toolCall",),
        ),
    ]
}


def node_binary() -> str:
    return os.environ.get("NODE", "node")


def node_version() -> str:
    try:
        out = subprocess.run([node_binary(), "--version"], capture_output=True, text=True, check=True)
        return out.stdout.strip().lstrip("v")
    except (OSError, subprocess.CalledProcessError):
        return "not installed"


def node_package_version(package: str) -> str:
    path = NODE_DIR / "node_modules" / package / "package.json"
    try:
        return json.loads(path.read_text())["version"]
    except (OSError, ValueError, KeyError):
        return "not installed"


def run_driver(
    conv: Convention,
    mock_url: str,
    traces_endpoint: str,
    logs_endpoint: str | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 180,
    cwd: str | None = None,
) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Runs one driver; returns the process and its DRIVER_RESULT (None if it printed none)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "TRACELOOP_", "MLFLOW_")) and k != "GENAI_MODE"
    }
    env.update(
        {
            "MOCK_OPENAI_URL": mock_url,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
            # Nothing in these runs may reach the network: no proxies for loopback either.
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if logs_endpoint:
        env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"] = logs_endpoint
    env.update(extra_env or {})
    proc = subprocess.run(
        conv.command(), env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    result = None
    for line in proc.stdout.splitlines():
        if line.startswith("DRIVER_RESULT="):
            result = json.loads(line[len("DRIVER_RESULT=") :])
    return proc, result

"""Fixtures for the real-client suite: a mock OpenAI server, a `loupe serve`, and driver runs.

For each convention the suite starts its own mock OpenAI server (in this process) and its own
`loupe serve` (binary from LOUPE_BIN, port 0, a temporary data dir), runs that convention's
driver once against them, and keeps what it needs for every test of that convention: the driver's
output, every request the mock received, and the traces and sessions Loupe's JSON API reports.

The MLflow tracking-server suite (test_mlflow_server.py) uses the fixtures at the end of this
file: one tracking server for the session (`loupe serve`, or with LOUPE_MLFLOW_TARGET=mlflow a
real `mlflow server` as the oracle), one mock OpenAI server, and `mlflow_driver`, which runs
drivers/mlflow_tracking.py scenarios in subprocesses and caches each result. In oracle mode the
convention tests (which only check Loupe) are skipped.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CLIENTS_DIR = Path(__file__).resolve().parents[2]
REPO_ROOT = CLIENTS_DIR.parent
sys.path.insert(0, str(CLIENTS_DIR))

from conventions import CONVENTIONS, Convention, run_driver  # noqa: E402


def _load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


mock_openai = _load_module("loupe_mock_openai", CLIENTS_DIR / "mock_openai" / "server.py")
driver_common = _load_module("loupe_driver_common", CLIENTS_DIR / "python" / "drivers" / "_common.py")

SCENARIOS = list(driver_common.SCENARIOS)
EXPECTED_TRACES = len(SCENARIOS)


def loupe_bin() -> Path:
    return Path(os.environ.get("LOUPE_BIN") or REPO_ROOT / "target" / "release" / "loupe")


def http_json(url: str, timeout: float = 10):
    """GET url; returns (status, parsed JSON or raw text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


class LoupeServer:
    """A `loupe serve` child on port 0 with a temporary data dir."""

    def __init__(self, name: str) -> None:
        binary = loupe_bin()
        if not binary.is_file() or not os.access(binary, os.X_OK):
            pytest.fail(
                f"loupe binary not found or not executable at {binary}; "
                "build it (cargo build --release --bin loupe) or set LOUPE_BIN",
                pytrace=False,
            )
        self.name = name
        self.data_dir = tempfile.mkdtemp(prefix=f"loupe-clients-{name}-")
        self.stderr_path = Path(self.data_dir + ".stderr")
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", self.data_dir, "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("LOUPE_")},
        )
        self.stdout_lines: list[str] = []
        lines: queue.Queue = queue.Queue()

        def pump() -> None:
            for line in self.proc.stdout:
                self.stdout_lines.append(line.rstrip("\n"))
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True, name=f"loupe-stdout-{name}").start()
        self.url = None
        deadline = time.monotonic() + 30
        while self.url is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(check=False)
                pytest.fail(f"loupe serve did not print its HTTP address within 30 s: {self.output()}", pytrace=False)
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.stop(check=False)
                pytest.fail(f"loupe serve exited before it was ready: {self.output()}", pytrace=False)
            text = line.strip()
            if text.startswith("HTTP:"):
                self.url = text.split()[1].rstrip("/")
        self.returncode = None

    def output(self) -> str:
        try:
            err = self.stderr_path.read_text()[-4000:]
        except OSError:
            err = ""
        return f"stdout: {self.stdout_lines[-20:]!r}; stderr tail: {err!r}"

    @property
    def traces_endpoint(self) -> str:
        return f"{self.url}/v1/traces"

    def get(self, path: str):
        return http_json(self.url + path)

    def stop(self, check: bool = True) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                if check:
                    raise AssertionError(f"loupe serve ({self.name}) did not stop within 20 s of SIGTERM")
        self.returncode = self.proc.returncode
        self._stderr.close()
        if check and self.returncode != 0:
            raise AssertionError(
                f"loupe serve ({self.name}) exited {self.returncode} after SIGTERM (expected 0): {self.output()}"
            )
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.stderr_path.unlink(missing_ok=True)


@dataclass
class ConventionRun:
    """One convention's driver run against a fresh mock and a fresh Loupe, and what Loupe says."""

    conv: Convention
    loupe: LoupeServer
    returncode: int
    stdout: str
    stderr: str
    driver_result: dict | None
    mock_requests: list[dict]
    traces: list[dict] = field(default_factory=list)  # GET /api/v1/traces items
    details: dict[str, dict] = field(default_factory=dict)  # trace_id -> GET /api/v1/traces/{id}
    by_scenario: dict[str, dict] = field(default_factory=dict)  # scenario -> detail
    problems: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"driver {self.conv.name} exit {self.returncode}\n--- stdout (tail) ---\n{self.stdout[-3000:]}"
            f"\n--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )

    def require(self) -> "ConventionRun":
        """Fails the calling test when the run itself did not work."""
        if self.returncode != 0 or self.driver_result is None:
            pytest.fail(f"the {self.conv.name} driver failed:\n{self.describe()}", pytrace=False)
        if self.problems:
            pytest.fail(f"{self.conv.name}: " + "\n".join(self.problems), pytrace=False)
        return self

    def scenario(self, name: str) -> dict:
        self.require()
        if name not in self.by_scenario:
            pytest.fail(
                f"{self.conv.name}: no trace found for {name}; traces seen: "
                + ", ".join(f"{t.get('name')!r}" for t in self.traces),
                pytrace=False,
            )
        return self.by_scenario[name]


def scenario_of(detail: dict) -> str | None:
    """Which scenario a trace belongs to: its root span's name, else a root attribute value."""
    spans = detail.get("spans") or []
    roots = [s for s in spans if not s.get("parent_id")] or spans[:1]
    for root in roots:
        for scenario in SCENARIOS:
            if scenario in (root.get("name") or ""):
                return scenario
        attributes = root.get("attributes") or {}
        for value in attributes.values() if isinstance(attributes, dict) else []:
            if isinstance(value, str) and value in SCENARIOS:
                return value
    return None


def _collect(run: ConventionRun) -> None:
    deadline = time.monotonic() + 15
    traces: list = []
    while True:
        status, body = run.loupe.get("/api/v1/traces?limit=100")
        if status != 200 or not isinstance(body, dict):
            run.problems.append(f"GET /api/v1/traces answered {status}: {body!r}"[:2000])
            return
        traces = body.get("traces", [])
        if len(traces) >= EXPECTED_TRACES or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    run.traces = traces
    for item in traces:
        trace_id = item.get("trace_id")
        status, detail = run.loupe.get(f"/api/v1/traces/{trace_id}")
        if status != 200 or not isinstance(detail, dict):
            run.problems.append(f"GET /api/v1/traces/{trace_id} answered {status}: {detail!r}"[:2000])
            continue
        run.details[trace_id] = detail
        scenario = scenario_of(detail)
        if scenario is None:
            run.problems.append(
                f"trace {trace_id} ({item.get('name')!r}) matches no scenario "
                f"(root span names: {[s.get('name') for s in detail.get('spans', []) if not s.get('parent_id')]})"
            )
        elif scenario in run.by_scenario:
            run.problems.append(f"two traces for {scenario}")
        else:
            run.by_scenario[scenario] = detail
    if len(traces) != EXPECTED_TRACES:
        run.problems.append(
            f"expected {EXPECTED_TRACES} traces (one per scenario), Loupe lists {len(traces)}: "
            + ", ".join(f"{t.get('name')!r}" for t in traces)
        )


class Runs:
    def __init__(self) -> None:
        self._runs: dict[str, ConventionRun] = {}

    def get(self, name: str) -> ConventionRun:
        if name not in self._runs:
            conv = CONVENTIONS[name]
            loupe = LoupeServer(name)
            mock_url, stop_mock = mock_openai.start()
            try:
                with tempfile.TemporaryDirectory(prefix=f"loupe-driver-{name}-") as cwd:
                    try:
                        proc, result = run_driver(conv, mock_url, loupe.traces_endpoint, cwd=cwd)
                        rc, out, err = proc.returncode, proc.stdout, proc.stderr
                    except subprocess.TimeoutExpired as exc:
                        rc, out, err, result = -1, str(exc.stdout or ""), f"timed out: {exc}", None
                status, body = http_json(mock_url.rsplit("/v1", 1)[0] + "/mock/requests")
                requests = body.get("requests", []) if isinstance(body, dict) else []
            finally:
                stop_mock()
            run = ConventionRun(conv, loupe, rc, out, err, result, requests)
            if rc == 0 and result is not None:
                _collect(run)
            self._runs[name] = run
        return self._runs[name]

    def close(self) -> None:
        errors = []
        for run in self._runs.values():
            try:
                run.loupe.stop()
            except AssertionError as exc:
                errors.append(str(exc))
        if errors:
            raise AssertionError("\n".join(errors))


@pytest.fixture(scope="session")
def runs():
    if ORACLE:
        pytest.skip("LOUPE_MLFLOW_TARGET=mlflow (oracle mode): the convention tests check Loupe's own API")
    registry = Runs()
    yield registry
    registry.close()


@pytest.fixture(params=list(CONVENTIONS), scope="session")
def convention(request) -> str:
    return request.param


@pytest.fixture
def run(runs, convention) -> ConventionRun:
    return runs.get(convention)


# ------------------------------------------------------------------------------------------------
# MLflow tracking-server suite.

from tracking_servers import ServerStartError, start_mlflow  # noqa: E402

MLFLOW_TARGET = (os.environ.get("LOUPE_MLFLOW_TARGET") or "loupe").strip().lower()
if MLFLOW_TARGET not in ("loupe", "mlflow"):
    raise pytest.UsageError(f"LOUPE_MLFLOW_TARGET must be 'loupe' or 'mlflow', not {MLFLOW_TARGET!r}")
ORACLE = MLFLOW_TARGET == "mlflow"
MLFLOW_DRIVER = CLIENTS_DIR / "python" / "drivers" / "mlflow_tracking.py"
MLFLOW_DRIVER_TIMEOUT_S = float(os.environ.get("LOUPE_MLFLOW_DRIVER_TIMEOUT", "180"))


@dataclass
class TrackingServer:
    """The server the MLflow client talks to: Loupe, or the real `mlflow server` (oracle)."""

    kind: str  # "loupe" | "mlflow"
    url: str
    loupe: LoupeServer | None = None  # set when kind == "loupe": its /api/v1 is checked too

    @property
    def is_loupe(self) -> bool:
        return self.kind == "loupe"


@dataclass
class MlflowRun:
    """One drivers/mlflow_tracking.py scenario run (see its docstring for the fields)."""

    scenario: str
    mode: str
    experiment: str | None
    returncode: int
    stdout: str
    stderr: str
    output: dict | None

    @property
    def result(self) -> dict:
        """The scenario's result; fails the calling test when the run itself did not work."""
        if self.output is None or self.returncode != 0 or self.output.get("error") or "result" not in self.output:
            pytest.fail(f"mlflow driver scenario {self.scenario!r} ({self.mode}) failed:\n{self.describe()}", pytrace=False)
        return self.output["result"]

    @property
    def requests(self) -> list[dict]:
        return (self.output or {}).get("requests", [])

    @property
    def warnings(self) -> list[dict]:
        return (self.output or {}).get("warnings", [])

    def phase(self, name: str, until: str | None = None) -> list[dict]:
        """The requests sent from mark `name` up to mark `until` (or the next mark, or the end)."""
        marks = (self.output or {}).get("marks", {})
        if name not in marks:
            pytest.fail(f"driver run has no mark {name!r} (marks: {marks})", pytrace=False)
        start = marks[name]
        if until is None:
            later = sorted(v for v in marks.values() if v > start)
            end = later[0] if later else len(self.requests)
        else:
            end = marks[until]
        return self.requests[start:end]

    def describe(self) -> str:
        error = (self.output or {}).get("error") or ""
        reqs = "\n".join(
            f"  {r.get('method')} {r.get('path', '')[:150]} -> {r.get('status')} {str(r.get('response', '') or r.get('error', ''))[:300]}"
            for r in self.requests[-40:]
        )
        return (
            f"exit {self.returncode}\n--- scenario error ---\n{error}\n--- last requests ---\n{reqs}"
            f"\n--- warnings ---\n{json.dumps(self.warnings, indent=1)[:3000]}"
            f"\n--- stderr (tail) ---\n{self.stderr[-3000:]}"
        )


@pytest.fixture(scope="session")
def tracking_server():
    if ORACLE:
        try:
            server = start_mlflow(sys.executable)
        except ServerStartError as exc:
            pytest.fail(f"could not start the oracle mlflow server: {exc}", pytrace=False)
        yield TrackingServer("mlflow", server.url)
        server.stop()
    else:
        loupe = LoupeServer("mlflow-api")
        yield TrackingServer("loupe", loupe.url, loupe)
        loupe.stop()


@pytest.fixture(scope="session")
def mock_openai_url():
    url, stop = mock_openai.start()
    yield url
    stop()


@pytest.fixture(scope="session")
def mlflow_driver(tracking_server, mock_openai_url, tmp_path_factory):
    """run(scenario, experiment=None, mode="async", **args) -> MlflowRun, cached per arguments."""
    cache: dict[str, MlflowRun] = {}

    def run(scenario: str, experiment: str | None = None, mode: str = "async", **args) -> MlflowRun:
        key = json.dumps([scenario, experiment, mode, args], sort_keys=True)
        if key in cache:
            return cache[key]
        cmd = [
            sys.executable, str(MLFLOW_DRIVER),
            "--tracking-uri", tracking_server.url,
            "--scenario", scenario,
            "--mode", mode,
            "--mock-url", mock_openai_url,
            "--args", json.dumps(args),
        ]
        if experiment:
            cmd += ["--experiment", experiment]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLFLOW_", "LOUPE_"))}
        env.update(
            {
                # fail fast instead of mlflow's minutes of retries against a server that errs
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
                "PYTHONUNBUFFERED": "1",
            }
        )
        cwd = tmp_path_factory.mktemp(f"mlflow-{scenario}")
        try:
            proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=MLFLOW_DRIVER_TIMEOUT_S)
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out, err = -1, str(exc.stdout or ""), f"timed out after {MLFLOW_DRIVER_TIMEOUT_S:.0f} s\n{exc.stderr or ''}"
        output = None
        for line in out.splitlines():
            if line.startswith("DRIVER_RESULT="):
                output = json.loads(line[len("DRIVER_RESULT="):])
        cache[key] = MlflowRun(scenario, mode, experiment, rc, out, err, output)
        return cache[key]

    return run

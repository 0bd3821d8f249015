"""Start and stop the two MLflow tracking servers the MLflow suite and benchmark compare.

* ``start_loupe(binary)``: ``loupe serve`` on port 0 with a temporary data dir (the URL comes from
  the ``HTTP: <url>`` line it prints).
* ``start_mlflow(python)``: the real ``mlflow server`` from the venv, SQLite backend in a
  temporary dir, one uvicorn worker, artifacts proxied (``--default-artifact-root
  mlflow-artifacts:/ --artifacts-destination DIR``) so that, as with Loupe, experiments get
  ``artifact_location = mlflow-artifacts:/<id>`` and ``traces.json`` goes through the server's
  ``/api/2.0/mlflow-artifacts`` proxy rather than being written to a local path by the client.

Both return a ``ServerProcess`` with ``url`` and ``stop()``; ``stop()`` signals the whole process
group (``mlflow server`` runs uvicorn and a job-runner child) and removes the temporary dir.
No pytest dependency: used by python/tests/conftest.py and bench_mlflow.py.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    def __init__(self, kind: str, proc: subprocess.Popen, url: str, workdir: str, log_path: Path) -> None:
        self.kind = kind
        self.proc = proc
        self.url = url
        self.workdir = workdir
        self.log_path = log_path
        self.returncode: int | None = None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM to the process group, SIGKILL after `timeout`; returns the leader's exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        else:
            # the leader is gone; make sure no child of the group is left behind
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.returncode = self.proc.returncode
        shutil.rmtree(self.workdir, ignore_errors=True)
        return self.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOUPE_", "MLFLOW_", "OTEL_"))}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    return env


def start_mlflow(python: str, timeout: float = 120) -> ServerProcess:
    """Starts `python -m mlflow server` (SQLite, proxied artifacts) and waits for GET /health."""
    workdir = tempfile.mkdtemp(prefix="loupe-oracle-mlflow-")
    port = free_port()
    log_path = Path(workdir) / "server.log"
    log = open(log_path, "w")
    cmd = [
        python, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{workdir}/mlflow.db",
        "--default-artifact-root", "mlflow-artifacts:/",
        "--artifacts-destination", f"{workdir}/artifacts",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=_clean_env(), start_new_session=True)
    log.close()
    server = ServerProcess("mlflow", proc, f"http://127.0.0.1:{port}", workdir, log_path)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(f"mlflow server exited with {proc.returncode} before it was ready:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise ServerStartError(f"mlflow server did not answer /health within {timeout:.0f} s:\n{tail}")
        time.sleep(0.5)


def start_loupe(binary: str | Path, timeout: float = 30) -> ServerProcess:
    """Starts `loupe serve` on port 0 with a temporary data dir; waits for its `HTTP: <url>` line."""
    binary = Path(binary)
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise ServerStartError(f"loupe binary not found or not executable at {binary}")
    workdir = tempfile.mkdtemp(prefix="loupe-bench-")
    data_dir = Path(workdir) / "data"
    data_dir.mkdir()
    log_path = Path(workdir) / "stderr.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(binary), "serve", "--data-dir", str(data_dir), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=log, text=True, env=_clean_env(), start_new_session=True,
    )
    log.close()
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            line = lines.get(timeout=remaining)
        except queue.Empty:
            break
        if line is None:
            break
        if line.strip().startswith("HTTP:"):
            return ServerProcess("loupe", proc, line.split()[1].rstrip("/"), workdir, log_path)
    server = ServerProcess("loupe", proc, "", workdir, log_path)
    tail = server.log_tail()
    server.stop()
    raise ServerStartError(f"loupe serve did not print its HTTP address within {timeout:.0f} s:\n{tail}")

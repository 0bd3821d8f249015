"""The web UI in a real browser: Debian's headless Chromium driven by playwright-core
(clients/node/ui_test.mjs) against a `loupe serve` started here. The script seeds traces whose
names, prompts, outputs, attributes and tags carry HTML and script, and checks the list, search
(and an invalid search), a trace's span tree and timeline, span details, the chat view, keyboard
navigation, feedback stored as an assessment, two evaluation runs compared side by side, the dark
theme and a laptop-width layout, and that
nothing from trace content ever ran. Screenshots go to test-artifacts/ui/.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from conftest import CLIENTS_DIR, ORACLE, REPO_ROOT, LoupeServer

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


@pytest.mark.skipif(ORACLE, reason="oracle mode runs only the MLflow-client suite against mlflow server")
def test_ui_in_chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"Chromium not found at {CHROMIUM}: scripts/test installs Debian's chromium", pytrace=False)
    node = shutil.which("node")
    assert node, "node is needed for the browser test"
    shots = REPO_ROOT / "test-artifacts" / "ui"
    server = LoupeServer("ui")
    try:
        run = subprocess.run(
            [node, str(CLIENTS_DIR / "node" / "ui_test.mjs"), server.url, str(shots)],
            cwd=CLIENTS_DIR / "node",
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
    finally:
        server.stop(check=False)
    assert run.returncode == 0, f"browser test failed:\n{run.stdout}\n{run.stderr}\n{server.output()}"
    assert "every check passed" in run.stdout
    for name in ("1-list", "3-trace", "5-chat", "6-feedback", "7-dark", "9-compare-runs"):
        assert (shots / f"{name}.png").stat().st_size > 10_000, name

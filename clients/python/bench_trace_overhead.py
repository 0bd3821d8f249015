#!/usr/bin/env python3
"""What `@mlflow.trace` costs the calling Python code per span, against a `loupe serve` started
here (async logging, mlflow's default): the same small function untraced and traced, median of
repeated runs. The Rust SDK's figure for the same shape of call comes from
`cargo bench -p loupe-sdk --bench overhead`; clients/bench-trace-overhead prints both.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tracking_servers import start_loupe  # noqa: E402

CALLS = 2_000
RUNS = 5


def main() -> None:
    binary = os.environ.get("LOUPE_BIN") or str(HERE.parents[1] / "target" / "release" / "loupe")
    server = start_loupe(binary)
    try:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        import mlflow

        mlflow.set_tracking_uri(server.url)
        mlflow.set_experiment("overhead")

        def plain(order: int, note: str) -> int:
            return order * 31 + len(note)

        traced = mlflow.trace(span_type="TOOL")(plain)

        def per_call(f) -> float:
            t0 = time.perf_counter()
            for i in range(CALLS):
                f(i, "refund please")
            return (time.perf_counter() - t0) / CALLS

        traced(1, "warm up")
        mlflow.flush_trace_async_logging()
        untraced_runs, traced_runs = [], []
        for _ in range(RUNS):
            untraced_runs.append(per_call(plain))
            traced_runs.append(per_call(traced))
            mlflow.flush_trace_async_logging()
        u, t = statistics.median(untraced_runs), statistics.median(traced_runs)
        print(f"python @mlflow.trace: untraced {u * 1e9:.0f} ns/call, traced {t * 1e6:.1f} µs/call, "
              f"added {(t - u) * 1e6:.1f} µs per span (median of {RUNS} runs of {CALLS} calls)")
    finally:
        server.stop()


if __name__ == "__main__":
    main()

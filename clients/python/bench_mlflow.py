#!/usr/bin/env python3
"""Side-by-side: the same MLflow-client tracing workload against Loupe and against `mlflow server`.

    clients/bench-mlflow                       # 1,000 traces, sync logging, both servers
    clients/bench-mlflow --traces 200 --targets mlflow
    clients/bench-mlflow --mode async          # async logging + one flush at the end

For each target the script starts a fresh server on this machine (`loupe serve` from LOUPE_BIN
with a temporary data dir; `mlflow server` with a SQLite file and proxied artifacts in a temporary
dir, one worker), then runs the workload in a fresh Python process with the real mlflow client
(`mlflow.set_tracking_uri(URL)`), then verifies through the client that the server holds exactly
N traces (`MlflowClient.search_traces`, paged) and that sampled traces come back with all their
spans, and stops the server. The targets run one after the other, never at the same time.

The workload: N calls of a small RAG-style app decorated with @mlflow.trace: a CHAIN root with
2-4 children (RETRIEVER always; RERANKER on every 2nd call; TOOL on every 3rd; CHAT_MODEL always,
with token usage), about 1 KB of inputs and outputs on the root and on each child.

Logging mode (--mode):
  sync   (default) MLFLOW_ENABLE_ASYNC_TRACE_LOGGING=false: every span goes out as it ends
         (one POST /v1/traces each) and StartTraceV3 after the root, all before the traced call
         returns, so the timed loop ends when every trace is acknowledged by the server.
  async  mlflow's default (batch span processor + export thread pool); the timed section ends
         after mlflow.flush_trace_async_logging(), i.e. when the client has sent everything.

With --eval the workload is one `mlflow.genai.evaluate` instead (default 200 rows): a traced
predict_fn, two code scorers and one built-in LLM judge (Guidelines) whose model is the shared
mock LLM server (started here, the same for both targets); the timed section is the evaluate
call; the verification is that the run has the three aggregate metrics and that
`search_traces(run_id=...)` returns one trace per row, each with its three scores.

Printed: per target the wall time of the timed section (N traces written + flushed), traces/s,
the verification result; then the ratio mlflow-time / loupe-time (> 1 means Loupe is faster).
Client retries are off (MLFLOW_HTTP_REQUEST_MAX_RETRIES=0) so a failing server fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLIENTS_DIR = HERE.parent
REPO_ROOT = CLIENTS_DIR.parent
sys.path.insert(0, str(CLIENTS_DIR))


# ------------------------------------------------------------------------------------------------
# Worker: runs inside a fresh process per target.


def eval_worker(args: argparse.Namespace) -> None:
    """One mlflow.genai.evaluate over args.traces rows (see the module docstring)."""
    import mlflow
    from mlflow.genai.scorers import Guidelines, scorer

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)

    @mlflow.trace
    def predict_fn(question: str) -> str:
        return f"The answer to {question} is 42."

    @scorer
    def mentions_answer(outputs) -> bool:
        return "42" in outputs

    @scorer
    def answer_words(outputs) -> int:
        return len(outputs.split())

    judge = Guidelines(name="concise", guidelines="Answer in one sentence.", model="openai:/gpt-4o-mini")
    data = [{"inputs": {"question": f"question {n}"}, "expectations": {"expected_response": "42"}} for n in range(args.traces)]
    started = time.perf_counter()
    res = mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[mentions_answer, answer_words, judge])
    seconds = time.perf_counter() - started
    traces = mlflow.search_traces(run_id=res.run_id, return_type="list")
    scored = sum(1 for t in traces if {"mentions_answer", "answer_words", "concise"} <= {a.name for a in t.info.assessments})
    metrics = sorted(mlflow.get_run(res.run_id).data.metrics)
    print("BENCH_RESULT=" + json.dumps({
        "seconds": seconds,
        "traces": args.traces,
        "found": len(traces),
        "missing": args.traces - scored,
        "span_check": [{"metrics": metrics, "ok": metrics == ["answer_words/mean", "concise/mean", "mentions_answer/mean"]}],
    }), flush=True)
    os._exit(0)


def worker(args: argparse.Namespace) -> None:
    if args.eval:
        eval_worker(args)
        return
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true" if args.mode == "async" else "false"
    import random

    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import SpanType

    mlflow.set_tracking_uri(args.tracking_uri)
    experiment_id = mlflow.set_experiment(args.experiment).experiment_id
    rng = random.Random(42)
    words = "trace span latency token model retrieval answer context question agent tool".split()

    def text(n_chars: int) -> str:
        out = []
        while sum(len(w) + 1 for w in out) < n_chars:
            out.append(rng.choice(words))
        return " ".join(out)

    @mlflow.trace(span_type=SpanType.RETRIEVER)
    def retrieve(query: str, k: int = 3) -> list[dict]:
        return [{"doc_id": f"doc-{rng.randrange(10**6)}", "score": round(rng.random(), 4), "text": text(300)} for _ in range(k)]

    @mlflow.trace(span_type=SpanType.RERANKER)
    def rerank(query: str, docs: list[dict]) -> list[dict]:
        return sorted(docs, key=lambda d: -d["score"])

    @mlflow.trace(span_type=SpanType.TOOL)
    def lookup_account(account_id: str, fields: list[str]) -> dict:
        return {"account_id": account_id, "plan": "pro", "notes": text(900)}

    @mlflow.trace(span_type=SpanType.CHAT_MODEL)
    def generate(messages: list[dict], temperature: float = 0.2) -> dict:
        mlflow.get_current_active_span().set_attribute(
            "mlflow.chat.tokenUsage", {"input_tokens": 420, "output_tokens": 96, "total_tokens": 516}
        )
        return {"role": "assistant", "content": text(900)}

    @mlflow.trace(span_type=SpanType.CHAIN)
    def answer(request: dict) -> dict:
        docs = retrieve(request["question"])
        if request["n"] % 2 == 0:
            docs = rerank(request["question"], docs)
        if request["n"] % 3 == 0:
            lookup_account(request["user"], ["plan", "notes"])
        reply = generate(
            [{"role": "system", "content": "Answer from the context."}, {"role": "user", "content": request["question"]}]
        )
        return {"answer": reply["content"], "sources": [d["doc_id"] for d in docs]}

    def request(n: int) -> dict:
        return {"n": n, "user": f"user-{n % 17}", "question": text(600), "history": [text(120), text(120)]}

    def spans_for(n: int) -> int:
        return 3 + (n % 2 == 0) + (n % 3 == 0)

    # warm-up (connection, /version probe, first-call costs) in another experiment, untimed
    warm = mlflow.set_experiment(args.experiment + "-warmup").experiment_id
    for n in range(args.warmup):
        answer(request(n))
    mlflow.flush_trace_async_logging()
    mlflow.set_experiment(experiment_id=experiment_id)

    ids: list[str] = []
    started = time.perf_counter()
    for n in range(args.traces):
        answer(request(n))
        ids.append(mlflow.get_last_active_trace_id())
    if args.mode == "async":
        mlflow.flush_trace_async_logging()
    seconds = time.perf_counter() - started

    # verification, untimed
    verify_started = time.perf_counter()
    client = MlflowClient()
    found: set[str] = set()
    token = None
    deadline = time.monotonic() + 60
    while True:
        page = client.search_traces(locations=[experiment_id], max_results=500, page_token=token, include_spans=False)
        found.update(t.info.trace_id for t in page)
        token = page.token
        if token:
            continue
        if len(found) >= args.traces or time.monotonic() > deadline:
            break
        found.clear()  # the server may still be committing: count again
        time.sleep(0.5)
    sample = rng.sample(range(args.traces), min(5, args.traces))
    span_check = []
    for n in sample:
        trace = client.get_trace(ids[n])
        span_check.append({"n": n, "spans": len(trace.data.spans), "expected": spans_for(n), "ok": len(trace.data.spans) == spans_for(n)})
    result = {
        "seconds": seconds,
        "traces": args.traces,
        "found": len(found),
        "missing": len(set(ids) - found),
        "span_check": span_check,
        "verify_seconds": time.perf_counter() - verify_started,
        "warmup_experiment": warm,
    }
    print("BENCH_RESULT=" + json.dumps(result), flush=True)
    os._exit(0)


# ------------------------------------------------------------------------------------------------
# Driver.


def run_target(kind: str, args: argparse.Namespace) -> dict:
    from tracking_servers import ServerStartError, start_loupe, start_mlflow

    started = time.perf_counter()
    try:
        server = start_loupe(args.loupe_bin) if kind == "loupe" else start_mlflow(sys.executable)
    except ServerStartError as exc:
        return {"target": kind, "error": str(exc)}
    startup = time.perf_counter() - started
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "OTEL_"))}
        env.update({
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        })
        if args.mock_url:
            env.update({"OPENAI_BASE_URL": args.mock_url, "OPENAI_API_KEY": "sk-mock"})
        cmd = [
            sys.executable, __file__, "--worker", "--tracking-uri", server.url, "--traces", str(args.traces),
            "--mode", args.mode, "--experiment", "bench", "--warmup", str(args.warmup),
        ] + (["--eval"] if args.eval else [])
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout, cwd=server.workdir)
        result = None
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH_RESULT="):
                result = json.loads(line[len("BENCH_RESULT="):])
        if result is None:
            return {"target": kind, "error": f"worker exit {proc.returncode}:\n{proc.stderr[-3000:]}"}
        result.update({"target": kind, "url": server.url, "startup_seconds": startup})
        warnings = [line for line in proc.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
        if warnings:
            result["client_warnings"] = warnings[:20]
        return result
    except subprocess.TimeoutExpired:
        return {"target": kind, "error": f"worker timed out after {args.timeout} s"}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=None, help="traces (rows with --eval); default 1000 (200)")
    parser.add_argument("--eval", action="store_true", help="time mlflow.genai.evaluate instead of tracing")
    parser.add_argument("--mock-url", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["sync", "async"], default="sync")
    parser.add_argument("--targets", default="loupe,mlflow", help="comma-separated: loupe, mlflow")
    parser.add_argument("--loupe-bin", default=os.environ.get("LOUPE_BIN") or str(REPO_ROOT / "target" / "release" / "loupe"))
    parser.add_argument("--warmup", type=int, default=20, help="untimed traces first, in another experiment")
    parser.add_argument("--timeout", type=float, default=1800, help="per-target limit, seconds")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    # worker mode (internal)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tracking-uri", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", default="bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.traces is None:
        args.traces = 200 if args.eval else 1000
    if args.worker:
        worker(args)
        return
    stop_mock = None
    if args.eval:
        sys.path.insert(0, str(CLIENTS_DIR / "mock_openai"))
        from server import start as start_mock

        args.mock_url, stop_mock = start_mock()

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(targets) - {"loupe", "mlflow"}
    if unknown or not targets:
        parser.error(f"--targets takes loupe and/or mlflow, not {','.join(sorted(unknown)) or 'nothing'}")
    what = "rows through mlflow.genai.evaluate" if args.eval else f"traces, {args.mode} logging,"
    print(f"bench-mlflow: {args.traces} {what} mlflow client "
          f"{_version('mlflow')}, targets {', '.join(targets)}", flush=True)
    results = {}
    for kind in targets:
        print(f"bench-mlflow: running against {kind} ...", flush=True)
        results[kind] = run_target(kind, args)

    if stop_mock:
        stop_mock()
    failed = False
    print()
    print(f"{'target':<8} {'traces':>7} {'seconds':>9} {'traces/s':>9} {'found':>6}  check")
    for kind, r in results.items():
        if "error" in r:
            failed = True
            print(f"{kind:<8} ERROR: {r['error']}")
            continue
        spans_ok = all(s["ok"] for s in r["span_check"])
        ok = r["found"] == r["traces"] and r["missing"] == 0 and spans_ok
        failed |= not ok
        check = "ok" if ok else f"FAILED (missing {r['missing']}, span check {r['span_check']})"
        print(f"{kind:<8} {r['traces']:>7} {r['seconds']:>9.2f} {r['traces'] / r['seconds']:>9.1f} {r['found']:>6}  {check}")
        if r.get("client_warnings"):
            print(f"         client warnings: {r['client_warnings'][:3]}")
    if "loupe" in results and "mlflow" in results and "error" not in results["loupe"] and "error" not in results["mlflow"]:
        ratio = results["mlflow"]["seconds"] / results["loupe"]["seconds"]
        print(f"\nratio mlflow/loupe wall time: {ratio:.2f}x ({'Loupe faster' if ratio > 1 else 'mlflow server faster'})")
    if args.json:
        print("BENCH_SUMMARY=" + json.dumps(results))
    sys.exit(1 if failed else 0)


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""MLflow tracing convention: ``mlflow.openai.autolog()`` exporting over OTLP.

MLflow 3.x sends its spans to an OTLP endpoint instead of a tracking server when
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (MLFLOW_ENABLE_OTLP_EXPORTER, default true); the
protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, which MLflow defaults to grpc, so this driver
sets ``http/protobuf``. MLflow uses its own isolated tracer provider, so no OpenTelemetry SDK set-up
is needed here; ``mlflow.flush_trace_async_logging`` is not involved (no tracking server).

Parent spans are ``mlflow.start_span(span_type=CHAIN)``, the tool run a TOOL span. Session and
user: ``mlflow.update_current_trace(session_id=..., user=...)`` stores them as trace metadata
(``mlflow.trace.session`` / ``mlflow.trace.user``), which the OTLP export path of MLflow 3.17.2
does NOT send (it only exports non-``mlflow.`` trace tags, as ``mlflow.traceTag.<key>``). MLflow's
own server reads ``session.id`` / ``user.id`` span attributes from OTLP spans, so the driver also
sets those on the root span (MLflow JSON-encodes every span attribute value it sets).
See _common.py for the scenarios and environment.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

CONVENTION = "mlflow"
SESSION_ID = f"sess-{CONVENTION}"
USER_ID = f"user-{CONVENTION}"


class MLflow(_common.Convention):
    name = CONVENTION

    def __init__(self) -> None:
        _common.traces_endpoint()  # required
        os.environ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
        os.environ.setdefault("OTEL_SERVICE_NAME", "loupe-mlflow")
        os.environ.setdefault("MLFLOW_ENABLE_OTLP_EXPORTER", "true")
        import mlflow

        mlflow.openai.autolog()
        self.mlflow = mlflow

    def scenario(self, name, body):
        from mlflow.entities import SpanType

        with self.mlflow.start_span(name=name, span_type=SpanType.CHAIN) as span:
            span.set_inputs({"scenario": name})
            self.mlflow.update_current_trace(session_id=SESSION_ID, user=USER_ID)
            span.set_attribute("session.id", SESSION_ID)
            span.set_attribute("user.id", USER_ID)
            result = body()
            span.set_outputs(result)
            return result

    def tool(self, name, call_id, arguments, run):
        from mlflow.entities import SpanType

        with self.mlflow.start_span(name=name, span_type=SpanType.TOOL) as span:
            span.set_inputs(json.loads(arguments))
            output = run()
            span.set_outputs(output)
            return output

    def shutdown(self) -> None:
        # MLflow's isolated SDK TracerProvider (its OTLP BatchSpanProcessor lives there).
        from mlflow.tracing.provider import get_bridged_tracer_provider

        provider = get_bridged_tracer_provider()
        provider.force_flush()
        provider.shutdown()


if __name__ == "__main__":
    _common.main(MLflow)

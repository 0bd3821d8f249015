#!/usr/bin/env python3
"""OpenLLMetry (Traceloop) convention: traceloop-sdk with opentelemetry-instrumentation-openai.

``Traceloop.init`` builds the tracer provider around our OTLP/HTTP protobuf exporter and turns on
only the OpenAI instrumentation. Parent spans come from the ``@workflow`` decorator, the tool run
from ``@tool``; session and user ids are association properties (``session_id`` / ``user_id``),
which the SDK copies onto every span as ``traceloop.association.properties.*``.
Content capture: TRACELOOP_TRACE_CONTENT=true (the default, set explicitly here).
See _common.py for the scenarios and environment.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

CONVENTION = "openllmetry"
SESSION_ID = f"sess-{CONVENTION}"
USER_ID = f"user-{CONVENTION}"


class OpenLLMetry(_common.Convention):
    name = CONVENTION

    def __init__(self) -> None:
        os.environ["TRACELOOP_TRACE_CONTENT"] = "true"
        os.environ.setdefault("TRACELOOP_TELEMETRY", "false")
        os.environ.setdefault("TRACELOOP_METRICS_ENABLED", "false")
        os.environ.setdefault("TRACELOOP_LOGGING_ENABLED", "false")
        from traceloop.sdk import Traceloop
        from traceloop.sdk.instruments import Instruments

        Traceloop.init(
            app_name="loupe-openllmetry",
            exporter=_common.span_exporter(),
            instruments={Instruments.OPENAI},
            telemetry_enabled=False,
        )
        self._traceloop = Traceloop

    def scenario(self, name, body):
        from traceloop.sdk.associations import AssociationProperty, Associations
        from traceloop.sdk.decorators import workflow

        @workflow(name=name)
        def run():
            Associations.set(
                [(AssociationProperty.SESSION_ID, SESSION_ID), (AssociationProperty.USER_ID, USER_ID)]
            )
            return body()

        return run()

    def tool(self, name, call_id, arguments, run):
        import json

        from traceloop.sdk.decorators import tool

        @tool(name=name)
        def get_weather(city: str) -> str:
            return run()

        return get_weather(**json.loads(arguments))

    def shutdown(self) -> None:
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "force_flush"):
            provider.force_flush()
        if hasattr(provider, "shutdown"):
            provider.shutdown()


if __name__ == "__main__":
    _common.main(OpenLLMetry)

#!/usr/bin/env python3
"""OpenInference (Arize Phoenix) convention: openinference-instrumentation-openai.

Parent spans are OpenInference CHAIN spans and the tool run is a TOOL span, both made with the
OpenInference tracer (``OITracer``); session and user ids come from ``using_session`` /
``using_user``, which put ``session.id`` / ``user.id`` on every span started inside them.
See _common.py for the scenarios and environment.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

CONVENTION = "openinference"
SESSION_ID = f"sess-{CONVENTION}"
USER_ID = f"user-{CONVENTION}"


class OpenInference(_common.Convention):
    name = CONVENTION

    def __init__(self) -> None:
        from openinference.instrumentation import TracerProvider
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry import trace
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # OpenInference's TracerProvider wraps the SDK one; its tracers are OITracers, which
        # know the openinference_span_kind argument and the context attributes.
        self.provider = TracerProvider(resource=_common.resource("loupe-openinference"))
        self.provider.add_span_processor(BatchSpanProcessor(_common.span_exporter()))
        trace.set_tracer_provider(self.provider)
        OpenAIInstrumentor().instrument(tracer_provider=self.provider)
        self.tracer = self.provider.get_tracer("loupe.clients.openinference")

    def scenario(self, name, body):
        from openinference.instrumentation import using_session, using_user

        with using_session(SESSION_ID), using_user(USER_ID):
            with self.tracer.start_as_current_span(name, openinference_span_kind="chain") as span:
                span.set_input(name)
                result = body()
                span.set_output(json.dumps(result, sort_keys=True), mime_type="application/json")
                return result

    def tool(self, name, call_id, arguments, run):
        with self.tracer.start_as_current_span(name, openinference_span_kind="tool") as span:
            function = _common.WEATHER_TOOL["function"]
            span.set_tool(
                name=function["name"],
                description=function["description"],
                parameters=function["parameters"],
            )
            span.set_attribute("tool.id", call_id)
            span.set_input(arguments, mime_type="application/json")
            output = run()
            span.set_output(output, mime_type="application/json")
            return output

    def shutdown(self) -> None:
        self.provider.force_flush()
        self.provider.shutdown()


if __name__ == "__main__":
    os.environ.setdefault("OTEL_SERVICE_NAME", "loupe-openinference")
    _common.main(OpenInference)

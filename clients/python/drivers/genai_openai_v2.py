#!/usr/bin/env python3
"""OpenTelemetry GenAI semantic conventions: opentelemetry-instrumentation-openai-v2.

Two modes, chosen by GENAI_MODE:

* ``latest`` (default): OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental and
  OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_AND_EVENT: content goes on the spans
  as ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON strings) and, in addition, in
  ``gen_ai.client.inference.operation.details`` log events.
* ``legacy``: no opt-in and CAPTURE_MESSAGE_CONTENT=true, the documented "v1.30 conventions"
  setup. Observed with openai-v2 2.4b0 + opentelemetry-util-genai 1.1b0: the chat spans still go
  through util-genai (same span names and keys as ``latest``, ``gen_ai.provider.name`` rather
  than ``gen_ai.system``), util-genai rejects ``true`` as a capture mode ("Defaulting to
  NO_CONTENT") and NO content is recorded anywhere: no message attributes and no log events.
  Kept for comparison only; the fixtures and tests use ``latest``.

Log records are exported (OTLP/HTTP protobuf) only when OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is set.

Parent spans are GenAI ``invoke_workflow <scenario>`` spans and the tool run is an
``execute_tool get_weather`` span, both made with opentelemetry-util-genai's TelemetryHandler
(the library the instrumentation itself uses). The session id is ``gen_ai.conversation.id`` and
the user id the general ``user.id`` attribute, both on the workflow span only (GenAI defines no
user attribute, and this util-genai version has no way to hand the conversation id down). See _common.py for the scenarios and environment.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402

CONVENTION = "gen_ai"
SESSION_ID = f"sess-{CONVENTION}"
USER_ID = f"user-{CONVENTION}"
MODE = os.environ.get("GENAI_MODE", "latest")

if MODE == "latest":
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "SPAN_AND_EVENT"
elif MODE == "legacy":
    os.environ.pop("OTEL_SEMCONV_STABILITY_OPT_IN", None)
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
else:
    sys.exit(f"GENAI_MODE must be latest or legacy, not {MODE!r}")


class GenAI(_common.Convention):
    name = CONVENTION

    def __init__(self) -> None:
        from opentelemetry import _logs, trace
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.util.genai.handler import TelemetryHandler

        resource = _common.resource("loupe-gen-ai")
        self.provider = TracerProvider(resource=resource)
        self.provider.add_span_processor(BatchSpanProcessor(_common.span_exporter()))
        trace.set_tracer_provider(self.provider)

        self.logger_provider = LoggerProvider(resource=resource)
        logs_endpoint = _common.logs_endpoint()
        if logs_endpoint:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(OTLPLogExporter(endpoint=logs_endpoint))
            )
        _logs.set_logger_provider(self.logger_provider)

        OpenAIInstrumentor().instrument(
            tracer_provider=self.provider, logger_provider=self.logger_provider
        )
        self.handler = TelemetryHandler(
            tracer_provider=self.provider, logger_provider=self.logger_provider
        )

    def scenario(self, name, body):
        with self.handler.workflow(name) as invocation:
            # opentelemetry-util-genai 1.1b0 (the version openai-v2 2.4b0 needs) has no
            # conversation-id API and openai-v2 never sets gen_ai.conversation.id, so the ids
            # go on the workflow span only: the semconv key for the session, user.id for the user.
            invocation.attributes["gen_ai.conversation.id"] = SESSION_ID
            invocation.attributes["user.id"] = USER_ID
            return body()

    def tool(self, name, call_id, arguments, run):
        import json

        function = _common.WEATHER_TOOL["function"]
        with self.handler.tool(
            name,
            tool_call_id=call_id,
            tool_type="function",
            tool_description=function["description"],
        ) as invocation:
            invocation.arguments = json.loads(arguments)
            output = run()
            invocation.tool_result = output
            return output

    def shutdown(self) -> None:
        self.provider.force_flush()
        self.logger_provider.force_flush()
        self.provider.shutdown()
        self.logger_provider.shutdown()


if __name__ == "__main__":
    _common.main(GenAI)

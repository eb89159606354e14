"""A ``NALARC_OTEL_SETUP`` hook for the telemetry tests' worker processes.

Configures the OpenTelemetry SDK with a synchronous exporter appending each
finished span, as JSON (one line each), to the file ``NALARC_TEST_SPAN_FILE``
names: the test reads what the worker exported after the workers stop.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


def setup() -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(os.environ["NALARC_TEST_SPAN_FILE"])))
    trace.set_tracer_provider(provider)

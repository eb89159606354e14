"""OpenTelemetry spans for requests, component calls and LLM calls (docs/telemetry.md).

Span names and attributes follow the OpenTelemetry GenAI semantic conventions:

* ``invoke_workflow {workflow}``: one per request, in the driver;
* ``invoke_agent {agent}`` / ``execute_tool {tool}``: one per component call,
  a child of the span that launched it, from the call's launch to the
  settling of its future, with nalarc's own attributes (``nalarc.*``);
* ``chat {model}``: one per LLM call (:mod:`nalarc.llm`), a child of the
  component call it runs in, in whichever process runs it.

nalarc depends on ``opentelemetry-api`` only, and never installs a tracer
provider or an exporter itself: until the application (or the hook named by
``NALARC_OTEL_SETUP``) configures an SDK, :func:`enabled` is False and no span
is made at all.  A worker process joins its caller's trace through the W3C
``traceparent`` carried in each :class:`~nalarc.wire.Run`; it exports its own
spans (the ``chat`` spans of the calls it runs) through the provider its
``NALARC_OTEL_SETUP`` hook configures, inherited from the driver's environment.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, ProxyTracerProvider, Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ._version import __version__

if TYPE_CHECKING:
    from .runtime.lowlevel import CallRecord, Pending

#: ``module:function`` called once at start (driver CLI and every worker) to configure an SDK.
SETUP_ENV = "NALARC_OTEL_SETUP"

_propagator = TraceContextTextMapPropagator()

#: The span of the request or component call running in this context; None: no telemetry here.
#: nalarc's own variable (one lookup per launch), set together with OpenTelemetry's current context.
current_span: ContextVar[Span | None] = ContextVar("nalarc_span", default=None)


def enabled() -> bool:
    """A tracer provider was configured (an SDK, or any provider the application set)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


_cached: tuple[trace.TracerProvider | None, trace.Tracer] = (None, trace.NoOpTracer())


def _tracer() -> trace.Tracer:
    """nalarc's tracer from the provider configured now (not a proxy that keeps the first one it saw)."""
    global _cached
    provider = trace.get_tracer_provider()
    if provider is not _cached[0]:
        _cached = (provider, provider.get_tracer("nalarc", __version__))
    return _cached[1]


def configure_from_env() -> bool:
    """Call the ``NALARC_OTEL_SETUP`` hook (``package.module:function``), if set; True if it ran."""
    spec = os.environ.get(SETUP_ENV, "").strip()
    if not spec:
        return False
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"{SETUP_ENV} must be 'module:function', got {spec!r}")
    setup: Callable[[], Any] = getattr(importlib.import_module(module_name), function_name)
    setup()
    return True


def flush(timeout_ms: int = 5000) -> None:
    """Export what the configured provider still holds (a worker calls it before it exits)."""
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(timeout_ms)


# -- requests -------------------------------------------------------------------


@contextlib.contextmanager
def request_span(workflow: str, session: str, request_id: str) -> Iterator[None]:
    """``invoke_workflow {workflow}`` around one request, if telemetry is enabled."""
    if not enabled():
        yield
        return
    span = _tracer().start_span(f"invoke_workflow {workflow}", kind=SpanKind.INTERNAL, attributes={
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.agent.name": workflow,
        "gen_ai.conversation.id": session, "nalarc.request.id": request_id,
    })
    try:
        with activated(span):
            yield
    except BaseException as error:
        _fail(span, error)
        raise
    finally:
        span.end()


@contextlib.contextmanager
def activated(span: Span | None) -> Iterator[None]:
    """Make ``span`` the parent of what runs here (nalarc's calls and OpenTelemetry's current span)."""
    if span is None:
        yield
        return
    token = current_span.set(span)
    otel_token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        otel_context.detach(otel_token)
        current_span.reset(token)


# -- component calls ----------------------------------------------------------------


def start_call_span(record: CallRecord, pending: Pending, parent: Span) -> Span:
    """A component call's span, from now (its launch) to the settling of ``pending``."""
    span = _tracer().start_span(_call_name(record), context=trace.set_span_in_context(parent),
                              kind=SpanKind.INTERNAL, attributes=_call_attributes(record))
    pending.when_done(lambda: _settled(span, pending))
    return span


def replayed_call_span(record: CallRecord, pending: Pending, parent: Span) -> None:
    """A call settled from the request's journal (it did not run): an instant span marked replayed."""
    attributes = _call_attributes(record)
    attributes["nalarc.replayed"] = True
    span = _tracer().start_span(_call_name(record), context=trace.set_span_in_context(parent),
                              kind=SpanKind.INTERNAL, attributes=attributes)
    _settled(span, pending)


def _call_name(record: CallRecord) -> str:
    spec = record.spec
    return f"execute_tool {spec.name}" if spec.kind == "tool" else f"invoke_agent {spec.name}"


def _call_attributes(record: CallRecord) -> dict[str, Any]:
    spec = record.spec
    attributes: dict[str, Any] = {
        "gen_ai.conversation.id": record.session,
        "nalarc.future.id": record.future_id,
        "nalarc.call.dependencies": record.depends_on,
        "nalarc.stage": record.stage,
    }
    if spec.kind == "tool":
        attributes["gen_ai.operation.name"] = "execute_tool"
        attributes["gen_ai.tool.name"] = spec.name
    else:
        attributes["gen_ai.operation.name"] = "invoke_agent"
        attributes["gen_ai.agent.name"] = spec.name
        if record.method:
            attributes["nalarc.method"] = record.method
    return attributes


def _settled(span: Span, pending: Pending) -> None:
    error = pending._error
    if error is not None:
        _fail(span, error)
    span.end()


def _fail(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", type(error).__qualname__)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def call_started(span: Span, instance: str, worker: str, queued_seconds: float) -> None:
    """Where the driver sent the call, and how long it waited in the instance's queue."""
    span.set_attributes({"nalarc.instance": instance, "nalarc.worker": worker,
                         "nalarc.queue_time_ms": round(queued_seconds * 1000, 3)})


def call_migrated(span: Span | None) -> None:
    if span is not None:
        span.set_attribute("nalarc.migrated", True)


# -- across processes ----------------------------------------------------------------


def traceparent(span: Span | None) -> str:
    """The W3C ``traceparent`` of ``span`` ("" for none): what a :class:`~nalarc.wire.Run` carries."""
    if span is None:
        return ""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return ""
    # W3C trace-context version 00, written directly (the propagator's inject costs ~10x more per call)
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


@contextlib.contextmanager
def remote_parent(header: str) -> Iterator[None]:
    """In a worker: run a call under the driver's span named by its ``traceparent`` ("": no trace)."""
    if not header:
        yield
        return
    parent = trace.get_current_span(_propagator.extract({"traceparent": header}))
    with activated(NonRecordingSpan(parent.get_span_context())):
        yield


# -- LLM calls ---------------------------------------------------------------------


@contextlib.contextmanager
def chat_span(model: str, server: str) -> Iterator[Span | None]:
    """``chat {model}`` under the current span, if a trace is running here (None: no span)."""
    if not trace.get_current_span().get_span_context().is_valid:
        yield None
        return
    span = _tracer().start_span(f"chat {model}", kind=SpanKind.CLIENT, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model, "server.address": server,
    })
    try:
        yield span
    except BaseException as error:
        _fail(span, error)
        raise
    finally:
        span.end()


def chat_usage(span: Span | None, model: str | None, input_tokens: int | None, output_tokens: int | None,
               cached_tokens: int, finish_reason: str | None) -> None:
    """What the reply said: its model, token usage and finish reason."""
    if span is None:
        return
    if model:
        span.set_attribute("gen_ai.response.model", model)
    if input_tokens is not None:
        span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
    if output_tokens is not None:
        span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
    if cached_tokens:
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", cached_tokens)
    if finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [finish_reason])

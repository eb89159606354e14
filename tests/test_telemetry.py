"""OpenTelemetry spans (nalarc._telemetry), checked with the SDK's in-memory exporter.

Real runs: the in-process backend, and a real worker process whose own SDK
(configured through ``NALARC_OTEL_SETUP``) writes its spans to a file.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import textwrap
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from opentelemetry.util._once import Once

from nalarc import _telemetry, load_app
from nalarc.executor import LoadedApp, Placement
from nalarc.executor import open_service
from nalarc.executor._controller import GlobalController
from nalarc.policies import Control, MetricsView, Policy
from nalarc.executor._app import run_requests
from nalarc.executor._statestore import StateStore
from nalarc.serve import serve
from nalarc.serve._journal import Journal

APP = '''
import time
import nalarc
from nalarc.llm import chat

@nalarc.tool
def double(x):
    return 2 * x

@nalarc.tool
def add(a, b):
    return a + b

@nalarc.tool
def explode(x):
    raise ValueError(f"no {x}")

@nalarc.agent
class Writer:
    def write(self, topic):
        return chat([{"role": "user", "content": f"a line about {topic}"}], model="small", max_tokens=8)

@nalarc.agent
class Slow:
    def work(self, x, seconds):
        time.sleep(seconds)
        return x

@nalarc.workflow
def slow_work(x, seconds):
    return Slow().work(x, seconds)

@nalarc.workflow
def pipeline(x):
    return add(double(x), double(x + 1))

@nalarc.workflow
def story(topic):
    return Writer().write(topic)

@nalarc.workflow
def fails(x):
    return explode(x)
'''


def _reset_tracer_provider() -> None:
    # The API lets a process set its provider once; tests reset it as OpenTelemetry's own test utilities do.
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_tracer_provider()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_tracer_provider()


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> LoadedApp:
    root = tmp_path_factory.mktemp("otel")
    (root / "otel_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(root / "otel_app.py", out_dir=root / "build")


def _by_name(spans: Any) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for span in spans:
        out.setdefault(span.name, []).append(span)
    return out


def test_no_provider_no_span(app: LoadedApp) -> None:
    assert not _telemetry.enabled()
    [outcome] = run_requests(app, [("pipeline", {"x": 3}, "s")])
    assert outcome.unwrap() == 6 + 8
    assert _telemetry.current_span.get() is None


@pytest.mark.parametrize("workers", [0, 1], ids=["in-process", "workers=1"])
def test_request_and_call_spans(app: LoadedApp, spans: InMemorySpanExporter, workers: int) -> None:
    [outcome] = run_requests(app, [("pipeline", {"x": 3}, "sess-1")], placement=Placement(workers=workers))
    assert outcome.unwrap() == 14
    named = _by_name(spans.get_finished_spans())
    [request] = named["invoke_workflow pipeline"]
    assert request.parent is None
    assert request.attributes["gen_ai.operation.name"] == "invoke_workflow"
    assert request.attributes["gen_ai.agent.name"] == "pipeline"
    assert request.attributes["gen_ai.conversation.id"] == "sess-1"
    doubles, [add] = named["execute_tool double"], named["execute_tool add"]
    assert len(doubles) == 2
    for call in [*doubles, add]:
        assert call.context.trace_id == request.context.trace_id
        assert call.parent.span_id == request.context.span_id
        assert call.attributes["gen_ai.operation.name"] == "execute_tool"
        assert call.attributes["gen_ai.conversation.id"] == "sess-1"
        assert call.attributes["nalarc.worker"] == ("driver" if workers == 0 else "w0")
        assert call.attributes["nalarc.queue_time_ms"] >= 0
        assert request.start_time <= call.start_time <= call.end_time <= request.end_time
        assert call.status.status_code is StatusCode.UNSET
    assert add.attributes["gen_ai.tool.name"] == "add"
    # add waited for both doubles: its dependencies are their futures, and it settled after them
    assert sorted(add.attributes["nalarc.call.dependencies"]) == sorted(d.attributes["nalarc.future.id"] for d in doubles)
    assert add.end_time >= max(d.end_time for d in doubles)


def test_a_failing_tool_fails_its_span_and_the_request_span(app: LoadedApp, spans: InMemorySpanExporter) -> None:
    [outcome] = run_requests(app, [("fails", {"x": 1}, "s")])
    assert isinstance(outcome.error, ValueError)
    named = _by_name(spans.get_finished_spans())
    [call], [request] = named["execute_tool explode"], named["invoke_workflow fails"]
    for span in (call, request):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ValueError"
    assert "no 1" in (call.status.description or "")


def test_chat_span_under_the_agent_span_in_process(app: LoadedApp, spans: InMemorySpanExporter) -> None:
    [outcome] = run_requests(app, [("story", {"topic": "owls"}, "s")])
    assert isinstance(outcome.unwrap(), str)
    named = _by_name(spans.get_finished_spans())
    [agent], [chat] = named["invoke_agent Writer"], named["chat small"]
    assert agent.attributes["gen_ai.agent.name"] == "Writer" and agent.attributes["nalarc.method"] == "write"
    assert chat.parent.span_id == agent.context.span_id
    _check_chat_attributes(chat.attributes)


def test_calls_replayed_from_the_journal_are_marked(app: LoadedApp, spans: InMemorySpanExporter,
                                                  tmp_path: Path) -> None:
    journal = Journal(tmp_path / "requests.db")

    async def main() -> list[Any]:
        store = StateStore(None)
        try:
            async with open_service(app, store, None) as service:
                first = await service.run("pipeline", {"x": 3}, "s", request_id="run-1", journal=journal)
                again = await service.run("pipeline", {"x": 3}, "s", request_id="run-1", journal=journal,
                                          resumed=True)
                return [first, again, dict(service.calls)]
        finally:
            store.close()

    try:
        first, again, calls = trio.run(main)
    finally:
        journal.close()
    assert first == again == 14 and calls["replayed"] == 3
    runs = [s for s in spans.get_finished_spans() if s.name == "invoke_workflow pipeline"]
    assert len(runs) == 2
    replayed = [s for s in spans.get_finished_spans()
                if s.name.startswith("execute_tool") and s.parent.span_id == runs[1].context.span_id]
    assert len(replayed) == 3
    assert all(s.attributes["nalarc.replayed"] is True and "nalarc.worker" not in s.attributes for s in replayed)
    ran = [s for s in spans.get_finished_spans()
           if s.name.startswith("execute_tool") and s.parent.span_id == runs[0].context.span_id]
    assert len(ran) == 3 and not any("nalarc.replayed" in s.attributes for s in ran)


class Idle(Policy):
    name = "idle"

    def step(self, view: MetricsView, control: Control) -> None:
        pass


def test_calls_migrated_while_queued_are_marked(app: LoadedApp, spans: InMemorySpanExporter) -> None:
    async def main() -> int:
        store = StateStore(None)
        try:
            placement = Placement(workers=2, default_instances=2, agent_concurrency=1)
            async with open_service(app, store, placement) as service, trio.open_nursery() as nursery:
                control = GlobalController(service.backend, Idle())
                control.route("s1", "Slow", "Slow#0")
                for i in range(3):
                    nursery.start_soon(service.run, "slow_work", {"x": i, "seconds": 0.3}, "s1")
                await trio.sleep(0.15)
                queued = service.backend.instances["Slow#0"].queue_length
                assert queued >= 1  # one call at a time per instance: the others wait
                assert control.migrate("s1", "Slow#0", "Slow#1")
                return queued
        finally:
            store.close()

    queued = trio.run(main)
    calls = _by_name(spans.get_finished_spans())["invoke_agent Slow"]
    assert len(calls) == 3
    migrated = [s for s in calls if s.attributes.get("nalarc.migrated")]
    assert len(migrated) == queued
    assert all(s.attributes["nalarc.instance"] == "Slow#1" for s in migrated)
    assert all(s.attributes["nalarc.instance"] == "Slow#0" for s in calls if s not in migrated)


def _check_chat_attributes(attributes: Any) -> None:
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "small"
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert 0 < attributes["gen_ai.usage.output_tokens"] <= 8
    assert attributes["server.address"] == "127.0.0.1"


def test_chat_span_in_a_worker_joins_the_drivers_trace(
    app: LoadedApp, spans: InMemorySpanExporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    span_file = tmp_path / "worker-spans.jsonl"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    monkeypatch.setenv(_telemetry.SETUP_ENV, "otel_span_file:setup")
    monkeypatch.setenv("NALARC_TEST_SPAN_FILE", str(span_file))
    [outcome] = run_requests(app, [("story", {"topic": "owls"}, "s")], placement=Placement(workers=1))
    assert isinstance(outcome.unwrap(), str)
    [agent] = _by_name(spans.get_finished_spans())["invoke_agent Writer"]
    assert agent.attributes["nalarc.instance"] == "Writer#0"
    worker_spans = [json.loads(line) for line in span_file.read_text(encoding="utf-8").splitlines()]
    [chat] = [s for s in worker_spans if s["name"] == "chat small"]
    assert chat["context"]["trace_id"] == f"0x{agent.context.trace_id:032x}"
    assert chat["parent_id"] == f"0x{agent.context.span_id:016x}"
    assert chat["kind"] == "SpanKind.CLIENT"
    _check_chat_attributes(chat["attributes"])


def test_traceparent_round_trip(spans: InMemorySpanExporter) -> None:
    span = trace.get_tracer("t").start_span("parent")
    header = _telemetry.traceparent(span)
    assert header.startswith(f"00-{span.get_span_context().trace_id:032x}-{span.get_span_context().span_id:016x}-")
    with _telemetry.remote_parent(header):
        with _telemetry.chat_span("m", "127.0.0.1") as chat:
            assert chat is not None
    span.end()
    finished: list[ReadableSpan] = list(spans.get_finished_spans())
    [chat_span] = [s for s in finished if s.name == "chat m"]
    assert chat_span.parent is not None and chat_span.parent.span_id == span.get_span_context().span_id
    assert _telemetry.traceparent(None) == ""
    with _telemetry.remote_parent(""):
        assert _telemetry.current_span.get() is None


class OutboundRecorder:
    """``socket.socket.connect`` for this process: records every destination; refuses the non-loopback ones."""

    def __init__(self) -> None:
        self.destinations: list[Any] = []
        self.refused: list[Any] = []
        self._connect = socket.socket.connect

    def __call__(self, sock: socket.socket, address: Any) -> None:
        self.destinations.append(address)
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not ipaddress.ip_address(address[0]).is_loopback:
            self.refused.append(address)
            raise ConnectionRefusedError(f"test: no outbound connection to {address}")
        self._connect(sock, address)


@pytest.fixture
def outbound(monkeypatch: pytest.MonkeyPatch) -> OutboundRecorder:
    recorder = OutboundRecorder()
    monkeypatch.setattr(socket.socket, "connect", lambda sock, address: recorder(sock, address))  # a function: binds
    return recorder


def test_the_recorder_sees_a_non_loopback_connection(outbound: OutboundRecorder) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("203.0.113.7", 4318), timeout=1)  # TEST-NET-3: never reached
    assert outbound.refused == [("203.0.113.7", 4318)]


def test_serving_with_telemetry_defaults_opens_no_outbound_connection(
    app: LoadedApp, outbound: OutboundRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The standard exporter variables alone do nothing: nalarc sets up no exporter (docs/telemetry.md).
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://203.0.113.7:4318")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")

    async def main() -> list[int]:
        store = StateStore(None)
        try:
            async with open_service(app, store, None) as service, trio.open_nursery() as nursery:
                urls = await nursery.start(partial(serve, app, service, "127.0.0.1", 0))
                async with httpx.AsyncClient(base_url=urls[0], timeout=60) as client:
                    codes = [(await client.post(f"/v1/workflows/{name}", json=body)).status_code
                             for name, body in [("pipeline", {"x": 1}), ("story", {"topic": "owls"}),
                                                ("fails", {"x": 2})]]
                    codes.append((await client.get("/metrics")).status_code)
                nursery.cancel_scope.cancel()
                return codes
        finally:
            store.close()

    assert trio.run(main) == [200, 200, 500, 200]
    assert not _telemetry.enabled()
    # the client to the server at least (the LLM client may reuse a pooled loopback connection)
    assert outbound.destinations, "the recorder saw the connections made"
    assert outbound.refused == []

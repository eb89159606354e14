"""``GET /metrics``: the server's Prometheus exposition, through ``prometheus_client``.

Each :class:`~nalarc.serve._http.ServeApp` has its own
:class:`~prometheus_client.CollectorRegistry` (never the process-wide one, so
two servers in one process do not mix).  Two kinds of families:

* counters and gauges read from the server's and the service's state when
  scraped (:class:`_StateCollector`), with the names and labels of the
  hand-written exposition they replace;
* histograms observed as things happen: request latency per workflow and
  outcome, component call latency per component and kind, and queue time per
  component (from the driver's view of its instances: arrival at the
  instance, start, finish; in-process calls never queue).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from ._http import ServeApp

#: Seconds: from a millisecond tool call to a multi-minute agent run.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                   120.0, 300.0)


class ServeMetrics:
    """The registry of one server: its state families and its latency histograms."""

    def __init__(self, server: ServeApp) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(server))
        self.requests = Histogram("nalarc_request_duration_seconds", "Workflow request latency, admission to outcome.",
                                  ["workflow", "outcome"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.calls = Histogram("nalarc_call_duration_seconds",
                               "Component call latency, arrival at its instance to finish (queue time included).",
                               ["component", "kind"], registry=self.registry, buckets=LATENCY_BUCKETS)
        self.queue = Histogram("nalarc_call_queue_seconds", "Time a component call waited in its instance's queue.",
                               ["component"], registry=self.registry, buckets=LATENCY_BUCKETS)
        #: (component, kind) -> its two histogram children: ``labels()`` costs more than ``observe()``
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        backend = server.service.backend
        backend.call_observer = self.observe_call

    def observe_request(self, workflow: str, outcome: str, seconds: float) -> None:
        self.requests.labels(workflow, outcome).observe(seconds)

    def observe_call(self, component: str, kind: str, queued: float, total: float) -> None:
        """One finished call (``_instance.CallObserver``): on the driver's hot path, so children are cached."""
        children = self._children.get((component, kind))
        if children is None:
            children = self._children[(component, kind)] = (self.calls.labels(component, kind),
                                                             self.queue.labels(component))
        children[0].observe(total)
        children[1].observe(queued)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """The counters and gauges kept by the server and the service, read at scrape time."""

    def __init__(self, server: ServeApp) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        server = self.server
        requests = CounterMetricFamily("nalarc_requests", "Workflow requests by outcome (ok, error, invalid, rejected).",
                                       labels=["workflow", "outcome"])
        for (workflow, outcome), n in sorted(server.requests.items()):
            requests.add_metric([workflow, outcome], n)
        yield requests
        responses = CounterMetricFamily("nalarc_http_responses", "HTTP responses by status code.", labels=["code"])
        for code, n in sorted(server.responses.items()):
            responses.add_metric([str(code)], n)
        yield responses
        yield GaugeMetricFamily("nalarc_requests_in_flight", "Admitted requests whose workflow has not returned.",
                                value=server.admitted)
        yield GaugeMetricFamily("nalarc_requests_limit", "Admitted requests allowed before 429.", value=server.max_queue)
        yield CounterMetricFamily("nalarc_requests_replayed", "Idempotent retries answered from the first request.",
                                  value=server.replayed)
        calls = CounterMetricFamily("nalarc_calls_journal",
                                    "Component calls of journaled requests: replayed on resume, journaled, unjournaled.",
                                    labels=["outcome"])
        for outcome, n in server.service.calls.items():
            calls.add_metric([outcome], n)
        yield calls
        yield CounterMetricFamily("nalarc_requests_resumed", "Unfinished journaled requests resumed at start.",
                                  value=server.resumed)
        yield CounterMetricFamily("nalarc_requests_poisoned",
                                  "Unfinished journaled requests failed at start: their runs kept crashing the server.",
                                  value=server.poisoned)
        yield GaugeMetricFamily("nalarc_draining", "1 while the server drains after the shutdown trigger.",
                                value=float(server.draining))
        yield from _instance_families(server.service.status())


def _instance_families(status: dict[str, Any]) -> Iterator[Metric]:
    if not status["workers"]:
        return
    alive = GaugeMetricFamily("nalarc_worker_alive", "1 if the worker (process or Ray actor) is alive.",
                              labels=["worker", "pid"])
    for worker in status["workers"]:
        alive.add_metric([worker["id"], str(worker["pid"])], float(worker["alive"]))
    yield alive
    labels = ["instance", "component", "worker"]
    for family, name, help_text, key in [
        (GaugeMetricFamily, "nalarc_instance_queue_length", "Calls waiting in the instance's queue.", "queue_length"),
        (GaugeMetricFamily, "nalarc_instance_running", "Calls the instance is running.", "running"),
        (CounterMetricFamily, "nalarc_instance_completed", "Calls the instance finished.", "completed"),
        (CounterMetricFamily, "nalarc_instance_busy_seconds", "Seconds spent running calls.", "busy_seconds"),
    ]:
        metric = family(name, help_text, labels=labels)
        for c in status["instances"]:
            metric.add_metric([c["id"], c["component"], c["worker"]], float(c[key]))
        yield metric

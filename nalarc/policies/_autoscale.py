"""Elastic capacity: instances follow the load between ``min_instances`` and ``max_instances``.

In the style of Ray Serve's autoscaler (target ongoing requests per replica, an
upscale and a downscale delay, a look-back window), tuned for agent traffic,
which comes in bursts: scaling up reacts at the first round that sees the load
(and moves queued calls onto the new instances), scaling down waits until the
load stayed low for ``downscale_delay`` seconds and only ever stops idle instances
of tools.  Agent instances are kept: a session may be pinned to one (a stateful
agent, managed state, an attribute it set through a handle), and an idle
instance costs an object on a worker, not a CPU.

With ``Placement.elastic`` (the default) the router already adds an instance the
moment a call would queue; this policy then adds what a queue built up without
it (and moves queued calls onto the new instances) and gives idle tool
instances back.
"""

from __future__ import annotations

import math
from collections import deque

from ._api import Control, InstanceMetrics, MetricsView, Policy


class Autoscale(Policy):
    """Enough instances that each runs about ``target`` of its slots busy."""

    name = "autoscale"

    def __init__(self, target: float = 0.8, downscale_delay: float = 5.0, look_back: float = 2.0) -> None:
        self.target, self.downscale_delay, self.look_back = target, downscale_delay, look_back
        #: component -> recent (time, load) samples
        self._loads: dict[str, deque[tuple[float, int]]] = {}
        #: component -> since when fewer instances would have done
        self._low_since: dict[str, float] = {}

    def step(self, view: MetricsView, control: Control) -> None:
        for component in view.components():
            instances = view.of(component)
            if not instances:
                continue
            load = sum(i.load for i in instances)
            samples = self._loads.setdefault(component, deque())
            samples.append((view.now, load))
            while samples[0][0] < view.now - self.look_back:
                samples.popleft()
            per_instance = max(instances[0].capacity * self.target, 1e-9)
            if load > per_instance * len(instances):
                self._low_since.pop(component, None)
                self._scale_up(view, control, component, instances, math.ceil(load / per_instance))
            else:
                peak = max(n for _, n in samples)
                self._maybe_scale_down(view, control, component, instances, max(1, math.ceil(peak / per_instance)))

    def _scale_up(self, view: MetricsView, control: Control, component: str,
                  instances: list[InstanceMetrics], wanted: int) -> None:
        added = []
        for _ in range(wanted - len(instances)):
            new = control.provision(component)
            if new is None:
                break  # at max_instances
            added.append(new)
        if not added or instances[0].stateful:
            return
        # Calls already queued would wait for the old instances: give the new ones a share.
        share = math.ceil(sum(i.queue_length for i in instances) / (len(instances) + len(added)))
        targets = [new for new in added for _ in range(share)]
        for busy in sorted(instances, key=lambda i: -i.queue_length):
            for future in view.queued(busy.id, min(busy.queue_length - share, len(targets))):
                control.migrate(future.id, busy.id, targets.pop())

    def _maybe_scale_down(self, view: MetricsView, control: Control, component: str,
                          instances: list[InstanceMetrics], needed: int) -> None:
        """One idle instance fewer, once ``needed`` (for the peak of the look-back window)
        stayed below the count for ``downscale_delay``."""
        if needed >= len(instances):
            self._low_since.pop(component, None)
            return
        since = self._low_since.setdefault(component, view.now)
        idle = [i for i in instances if i.load == 0 and i.kind == "tool"]
        if view.now - since >= self.downscale_delay and idle and control.kill(idle[-1].id):
            self._low_since[component] = view.now  # one at a time, each after a full delay

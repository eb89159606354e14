"""Default policies: each reads like the paper's examples."""

from __future__ import annotations

from ._api import Control, MetricsView, Policy


class LeastLoaded(Policy):
    """Load-balanced weighted routing: weight each instance by its free capacity."""

    name = "least-loaded"

    def step(self, view: MetricsView, control: Control) -> None:
        for component in view.components():
            instances = view.of(component)
            if len(instances) < 2:
                continue
            weights = [max(i.capacity - i.load, 0) + 0.1 for i in instances]
            control.route_weights(component, [i.id for i in instances], weights)


class Compose(Policy):
    """Several policies in one loop, in order (later ones may override earlier ones)."""

    name = "compose"

    def __init__(self, *policies: Policy) -> None:
        self.policies = policies
        self.name = "+".join(p.name for p in policies)

    def step(self, view: MetricsView, control: Control) -> None:
        for policy in self.policies:
            policy.step(view, control)

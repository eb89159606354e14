"""The driver's table of KV-cache residency: which sessions' prefixes each instance's GPUs hold.

Fed by the ``cache`` reports on ``Done`` messages (``nalarc._residency``: the
engines record, the worker attaches), read by policies as
``MetricsView.residency``.  Updating costs a dictionary write per report; a
policy round reads the live mapping (no copy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..policies import CachedPrefix


class Residency:
    """instance -> session -> :class:`CachedPrefix` (summed over the instance's models)."""

    def __init__(self) -> None:
        self.by_instance: dict[str, dict[str, CachedPrefix]] = {}
        #: (instance, session) -> model -> (tokens, rewarm seconds): what the sum is made of
        self._parts: dict[tuple[str, str], dict[str, tuple[int, float]]] = {}

    def update(self, instance: str, reports: Iterable[tuple[str, str, int, float]]) -> None:
        held = self.by_instance.setdefault(instance, {})
        for session, model, tokens, rewarm in reports:
            parts = self._parts.setdefault((instance, session), {})
            if tokens > 0:
                parts[model] = (tokens, rewarm)
            else:
                parts.pop(model, None)
            if parts:
                held[session] = CachedPrefix(sum(t for t, _ in parts.values()), sum(r for _, r in parts.values()))
            else:
                held.pop(session, None)
                del self._parts[(instance, session)]

    def forget(self, instance: str) -> None:
        """The instance is gone, and its GPU's cache with it."""
        for session in self.by_instance.pop(instance, {}):
            self._parts.pop((instance, session), None)

    def view(self) -> Mapping[str, Mapping[str, CachedPrefix]]:
        return self.by_instance

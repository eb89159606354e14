"""Rate-limit quotas of the simulated server: 429 with ``Retry-After`` and OpenAI's error body when over.

Each model with a quota has a request bucket and a token bucket (the
:class:`~nalarc._flow.TokenBucket` the driver's limiter uses too).  A request
is admitted when both buckets hold its cost: one request, and its prompt
tokens plus ``max_tokens`` (per conversation).  Once it is answered, the token
bucket is corrected to the real usage (a refund when the reply was shorter than
``max_tokens``; a request without ``max_tokens`` pays its completion then),
as a provider counting an estimate at admission would.

Configured with ``start(quotas={"gpt": ModelLimit(tpm=1000)})``, or for the
embedded server and ``python -m nalarc.llm`` with ``NALARC_LLM_QUOTAS``:
``"MODEL:rpm=N,tpm=N,window=S,burst=S;MODEL2:..."`` (``*`` for any model).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import NalarcError
from .._flow import ANY_MODEL, ModelLimit, TokenBucket, parse_limits


@dataclass(frozen=True)
class OverQuota(Exception):
    """A request the server answers with 429."""

    model: str
    #: "requests" or "tokens": the limit it hit (OpenAI's error ``type``)
    kind: str
    limit: int
    requested: int
    retry_after: float

    def message(self) -> str:
        unit = "RPM" if self.kind == "requests" else "TPM"
        return (f"Rate limit reached for {self.model} on {self.kind} per min ({unit}): Limit {self.limit}, "
                f"Requested {self.requested}. Please try again in {self.retry_after:.3f}s.")


class _ModelQuota:
    def __init__(self, limit: ModelLimit) -> None:
        self.limit = limit
        self.requests, self.tokens = limit.buckets()


class Quotas:
    """Every model's quota, thread-safe (the server answers from a thread per connection)."""

    def __init__(self, limits: Mapping[str, ModelLimit]) -> None:
        self._limits = dict(limits)
        self._models: dict[str, _ModelQuota] = {}
        self._lock = threading.Lock()
        #: model -> requests answered with 429
        self.rejected: dict[str, int] = {}
        #: model -> requests admitted
        self.admitted: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._limits)

    def _quota(self, model: str) -> _ModelQuota | None:
        quota = self._models.get(model)
        if quota is None:
            limit = self._limits.get(model) or self._limits.get(ANY_MODEL)
            if limit is None:
                return None
            quota = self._models[model] = _ModelQuota(limit)
        return quota

    def admit(self, model: str, tokens: int) -> None:
        """Charge one request of ``tokens`` booked tokens, or raise :class:`OverQuota` (charging nothing)."""
        with self._lock:
            quota = self._quota(model)
            if quota is None:
                return
            now = time.monotonic()
            wait = quota.requests.take(1, now) if quota.requests is not None else 0.0
            if wait:
                self._reject(model, "requests", quota.limit.rpm, 1, wait)
            if quota.tokens is not None:
                wait = quota.tokens.take(tokens, now)
                if wait:
                    if quota.requests is not None:
                        quota.requests.refund(1, now)
                    self._reject(model, "tokens", quota.limit.tpm, tokens, wait)
            self.admitted[model] = self.admitted.get(model, 0) + 1

    def _reject(self, model: str, kind: str, limit: int | None, requested: int, wait: float) -> None:
        self.rejected[model] = self.rejected.get(model, 0) + 1
        raise OverQuota(model, kind, limit or 0, requested, wait)

    def settle(self, model: str, booked: int, used: int) -> None:
        """The request used ``used`` tokens of the ``booked`` ones."""
        with self._lock:
            quota = self._models.get(model)
            if quota is not None and quota.tokens is not None:
                quota.tokens.refund(booked - used, time.monotonic())


def parse_quotas(text: str) -> dict[str, ModelLimit]:
    """``"gpt:rpm=60,tpm=1000,window=2;*:tpm=500"`` -> limits by model."""
    return parse_limits(text, "NALARC_LLM_QUOTAS")


def retry_after_header(seconds: float) -> str:
    """``Retry-After`` takes whole seconds: rounded up, so a client honouring it is never early."""
    return str(max(1, math.ceil(seconds)))

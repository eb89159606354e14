"""A simulated LLM engine: what a GPU serving one model costs, without the GPU.

Per engine (one per agent instance): prefill and decode cost per token;
continuous batching with a limited number of sequences in flight (each extra
sequence slows decoding a little, as on a real GPU); a KV cache of session
prefixes (a hit makes prefill cheaper; eviction is LRU by tokens); heavy-tailed
output lengths (lognormal); everything deterministic under a seed; and all
times divided by ``time_scale`` so experiments can be compressed.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from .. import _residency


@dataclass(frozen=True)
class EngineConfig:
    """Costs and limits of one simulated model server."""

    prefill_s_per_token: float = 0.0004
    decode_s_per_token: float = 0.02
    #: Sequences decoded together (continuous batching).
    max_batch: int = 8
    #: Decode slows by this fraction per extra sequence in the batch.
    batch_slowdown: float = 0.05
    #: Prefill cost of cached prefix tokens, as a fraction of the full cost.
    cache_hit_cost: float = 0.1
    cache_capacity_tokens: int = 200_000
    #: Output length: lognormal with this median (tokens) and sigma.
    output_median_tokens: int = 120
    output_sigma: float = 0.8
    max_output_tokens: int = 2048
    #: Simulated seconds per real second (1000: a 10 s call takes 10 ms).
    time_scale: float = 1.0
    seed: int = 0


@dataclass
class Usage:
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    #: simulated seconds of the whole generation, and of its prefill
    seconds: float
    prefill_seconds: float = 0.0


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: about 4 characters a token."""
    return max(1, math.ceil(len(text) / 4))


@dataclass
class SimulatedEngine:
    """One model server's worth of simulated cost (thread-safe)."""

    config: EngineConfig = field(default_factory=EngineConfig)
    #: The agent instance this engine serves, and its model: set, the engine reports
    #: its cache's changes for the driver (``nalarc._residency``).
    instance: str | None = None
    model: str = "default"

    def __post_init__(self) -> None:
        self._slots = threading.BoundedSemaphore(self.config.max_batch)
        self._lock = threading.Lock()
        self._active = 0
        self._cache: OrderedDict[str, int] = OrderedDict()  # session -> cached prefix tokens
        self._cached_total = 0

    # -- KV cache -------------------------------------------------------

    def cached_tokens(self, session: str) -> int:
        """Prefix tokens of ``session`` resident in this engine's cache (policies may read it)."""
        with self._lock:
            return self._cache.get(session, 0)

    def rewarm_seconds(self, tokens: int) -> float:
        """Real seconds ``tokens`` of prefix add to a prefill when they are not cached."""
        config = self.config
        return tokens * config.prefill_s_per_token * (1 - config.cache_hit_cost) / config.time_scale

    def _remember(self, session: str, tokens: int, prompt_tokens: int) -> None:
        """Cache ``tokens`` of the session's prefix; report it, with the re-warm cost of the part a next
        prompt like this one (``prompt_tokens`` long) would reuse: a chat that grows reuses all of its
        last prompt, an agent asked a new short question each time hardly any."""
        evicted_sessions = []
        with self._lock:
            self._cached_total -= self._cache.pop(session, 0)
            self._cache[session] = tokens
            self._cached_total += tokens
            while self._cached_total > self.config.cache_capacity_tokens and len(self._cache) > 1:
                gone, evicted = self._cache.popitem(last=False)
                self._cached_total -= evicted
                evicted_sessions.append(gone)
        if self.instance is not None:
            reused = min(tokens, prompt_tokens)
            _residency.record(self.instance, session, self.model, tokens, self.rewarm_seconds(reused))
            for gone in evicted_sessions:
                _residency.record(self.instance, gone, self.model, 0, 0.0)

    def drop(self, session: str) -> int:
        """Forget a session's prefix (it moved elsewhere); returns the tokens dropped."""
        with self._lock:
            tokens = self._cache.pop(session, 0)
            self._cached_total -= tokens
        if self.instance is not None and tokens:
            _residency.record(self.instance, session, self.model, 0, 0.0)
        return tokens

    # -- generation -----------------------------------------------------

    def output_tokens(self, key: str, limit: int | None = None) -> int:
        """Heavy-tailed, deterministic under (seed, key); at most ``limit`` (``max_tokens``)."""
        digest = hashlib.sha256(f"{self.config.seed}:{key}".encode()).digest()
        rng = random.Random(digest)
        tokens = int(rng.lognormvariate(math.log(self.config.output_median_tokens), self.config.output_sigma))
        return max(1, min(tokens, self.config.max_output_tokens, limit or self.config.max_output_tokens))

    def generate(self, prompt: str, session: str, key: str, max_tokens: int | None = None) -> tuple[str, Usage]:
        """Block for the simulated time; return a deterministic completion."""
        texts, usage = self.generate_batch([prompt], session, [key], max_tokens)
        return texts[0], usage

    def generate_batch(self, prompts: list[str], session: str, keys: list[str],
                       max_tokens: int | None = None) -> tuple[list[str], Usage]:
        """Several sequences in one batch slot: prefills add up, decode lasts as long as the longest."""
        outs = [self.output_tokens(k, max_tokens) for k in keys]
        with self._slot(prompts, session, outs) as usage:
            time.sleep(usage.seconds / self.config.time_scale)
        texts = [_text(k, out) for k, out in zip(keys, outs)]
        return texts, usage

    def generate_stream(self, prompt: str, session: str, key: str, max_tokens: int | None = None,
                        usage_out: list[Usage] | None = None) -> Iterator[str]:
        """:meth:`generate` as text deltas: the prefill before the first, the decode spread over the rest.

        The deltas join to :meth:`generate`'s text and the whole lasts as long;
        the usage is appended to ``usage_out`` once the last delta is out.
        """
        out = self.output_tokens(key, max_tokens)
        words = _text(key, out).split(" ")
        with self._slot([prompt], session, [out]) as usage:
            decode = usage.seconds - usage.prefill_seconds
            time.sleep(usage.prefill_seconds / self.config.time_scale)
            for i, word in enumerate(words):
                time.sleep(decode / len(words) / self.config.time_scale)
                yield word if i == 0 else " " + word
        if usage_out is not None:
            usage_out.append(usage)

    @contextlib.contextmanager
    def _slot(self, prompts: list[str], session: str, outs: list[int]) -> Iterator[Usage]:
        """Hold a batch slot for one generation and price it; the caller sleeps the time."""
        config = self.config
        prompt_tokens = [count_tokens(p) for p in prompts]
        with self._slots:
            with self._lock:
                self._active += 1
                batch = self._active + len(prompts) - 1
            try:
                cached = min(self.cached_tokens(session), prompt_tokens[0])
                uncached = sum(prompt_tokens) - cached
                prefill = (uncached + cached * config.cache_hit_cost) * config.prefill_s_per_token
                decode = max(outs) * config.decode_s_per_token * (1 + config.batch_slowdown * (batch - 1))
                yield Usage(sum(prompt_tokens), cached, sum(outs), prefill + decode, prefill)
                self._remember(session, prompt_tokens[-1] + outs[-1], prompt_tokens[-1])
            finally:
                with self._lock:
                    self._active -= 1


_WORDS = (
    "the market revenue growth risk bond yield stock rate outlook analysis code test plan "
    "function result data model user request answer summary report value trend signal"
).split()


def _text(key: str, tokens: int) -> str:
    rng = random.Random(hashlib.sha256(key.encode()).digest())
    return " ".join(rng.choice(_WORDS) for _ in range(min(tokens, 40)))

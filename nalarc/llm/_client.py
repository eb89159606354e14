"""An OpenAI-compatible chat client: a real endpoint when configured, else the simulated engine."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import urllib.request
import zlib
from collections.abc import Sequence
from typing import Any

from .._errors import NalarcError
from .._state import current_instance, current_session
from ._engine import EngineConfig, SimulatedEngine

Message = dict[str, str]

_ENGINES: dict[tuple[str, str], SimulatedEngine] = {}
_ENGINES_LOCK = threading.Lock()
#: model -> cost overrides for its simulated engines (see :func:`simulate`)
_MODELS: dict[str, dict[str, Any]] = {}


def simulate(model: str, **costs: Any) -> None:
    """Describe ``model``'s simulated GPU: any :class:`EngineConfig` field but ``time_scale`` and ``seed``.

    ``simulate("coder", decode_s_per_token=0.04)`` makes a bigger, slower model.
    Call it at module level in the app, so that every worker process that
    imports the app knows it.  Real endpoints ignore it.
    """
    fields = {f.name for f in dataclasses.fields(EngineConfig)} - {"time_scale", "seed"}
    unknown = set(costs) - fields
    if unknown:
        raise NalarcError(f"simulate({model!r}): unknown settings {sorted(unknown)}; known: {sorted(fields)}")
    with _ENGINES_LOCK:
        _MODELS[model] = dict(costs)


def engine_for(model: str, replica: str | None = None, config: EngineConfig | None = None) -> SimulatedEngine:
    """The simulated engine (one GPU) serving ``model`` for ``replica``.

    Served by nalarc, the replica is the agent instance running the call, so
    every instance has its own GPU, batch slots and KV cache.  In plain
    Python there are ``NALARC_LLM_REPLICAS`` engines per model (default 1) and
    a session always uses the same one, as a hand-written client pool would.
    """
    replica = replica or _replica()
    with _ENGINES_LOCK:
        engine = _ENGINES.get((model, replica))
        if engine is None:
            config = config or dataclasses.replace(config_from_env(), **_MODELS.get(model, {}))
            engine = _ENGINES[(model, replica)] = SimulatedEngine(config)
        return engine


def _replica() -> str:
    instance = current_instance()
    if instance is not None:
        return instance
    replicas = int(os.environ.get("NALARC_LLM_REPLICAS", "1"))
    return f"plain-{zlib.crc32(current_session().encode()) % max(replicas, 1)}"


def config_from_env() -> EngineConfig:
    """``NALARC_LLM_TIME_SCALE``, ``NALARC_LLM_SEED`` and ``NALARC_LLM_MAX_BATCH`` over the defaults."""
    env = os.environ
    return EngineConfig(
        time_scale=float(env.get("NALARC_LLM_TIME_SCALE", "1")),
        seed=int(env.get("NALARC_LLM_SEED", "0")),
        max_batch=int(env.get("NALARC_LLM_MAX_BATCH", str(EngineConfig.max_batch))),
    )


def chat(
    messages: Sequence[Message],
    *,
    model: str = "default",
    max_tokens: int | None = None,
    base_url: str | None = None,
    timeout: float = 600.0,
) -> str:
    """One chat completion: the reply's text.

    With ``base_url`` (or ``OPENAI_BASE_URL``) set, POSTs to
    ``{base_url}/chat/completions`` (``OPENAI_API_KEY`` as bearer token);
    otherwise the simulated engine for ``model`` answers, deterministically.
    """
    url = base_url or os.environ.get("OPENAI_BASE_URL")
    if url:
        return _remote(url, messages, model, max_tokens, timeout)
    prompt = _prompt(messages)
    text, _ = engine_for(model).generate(prompt, current_session(), f"{model}|{prompt}", max_tokens)
    return text


def chat_batch(conversations: Sequence[Sequence[Message]], *, model: str = "default",
               max_tokens: int | None = None, base_url: str | None = None, timeout: float = 600.0) -> list[str]:
    """Several chat completions as one batched generation (for ``batchable`` agents).

    A real endpoint batches on its own: the requests are sent one after
    another.  The simulated engine runs them in one batch slot: the prefills
    add up, the decode lasts as long as the longest reply.
    """
    url = base_url or os.environ.get("OPENAI_BASE_URL")
    if url:
        return [_remote(url, messages, model, max_tokens, timeout) for messages in conversations]
    prompts = [_prompt(messages) for messages in conversations]
    keys = [f"{model}|{prompt}" for prompt in prompts]
    texts, _ = engine_for(model).generate_batch(prompts, current_session(), keys, max_tokens)
    return texts


def _prompt(messages: Sequence[Message]) -> str:
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)


def _remote(url: str, messages: Sequence[Message], model: str, max_tokens: int | None, timeout: float) -> str:
    body: dict[str, Any] = {"model": model, "messages": list(messages)}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    request = urllib.request.Request(
        url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', 'none')}"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the configured endpoint
        data = json.loads(response.read())
    try:
        return str(data["choices"][0]["message"]["content"])
    except (KeyError, IndexError, TypeError):
        raise NalarcError(f"{url}: not an OpenAI chat completion response: {str(data)[:200]}") from None

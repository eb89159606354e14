"""An OpenAI-compatible chat client: a real endpoint when configured, else the simulated engine."""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Sequence
from typing import Any

from .._errors import NalarcError
from .._state import current_session
from ._engine import EngineConfig, SimulatedEngine

Message = dict[str, str]

_ENGINES: dict[str, SimulatedEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(model: str, config: EngineConfig | None = None) -> SimulatedEngine:
    """The simulated engine serving ``model`` in this process (one per agent instance)."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(model)
        if engine is None:
            engine = _ENGINES[model] = SimulatedEngine(config or _config_from_env())
        return engine


def _config_from_env() -> EngineConfig:
    scale = float(os.environ.get("NALARC_LLM_TIME_SCALE", "1"))
    seed = int(os.environ.get("NALARC_LLM_SEED", "0"))
    return EngineConfig(time_scale=scale, seed=seed)


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
    prompt = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages)
    text, _ = engine_for(model).generate(prompt, current_session(), f"{model}|{prompt}")
    return text


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

"""LLM calls for apps: an OpenAI-compatible client, or a simulated engine when no endpoint is set."""

from __future__ import annotations

from ._client import chat as chat
from ._client import chat_batch as chat_batch
from ._client import config_from_env as config_from_env
from ._client import engine_for as engine_for
from ._client import simulate as simulate
from ._engine import EngineConfig as EngineConfig
from ._engine import SimulatedEngine as SimulatedEngine
from ._engine import Usage as Usage
from ._engine import count_tokens as count_tokens

__all__ = ["EngineConfig", "SimulatedEngine", "Usage", "chat", "chat_batch", "config_from_env", "count_tokens", "engine_for", "simulate"]

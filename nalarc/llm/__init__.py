"""LLM calls for apps through the ``openai`` SDK: a configured endpoint, or simulated engines on loopback."""

from __future__ import annotations

from ._client import AsyncChatStream as AsyncChatStream
from ._client import ChatResult as ChatResult
from ._client import ChatStream as ChatStream
from ._client import LLMError as LLMError
from ._client import TokenUsage as TokenUsage
from ._client import ToolCall as ToolCall
from ._client import achat as achat
from ._client import chat as chat
from ._client import chat_batch as chat_batch
from ._client import config_from_env as config_from_env
from ._client import engine_for as engine_for
from ._client import simulate as simulate
from ._client import warm_up as warm_up
from ._engine import EngineConfig as EngineConfig
from ._engine import SimulatedEngine as SimulatedEngine
from ._engine import Usage as Usage
from ._engine import count_tokens as count_tokens
from ._server import LLMServer as LLMServer
from ._server import embedded as embedded_server
from ._server import start as start_server

__all__ = ["AsyncChatStream", "ChatResult", "ChatStream", "EngineConfig", "LLMError", "LLMServer", "SimulatedEngine",
           "TokenUsage", "ToolCall", "Usage", "achat", "chat", "chat_batch", "config_from_env", "count_tokens",
           "embedded_server", "engine_for", "simulate", "start_server", "warm_up"]

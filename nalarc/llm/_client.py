"""Chat calls through the official ``openai`` SDK: a configured endpoint, else the loopback simulated server."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import urllib.parse
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from .. import _telemetry
from .._errors import NalarcError
from .._state import current_instance, current_session
from . import _server
from ._booking import Booking, abook, book, settle
from ._engine import EngineConfig, SimulatedEngine

# Imported with the app rather than on its first call (a third of a second): in a served
# app that is worker start-up, not the first request's latency.
import openai

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletion, ChatCompletionChunk

Message = Mapping[str, Any]

_ENGINES: dict[tuple[str, str], SimulatedEngine] = {}
_ENGINES_LOCK = threading.Lock()
#: model -> cost overrides for its simulated engines (see :func:`simulate`)
_MODELS: dict[str, dict[str, Any]] = {}


class LLMError(NalarcError):
    """A chat call failed: the endpoint answered an HTTP error, or could not be reached.

    ``status_code`` is the HTTP status (None when no answer came); for a 429,
    ``retry_after`` is the seconds the server asked to wait (its ``Retry-After``).
    Picklable, so it crosses worker processes like any component's exception.
    """

    def __init__(self, message: str, status_code: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code, self.retry_after = status_code, retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (LLMError, (str(self), self.status_code, self.retry_after))


# -- results ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int
    #: prompt tokens served from the (simulated or real) prefix cache
    cached_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    #: the arguments as the model wrote them (JSON text); :meth:`parsed` decodes them
    arguments: str

    def parsed(self) -> Any:
        return json.loads(self.arguments or "{}")


@dataclasses.dataclass(frozen=True)
class ChatResult:
    """``chat(..., full=True)``: the reply with its usage and tool calls."""

    text: str
    usage: TokenUsage | None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    model: str = ""


# -- simulated engines --------------------------------------------------------


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
            engine = _ENGINES[(model, replica)] = SimulatedEngine(config, replica, model)
        return engine


def known_models() -> list[str]:
    """Models the simulated server lists: ``default``, those described by :func:`simulate`, those used."""
    with _ENGINES_LOCK:
        return sorted({"default", *_MODELS, *(model for model, _ in _ENGINES)})


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


# -- SDK clients --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Target:
    base_url: str
    api_key: str
    #: the embedded simulated server: nalarc headers go along, proxies from the environment do not
    embedded: bool


def _target(base_url: str | None) -> _Target:
    url = base_url or os.environ.get("OPENAI_BASE_URL")
    if url:
        return _Target(url, os.environ.get("OPENAI_API_KEY") or "none", embedded=False)
    return _Target(_server.embedded().url, "nalarc-simulated", embedded=True)


def _max_retries() -> int:
    return int(os.environ.get("NALARC_LLM_MAX_RETRIES", "2"))


_SYNC: dict[tuple[int, _Target, int], openai.OpenAI] = {}
_SYNC_LOCK = threading.Lock()


def _sync_client(target: _Target) -> openai.OpenAI:
    """One SDK client (one connection pool) per endpoint per process; httpx clients are thread-safe."""
    key = (os.getpid(), target, _max_retries())  # a forked child must not share its parent's sockets
    with _SYNC_LOCK:
        client = _SYNC.get(key)
        if client is None:
            http = _loopback_http(openai.DefaultHttpxClient) if target.embedded else None
            client = _SYNC[key] = openai.OpenAI(base_url=target.base_url, api_key=target.api_key,
                                                max_retries=key[2], http_client=http)
        return client


#: event loop (asyncio loop or trio token) -> its clients; a finished loop's clients go with it
_ASYNC: weakref.WeakKeyDictionary[object, dict[tuple[_Target, int], openai.AsyncOpenAI]] = weakref.WeakKeyDictionary()


def _async_client(target: _Target) -> openai.AsyncOpenAI:
    """One async SDK client per endpoint per event loop: its connections belong to the loop that opened them."""
    clients = _ASYNC.setdefault(_running_loop(), {})
    key = (target, _max_retries())
    client = clients.get(key)
    if client is None:
        http = _loopback_http(openai.DefaultAsyncHttpxClient) if target.embedded else None
        client = clients[key] = openai.AsyncOpenAI(base_url=target.base_url, api_key=target.api_key,
                                                   max_retries=key[1], http_client=http)
    return client


_HTTP = TypeVar("_HTTP")


def _loopback_http(factory: Callable[..., _HTTP]) -> _HTTP:
    """The embedded server's HTTP client: no proxies from the environment (nothing may leave the
    machine), and no TLS context (plain http on 127.0.0.1; loading the CA bundle costs 80 ms)."""
    return factory(trust_env=False, verify=False)


def warm_up() -> None:
    """Set the client up now, so the first call pays no set-up (about 150 ms in a fresh process).

    Builds the client and loads the chat resource (openai imports it on first
    use); with the embedded simulated server, also starts it and opens a
    connection to it.  A real endpoint is not contacted.
    """
    target = _target(None)
    client = _sync_client(target)
    client.chat.completions  # noqa: B018 - openai loads the resource's modules on first access
    if target.embedded:
        client.models.list()


def _running_loop() -> object:
    import sniffio

    if sniffio.current_async_library() == "trio":
        import trio

        return trio.lowlevel.current_trio_token()
    import asyncio

    return asyncio.get_running_loop()


def _request(target: _Target, messages: Sequence[Message], model: str, max_tokens: int | None,
             timeout: float, tools: Sequence[Mapping[str, Any]] | None, tool_choice: Any) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` common to every call."""
    kwargs: dict[str, Any] = {"model": model, "messages": list(messages), "timeout": timeout}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if tools:
        kwargs["tools"] = list(tools)
    if tool_choice is not None:
        kwargs["tool_choice"] = tool_choice
    if target.embedded:
        # which simulated engine and KV cache: exactly what the in-process call chose
        kwargs["extra_headers"] = {_server.INSTANCE_HEADER: _replica(), _server.SESSION_HEADER: current_session()}
    return kwargs


def _llm_error(target: _Target, error: Exception) -> LLMError:
    status = error.status_code if isinstance(error, openai.APIStatusError) else None
    where = "the simulated LLM server" if target.embedded else target.base_url
    body = getattr(error, "body", None)
    inner = body.get("error", body) if isinstance(body, dict) else None
    # the server's own words when it sent an OpenAI error object, else the SDK's
    detail = inner.get("message") if isinstance(inner, dict) and inner.get("message") else None
    detail = detail or getattr(error, "message", None) or str(error)
    code = f"HTTP {status}: " if status is not None else ""
    return LLMError(f"{where}: {code}{detail}", status, _retry_after(error))


def _retry_after(error: Exception) -> float | None:
    """The wait a 429 (or 503) asked for: ``retry-after-ms``, else ``Retry-After`` in seconds."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                return float(value) / scale
            except ValueError:
                continue
    return None


def _used(usage: TokenUsage | None) -> int | None:
    return usage.prompt_tokens + usage.completion_tokens if usage is not None else None


def _used_by_failure(error: Exception) -> int | None:
    """An error answer used no tokens; after a timeout or a lost connection nobody knows (the booking stands)."""
    return 0 if isinstance(error, openai.APIStatusError) else None


def _result(completion: ChatCompletion) -> ChatResult:
    if not completion.choices:
        raise LLMError(f"not an OpenAI chat completion (no choices): {str(completion)[:200]}")
    choice = completion.choices[0]
    calls = tuple(ToolCall(c.id, c.function.name, c.function.arguments)
                  for c in (choice.message.tool_calls or ()) if c.type == "function")
    return ChatResult(choice.message.content or "", _usage(completion.usage), calls, choice.finish_reason,
                      completion.model)


def _usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) or 0
    return TokenUsage(usage.prompt_tokens, usage.completion_tokens, cached)


# -- streaming ----------------------------------------------------------------


class _Accumulator:
    """Folds stream chunks into the :class:`ChatResult` a non-streamed call would have returned."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage: TokenUsage | None = None
        self.finish: str | None = None
        self.model = ""

    def add(self, chunk: ChatCompletionChunk) -> str:
        self.model = chunk.model or self.model
        if chunk.usage is not None:
            self.usage = _usage(chunk.usage)
        delta_text = ""
        for choice in chunk.choices[:1]:
            self.finish = choice.finish_reason or self.finish
            delta_text = choice.delta.content or ""
            for call in choice.delta.tool_calls or ():
                slot = self.calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] = call.id or slot["id"]
                if call.function is not None:
                    slot["name"] += call.function.name or ""
                    slot["arguments"] += call.function.arguments or ""
        self.parts.append(delta_text)
        return delta_text

    def result(self) -> ChatResult:
        calls = tuple(ToolCall(c["id"], c["name"], c["arguments"]) for _, c in sorted(self.calls.items()))
        return ChatResult("".join(self.parts), self.usage, calls, self.finish, self.model)


class _Stream:
    """What a sync and an async stream share: the accumulated result, once read to its end."""

    def __init__(self, stream: Any, target: _Target, booking: Booking | None = None) -> None:
        self._stream, self._target, self._booking = stream, target, booking
        self._acc = _Accumulator()
        self._done = False

    def _settle(self) -> None:
        """Over: settle its booking with the usage of its last chunk (unknown if abandoned: the booking stands)."""
        settle(self._booking, _used(self._acc.usage) if self._done else None)

    @property
    def result(self) -> ChatResult:
        if not self._done:
            raise NalarcError(f"{type(self).__name__}.result: the stream has not been read to its end")
        return self._acc.result()


class ChatStream(_Stream):
    """``chat(..., stream=True)``: iterate for the text deltas; ``result`` once they are all out."""

    def __iter__(self) -> Iterator[str]:
        try:
            for chunk in self._stream:
                text = self._acc.add(chunk)
                if text:
                    yield text
        except openai.APIError as error:
            self._settle()
            raise _llm_error(self._target, error) from error
        self._done = True
        self._settle()

    def close(self) -> None:
        self._settle()
        self._stream.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncChatStream(_Stream):
    """``achat(..., stream=True)``: ``async for`` the text deltas; ``result`` once they are all out."""

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            async for chunk in self._stream:
                text = self._acc.add(chunk)
                if text:
                    yield text
        except openai.APIError as error:
            self._settle()
            raise _llm_error(self._target, error) from error
        self._done = True
        self._settle()

    async def aclose(self) -> None:
        self._settle()
        await self._stream.close()


# -- the API ------------------------------------------------------------------


@overload
def chat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ..., base_url: str | None = ...,
         timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ..., tool_choice: Any = ...,
         full: Literal[False] = ..., stream: Literal[False] = ...) -> str: ...
@overload
def chat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ..., base_url: str | None = ...,
         timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ..., tool_choice: Any = ...,
         full: Literal[True], stream: Literal[False] = ...) -> ChatResult: ...
@overload
def chat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ..., base_url: str | None = ...,
         timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ..., tool_choice: Any = ...,
         full: bool = ..., stream: Literal[True]) -> ChatStream: ...
def chat(
    messages: Sequence[Message],
    *,
    model: str = "default",
    max_tokens: int | None = None,
    base_url: str | None = None,
    timeout: float = 600.0,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    full: bool = False,
    stream: bool = False,
) -> str | ChatResult | ChatStream:
    """One chat completion through the ``openai`` SDK: the reply's text.

    ``full=True`` returns a :class:`ChatResult` (text, usage, tool calls);
    ``stream=True`` a :class:`ChatStream` of text deltas.  With ``base_url``
    (or ``OPENAI_BASE_URL``) set the call goes there (``OPENAI_API_KEY`` as
    key); otherwise to this process's simulated server on 127.0.0.1, where
    the engine for ``model`` and the calling instance answers, deterministically.
    HTTP errors raise :class:`LLMError` (after the SDK's ``NALARC_LLM_MAX_RETRIES``
    retries of 408/409/429/5xx, default 2).
    """
    target = _target(base_url)
    kwargs = _request(target, messages, model, max_tokens, timeout, tools, tool_choice)
    client = _sync_client(target)
    booking = book(model, (messages,), max_tokens)
    try:
        if stream:
            chunks = client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
            return ChatStream(chunks, target, booking)
        with _telemetry.chat_span(model, _host(target)) as span:
            result = _result(client.chat.completions.create(**kwargs))
            _traced(span, result)
    except openai.APIError as error:
        settle(booking, _used_by_failure(error))
        raise _llm_error(target, error) from error
    settle(booking, _used(result.usage))
    return result if full else result.text


@overload
async def achat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ...,
                base_url: str | None = ..., timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ...,
                tool_choice: Any = ..., full: Literal[False] = ..., stream: Literal[False] = ...) -> str: ...
@overload
async def achat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ...,
                base_url: str | None = ..., timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ...,
                tool_choice: Any = ..., full: Literal[True], stream: Literal[False] = ...) -> ChatResult: ...
@overload
async def achat(messages: Sequence[Message], *, model: str = ..., max_tokens: int | None = ...,
                base_url: str | None = ..., timeout: float = ..., tools: Sequence[Mapping[str, Any]] | None = ...,
                tool_choice: Any = ..., full: bool = ..., stream: Literal[True]) -> AsyncChatStream: ...
async def achat(
    messages: Sequence[Message],
    *,
    model: str = "default",
    max_tokens: int | None = None,
    base_url: str | None = None,
    timeout: float = 600.0,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: Any = None,
    full: bool = False,
    stream: bool = False,
) -> str | ChatResult | AsyncChatStream:
    """:func:`chat` for async code (trio or asyncio), through ``openai.AsyncOpenAI``."""
    target = _target(base_url)
    kwargs = _request(target, messages, model, max_tokens, timeout, tools, tool_choice)
    client = _async_client(target)
    booking = await abook(model, (messages,), max_tokens)
    try:
        if stream:
            chunks = await client.chat.completions.create(**kwargs, stream=True,
                                                          stream_options={"include_usage": True})
            return AsyncChatStream(chunks, target, booking)
        with _telemetry.chat_span(model, _host(target)) as span:
            result = _result(await client.chat.completions.create(**kwargs))
            _traced(span, result)
    except openai.APIError as error:
        settle(booking, _used_by_failure(error))
        raise _llm_error(target, error) from error
    settle(booking, _used(result.usage))
    return result if full else result.text


def _host(target: _Target) -> str:
    return urllib.parse.urlsplit(target.base_url).hostname or ""


def _traced(span: Any, result: ChatResult) -> None:
    """The ``chat`` span's response attributes (GenAI conventions): model, usage, finish reason."""
    usage = result.usage
    _telemetry.chat_usage(span, result.model, usage.prompt_tokens if usage else None,
                          usage.completion_tokens if usage else None, usage.cached_tokens if usage else 0,
                          result.finish_reason)


def chat_batch(conversations: Sequence[Sequence[Message]], *, model: str = "default",
               max_tokens: int | None = None, base_url: str | None = None, timeout: float = 600.0) -> list[str]:
    """Several chat completions as one batched generation (for ``batchable`` agents).

    A real endpoint batches on its own: the requests are sent one after
    another.  The simulated server runs them in one batch slot (one request,
    the conversations in its ``nalarc_conversations`` field, a choice each):
    the prefills add up, the decode lasts as long as the longest reply.
    """
    target = _target(base_url)
    if not target.embedded:
        return [chat(messages, model=model, max_tokens=max_tokens, base_url=base_url, timeout=timeout)
                for messages in conversations]
    if not conversations:
        return []
    kwargs = _request(target, conversations[0], model, max_tokens, timeout, None, None)
    kwargs["extra_body"] = {_server.BATCH_FIELD: [list(m) for m in conversations]}
    booking = book(model, conversations, max_tokens)
    try:
        completion = _sync_client(target).chat.completions.create(**kwargs)
    except openai.APIError as error:
        settle(booking, _used_by_failure(error))
        raise _llm_error(target, error) from error
    settle(booking, _used(_usage(completion.usage)))
    return [choice.message.content or "" for choice in sorted(completion.choices, key=lambda c: c.index)]

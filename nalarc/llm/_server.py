"""The simulated engines served as an OpenAI-compatible HTTP server (JSON only).

``POST /v1/chat/completions`` (plain, or ``stream: true`` as server-sent
events ending in ``data: [DONE]``) and ``GET /v1/models``.  The engine
answering a request is chosen per (model, replica) exactly as in-process
calls chose it: the client names the replica (the agent instance) and the
session in the ``X-Nalarc-Instance`` and ``X-Nalarc-Session`` headers, so
every instance keeps its own batch slots and KV cache.

A thread per connection: the engines block for their simulated time, and a
blocking handler is the cheapest way to let them (no event loop to hand the
wait back to).  The embedded server (:func:`embedded`) listens on 127.0.0.1
on a free port, started on first use, once per process (a forked child
starts its own: the parent's thread did not survive the fork).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._flow import ModelLimit
from ._engine import Usage, _text, count_tokens
from ._quota import OverQuota, Quotas, parse_quotas, retry_after_header

#: the nalarc extension for ``chat_batch``: several conversations decoded in one batch slot
BATCH_FIELD = "nalarc_conversations"
INSTANCE_HEADER = "X-Nalarc-Instance"
SESSION_HEADER = "X-Nalarc-Session"


class BadRequest(Exception):
    """A request the server answers with 400 (OpenAI's ``invalid_request_error``)."""


def prompt_of(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text a simulated engine prices and keys its reply on (unchanged from the in-process client)."""
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content') or ''}" for m in messages)


@dataclass(frozen=True)
class _Request:
    model: str
    replica: str
    session: str
    conversations: list[list[dict[str, Any]]]
    max_tokens: int | None
    tools: list[dict[str, Any]]
    tool_choice: Any
    stream: bool
    include_usage: bool


def _parse(body: Any, instance: str | None, session: str | None) -> _Request:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    model = body.get("model", "default")
    if not isinstance(model, str) or not model:
        raise BadRequest("'model' must be a non-empty string")
    batch = body.get(BATCH_FIELD)
    conversations = batch if batch is not None else [body.get("messages")]
    if not isinstance(conversations, list) or not conversations:
        raise BadRequest(f"'{BATCH_FIELD}' must be a non-empty list of message lists")
    for messages in conversations:
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise BadRequest("'messages' must be a non-empty list of objects")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest("'max_tokens' must be a positive integer")
    tools = body.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("function"), dict) for t in tools):
        raise BadRequest("'tools' must be a list of {'type': 'function', 'function': {...}} objects")
    stream = bool(body.get("stream", False))
    if stream and batch is not None:
        raise BadRequest(f"'{BATCH_FIELD}' cannot be streamed")
    options = body.get("stream_options") or {}
    return _Request(
        model=model,
        replica=instance or "server",
        session=session or str(body.get("user") or "default"),
        conversations=conversations, max_tokens=max_tokens, tools=tools,
        tool_choice=body.get("tool_choice", "auto"), stream=stream,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
    )


# -- tool calls ---------------------------------------------------------------


def _tool_to_call(request: _Request) -> dict[str, Any] | None:
    """The tool the simulated model calls, or None for a text reply.

    Deterministic: ``tool_choice`` "none" never calls, a named function is
    called, "required" always calls, "auto" calls when the conversation's last
    message is the user's (a tool result or an assistant turn gets a text
    reply, so a tool loop ends).  Which tool: a hash of the prompt.
    """
    choice, tools = request.tool_choice, request.tools
    messages = request.conversations[0]
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        named = [t for t in tools if t["function"].get("name") == name]
        if not named:
            raise BadRequest(f"tool_choice names {name!r}, not one of the tools")
        return named[0]
    if choice != "required" and messages[-1].get("role") != "user":
        return None
    digest = hashlib.sha256(prompt_of(messages).encode()).digest()
    return tools[digest[0] % len(tools)]


def _arguments(tool: Mapping[str, Any], key: str) -> str:
    """JSON arguments filling every property of the tool's schema with a deterministic value."""
    properties = ((tool["function"].get("parameters") or {}).get("properties") or {})
    digest = hashlib.sha256(key.encode()).digest()
    values: dict[str, Any] = {}
    for i, (name, schema) in enumerate(sorted(properties.items())):
        kind = schema.get("type") if isinstance(schema, dict) else None
        byte = digest[i % len(digest)]
        if isinstance(schema, dict) and schema.get("enum"):
            values[name] = schema["enum"][byte % len(schema["enum"])]
        elif kind == "integer":
            values[name] = byte
        elif kind == "number":
            values[name] = byte / 4
        elif kind == "boolean":
            values[name] = byte % 2 == 0
        elif kind == "array":
            values[name] = []
        elif kind == "object":
            values[name] = {}
        else:
            values[name] = _text(f"{key}|{name}", 3)
    return json.dumps(values)


# -- responses ----------------------------------------------------------------


def _usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def _finish(request: _Request, usage: Usage, per_choice_tokens: int) -> str:
    return "length" if request.max_tokens is not None and per_choice_tokens >= request.max_tokens else "stop"


class _Completions:
    """Answers parsed requests from the process's simulated engines."""

    def __init__(self, quotas: Quotas) -> None:
        self._created = int(time.time())
        self.quotas = quotas

    def _admit(self, request: _Request, prompts: list[str]) -> int:
        """Charge the request to its model's quota (raises :class:`OverQuota`); the tokens booked."""
        if not self.quotas:
            return 0
        booked = sum(count_tokens(p) for p in prompts) + (request.max_tokens or 0) * len(prompts)
        self.quotas.admit(request.model, booked)
        return booked

    def _settle(self, request: _Request, booked: int, usage: Usage) -> None:
        if self.quotas:
            self.quotas.settle(request.model, booked, usage.prompt_tokens + usage.completion_tokens)

    def _engine(self, request: _Request) -> Any:
        from ._client import engine_for  # the client owns the engines (and simulate()'s settings)

        return engine_for(request.model, request.replica)

    def _envelope(self, request: _Request, kind: str, key: str) -> dict[str, Any]:
        return {"id": "chatcmpl-" + hashlib.sha256(key.encode()).hexdigest()[:24], "object": kind,
                "created": self._created, "model": request.model}

    def complete(self, request: _Request) -> dict[str, Any]:
        engine = self._engine(request)
        prompts = [prompt_of(m) for m in request.conversations]
        keys = [f"{request.model}|{p}" for p in prompts]
        tool = _tool_to_call(request) if len(prompts) == 1 else None
        booked = self._admit(request, prompts)  # a request refused as bad costs no quota
        if tool is not None:
            arguments = _arguments(tool, keys[0])
            _, usage = engine.generate(prompts[0], request.session, keys[0], _tokens_of(arguments))
            call = {"id": "call_" + hashlib.sha256(keys[0].encode()).hexdigest()[:16], "type": "function",
                    "function": {"name": tool["function"]["name"], "arguments": arguments}}
            choices = [{"index": 0, "finish_reason": "tool_calls", "logprobs": None,
                        "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]
        else:
            texts, usage = engine.generate_batch(prompts, request.session, keys, request.max_tokens)
            choices = [{"index": i, "logprobs": None, "message": {"role": "assistant", "content": text},
                        "finish_reason": _finish(request, usage, engine.output_tokens(k, request.max_tokens))}
                       for i, (text, k) in enumerate(zip(texts, keys))]
        self._settle(request, booked, usage)
        return {**self._envelope(request, "chat.completion", keys[0]), "choices": choices, "usage": _usage_json(usage)}

    def stream(self, request: _Request) -> Generator[dict[str, Any], None, None]:
        engine = self._engine(request)
        prompt = prompt_of(request.conversations[0])
        key = f"{request.model}|{prompt}"
        head = self._envelope(request, "chat.completion.chunk", key)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

        tool = _tool_to_call(request)
        booked = self._admit(request, [prompt])  # before the first chunk: a 429 is an answer, not an event
        if tool is not None:
            arguments = _arguments(tool, key)
            _, usage = engine.generate(prompt, request.session, key, _tokens_of(arguments))
            call = {"index": 0, "id": "call_" + hashlib.sha256(key.encode()).hexdigest()[:16], "type": "function",
                    "function": {"name": tool["function"]["name"], "arguments": arguments}}
            yield chunk({"role": "assistant", "content": None, "tool_calls": [call]})
            yield chunk({}, "tool_calls")
        else:
            yield chunk({"role": "assistant", "content": ""})
            usages: list[Usage] = []
            for delta in engine.generate_stream(prompt, request.session, key, request.max_tokens, usages):
                yield chunk({"content": delta})
            usage = usages[0]
            yield chunk({}, _finish(request, usage, usage.completion_tokens))
        self._settle(request, booked, usage)
        if request.include_usage:
            yield {**head, "choices": [], "usage": _usage_json(usage)}

    def models(self) -> dict[str, Any]:
        from ._client import known_models

        return {"object": "list", "data": [{"id": m, "object": "model", "created": self._created,
                                            "owned_by": "nalarc-simulated"} for m in known_models()]}


def _tokens_of(arguments: str) -> int:
    from ._engine import count_tokens

    return count_tokens(arguments)


# -- HTTP ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's pool reuses connections
    # headers and body go out in separate writes: with Nagle's algorithm on, the body waits
    # for the client's delayed ACK (40 ms a call on Linux)
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        pass  # a request log per LLM call would drown the app's output

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._json(200, self.server.completions.models())
        else:
            self._error(404, f"no route {self.path}", "not_found_error")

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = self.headers.get("Content-Length")
        body = self.rfile.read(int(length)) if length and length.isdigit() else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}", "not_found_error")
            return
        try:
            request = _parse(json.loads(body or b"null"), self.headers.get(INSTANCE_HEADER),
                             self.headers.get(SESSION_HEADER))
            if request.stream:
                self._sse(request)
            else:
                self._json(200, self.server.completions.complete(request))
        except OverQuota as over:
            self._rate_limited(over)
        except (BadRequest, ValueError) as error:
            self._error(400, str(error), "invalid_request_error")
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as error:  # a bug here must reach the caller as an answer, not a dropped connection
            self._error(500, f"{type(error).__name__}: {error}", "server_error")

    def _json(self, status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

    def _rate_limited(self, over: OverQuota) -> None:
        """429 as the real API answers it: ``Retry-After`` (and the SDK's ``retry-after-ms``) and its error body."""
        self._json(429, {"error": {"message": over.message(), "type": over.kind, "param": None,
                                   "code": "rate_limit_exceeded"}},
                   {"Retry-After": retry_after_header(over.retry_after),
                    "retry-after-ms": str(max(1, round(over.retry_after * 1000))),
                    f"x-ratelimit-limit-{over.kind}": str(over.limit)})

    def _sse(self, request: _Request) -> None:
        events = self.server.completions.stream(request)
        first = next(events)  # a bad tool_choice fails here, before the 200 goes out
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in _chain(first, events):
                self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            self._chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            events.close()  # the client went away: free the batch slot now
            self.close_connection = True
        except Exception as error:  # the 200 is out: say it in the stream (the SDK raises on an error event)
            failure = {"error": {"message": f"{type(error).__name__}: {error}", "type": "server_error"}}
            self._chunk(b"data: " + json.dumps(failure).encode() + b"\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], quotas: Quotas) -> None:
        super().__init__(address, _Handler)
        self.completions = _Completions(quotas)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            return  # a client closing its keep-alive connection is no error of the server's
        super().handle_error(request, client_address)


@dataclass
class LLMServer:
    """A running OpenAI-compatible server; ``url`` is its base URL (ending in ``/v1``)."""

    _server: _Server
    _thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def quotas(self) -> Quotas:
        """Its rate-limit quotas, with the requests each model admitted and answered 429 (``rejected``)."""
        return self._server.completions.quotas

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def start(host: str = "127.0.0.1", port: int = 0, quotas: Mapping[str, ModelLimit] | None = None) -> LLMServer:
    """Serve the simulated engines on ``host:port`` (0: a free port) from a background thread.

    ``quotas``: rate limits per model, answered with 429 when over (``_quota``);
    None: those of ``NALARC_LLM_QUOTAS``, if set.
    """
    if quotas is None:
        quotas = parse_quotas(os.environ.get("NALARC_LLM_QUOTAS", ""))
    server = _Server((host, port), Quotas(quotas))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                              name=f"nalarc-llm-server:{server.server_address[1]}", daemon=True)
    thread.start()
    return LLMServer(server, thread)


_EMBEDDED: tuple[int, LLMServer] | None = None
_EMBEDDED_LOCK = threading.Lock()


def embedded() -> LLMServer:
    """This process's loopback server, started on first use."""
    global _EMBEDDED
    with _EMBEDDED_LOCK:
        if _EMBEDDED is None or _EMBEDDED[0] != os.getpid():
            _EMBEDDED = (os.getpid(), start("127.0.0.1", 0))
        return _EMBEDDED[1]

"""nalarc.llm through the real ``openai`` SDK against the real loopback server (no fakes)."""

from __future__ import annotations

import asyncio
import json
import pickle
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trio

import nalarc
from nalarc._state import _instance
from nalarc.llm import LLMError, _client, _server, achat, chat, chat_batch, count_tokens, engine_for, simulate
from nalarc.llm._engine import SimulatedEngine
from nalarc.llm._server import prompt_of

TOOLS = [
    {"type": "function", "function": {"name": "quote", "description": "a stock quote",
                                      "parameters": {"type": "object", "properties": {
                                          "ticker": {"type": "string"}, "days": {"type": "integer"},
                                          "side": {"enum": ["buy", "sell"]}}}}},
    {"type": "function", "function": {"name": "news", "parameters": {"type": "object", "properties": {}}}},
]


def ask(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are an analyst."}, {"role": "user", "content": text}]


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_chat_over_http_is_the_engines_reply_with_its_usage() -> None:
    messages = ask("summarize the bond market")
    with nalarc.session("http-usage"):
        result = chat(messages, model="http-a", full=True)
        again = chat(messages, model="http-a", full=True)
        text = chat(messages, model="http-a")
    prompt = prompt_of(messages)
    reference = SimulatedEngine(engine_for("http-a", "plain-0").config)  # same costs, its own cache
    expected, usage = reference.generate(prompt, "s", f"http-a|{prompt}")
    assert result.text == again.text == text == expected
    assert result.usage is not None and again.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (count_tokens(prompt), usage.completion_tokens)
    assert result.usage.cached_tokens == 0 and again.usage.cached_tokens == count_tokens(prompt)  # the KV cache
    assert result.finish_reason == "stop" and result.tool_calls == () and result.model == "http-a"


def test_max_tokens_bounds_the_reply_and_says_length() -> None:
    result = chat(ask("a long report"), model="http-b", max_tokens=2, full=True)
    assert result.usage is not None and result.usage.completion_tokens == 2
    assert result.finish_reason == "length" and len(result.text.split()) == 2


def test_the_engine_is_chosen_per_instance_as_in_process() -> None:
    messages = ask("per instance")
    for name in ("Analyst#0", "Analyst#1"):
        token = _instance.set(name)
        try:
            with nalarc.session("inst-s"):
                chat(messages, model="http-inst")
        finally:
            _instance.reset(token)
    token = _instance.set("Analyst#0")
    try:
        with nalarc.session("inst-s"):
            warm = chat(messages, model="http-inst", full=True)
    finally:
        _instance.reset(token)
    first, second = engine_for("http-inst", "Analyst#0"), engine_for("http-inst", "Analyst#1")
    assert first is not second
    assert first.cached_tokens("inst-s") > 0 and second.cached_tokens("inst-s") > 0
    assert first.cached_tokens("other-session") == 0
    assert warm.usage is not None and warm.usage.cached_tokens == count_tokens(prompt_of(messages))


def test_stream_deltas_join_to_the_full_text_and_the_last_chunk_has_usage() -> None:
    messages = ask("stream me the outlook")
    full = chat(messages, model="http-stream", full=True)
    with chat(messages, model="http-stream", stream=True) as stream:
        deltas = list(stream)
    assert len(deltas) > 1 and "".join(deltas) == full.text
    assert stream.result.text == full.text and stream.result.finish_reason == "stop"
    assert stream.result.usage is not None and full.usage is not None
    assert stream.result.usage.completion_tokens == full.usage.completion_tokens
    # the wire: SSE chunks, usage in the last one before [DONE] when asked for
    body = {"model": "http-stream", "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(_server.embedded().url + "/chat/completions", json=body, timeout=30)
    events = [line[len("data: "):] for line in response.text.splitlines() if line.startswith("data: ")]
    assert response.headers["content-type"] == "text/event-stream" and events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == full.usage.completion_tokens
    assert all("usage" not in c for c in chunks[:-1])
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1]) == full.text


def test_a_stream_spreads_the_decode_over_its_deltas() -> None:
    # 40 words over 20 tokens of 1 s each: 100 ms of real time at the tests' 200x
    simulate("slow-stream", prefill_s_per_token=0.0, decode_s_per_token=1.0, output_median_tokens=20,
             output_sigma=0.0)
    started = time.perf_counter()
    stream = chat(ask("slowly"), model="slow-stream", stream=True)
    arrivals = [time.perf_counter() - started for _ in stream]
    assert stream.result.usage is not None
    decode = stream.result.usage.completion_tokens * 1.0 / engine_for("slow-stream").config.time_scale
    assert arrivals[-1] >= 0.9 * decode  # the stream lasts as long as the generation
    assert arrivals[0] < 0.5 * arrivals[-1]  # and its deltas are not all held to the end


def test_tool_calls_are_deterministic_and_typed_and_a_tool_result_gets_text() -> None:
    messages = ask("what does ACME trade at?")
    result = chat(messages, model="http-tools", tools=TOOLS, full=True)
    assert result.finish_reason == "tool_calls" and len(result.tool_calls) == 1 and result.text == ""
    assert result.tool_calls == chat(messages, model="http-tools", tools=TOOLS, full=True).tool_calls
    named = chat(messages, model="http-tools", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "quote"}},
                 full=True)
    call = named.tool_calls[0]
    args = call.parsed()
    assert call.name == "quote" and call.id.startswith("call_")
    assert isinstance(args["ticker"], str) and isinstance(args["days"], int) and args["side"] in ("buy", "sell")
    follow_up = [*messages,
                 {"role": "assistant", "content": None, "tool_calls": [
                     {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}]},
                 {"role": "tool", "tool_call_id": call.id, "content": "ACME: 42.0"}]
    answer = chat(follow_up, model="http-tools", tools=TOOLS, full=True)
    assert answer.finish_reason == "stop" and answer.text and answer.tool_calls == ()
    assert chat(messages, model="http-tools", tools=TOOLS, tool_choice="none", full=True).tool_calls == ()
    stream = chat(messages, model="http-tools", tools=TOOLS, tool_choice={"type": "function", "function": {"name": "quote"}},
                  stream=True)
    assert list(stream) == [] and stream.result.tool_calls == named.tool_calls
    assert stream.result.finish_reason == "tool_calls"


def test_concurrent_calls_from_threads_get_their_own_replies() -> None:
    expected = {i: chat(ask(f"thread question {i}"), model="http-threads") for i in range(12)}
    got: dict[int, str] = {}
    lock = threading.Lock()

    def call(i: int) -> None:
        with nalarc.session(f"thread-{i}"):
            reply = chat(ask(f"thread question {i}"), model="http-threads")
        with lock:
            got[i] = reply

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected
    assert all(engine_for("http-threads").cached_tokens(f"thread-{i}") > 0 for i in range(12))


def test_achat_under_trio_and_asyncio_concurrently() -> None:
    questions = [ask(f"async question {i}") for i in range(8)]
    expected = [chat(q, model="http-async") for q in questions]

    async def under_trio() -> list[str]:
        replies: list[str] = [""] * len(questions)

        async def one(i: int) -> None:
            replies[i] = await achat(questions[i], model="http-async")

        async with trio.open_nursery() as nursery:
            for i in range(len(questions)):
                nursery.start_soon(one, i)
        return replies

    async def under_asyncio() -> tuple[list[str], list[str], Any]:
        replies = await asyncio.gather(*(achat(q, model="http-async") for q in questions))
        stream = await achat(questions[0], model="http-async", stream=True)
        deltas = [d async for d in stream]
        return list(replies), deltas, stream.result

    assert trio.run(under_trio) == expected
    replies, deltas, result = asyncio.run(under_asyncio())
    assert replies == expected and "".join(deltas) == expected[0] and result.usage is not None
    assert trio.run(under_trio) == expected  # a new loop gets a new client (the old one's pool is gone)


def test_chat_batch_is_one_request_with_a_choice_per_conversation() -> None:
    conversations = [ask(f"batch {i}") for i in range(3)]
    assert chat_batch(conversations, model="http-batch") == [chat(c, model="http-batch") for c in conversations]
    assert chat_batch([], model="http-batch") == []


def test_models_are_listed_through_the_sdk() -> None:
    import openai

    simulate("listed-model", decode_s_per_token=0.01)
    client = openai.OpenAI(base_url=_server.embedded().url, api_key="x", max_retries=0)
    ids = {m.id for m in client.models.list()}
    assert {"default", "listed-model"} <= ids


# -- a configured endpoint ----------------------------------------------------


@pytest.fixture
def standalone() -> Iterator[str]:
    """``python -m nalarc.llm`` in its own process: a second server the client knows only by URL."""
    process = subprocess.Popen([sys.executable, "-m", "nalarc.llm", "--port", "0"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("nalarc simulated LLM server: http://127.0.0.1:"), line
        yield line.split(": ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_configured_base_url_is_used_with_its_key(standalone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", standalone)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    messages = ask("remote question")
    remote = chat(messages, model="remote-only", full=True)
    streamed = chat(messages, model="remote-only", stream=True)
    deltas = list(streamed)
    batch = chat_batch([messages, ask("another")], model="remote-only")
    assert ("remote-only", "plain-0") not in _client._ENGINES  # answered by the other process
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert remote.text == chat(messages, model="remote-only") == "".join(deltas) == batch[0]  # same seed, same reply
    assert remote.usage is not None and remote.usage.prompt_tokens == count_tokens(prompt_of(messages))


# -- errors -------------------------------------------------------------------


class _Failing(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests = 0
    status = 503

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps({"error": {"message": "the GPU is on fire", "type": "server_error"}}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def failing() -> Iterator[type[_Failing]]:
    handler = type("Failing", (_Failing,), {"requests": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_port}/v1"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_5xx_is_retried_a_bounded_number_of_times_then_raises(failing: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "1")
    with pytest.raises(LLMError, match=r"HTTP 503: .*the GPU is on fire") as caught:
        chat(ask("x"), base_url=failing.url)
    assert caught.value.status_code == 503 and failing.requests == 2  # one try + one retry
    copy = pickle.loads(pickle.dumps(caught.value))  # crosses worker processes
    assert (type(copy), str(copy), copy.status_code) == (LLMError, str(caught.value), 503)


def test_a_4xx_raises_at_once(failing: Any) -> None:
    failing.status = 400
    with pytest.raises(LLMError, match="HTTP 400") as caught:
        chat(ask("x"), base_url=failing.url)
    assert caught.value.status_code == 400 and failing.requests == 1
    with pytest.raises(LLMError, match=r"simulated LLM server: HTTP 400: 'max_tokens' must be a positive integer"):
        chat(ask("x"), max_tokens=0)
    with pytest.raises(LLMError, match="tool_choice names 'nope'"):
        list(chat(ask("x"), tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}}, stream=True))


def test_an_unreachable_endpoint_raises_without_a_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LLMError) as caught:
        chat(ask("x"), base_url=f"http://127.0.0.1:{port}/v1", timeout=5)
    assert caught.value.status_code is None and f"127.0.0.1:{port}" in str(caught.value)


# -- nothing leaves the machine -----------------------------------------------


def test_unconfigured_calls_connect_only_to_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    connected: list[Any] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: Any) -> Any:
        connected.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")  # the embedded client ignores the environment
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(_client, "_SYNC", {})  # fresh clients: their connections are opened under the spy
    monkeypatch.setattr(_client, "_ASYNC", type(_client._ASYNC)())
    chat(ask("local only"), model="loopback")
    list(chat(ask("local only"), model="loopback", stream=True))
    trio.run(lambda: achat(ask("local only"), model="loopback"))
    assert connected and all(address[0] == "127.0.0.1" for address in connected), connected
    client = next(iter(_client._SYNC.values()))
    assert client.base_url.host == "127.0.0.1"


def test_a_forked_child_starts_its_own_server_and_clients() -> None:
    import multiprocessing

    messages = ask("fork me")
    expected = chat(messages, model="http-fork")
    parent_port = _server.embedded().port
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child() -> None:
        queue.put((chat(messages, model="http-fork"), _server.embedded().port))

    process = context.Process(target=child)
    process.start()
    reply, child_port = queue.get(timeout=60)
    process.join(timeout=30)
    assert process.exitcode == 0
    assert reply == expected and child_port != parent_port  # the parent's server thread did not survive the fork


def test_an_engine_failure_is_a_500_or_an_error_event_mid_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")

    def broken_batch(self: SimulatedEngine, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("GPU fell off the bus")

    def broken_stream(self: SimulatedEngine, *args: Any, **kwargs: Any) -> Iterator[str]:
        yield "half"
        raise RuntimeError("GPU fell off the bus mid-stream")

    monkeypatch.setattr(SimulatedEngine, "generate_batch", broken_batch)
    monkeypatch.setattr(SimulatedEngine, "generate_stream", broken_stream)
    with pytest.raises(LLMError, match="HTTP 500: RuntimeError: GPU fell off the bus") as caught:
        chat(ask("x"), model="http-broken")
    assert caught.value.status_code == 500
    deltas: list[str] = []
    with pytest.raises(LLMError, match="GPU fell off the bus mid-stream"):
        for delta in chat(ask("x"), model="http-broken", stream=True):
            deltas.append(delta)
    assert deltas == ["half"]
    monkeypatch.undo()
    assert chat(ask("x"), model="http-broken")  # the server lives on


def test_warm_up_starts_the_server_and_the_client_ahead_of_the_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from nalarc.llm import warm_up

    monkeypatch.setattr(_client, "_SYNC", {})
    warm_up()
    assert len(_client._SYNC) == 1 and next(iter(_client._SYNC))[1].base_url == _server.embedded().url
    # Configured: its client is built, but nothing is sent (a request to port 9 would fail: nothing listens).
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    warm_up()
    assert sorted(str(key[1].base_url) for key in _client._SYNC) == sorted([_server.embedded().url, "http://127.0.0.1:9/v1"])

"""The simulated engine's cost model, and the client against a real HTTP server on loopback."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

import nalarc
from nalarc.llm import EngineConfig, SimulatedEngine, chat


def fast(**changes: Any) -> EngineConfig:
    return EngineConfig(**{"time_scale": 1000.0, **changes})


def test_deterministic_under_a_seed() -> None:
    a, b = SimulatedEngine(fast(seed=1)), SimulatedEngine(fast(seed=1))
    assert a.generate("hello", "s", "k1")[0] == b.generate("hello", "s", "k1")[0]
    other_seed = SimulatedEngine(fast(seed=2))
    assert [other_seed.output_tokens(f"k{i}") for i in range(20)] != [a.output_tokens(f"k{i}") for i in range(20)]
    lengths = [a.output_tokens(f"k{i}") for i in range(400)]
    assert lengths == [b.output_tokens(f"k{i}") for i in range(400)]
    # heavy tail: the longest outputs are far above the median
    assert max(lengths) > 4 * sorted(lengths)[len(lengths) // 2]


def test_kv_cache_hit_makes_prefill_cheaper_and_eviction_is_lru() -> None:
    engine = SimulatedEngine(fast(cache_capacity_tokens=3000, decode_s_per_token=0.0))
    prompt = "x" * 4000  # 1000 tokens
    _, cold = engine.generate(prompt, "s1", "a")
    _, warm = engine.generate(prompt, "s1", "b")
    assert cold.cached_tokens == 0 and warm.cached_tokens == 1000
    assert warm.seconds < 0.2 * cold.seconds
    engine.generate(prompt, "s2", "c")
    engine.generate(prompt, "s3", "d")  # over capacity: s1 (least recently used) goes
    assert engine.cached_tokens("s1") == 0 and engine.cached_tokens("s3") > 0
    assert engine.drop("s3") > 0 and engine.cached_tokens("s3") == 0


def test_an_instance_engine_reports_its_cache_changes_for_the_driver() -> None:
    from nalarc import _residency

    engine = SimulatedEngine(fast(cache_capacity_tokens=3000, max_output_tokens=1), "Analyst#7", "analyst")
    unheard = SimulatedEngine(fast(), "Analyst#8", "analyst")  # no worker hosts it here: nothing is kept
    _residency.listen("Analyst#7")
    prompt = "x" * 4000  # 1000 tokens
    engine.generate(prompt, "s1", "a")
    unheard.generate(prompt, "s1", "a")
    ((session, model, tokens, rewarm),) = _residency.drain("Analyst#7")
    assert (session, model, tokens) == ("s1", "analyst", 1001)  # the prompt and its one output token
    # what a prompt as long as the last would reuse: 1000 tokens at 0.9 of the prefill, time-compressed
    assert rewarm == pytest.approx(1000 * 0.0004 * 0.9 / 1000)
    assert _residency.drain("Analyst#7") == () and _residency.drain("Analyst#8") == ()
    engine.generate(prompt, "s2", "b")
    engine.generate(prompt, "s3", "c")  # over capacity: s1 is evicted, and that is reported too
    reports = {r[0]: r[2] for r in _residency.drain("Analyst#7")}
    assert reports == {"s1": 0, "s2": 1001, "s3": 1001}
    engine.drop("s3")
    assert _residency.drain("Analyst#7") == (("s3", "analyst", 0, 0.0),)


def test_continuous_batching_limits_concurrency() -> None:
    engine = SimulatedEngine(EngineConfig(max_batch=2, time_scale=100.0, prefill_s_per_token=0.0,
                                          decode_s_per_token=1.0, output_median_tokens=1,
                                          output_sigma=0.0))
    def timed(i: int) -> None:
        engine.generate("p", f"s{i}", f"k{i}")

    active = []
    lock = threading.Lock()

    def watch() -> None:
        for _ in range(200):
            with lock:
                active.append(engine._active)
            time.sleep(0.0005)

    threads = [threading.Thread(target=timed, args=(i,)) for i in range(6)] + [threading.Thread(target=watch)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(active) == 2  # six callers, two sequences at a time


def test_chat_uses_the_simulated_engine_and_the_session() -> None:
    with nalarc.session("alice"):
        reply = chat([{"role": "user", "content": "summarize the market"}], model="sim-test")
    assert isinstance(reply, str) and reply
    from nalarc.llm import engine_for

    assert engine_for("sim-test").cached_tokens("alice") > 0


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = {"choices": [{"message": {"role": "assistant", "content": f"echo:{body['messages'][-1]['content']}"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_chat_talks_to_an_openai_compatible_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
        assert chat([{"role": "user", "content": "hi"}]) == "echo:hi"
    finally:
        server.shutdown()


def test_chat_batch_is_one_slot_and_as_long_as_its_longest_reply() -> None:
    from nalarc.llm import chat_batch, simulate

    # 2 tokens of 2 s: 20 ms of real time at the tests' time scale (200x), well above the
    # scheduling noise of a loaded machine (at 0.05 s per token this was flaky).
    simulate("batch-test", max_batch=1, prefill_s_per_token=0.0, decode_s_per_token=2.0,
             output_median_tokens=2, output_sigma=0.0, batch_slowdown=0.0)
    conversations = [[{"role": "user", "content": f"task {i}"}] for i in range(4)]
    started = time.perf_counter()
    texts = chat_batch(conversations, model="batch-test")
    batched = time.perf_counter() - started
    started = time.perf_counter()
    one_by_one = [chat(c, model="batch-test") for c in conversations]
    sequential = time.perf_counter() - started
    assert texts == one_by_one  # the same replies, deterministic per prompt
    assert batched < 0.6 * sequential  # one decode of 2 tokens, not four


def test_simulate_sets_per_model_costs_and_rejects_unknown_ones() -> None:
    from nalarc.llm import engine_for, simulate

    simulate("big-model", decode_s_per_token=0.07, max_batch=3)
    config = engine_for("big-model").config
    assert (config.decode_s_per_token, config.max_batch) == (0.07, 3)
    assert engine_for("other-model").config.decode_s_per_token == EngineConfig().decode_s_per_token
    with pytest.raises(nalarc.NalarcError, match=r"simulate\('m'\): unknown settings \['speed'\]"):
        simulate("m", speed=2)


def test_one_engine_per_serving_instance_and_plain_replicas_by_session(monkeypatch: pytest.MonkeyPatch) -> None:
    from nalarc._state import _instance
    from nalarc.llm import engine_for

    token = _instance.set("Agent#0")
    first = engine_for("per-instance")
    _instance.reset(token)
    token = _instance.set("Agent#1")
    second = engine_for("per-instance")
    _instance.reset(token)
    assert first is not second
    monkeypatch.setenv("NALARC_LLM_REPLICAS", "2")
    engines = set()
    for name in ("a", "b", "c", "d", "e", "f"):
        with nalarc.session(name):
            engines.add(id(engine_for("replicated")))
            assert engine_for("replicated") is engine_for("replicated")  # a session keeps its engine
    assert len(engines) == 2

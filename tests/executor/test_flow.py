"""Flow control of LLM calls on real worker processes, against the simulated server's 429 quotas.

The server (``start_server(quotas=...)``) runs in the test process and the
workers reach it through ``OPENAI_BASE_URL``, so every call is counted by one
server, whichever worker made it.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

import nalarc
from nalarc import FlowConfig, ModelLimit, load_app
from nalarc.executor import Placement, Service, open_service
from nalarc.executor._flow import FlowLimiter, installed
from nalarc.executor._statestore import StateStore
from nalarc.llm import LLMServer, chat, start_server

APP = '''
import os
import nalarc
from nalarc.llm import LLMError, chat

def _ask(i, salt):
    try:
        # 80 characters with the role: 20 prompt tokens, as the simulated server counts them
        question = f"question {i:03d} {salt}"[:74].ljust(74, ".")
        reply = chat([{"role": "user", "content": question}], model="m", max_tokens=8, full=True)
    except LLMError as error:
        if error.status_code == 429:
            return [429, os.getpid()]
        raise
    return [reply.usage.prompt_tokens + reply.usage.completion_tokens, os.getpid()]

@nalarc.tool
def ask(i, salt=""):
    return _ask(i, salt)

@nalarc.tool
def ask_b(i, salt=""):
    return _ask(i, salt)

@nalarc.workflow
def fan_out(k, salt):
    return [ask(i, salt) for i in range(k)]

@nalarc.workflow
def one_after_another(n):
    total = 0
    for i in range(n):
        used, _ = ask(i, total) if i % 2 == 0 else ask_b(i, total)   # each waits for the one before
        total = total + used
    return total
'''


@pytest.fixture
def app(tmp_path: Path) -> nalarc.executor.LoadedApp:
    (tmp_path / "flow_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(tmp_path / "flow_app.py", out_dir=tmp_path / "build")


@pytest.fixture
def server_for(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[ModelLimit], LLMServer]]:
    """A simulated server with quota ``limit`` on model ``m``, that the workers call (no SDK retries)."""
    started: list[LLMServer] = []

    def start(limit: ModelLimit) -> LLMServer:
        server = start_server(quotas={"m": limit})
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        started.append(server)
        return server

    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")
    yield start
    for server in started:
        server.close()


def _serve(app: nalarc.executor.LoadedApp, flow: FlowConfig, body: Callable[[Service], Awaitable[Any]],
           **placement: Any) -> Any:
    async def main() -> Any:
        async with open_service(app, StateStore(None), Placement(workers=2, flow=flow, **placement)) as service:
            return await body(service)

    return trio.run(main)


# Quota Q = 1200 tokens per 2 s window, enforced over 0.25 s (a bucket of 150 tokens: "quantized", as
# OpenAI enforces per-minute limits over shorter periods).  A call costs 20 prompt + 8 completion tokens.
TPM_LIMIT = ModelLimit(tpm=1200, window=2.0, burst=0.25)
CALL_TOKENS = 28


async def _offer_95_percent(service: Service) -> list[list[int]]:
    """Bursts of 10 calls (280 tokens, more than the 150 the bucket holds) at 95% of Q on average."""
    burst, bursts = 10, 6
    period = burst * CALL_TOKENS / (0.95 * TPM_LIMIT.tpm / TPM_LIMIT.window)  # ~0.49 s
    results: list[list[int]] = []

    async def one(salt: str) -> None:
        results.extend(await service.run("fan_out", {"k": burst, "salt": salt}, session=salt))

    async with trio.open_nursery() as nursery:
        for n in range(bursts):
            nursery.start_soon(one, f"b{n}")
            await trio.sleep(period)
    return results


def test_a_tpm_limit_at_the_quota_gets_no_429_at_95_percent_of_it_and_none_limited_gets_429s(
        app: nalarc.executor.LoadedApp, server_for: Callable[[ModelLimit], LLMServer]) -> None:
    unlimited = server_for(TPM_LIMIT)
    results = _serve(app, FlowConfig(), _offer_95_percent, instances={"ask": 2})
    assert unlimited.quotas.rejected.get("m", 0) > 0  # the load does exceed the quota's bursts
    assert sum(used == 429 for used, _ in results) == unlimited.quotas.rejected["m"]

    limited = server_for(TPM_LIMIT)
    results = _serve(app, FlowConfig(models={"m": TPM_LIMIT}), _offer_95_percent, instances={"ask": 2})
    assert limited.quotas.rejected == {} and limited.quotas.admitted == {"m": 60}
    assert {used for used, _ in results} == {CALL_TOKENS}
    assert len({pid for _, pid in results}) == 2  # both worker processes made calls


def test_an_rpm_limit_holds_across_worker_processes(
        app: nalarc.executor.LoadedApp, server_for: Callable[[ModelLimit], LLMServer]) -> None:
    """30 calls at once over two workers, 20 requests/s allowed, 5 at once: 0 429s and >= 1.25 s."""
    limit = ModelLimit(rpm=20, window=1.0, burst=0.25)
    server = server_for(limit)

    async def burst(service: Service) -> tuple[list[list[int]], float]:
        start = time.monotonic()
        results = await service.run("fan_out", {"k": 30, "salt": "rpm"})
        return results, time.monotonic() - start

    results, elapsed = _serve(app, FlowConfig(models={"m": limit}), burst, instances={"ask": 2})
    assert server.quotas.rejected == {} and server.quotas.admitted == {"m": 30}
    assert len({pid for _, pid in results}) == 2
    assert elapsed >= (30 - 5) / 20


def test_a_session_s_token_budget_stops_it_at_its_next_call_across_workers(
        app: nalarc.executor.LoadedApp, server_for: Callable[[ModelLimit], LLMServer]) -> None:
    server = server_for(ModelLimit(tpm=1_000_000))  # no quota in the way: this is about the budget
    budget = 10 * CALL_TOKENS

    async def body(service: Service) -> tuple[BaseException | None, dict[str, int], Any]:
        error: BaseException | None = None
        try:
            await service.run("one_after_another", {"n": 20}, session="spender")
        except nalarc.BudgetExceeded as caught:
            error = caught
        other = await service.run("one_after_another", {"n": 2}, session="other")  # its own budget
        assert service.backend.flow is not None  # type: ignore[union-attr]
        return error, dict(service.backend.flow.used), other  # type: ignore[union-attr]

    error, used, other = _serve(app, FlowConfig(session_token_budget=budget), body)
    assert isinstance(error, nalarc.BudgetExceeded)
    assert (error.session, error.budget) == ("spender", budget) and error.used >= budget
    # hard stop: the calls made used exactly the budget (each 28 tokens, one at a time), no call after it
    assert used["spender"] == budget and server.quotas.admitted["m"] == 10 + 2
    assert other == 2 * CALL_TOKENS


def test_a_call_that_can_never_fit_fails_at_once_with_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = FlowLimiter(FlowConfig(models={"*": ModelLimit(tpm=50)}))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with installed(limiter), pytest.raises(nalarc.RateLimitExceeded) as caught:
        chat([{"role": "user", "content": "hi"}], model="big", max_tokens=100)
    assert (caught.value.model, caught.value.limit) == ("big", 50) and caught.value.tokens > 50
    assert nalarc.llm.chat([{"role": "user", "content": "hi"}], max_tokens=4)  # uninstalled after the block


def test_streams_and_async_calls_settle_their_real_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    """In the driver (no workers): a stream read to its end and an ``achat`` count what they used."""
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    limiter = FlowLimiter(FlowConfig(models={"*": ModelLimit(tpm=10_000)}, session_token_budget=10_000))
    ask = [{"role": "user", "content": "stream me the tides"}]
    with installed(limiter), nalarc.session("streamer"):
        stream = chat(ask, max_tokens=12, stream=True)
        "".join(stream)
        streamed = stream.result.usage
        replied = trio.run(lambda: nalarc.llm.achat(ask, max_tokens=5, full=True)).usage
    assert streamed is not None and replied is not None
    total = sum(u.prompt_tokens + u.completion_tokens for u in (streamed, replied))
    assert limiter.used == {"streamer": total} and limiter.stats["booked"] == 2

"""The simulated server's rate-limit quotas: 429 with Retry-After and OpenAI's error body, over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

import nalarc
from nalarc import ModelLimit
from nalarc.llm import LLMError, chat, start_server
from nalarc.llm._quota import parse_quotas

ASK = [{"role": "user", "content": "how are the tides today?"}]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[nalarc.llm.LLMServer]:
    # 40 tokens per 10 s window, all of it at once: one call of ~12 tokens + max_tokens 8 fits, a third does not
    running = start_server(quotas={"m": ModelLimit(rpm=100, tpm=40, window=10.0)})
    monkeypatch.setenv("OPENAI_BASE_URL", running.url)
    try:
        yield running
    finally:
        running.close()


def _post(url: str, body: dict[str, object]) -> tuple[int, dict[str, str], dict[str, object]]:
    request = urllib.request.Request(f"{url}/chat/completions", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_over_quota_answers_429_with_retry_after_and_openai_s_error_body(server: nalarc.llm.LLMServer) -> None:
    body = {"model": "m", "messages": ASK, "max_tokens": 8}
    statuses = [_post(server.url, body)[0] for _ in range(2)]
    status, headers, error = _post(server.url, body)
    assert statuses == [200, 200] and status == 429
    assert int(headers["Retry-After"]) >= 1 and 0 < int(headers["retry-after-ms"]) <= 10_000
    assert error["error"]["code"] == "rate_limit_exceeded" and error["error"]["type"] == "tokens"  # type: ignore[index]
    assert "TPM" in error["error"]["message"]  # type: ignore[index]
    assert server.quotas.rejected == {"m": 1} and server.quotas.admitted == {"m": 2}
    # another model has no quota
    assert _post(server.url, {**body, "model": "other"})[0] == 200


def test_the_client_surfaces_a_429_as_an_llm_error_when_the_sdk_does_not_retry(
        server: nalarc.llm.LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")
    for _ in range(2):
        chat(ASK, model="m", max_tokens=8)
    with pytest.raises(LLMError) as caught:
        chat(ASK, model="m", max_tokens=8)
    assert caught.value.status_code == 429 and "Rate limit reached" in str(caught.value)
    assert caught.value.retry_after is not None and 0 < caught.value.retry_after <= 10
    assert server.quotas.rejected == {"m": 1}  # one request: no retry behind our back


def test_a_stream_over_quota_is_a_429_before_any_chunk(
        server: nalarc.llm.LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")
    for _ in range(2):
        assert "".join(chat(ASK, model="m", max_tokens=8, stream=True))
    with pytest.raises(LLMError) as caught:
        chat(ASK, model="m", max_tokens=8, stream=True)
    assert caught.value.status_code == 429 and server.quotas.rejected == {"m": 1}


def test_the_sdk_retries_a_429_after_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    """With retries on (the default), the SDK waits what the server said and the call succeeds."""
    running = start_server(quotas={"m": ModelLimit(tpm=20, window=0.5)})  # refills 40 tokens a second
    monkeypatch.setenv("OPENAI_BASE_URL", running.url)
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "2")
    try:
        chat(ASK, model="m", max_tokens=8)
        assert chat(ASK, model="m", max_tokens=8, full=True).usage is not None
        assert running.quotas.rejected == {"m": 1} and running.quotas.admitted == {"m": 2}
    finally:
        running.close()


def test_the_token_bucket_is_corrected_to_the_real_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admission books prompt + max_tokens (2 + 30 of 40); a short reply gives the rest back, so a second fits."""
    nalarc.llm.simulate("short", output_median_tokens=3, output_sigma=0.01)
    running = start_server(quotas={"short": ModelLimit(tpm=40, window=60.0)})
    monkeypatch.setenv("OPENAI_BASE_URL", running.url)
    monkeypatch.setenv("NALARC_LLM_MAX_RETRIES", "0")
    try:
        results = [chat([{"role": "user", "content": "hi"}], model="short", max_tokens=30, full=True)
                   for _ in range(2)]
        assert all(r.usage is not None and r.usage.completion_tokens < 10 for r in results)
        assert running.quotas.rejected == {}
    finally:
        running.close()


def test_quotas_from_text() -> None:
    limits = parse_quotas("gpt:rpm=60,tpm=1000,window=2,burst=0.5; *:tpm=5")
    assert limits == {"gpt": ModelLimit(60, 1000, 2.0, 0.5), "*": ModelLimit(tpm=5)}
    for bad in ("gpt", "gpt:rpm", "gpt:speed=3", "gpt:tpm=x", "gpt:tpm=0"):
        with pytest.raises(nalarc.NalarcError):
            parse_quotas(bad)

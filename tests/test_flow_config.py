"""nalarc._flow: flow-control settings and the token bucket's arithmetic (unit tests, an explicit clock); the limiter's refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

import nalarc
from nalarc import ConcurrencyLimit, FlowConfig, ModelLimit
from nalarc._config import load_config
from nalarc._flow import TokenBucket
from nalarc.executor._flow import FlowLimiter


def test_bookings_queue_in_order_and_the_wait_is_the_deficit_over_the_rate() -> None:
    bucket = TokenBucket(100, 10.0, 1.0)  # 10 a second, 10 at once
    assert bucket.capacity == 10 and bucket.reserve(6, now=0.0) == 0.0
    assert bucket.reserve(6, now=0.0) == pytest.approx(0.2)  # 2 short at 10/s
    assert bucket.reserve(6, now=0.0) == pytest.approx(0.8)  # behind the one before it
    bucket.refund(4, now=0.0)  # a call used 4 fewer than it booked
    assert bucket.reserve(1, now=0.0) == pytest.approx(0.5)


def test_a_cost_above_the_capacity_waits_for_a_full_bucket_then_leaves_it_in_debt() -> None:
    bucket = TokenBucket(10, 1.0, 0.5)  # holds 5
    assert bucket.take(8, now=0.0) == 0.0 and bucket.level == -3
    assert bucket.take(8, now=0.0) == pytest.approx(0.8)  # until it is full again: 8 tokens at 10/s
    assert bucket.reserve(8, now=0.0) == pytest.approx(0.8)


def test_in_transit_refill_is_held_back_in_bursts_only() -> None:
    bucket = TokenBucket(600, 1.0, 0.25, in_transit=0.1)  # 150 at once, 60 held back
    assert (bucket.capacity, bucket.rate) == (90, 600)
    assert TokenBucket(600, 1.0, 0.05, in_transit=0.1).capacity == 15  # never below half


def test_the_limiter_refuses_over_budget_and_calls_that_can_never_fit() -> None:
    limiter = FlowLimiter(FlowConfig(models={"m": ModelLimit(tpm=100)}, session_token_budget=50))
    assert limiter.reserve("m", 30, "s") == 0.0
    limiter.settle("m", "s", 30, 50)
    with pytest.raises(nalarc.BudgetExceeded, match="used 50 LLM tokens of its budget of 50"):
        limiter.reserve("m", 1, "s")
    assert limiter.reserve("other", 10**6, "t") == 0.0  # no rate limit on it: only the budget
    with pytest.raises(nalarc.RateLimitExceeded, match="more than its limit of 100"):
        limiter.reserve("m", 101, "t")


def test_flow_settings_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "nalarc.toml").write_text('''
[flow]
session_token_budget = 5000
models.gpt = { rpm = 60, tpm = 10000 }
models."*" = { tpm = 2000, window = 10, burst = 1 }

[[flow.concurrency]]
limit = 1
key = "session"
components = ["Writer"]
''')
    flow = load_config(tmp_path, {}).flow
    assert flow == FlowConfig(models={"gpt": ModelLimit(60, 10000), "*": ModelLimit(tpm=2000, window=10, burst=1)},
                              session_token_budget=5000, concurrency=(ConcurrencyLimit(1, "session", ("Writer",)),))
    assert flow.limit_for("claude") == ModelLimit(tpm=2000, window=10, burst=1)


@pytest.mark.parametrize("table", [{"modles": {}}, {"models": {"m": {"tpm": 0}}}, {"models": {"m": {"speed": 1}}},
                                   {"session_token_budget": -1}, {"concurrency": [{"key": "session"}]},
                                   {"models": {"m": {"tpm": 5, "burst": 100}}}])
def test_bad_flow_settings_are_clear_errors(table: dict[str, object]) -> None:
    with pytest.raises(nalarc.NalarcError):
        FlowConfig.from_table(table)


def test_refusals_cross_the_wire_as_plain_data_and_come_back_typed() -> None:
    from nalarc._flow import refusal_error, refusal_of

    for error in (nalarc.BudgetExceeded("s", 120, 100), nalarc.RateLimitExceeded("gpt", 900, 500)):
        back = refusal_error(refusal_of(error))
        assert type(back) is type(error) and str(back) == str(error)

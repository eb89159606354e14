"""``nalarc.stream`` / ``stream_tokens`` / ``interrupt`` in plain Python (no server): handlers or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import nalarc
from nalarc import _events


@pytest.fixture(autouse=True)
def no_handlers() -> Iterator[None]:
    previous = _events.set_stream_handler(None), _events.set_interrupt_handler(None)
    yield
    _events.set_stream_handler(previous[0])
    _events.set_interrupt_handler(previous[1])


def test_stream_without_a_handler_does_nothing_and_with_one_calls_it() -> None:
    nalarc.stream({"a": 1})  # no handler: a no-op
    seen: list[tuple[str, Any]] = []
    nalarc.set_stream_handler(lambda event, data: seen.append((event, data)))
    nalarc.stream({"a": 1})
    nalarc.stream([1, 2], event="progress")
    assert nalarc.stream_tokens(iter(["He", "llo"])) == "Hello"
    assert seen == [("custom", {"a": 1}), ("progress", [1, 2]), ("token", {"text": "He"}), ("token", {"text": "llo"})]


@pytest.mark.parametrize(("data", "event", "message"), [
    ({1, 2}, "custom", "JSON-serializable"),
    (float("nan"), "custom", "JSON-serializable"),
    ({}, "result", "reserved"),
    ({}, "two words", "event type"),
    ({}, "", "event type"),
])
def test_an_event_the_stream_cannot_carry_is_a_clear_error(data: Any, event: str, message: str) -> None:
    with pytest.raises(nalarc.NalarcError, match=message):
        nalarc.stream(data, event=event)


def test_interrupt_without_a_handler_says_how_to_get_one_and_with_one_returns_its_value() -> None:
    with pytest.raises(nalarc.NalarcError, match="set_interrupt_handler"):
        nalarc.interrupt({"approve": 1})
    nalarc.set_interrupt_handler(lambda payload: {"approved": payload["approve"]})
    assert nalarc.interrupt({"approve": 1}) == {"approved": 1}
    with pytest.raises(nalarc.NalarcError, match="JSON-serializable"):
        nalarc.interrupt(object())


def test_a_bound_channel_gets_the_events_of_its_request_also_when_relayed() -> None:
    class Channel:
        def __init__(self) -> None:
            self.events: list[tuple[str, Any]] = []

        def emit(self, event: str, data: Any) -> None:
            self.events.append((event, data))

        def interrupt(self, payload: Any) -> Any:
            return "resumed"

    channel = Channel()
    with _events.bind("r1", channel):
        nalarc.stream(1)
        _events.deliver("r1", "token", {"text": "x"})  # as the driver does for a worker's Event
        assert nalarc.interrupt(None) == "resumed"
    _events.deliver("r1", "token", {"text": "late"})  # unbound: to the (absent) handler, not the channel
    assert channel.events == [("custom", 1), ("token", {"text": "x"})]

"""Push readiness on the worker: the store of pushed values, and references replaced by their values."""

from __future__ import annotations

import threading
from typing import Any

from nalarc.runtime.lowlevel import substitute
from nalarc.wire import DepRef
from nalarc.worker._values import Values


def test_pushed_values_wait_for_their_calls_and_leave_with_them() -> None:
    values = Values()
    values.put(1, 2, "v")  # two calls here need it
    asked: list[int] = []
    assert values.take(1, "w2", asked.append) == "v"
    assert values.stats()["values"] == 1
    assert values.take(1, "w2", asked.append) == "v"
    assert values.stats()["values"] == 0 and asked == []


def test_a_release_before_the_push_arrives_drops_the_push() -> None:
    """In flight: the consumer moved away before its copy landed; the copy is dropped when it lands."""
    values = Values()
    values.release(5, 1)
    values.put(5, 1, "late")
    assert values.stats()["values"] == 0


def test_a_call_asks_the_driver_when_its_producer_is_gone() -> None:
    values = Values()
    values.peer("w2", connected=True)
    asked: list[int] = []
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(values.take(9, "w2", asked.append)))
    thread.start()
    values.peer("w2", connected=False)  # died mid-push
    while not asked:
        threading.Event().wait(0.01)
    values.from_driver(9, "from the driver")
    thread.join()
    assert got == ["from the driver"] and asked == [9]
    values.put(9, 1, "the push, after all")  # counted as taken already: dropped
    assert values.stats() == {"values": 0, "waiting": 0}


def test_references_are_replaced_in_nested_arguments() -> None:
    args = (DepRef(1), [DepRef(2), {"k": DepRef(1)}], "plain")
    values = {1: "a", 2: "b"}
    assert substitute(args, DepRef, lambda ref: values[ref.call_id]) == ("a", ["b", {"k": "a"}], "plain")

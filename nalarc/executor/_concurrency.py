"""Concurrency keys: at most N calls with the same key run at once (like Inngest's or Temporal's).

A :class:`~nalarc._flow.ConcurrencyLimit` names the components it governs and
how a call's key is derived (its session, one global key, one of its
arguments, or a function of the call).  :class:`ConcurrencyKeys` sits where
the driver dispatches calls (``ControlledBackend``): a call of a governed
component is routed only once every limit it falls under has room for its
key; otherwise it waits here, in arrival order per key, holding no instance
slot.  It leaves when its outcome is delivered (a re-run after a worker crash
keeps its place), or, if it times out while still waiting, it leaves the
queue and never runs (:meth:`ConcurrencyKeys.withdraw`).  Components no limit governs never reach this module: the
backend checks one frozenset.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from .._flow import ConcurrencyLimit, KeyedCall
from ..runtime import lowlevel as _rt
from ._instance import QueuedCall

#: (index of the limit, the key it derived)
_Slot = tuple[int, Hashable]


class ConcurrencyKeys:
    """The limits of a run, the calls holding each key and those waiting for one."""

    def __init__(self, limits: tuple[ConcurrencyLimit, ...]) -> None:
        self.limits = limits
        #: names of every component some limit governs (None: every component)
        every = any(limit.components is None for limit in limits)
        self.governed: frozenset[str] | None = None if every else frozenset(
            name for limit in limits for name in limit.components or ())
        self._active: dict[_Slot, int] = {}
        self._waiting: dict[_Slot, deque[QueuedCall]] = {}
        #: id(entry) -> the slots it holds (entries compare by identity)
        self._held: dict[int, tuple[_Slot, ...]] = {}
        #: id(entry) -> the slot whose queue it waits in (so a timed-out waiter can leave it)
        self._waits_for: dict[int, _Slot] = {}
        self._signatures: dict[str, inspect.Signature | None] = {}

    def governs(self, name: str) -> bool:
        return self.governed is None or name in self.governed

    def submit(self, entry: QueuedCall, dispatch: Callable[[QueuedCall], None]) -> None:
        """Dispatch ``entry`` now if each of its keys has room, else queue it behind the first full one."""
        if id(entry) in self._held:  # a re-run (its worker died): it keeps its slots
            dispatch(entry)
            return
        slots = self._slots(entry.call)
        full = next((slot for slot in slots if self._active.get(slot, 0) >= self.limits[slot[0]].limit), None)
        if full is not None:
            self._waiting.setdefault(full, deque()).append(entry)
            self._waits_for[id(entry)] = full
            return
        for slot in slots:
            self._active[slot] = self._active.get(slot, 0) + 1
        self._held[id(entry)] = slots
        dispatch(entry)

    def release(self, entry: QueuedCall, dispatch: Callable[[QueuedCall], None]) -> None:
        """``entry``'s outcome is delivered: its slots go to the calls waiting for them."""
        slots = self._held.pop(id(entry), None)
        if slots is None:
            return
        for slot in slots:
            left = self._active[slot] - 1
            if left:
                self._active[slot] = left
            else:
                del self._active[slot]
        for slot in slots:
            self._hand_on(slot, dispatch)

    def withdraw(self, entry: QueuedCall) -> bool:
        """``entry`` timed out while waiting for a key: it leaves the queue and never runs.

        False if it was not waiting (it holds its keys, or never needed one).
        Nothing is dispatched: a queue is non-empty only while its slot is full
        (:meth:`release` hands a freed slot on at once), so the waiter behind
        ``entry`` simply moves up and gets the slot when it frees.
        """
        slot = self._waits_for.pop(id(entry), None)
        if slot is None:
            return False
        queue = self._waiting[slot]
        queue.remove(entry)  # by identity (eq=False); O(queue), only on a timeout
        if not queue:
            del self._waiting[slot]
        return True

    def _hand_on(self, slot: _Slot, dispatch: Callable[[QueuedCall], None]) -> None:
        """Give ``slot``'s free room to the calls waiting for it, in arrival order.

        Re-entrant: dispatching a waiter can deliver a call and so release this
        slot again, which drains (and may delete) this same queue under us.  So
        the room is checked again after each dispatch, and the queue is deleted
        only if it is still the one registered for ``slot`` (never twice).
        """
        queue = self._waiting.get(slot)
        while queue and self._active.get(slot, 0) < self.limits[slot[0]].limit:
            waiter = queue.popleft()
            del self._waits_for[id(waiter)]
            self.submit(waiter, dispatch)  # may wait again, behind another of its keys
        if queue is not None and not queue and self._waiting.get(slot) is queue:
            del self._waiting[slot]

    def held(self) -> int:
        """Calls holding their keys (for status and tests)."""
        return len(self._held)

    def waiting(self) -> int:
        """Calls waiting for a key (for status and tests)."""
        return sum(len(queue) for queue in self._waiting.values())

    # -- keys --------------------------------------------------------------

    def _slots(self, call: _rt.CallRecord) -> tuple[_Slot, ...]:
        name = call.spec.name
        return tuple((index, self._key(limit, call)) for index, limit in enumerate(self.limits)
                     if limit.applies_to(name))

    def _key(self, limit: ConcurrencyLimit, call: _rt.CallRecord) -> Hashable:
        key = limit.key
        if key == "session":
            return call.session
        if key == "global":
            return None
        if isinstance(key, str):  # "arg:NAME"
            return _hashable(self._argument(call, key[4:]))
        return key(KeyedCall(call.session, call.spec.name, call.method, call.args, call.kwargs))

    def _argument(self, call: _rt.CallRecord, name: str) -> Any:
        if name in call.kwargs:
            return call.kwargs[name]
        signature = self._signature(call)
        if signature is None:
            return None
        try:
            bound = signature.bind_partial(*call.args, **call.kwargs)
        except TypeError:
            return None
        return bound.arguments.get(name)

    def _signature(self, call: _rt.CallRecord) -> inspect.Signature | None:
        label = f"{call.spec.key}.{call.method}"
        if label not in self._signatures:
            target = call.target
            if call.method is not None:
                target = getattr(getattr(target, "agent_class", target), call.method, None)
            try:
                signature: inspect.Signature | None = inspect.signature(target)
            except (TypeError, ValueError):
                signature = None
            if signature is not None and call.method is not None:  # drop ``self``
                parameters = list(signature.parameters.values())[1:]
                signature = signature.replace(parameters=parameters)
            self._signatures[label] = signature
        return self._signatures[label]


def _hashable(value: Any) -> Hashable:
    try:
        hash(value)
    except TypeError:
        return repr(value)
    result: Hashable = value
    return result

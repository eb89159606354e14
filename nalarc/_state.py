"""Managed state: per-session lists and dicts that live outside any instance.

``ManagedList()`` / ``ManagedDict()`` are class attributes of an agent.  Reading
``self.history`` returns the list that belongs to (current session, agent,
attribute).  Uncompiled, that list lives in a process-wide dict.  Under the
runtime, a call gets a private copy of its session's state (a *transaction*)
that is committed only when the call succeeds, so a failed or retried call
leaves no partial writes.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
from collections.abc import Iterator
from typing import Any

#: Session of the code that runs now.  Plain Python runs in one default session.
_session: contextvars.ContextVar[str] = contextvars.ContextVar("nalarc_session", default="default")

#: Component instance serving the running call (``Analyst#1``); None in plain Python.
_instance: contextvars.ContextVar[str | None] = contextvars.ContextVar("nalarc_instance", default=None)

#: State key: (session, agent key, attribute).
StateKey = tuple[str, str, str]


class StateTransaction:
    """The managed state one call sees: loaded lazily, committed on success."""

    def __init__(self, session: str, agent_key: str, load: dict[str, Any]) -> None:
        self.session, self.agent_key = session, agent_key
        self.values: dict[str, Any] = copy.deepcopy(load)
        self.touched: set[str] = set()


#: The transaction of the running component call, if any.
_txn: contextvars.ContextVar[StateTransaction | None] = contextvars.ContextVar(
    "nalarc_state_txn", default=None
)

#: Plain-Python store.
_LOCAL_STORE: dict[StateKey, Any] = {}


def current_session() -> str:
    """The id of the session the running code belongs to."""
    return _session.get()


def current_instance() -> str | None:
    """The instance serving the running component call, or None (plain Python, workflow code)."""
    return _instance.get()


@contextlib.contextmanager
def session(session_id: str) -> Iterator[str]:
    """Run the body in session ``session_id`` (plain Python and tests)."""
    token = _session.set(session_id)
    try:
        yield session_id
    finally:
        _session.reset(token)


class _Managed:
    """Descriptor base; ``factory`` makes the empty value."""

    factory: type[list[Any]] | type[dict[Any, Any]] = list

    def __init__(self) -> None:
        self.name = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _slot(self, instance: object) -> tuple[dict[Any, Any], Any]:
        # The state belongs to the agent the instance is (a subclass inherits the
        # attribute but keeps state of its own), not to the class that declares it.
        cls = type(instance)
        agent_key = f"{cls.__module__}:{cls.__qualname__}"
        txn = _txn.get()
        if txn is not None and txn.agent_key == agent_key:
            return txn.values, self.name
        return _LOCAL_STORE, (current_session(), agent_key, self.name)

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        store, key = self._slot(instance)
        if key not in store:
            store[key] = self.factory()
        txn = _txn.get()
        if txn is not None and store is txn.values:
            txn.touched.add(self.name)
        return store[key]

    def __set__(self, instance: object, value: Any) -> None:
        store, key = self._slot(instance)
        if not isinstance(value, self.factory):
            value = self.factory(value)
        store[key] = value
        txn = _txn.get()
        if txn is not None and store is txn.values:
            txn.touched.add(self.name)


class ManagedList(_Managed):
    """A per-session list: use it as a class attribute of an agent."""

    factory = list


class ManagedDict(_Managed):
    """A per-session dict: use it as a class attribute of an agent."""

    factory = dict


def managed_attributes(cls: type) -> tuple[str, ...]:
    """Names of the managed-state attributes of ``cls`` (its MRO included)."""
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, _Managed) and name not in names:
                names.append(name)
    return tuple(names)


@contextlib.contextmanager
def bind_transaction(txn: StateTransaction) -> Iterator[StateTransaction]:
    """Make ``txn`` the managed state seen by the code in the body (and its threads)."""
    token = _txn.set(txn)
    s_token = _session.set(txn.session)
    try:
        yield txn
    finally:
        _session.reset(s_token)
        _txn.reset(token)

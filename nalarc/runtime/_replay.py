"""Call-level replay: a request's completed component calls, journaled and replayed on resume.

A request run with a :class:`CallJournal` (the HTTP front passes its request
journal) gives each call of its top frame a deterministic *call key*::

    key = blake2b(component key, method, digest(arguments), occurrence)

where ``digest`` encodes the arguments canonically with every future inside
replaced by the key of the call that produces it, and ``occurrence`` counts the
earlier calls of the request with the same (component, method, digest).  The key
is content-addressed: it does not depend on the order in which parallel calls
were launched, only on what each call is and what it depends on.  The same
request run again (resumed after a crash) derives the same keys.

* A call whose key has a journaled result settles at once with that value; it
  never reaches the backend.
* Otherwise it runs, and its successful result is journaled *before* its future
  settles: nothing downstream, and no answer, depends on an unjournaled result.
  Failures are not journaled (they run again on resume).
* Calls that are not safe to run twice (:func:`at_most_once`: tools not marked
  ``idempotent``, ``stateful`` agents) get a ``started`` marker before they are
  dispatched.  On resume, a call with a marker and no result is not run again:
  it fails with :class:`~nalarc._errors.OutcomeUnknown`.

The digest accepts only values with a canonical encoding: ``None``, ``bool``,
``int``, ``float``, ``complex``, ``str``, ``bytes``, and lists, tuples and dicts
of them (dicts in their insertion order, which a deterministic program
reproduces), nested at most 32 deep, and futures of keyed calls.  Anything else
(an object, a set, whose iteration order depends on the process's hash seed)
makes the call *unjournaled*: it simply runs, on resume too, and so do the calls
that depend on its future.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any, Final, Protocol

from .._api import ComponentSpec
from .._errors import OutcomeUnknown
from ._futures import CallRecord, Pending


class _Marker:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: :meth:`CallJournal.lookup`: nothing journaled for this key.
MISSING: Final = _Marker("MISSING")
#: :meth:`CallJournal.lookup`: a ``started`` marker, no result.
STARTED: Final = _Marker("STARTED")

_MAX_DEPTH = 32


class CallJournal(Protocol):
    """Where a request's call results are journaled (implemented by the serve layer)."""

    def lookup(self, request_id: str, key: str) -> Any:
        """The journaled result of call ``key``, or :data:`STARTED`, or :data:`MISSING`."""
        ...

    def started(self, request_id: str, key: str) -> None:
        """Call ``key`` is about to be dispatched (durable when this returns)."""
        ...

    def record(self, request_id: str, key: str, value: Any) -> None:
        """Call ``key`` succeeded with ``value`` (durable when this returns)."""
        ...


class Undigestable(Exception):
    """An argument without a canonical encoding: the call is not journaled."""


def at_most_once(spec: ComponentSpec) -> bool:
    """Running the call twice is not safe (the executor's ``retry_safe``, negated)."""
    if spec.kind == "tool":
        return not spec.directives.idempotent
    return spec.directives.stateful


def digest_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The canonical digest of a call's arguments (futures replaced by their calls' keys).

    Raises :class:`Undigestable` for a value without a canonical encoding.
    """
    h = hashlib.blake2b(digest_size=16)
    _encode(args, h, 0)
    _encode(kwargs, h, 0)
    return h.digest()


def _encode(x: Any, h: Any, depth: int) -> None:
    t = type(x)
    if t is str:
        data = x.encode("utf-8", "surrogatepass")
        h.update(b"s" + struct.pack("<Q", len(data)) + data)
    elif t is int:
        text = str(x).encode() if abs(x) < 10**4000 else hex(x).encode()
        h.update(b"i" + struct.pack("<Q", len(text)) + text)
    elif t is bool:
        h.update(b"T" if x else b"F")
    elif x is None:
        h.update(b"N")
    elif t is float:
        h.update(b"f" + struct.pack("<d", x))
    elif t is bytes:
        h.update(b"b" + struct.pack("<Q", len(x)) + x)
    elif t is complex:
        h.update(b"c" + struct.pack("<dd", x.real, x.imag))
    elif t is Pending:
        key = x.key
        if key is None:
            raise Undigestable(f"the future of {x.label}, an unjournaled call")
        h.update(b"p" + key.encode())
    elif depth >= _MAX_DEPTH:
        raise Undigestable("nested too deeply")
    elif t is list or t is tuple:
        h.update((b"l" if t is list else b"t") + struct.pack("<Q", len(x)))
        for item in x:
            _encode(item, h, depth + 1)
    elif t is dict:
        h.update(b"d" + struct.pack("<Q", len(x)))
        for k, v in x.items():
            _encode(k, h, depth + 1)
            _encode(v, h, depth + 1)
    else:
        raise Undigestable(f"a {t.__qualname__} has no canonical encoding")


def call_key(component: str, method: str | None, digest: bytes, occurrence: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    name = component.encode()
    h.update(struct.pack("<Q", len(name)) + name)
    meth = (method or "").encode()
    h.update((b"m" if method is not None else b"-") + struct.pack("<Q", len(meth)) + meth)
    h.update(digest + struct.pack("<Q", occurrence))
    return h.hexdigest()


class RequestJournal:
    """One request's view of a :class:`CallJournal`: key derivation and the replay decisions.

    ``resumed``: the request ran before (its calls may be journaled).  A fresh
    request looks nothing up: its calls can only be new.
    """

    __slots__ = ("journal", "request", "resumed", "_occurrences", "replayed", "recorded", "unjournaled")

    def __init__(self, journal: CallJournal, request: str, resumed: bool) -> None:
        self.journal, self.request, self.resumed = journal, request, resumed
        self._occurrences: dict[tuple[str, str | None, bytes], int] = {}
        #: Counts, for tests and the status page.
        self.replayed = self.recorded = self.unjournaled = 0

    def key_of(self, record: CallRecord) -> str | None:
        """The call's key, or None if its arguments cannot be digested (then it is not journaled)."""
        try:
            digest = digest_arguments(record.args, record.kwargs)
        except (Undigestable, RecursionError):
            self.unjournaled += 1
            return None
        triple = (record.spec.key, record.method, digest)
        occurrence = self._occurrences.get(triple, 0)
        self._occurrences[triple] = occurrence + 1
        return call_key(record.spec.key, record.method, digest, occurrence)

    def launch(self, record: CallRecord, pending: Pending) -> bool:
        """Before a call starts: True if it settled from the journal (it must not run)."""
        key = pending.key = self.key_of(record)
        if key is None:
            return False
        if self.resumed:
            found = self.journal.lookup(self.request, key)
            if found is STARTED:
                if at_most_once(record.spec):
                    pending.key = None  # its outcome is unknown: nothing that depends on it is journaled
                    pending.set_error(OutcomeUnknown(record.label, self.request))
                    return True
            elif found is not MISSING:
                self.replayed += 1
                pending.set_value(found)
                return True
        return False

    def dispatching(self, record: CallRecord, key: str) -> None:
        """A keyed call is about to reach the backend: an at-most-once call gets its marker first.

        Not at launch: a call launched but never dispatched (its inputs were pending at the
        crash) did not run, and must run on resume.
        """
        if at_most_once(record.spec):
            self.journal.started(self.request, key)

    def succeeded(self, pending: Pending, value: Any) -> None:
        """A keyed call succeeded: journal its value (before its future settles)."""
        key = pending.key
        assert key is not None
        try:
            self.journal.record(self.request, key, value)
        except Exception:  # noqa: BLE001 - e.g. a value cloudpickle cannot pickle: it stays unjournaled
            pending.key = None
            self.unjournaled += 1
        else:
            self.recorded += 1

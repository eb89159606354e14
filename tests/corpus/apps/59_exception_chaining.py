"""Exception chaining and translation in a data-loading service.

Exercises: ``raise StorageError(...) from exc`` in a helper and in a tool, the
``__cause__`` (type, message, attributes) read in the workflow's handler,
``raise ... from None`` (``__suppress_context__``, no cause), implicit chaining
(``__context__`` of an exception raised inside an ``except`` block), a bare
``raise`` re-raising the original after logging, a ``finally`` that records cleanup
in both outcomes, ``try``/``except``/``else`` around a tool, ``exc.add_note`` (notes
are not part of ``str(exc)``) and a chained exception escaping the request.
"""

import json
import time

import nalarc


class StorageError(Exception):
    def __init__(self, key, reason):
        super().__init__(f"cannot load {key!r}: {reason}")
        self.key = key
        self.reason = reason


class NotFound(StorageError):
    pass


STORE = {"a": '{"v": 1}', "b": "{broken", "c": '{"v": 3}'}


@nalarc.tool
def read_blob(key):
    time.sleep(0.002 + 0.003 * (4 - ord(key[0]) % 5))
    try:
        return STORE[key]
    except KeyError:
        raise NotFound(key, "missing") from None


@nalarc.tool
def decode(key, blob):
    time.sleep(0.002)
    try:
        return json.loads(blob)
    except json.JSONDecodeError as exc:
        raise StorageError(key, "corrupt") from exc


def load(key, events):
    try:
        blob = read_blob(key)
    except NotFound:
        events.append(f"miss {key}")
        raise
    else:
        events.append(f"hit {key}")
    finally:
        events.append(f"done {key}")
    return decode(key, blob)


def describe(exc):
    cause = exc.__cause__
    return {
        "type": type(exc).__name__,
        "msg": str(exc),
        "key": exc.key,
        "cause": None if cause is None else [type(cause).__name__, str(cause)],
        "suppressed": exc.__suppress_context__,
        "context": type(exc.__context__).__name__ if exc.__context__ is not None else None,
    }


@nalarc.workflow
def load_all(keys):
    events = []
    values = {}
    failures = []
    for key in keys:
        try:
            values[key] = load(key, events)["v"]
        except StorageError as exc:
            failures.append(describe(exc))
    try:
        try:
            read_blob("zz")
        except NotFound as first:
            raise RuntimeError(f"fallback failed after {first.reason}")
    except RuntimeError as second:
        implicit = [str(second), type(second.__context__).__name__, second.__cause__ is None]
    return {"values": values, "failures": failures, "events": events, "implicit": implicit}


@nalarc.workflow
def load_strict(key):
    try:
        return decode(key, read_blob(key))
    except StorageError as exc:
        exc.add_note(f"while loading {key}")
        raise ValueError(f"strict load of {key} failed") from exc


CALLS = [
    ("load_all", {"keys": ["a", "b", "q", "c"]}, "s1"),
    ("load_strict", {"key": "c"}, "s1"),
    ("load_strict", {"key": "b"}, "s2"),
    ("load_strict", {"key": "nope"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

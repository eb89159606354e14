"""``with`` statements around tool calls.

Exercises: ``contextlib.suppress(ValueError)`` around a failing tool (the
assignment is skipped, the old value stays), a custom context manager class
that records enter/exit into a list (ordering against tool calls), a
``@contextlib.contextmanager`` generator whose finally runs on failure, an
exception swallowed by ``__exit__`` returning True, ``ExitStack`` with
callbacks, ``with`` over several managers, ``from nalarc import tool, workflow``.
"""

import contextlib
import time

from nalarc import tool, workflow


@tool
def parse(text):
    time.sleep(0.002 + 0.003 * (8 - len(text) % 9))
    if not text.isdigit():
        raise ValueError(f"bad number {text!r}")
    return int(text)


class Recorder:
    def __init__(self, trail, name, swallow=False):
        self.trail, self.name, self.swallow = trail, name, swallow

    def __enter__(self):
        self.trail.append(f"enter {self.name}")
        return self

    def __exit__(self, exc_type, exc, tb):
        self.trail.append(f"exit {self.name} {exc_type.__name__ if exc_type else 'ok'}")
        return self.swallow


@contextlib.contextmanager
def section(trail, name):
    trail.append(f"open {name}")
    try:
        yield name.upper()
    finally:
        trail.append(f"close {name}")


@workflow
def parse_all(texts):
    trail = []
    values = []
    for t in texts:
        v = -1
        with contextlib.suppress(ValueError):
            v = parse(t)
            trail.append(f"parsed {t}")
        values.append(v)
    with Recorder(trail, "outer"), Recorder(trail, "inner", swallow=True):
        trail.append(f"sum {sum(parse(t) for t in texts if t.isdigit())}")
        parse(texts[-1])
        trail.append("after last")
    with section(trail, "sec") as label:
        trail.append(f"in {label} {parse(texts[0]) if texts[0].isdigit() else 'skip'}")
    with contextlib.ExitStack() as stack:
        stack.callback(trail.append, "callback 1")
        stack.callback(lambda: trail.append(f"callback 2 {values[0]}"))
        values.append(parse("42"))
    return {"values": values, "trail": trail}


@workflow
def escapes_section(text):
    trail = []
    try:
        with section(trail, "risky"):
            trail.append(parse(text))
    except ValueError as e:
        trail.append(str(e))
    with section(trail, "unguarded"):
        trail.append(parse(text))
    return trail


CALLS = [
    ("parse_all", {"texts": ["12", "x1", "7", "oops"]}, "s1"),
    ("parse_all", {"texts": ["5", "6"]}, "s1"),
    ("escapes_section", {"text": "8"}, "s2"),
    ("escapes_section", {"text": "eight"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

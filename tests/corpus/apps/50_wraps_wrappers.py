"""``functools.wraps`` wrappers: tracing, timing with a fake clock, output normalizing.

Exercises: a ``traced`` decorator factory (records calls into a module-level
``deque`` that the workflow resets and returns; used on helpers that run in the
workflow, so plain Python's program order is the order of the log); a ``timed``
decorator that measures elapsed ticks of a fake clock (each ``now()`` ticks once,
so nested timed helpers give deterministic durations); a ``normalized`` wrapper
under ``@nalarc.tool`` that post-processes a tool's result; a ``validated`` wrapper
under ``@nalarc.tool`` that raises ``TypeError`` before the tool runs; the wrapper
metadata ``__name__``, ``__doc__``, ``__wrapped__`` and ``inspect.signature``.
"""

import collections
import functools
import inspect
import time

import nalarc

LOG = collections.deque(maxlen=8)


class FakeClock:
    def __init__(self):
        self.ticks = 0

    def now(self):
        self.ticks += 1
        return self.ticks


CLOCK = FakeClock()
TIMINGS = {}


def traced(tag):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            LOG.append(f"{tag}:{fn.__name__}({', '.join(map(repr, args))})")
            result = fn(*args, **kwargs)
            LOG.append(f"{tag}:{fn.__name__} -> {result!r}")
            return result

        return wrapper

    return decorate


def timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = CLOCK.now()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMINGS[fn.__name__] = CLOCK.now() - start

    return wrapper


def normalized(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        result = fn(*args, **kwargs)
        return [r.strip().lower() for r in result]

    return wrapper


def validated(fn):
    @functools.wraps(fn)
    def wrapper(query, *args, **kwargs):
        if not isinstance(query, str):
            raise TypeError(f"{fn.__name__}() needs a str query, got {type(query).__name__}")
        return fn(query, *args, **kwargs)

    return wrapper


@nalarc.tool
@normalized
def search(query, k=2):
    """Search the index for ``query``."""
    time.sleep(0.002 + 0.003 * (7 - len(query) % 8))
    return [f"  {query.upper()} Result {i} " for i in range(k)]


@nalarc.tool
@validated
def count(query):
    time.sleep(0.002)
    return len(query)


@traced("helper")
@timed
def expand(query):
    """Expand a query into variants."""
    return [query, query + "s"] + [search(query, 1)[0]]


@timed
def gather(queries):
    return [expand(q) for q in queries]


@nalarc.workflow
def research(queries):
    LOG.clear()
    TIMINGS.clear()
    variants = gather(queries)
    hits = [search(v[0], k=len(v) - 1) for v in variants]
    return {
        "variants": variants,
        "hits": hits,
        "log": list(LOG),
        "timings": dict(TIMINGS),
        "meta": [expand.__name__, expand.__doc__, expand.__wrapped__.__name__,
                 str(inspect.signature(search)), search.__doc__],
    }


@nalarc.workflow
def counted(items):
    out = []
    for item in items:
        try:
            out.append(count(item))
        except TypeError as exc:
            out.append(str(exc))
    return out


CALLS = [
    ("research", {"queries": ["tide", "moon"]}, "s1"),
    ("research", {"queries": ["ebb"]}, "s2"),
    ("counted", {"items": ["abc", 7, "xy", None]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Module-level caches and counters written by workflows.

Exercises: a workflow-side memo cache (module dict) filled with tool results
across requests, cache hit/miss counters via ``global``, a global list of
events whose order must match program order even when a tool fails part way,
``global`` rebinding of a tuple, helper that mutates the cache, outputs that
depend on what earlier requests did, ``from nalarc import tool, workflow``.
"""

import time

from nalarc import tool, workflow

CACHE = {}
HITS = 0
MISSES = 0
EVENTS = []
LAST = ("none", 0)


@tool
def expensive(key):
    time.sleep(0.002 + 0.004 * (7 - len(key) % 8))
    if key.endswith("!"):
        raise ValueError(f"cannot compute {key}")
    return len(key) * 7 % 19


def cached(key):
    global HITS, MISSES
    if key in CACHE:
        HITS += 1
        EVENTS.append(f"hit {key}")
        return CACHE[key]
    MISSES += 1
    EVENTS.append(f"miss {key}")
    CACHE[key] = expensive(key)
    EVENTS.append(f"stored {key}")
    return CACHE[key]


@workflow
def lookup(keys):
    global LAST
    start = len(EVENTS)
    values = []
    for k in keys:
        try:
            values.append(cached(k))
        except ValueError as e:
            EVENTS.append(f"fail {k}")
            values.append(str(e))
    LAST = (keys[-1], len(values))
    return {"values": values, "hits": HITS, "misses": MISSES,
            "events": EVENTS[start:], "cache_keys": sorted(CACHE), "last": list(LAST)}


@workflow
def lookup_strict(keys):
    before = len(EVENTS)
    total = sum(cached(k) for k in keys)
    return {"total": total, "new_events": len(EVENTS) - before}


CALLS = [
    ("lookup", {"keys": ["aa", "bbbb", "aa", "bad!", "c"]}, "s1"),
    ("lookup", {"keys": ["c", "bbbb", "new"]}, "s2"),
    ("lookup_strict", {"keys": ["aa", "zz!", "later"]}, "s1"),
    ("lookup", {"keys": ["later", "zz!"]}, "s2"),
    ("lookup_strict", {"keys": ["aa", "c", "new"]}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

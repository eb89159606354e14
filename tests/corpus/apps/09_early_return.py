"""Early return from inside loops.

Exercises: return from a for loop, from a nested loop, from a while loop,
from inside try/finally (finally still runs and mutates a list that was
already returned), return of a partially built list, calls issued after the
return point must not matter; ``import nalarc as n``.
"""

import time

import nalarc as n


@n.tool
def probe(row, col):
    time.sleep(0.002 + 0.003 * ((9 - row - col) % 9))
    return (row * 7 + col * 3) % 10


@n.tool
def explode(x):
    time.sleep(0.002)
    raise RuntimeError(f"explode after {x} items")


@n.workflow
def find_cell(rows, cols, target):
    seen = []
    for r in range(rows):
        for c in range(cols):
            v = probe(r, c)
            seen.append(v)
            if v == target:
                return {"hit": [r, c], "seen": seen}
    return {"hit": None, "seen": seen}


@n.workflow
def scan_then_stop(xs, limit):
    acc = []
    for x in xs:
        p = probe(x, 0)
        if p > limit:
            return acc
        acc.append(p)
    explode(len(acc))
    return acc


@n.workflow
def guarded(x):
    trail = []
    try:
        while True:
            v = probe(x, len(trail))
            trail.append(v)
            if v % 3 == 0 or len(trail) > 5:
                return {"trail": trail, "len_at_return": len(trail)}
    finally:
        trail.append("finally")


CALLS = [
    ("find_cell", {"rows": 3, "cols": 4, "target": 6}, "s1"),
    ("find_cell", {"rows": 2, "cols": 2, "target": 11}, "s1"),
    ("scan_then_stop", {"xs": [0, 1, 2, 3, 4], "limit": 7}, "s2"),
    ("scan_then_stop", {"xs": [3, 9], "limit": 9}, "s2"),
    ("guarded", {"x": 1}, "s3"),
    ("guarded", {"x": 4}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

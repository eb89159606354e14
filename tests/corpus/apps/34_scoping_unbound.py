"""Variable scoping around tool results, including unbound names.

Exercises: a name bound only inside a loop body and read after the loop
(UnboundLocalError escapes when the loop is empty), a name bound only in one
branch, a name bound in ``try`` before a failure and read after the except,
a comprehension variable that does not leak, a loop variable that does
leak, rebinding a name from a result to a non-result and back, ``del`` of a
result inside a branch, ``from nalarc import tool, workflow``.
"""

import time

from nalarc import tool, workflow


class Boom(Exception):
    pass


@tool
def load(i):
    time.sleep(0.002 + 0.004 * ((7 - i) % 8))
    if i == 13:
        raise Boom(f"boom at {i}")
    return i * 11


@workflow
def last_of(xs):
    for x in xs:
        last = load(x)
    return {"last": last, "x": x}


@workflow
def branchy(flag, i):
    if flag:
        only_here = load(i)
    value = load(i + 1)
    if not flag:
        value = "replaced"
        value = load(i + 2) if i > 0 else value
    else:
        del value
        value = only_here + 1
    try:
        before = load(i)
        after = load(13)
    except Boom:
        after = None
    squares = [load(k) for k in range(2)]
    leaked = "k" in dir()
    return {"value": value, "before": before, "after": after,
            "squares": squares, "k_leaked": leaked,
            "has_only_here": flag and only_here is not None}


CALLS = [
    ("last_of", {"xs": [1, 2, 3]}, "s1"),
    ("last_of", {"xs": []}, "s1"),
    ("branchy", {"flag": True, "i": 2}, "s2"),
    ("branchy", {"flag": False, "i": 4}, "s2"),
    ("branchy", {"flag": False, "i": 0}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

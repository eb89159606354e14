"""Loop-carried dependencies mixed with independent fan-out.

Exercises: a chain ``x = step(x)`` where each call needs the previous
result, independent calls inside the same loop, swap-style tuple assignment
``a, b = b, combine(a, b)``, while loop whose condition reads the chained
value, ``+=`` on a list result (in-place extend of an alias), a running max
updated conditionally, shadowing a variable that holds a result.
"""

import time

import nalarc


@nalarc.tool
def step(x):
    time.sleep(0.002 + 0.003 * (x % 9))
    return (x * 5 + 3) % 23


@nalarc.tool
def side(i):
    time.sleep(0.03 - 0.003 * min(i, 9))
    return i * i


@nalarc.tool
def combine(a, b):
    time.sleep(0.004 if a < b else 0.015)
    return a + b


@nalarc.tool
def seed_list(n):
    time.sleep(0.005)
    return list(range(n))


@nalarc.workflow
def chain(x, n):
    trace = [x]
    sides = []
    best = None
    for i in range(n):
        sides.append(side(i))
        x = step(x)
        trace.append(x)
        if best is None or x > best:
            best = x
    a, b = 0, 1
    for _ in range(n):
        a, b = b, combine(a, b)
    y = x
    loops = 0
    while y != 3 and loops < 30:
        y = step(y)
        loops += 1
    base = seed_list(3)
    alias = base
    alias += seed_list(2)
    x = "shadowed"
    return {"trace": trace, "sides": sides, "best": best, "fib": [a, b],
            "loops": loops, "y": y, "base": base, "x": x}


CALLS = [
    ("chain", {"x": 1, "n": 5}, "s1"),
    ("chain", {"x": 3, "n": 0}, "s2"),
    ("chain", {"x": 20, "n": 8}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

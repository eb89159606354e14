"""Comprehensions and generator expressions over tool results.

Exercises: list/dict/set comprehensions calling tools, filters that call
tools, nested comprehensions, ``sum(score(x) for x in xs)``, any/all with
short-circuiting over generators, min/max over generators, walrus operator
inside a comprehension, ``import nalarc`` with dotted decorators.
"""

import time

import nalarc


@nalarc.tool
def score(x):
    time.sleep(0.002 + 0.003 * ((20 - x) % 9))
    return (x * 37) % 17


@nalarc.tool
def is_prime(n):
    time.sleep(0.03 - 0.002 * (n % 10))
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


@nalarc.tool
def strict_positive(x):
    time.sleep(0.004)
    if x < 0:
        raise ValueError(f"negative {x}")
    return x > 0


@nalarc.workflow
def stats(xs):
    scores = [score(x) for x in xs]
    by_x = {str(x): score(x) for x in xs if x % 2 == 0}
    distinct = sorted({score(x) % 5 for x in xs})
    total = sum(score(x) for x in xs)
    primes = [x for x in xs if is_prime(score(x))]
    grid = [[score(a + b) for b in xs[:2]] for a in xs[:3]]
    flat = [v for row in grid for v in row if v > 3]
    big = [(x, s) for x in xs if (s := score(x)) > 8]
    return {
        "scores": scores,
        "by_x": by_x,
        "distinct": distinct,
        "total": total,
        "primes": primes,
        "grid": grid,
        "flat": flat,
        "big": big,
        "max": max(score(x) for x in xs),
        "min_x": min(xs, key=score),
    }


@nalarc.workflow
def quantifiers(xs):
    # any() stops at the first True: the negative values after it are never
    # checked, so strict_positive must not raise for them.
    some = any(strict_positive(x) for x in xs)
    # all() stops at the first False.
    every = all(strict_positive(x) for x in xs[:2])
    count = sum(1 for x in xs if x >= 0 and strict_positive(x))
    return {"some": some, "every": every, "count": count}


CALLS = [
    ("stats", {"xs": [1, 2, 3, 4, 5, 6, 7]}, "s1"),
    ("quantifiers", {"xs": [0, 3, -1, -2]}, "s1"),
    ("stats", {"xs": [10, 20, 30]}, "s2"),
    ("quantifiers", {"xs": [0, 0, -5]}, "s2"),
    ("quantifiers", {"xs": [4, 0, 9]}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Generator helpers that call tools lazily.

Exercises: a generator function yielding tool results, consumed partially
with ``next``, ``itertools.islice`` and ``break`` (tools past the consumed
prefix are never called in plain Python: one of them raises, so eager
evaluation would leak an error), ``yield from``, a generator expression
stored in a variable and consumed later, ``zip`` stopping at the shorter
generator, ``enumerate`` with a start over a generator.
"""

import itertools
import time

import nalarc


@nalarc.tool
def page(n):
    time.sleep(0.002 + 0.003 * ((9 - n) % 9))
    if n >= 5:
        raise IndexError(f"page {n} out of range")
    return [f"p{n}i{i}" for i in range(n % 3 + 1)]


def pages(start=0):
    n = start
    while True:
        yield page(n)
        n += 1


def items(start=0):
    for p in pages(start):
        yield from p


@nalarc.workflow
def paginate(want, start=0):
    gen = pages(start)
    first = next(gen)
    three = list(itertools.islice(items(start), want))
    collected = []
    for i, p in enumerate(pages(start), start=1):
        collected.append(len(p))
        if sum(collected) >= want:
            break
    lazy = (len(page(k)) for k in range(start, 10))
    head = [next(lazy), next(lazy)]
    zipped = [[a, b[0]] for a, b in zip(range(2), pages(start))]
    return {"first": first, "items": three, "collected": collected, "i": i,
            "head": head, "zipped": zipped}


@nalarc.workflow
def overrun(want):
    return {"items": list(itertools.islice(items(0), want))}


CALLS = [
    ("paginate", {"want": 3}, "s1"),
    ("paginate", {"want": 5, "start": 1}, "s1"),
    ("overrun", {"want": 7}, "s2"),
    ("overrun", {"want": 50}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

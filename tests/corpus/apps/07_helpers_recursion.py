"""Undecorated helper functions that call tools and agents.

Exercises: helpers calling tools, helpers returning results the caller never
uses (prefetch), a helper returning a tuple of pending results, recursive
helpers (tree walk, divide and conquer), helpers with default arguments that
are global constants, helper called from inside a comprehension, agents
called from helpers.
"""

import time

import nalarc

FANOUT = 2


@nalarc.tool
def leaf_value(path):
    time.sleep(0.002 + 0.004 * (7 - len(path) % 8))
    return sum(int(c) + 1 for c in path) if path else 1


@nalarc.tool
def combine(a, b):
    time.sleep(0.003 if a > b else 0.012)
    return a * 2 + b


@nalarc.agent
class Summarizer:
    def summarize(self, values):
        time.sleep(0.004 + 0.001 * len(values))
        return f"n={len(values)} sum={sum(values)}"


def prefetch(path):
    # Result is returned but callers drop it.
    return leaf_value(path + "9")


def pair(path):
    return leaf_value(path + "0"), leaf_value(path + "1")


def walk(path, depth, fanout=FANOUT):
    if depth == 0:
        return [leaf_value(path)]
    out = []
    for i in range(fanout):
        out.extend(walk(path + str(i), depth - 1, fanout))
    return out


def reduce_tree(values):
    if len(values) == 1:
        return values[0]
    mid = len(values) // 2
    return combine(reduce_tree(values[:mid]), reduce_tree(values[mid:]))


def describe(values):
    return Summarizer().summarize(values)


@nalarc.workflow
def tree(depth, fanout=FANOUT):
    prefetch("12")
    prefetch("")
    leaves = walk("", depth, fanout)
    left, right = pair("7")
    folded = reduce_tree(leaves)
    return {
        "leaves": leaves,
        "folded": folded,
        "pair": [left, right],
        "desc": describe(leaves),
        "per_leaf": [describe([v]) for v in leaves[:2]],
    }


CALLS = [
    ("tree", {"depth": 2}, "s1"),
    ("tree", {"depth": 0}, "s1"),
    ("tree", {"depth": 2, "fanout": 3}, "s2"),
    ("tree", {"depth": 3, "fanout": 2}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

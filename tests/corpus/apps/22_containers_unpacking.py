"""Nested containers, unpacking and membership on tool results.

Exercises: ``a, b = tool()`` tuple unpacking, star unpacking
``first, *rest = tool()``, nested unpacking in for targets, dict keys taken
from results, ``in`` / ``not in`` checks against results, ``len()`` of
results, ``isinstance`` on results, indexing and slicing results, dict of
lists of tuples, tuples of results converted for output, set operations.
"""

import time

import nalarc


@nalarc.tool
def split_name(full):
    time.sleep(0.002 + 0.003 * (8 - len(full) % 9))
    first, _, last = full.partition(" ")
    return first, last


@nalarc.tool
def neighbours(node):
    time.sleep(0.025 - 0.002 * min(node, 10))
    return [node * 2 % 7, (node + 3) % 7, node % 7]


@nalarc.tool
def attrs(node):
    time.sleep(0.003 + 0.002 * (node % 5))
    return {"id": node, "kind": "even" if node % 2 == 0 else "odd", "tags": ["t" + str(node % 3)]}


@nalarc.workflow
def people(names):
    index = {}
    lasts = []
    for full in names:
        first, last = split_name(full)
        index[first] = last
        lasts.append(last)
    (a, b), *others = [split_name(x) for x in names]
    return {"index": index, "a": a, "b": b, "others": [list(o) for o in others],
            "has_smith": "Smith" in lasts, "no_doe": "Doe" not in index.values(),
            "lens": [len(split_name(x)[0]) for x in names],
            "is_tuple": isinstance(split_name(names[0]), tuple)}


@nalarc.workflow
def graph(start, steps):
    frontier = [start]
    visited = set()
    layers = {}
    for step in range(steps):
        nxt = []
        for node in frontier:
            if node in visited:
                continue
            visited.add(node)
            head, *tail = neighbours(node)
            nxt.extend([head] + tail[:1])
        layers[str(step)] = sorted(set(nxt))
        frontier = nxt
    kinds = {}
    for node in sorted(visited):
        info = attrs(node)
        kinds.setdefault(info["kind"], []).append((info["id"], info["tags"][0]))
    pairs = [[k, v] for k, v in sorted(kinds.items())]
    some = attrs(start)
    return {"layers": layers, "kinds": {k: [list(t) for t in v] for k, v in kinds.items()},
            "pairs_len": len(pairs), "visited": sorted(visited),
            "types": [isinstance(some, dict), isinstance(some["tags"], list),
                      isinstance(neighbours(start), tuple)],
            "key_from_result": {some["kind"]: some["id"]}}


CALLS = [
    ("people", {"names": ["Ada Lovelace", "Alan Turing", "Grace Smith", "Cher"]}, "s1"),
    ("graph", {"start": 1, "steps": 3}, "s1"),
    ("graph", {"start": 4, "steps": 1}, "s2"),
    ("people", {"names": ["John Doe", "Jane Roe"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

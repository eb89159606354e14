"""Fan-out in for loops and nested loops.

Exercises: lists built by appending tool results then used, nested loops,
dict of lists of tool results, enumerate/zip over results, augmented
assignment accumulators, loop variables reused after the loop,
``import nalarc as n``.
"""

import time

import nalarc as n


@n.tool
def embed(word):
    # Earlier (shorter) words sleep longer.
    time.sleep(0.002 + 0.004 * max(0, 7 - len(word)))
    return [len(word), sum(map(ord, word)) % 13]


@n.tool
def similarity(u, v):
    time.sleep(0.002 + 0.003 * ((u[1] + v[1]) % 9))
    return u[0] * v[0] + u[1] * v[1]


@n.tool
def tag(word, i):
    time.sleep(0.025 - 0.002 * min(i, 10))
    return f"{i}:{word[::-1]}"


@n.workflow
def pairwise(words):
    vecs = []
    for w in words:
        vecs.append(embed(w))
    matrix = []
    for i, u in enumerate(vecs):
        row = []
        for j, v in enumerate(vecs):
            if j < i:
                row.append(matrix[j][i])
                continue
            row.append(similarity(u, v))
        matrix.append(row)
    totals = [sum(row) for row in matrix]
    best = 0
    for k, t in enumerate(totals):
        if t > totals[best]:
            best = k
    return {"vecs": vecs, "matrix": matrix, "best": words[best], "last_row": row}


@n.workflow
def grouped(groups):
    out = {}
    count = 0
    for name, members in sorted(groups.items()):
        out[name] = []
        for i, m in enumerate(members):
            out[name].append(tag(m, i))
            count += 1
    tags = []
    for name in out:
        tags.extend(out[name])
    pairs = [f"{a}|{b}" for a, b in zip(tags, reversed(tags))]
    return {"groups": out, "count": count, "pairs": pairs, "loop_name": name}


CALLS = [
    ("pairwise", {"words": ["a", "bee", "cider", "dragonfly"]}, "s1"),
    ("grouped", {"groups": {"y": ["one", "two", "three"], "x": ["four"], "z": []}}, "s1"),
    ("pairwise", {"words": ["solo"]}, "s2"),
    ("grouped", {"groups": {"b": ["p", "q"], "a": ["r", "s", "t", "u"]}}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Module globals written by tools and by workflow code, where the answer is defined.

Exercises: a tool that memoizes into a module-level dict (``_EMBED_CACHE``) and a tool
that builds a module-level index lazily on first use (``global _INDEX``): both give
the same results whether their cache is warm or cold, so the answer does not depend
on which process runs them; a workflow that counts requests and keeps an audit log in
module globals (workflow code runs in one place, in program order), a helper that
reads a module-level settings dict the workflow rebinds per request, and a
module-level ``random.Random(7)`` drawn from only by workflow code.

Deliberately left out (not defined once tools run in several processes): a tool that
counts its own calls in a global and returns the count, and a tool that reads a global
the workflow wrote. Plain Python would print 1, 2, 3, ... for the first and the
workflow's value for the second; across worker processes each process has its own
module, so those outputs differ by construction.
"""

import random
import time

import nalarc

_EMBED_CACHE = {}
_INDEX = None
REQUESTS = 0
AUDIT = []
SETTINGS = {"k": 2}
RNG = random.Random(7)

CORPUS = ["tides rise", "moon pulls water", "sun also pulls", "waves break", "moon phases"]


@nalarc.tool
def embed(text):
    if text not in _EMBED_CACHE:
        time.sleep(0.002 + 0.003 * (9 - len(text) % 10))
        _EMBED_CACHE[text] = [text.count(c) for c in "aeiou"]
    return list(_EMBED_CACHE[text])


def _build_index():
    return {doc: [doc.count(c) for c in "aeiou"] for doc in CORPUS}


@nalarc.tool
def nearest(vector, k):
    global _INDEX
    if _INDEX is None:
        _INDEX = _build_index()
    time.sleep(0.002)
    dist = {doc: sum(abs(a - b) for a, b in zip(vector, v)) for doc, v in _INDEX.items()}
    return sorted(dist, key=lambda d: (dist[d], d))[:k]


def top_k():
    return SETTINGS["k"]


@nalarc.workflow
def search(queries, k):
    global REQUESTS, SETTINGS
    REQUESTS += 1
    SETTINGS = {"k": k}
    hits = {}
    for q in queries:
        hits[q] = nearest(embed(q), top_k())
        AUDIT.append(f"{REQUESTS}:{q}")
    sample = RNG.sample(CORPUS, 2)
    return {"hits": hits, "request": REQUESTS, "audit": AUDIT[-3:], "sample": sample,
            "again": embed(queries[0]) == embed(queries[0])}


CALLS = [
    ("search", {"queries": ["moon", "high tide"], "k": 2}, "s1"),
    ("search", {"queries": ["moon", "water waves"], "k": 1}, "s2"),
    ("search", {"queries": ["sun"], "k": 3}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

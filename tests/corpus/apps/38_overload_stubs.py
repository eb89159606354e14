"""``typing.overload`` stubs in front of tools, helpers and agent methods.

Exercises: ``@overload`` stubs (``...`` bodies) followed by the real ``@nalarc.tool``
definition, ``@typing.overload`` spelled through the module, overloads of an
undecorated helper that calls tools, overloads of an agent method, calls with the
different argument types from workflows and from a tool, and a ``TYPE_CHECKING``-only
import next to them.
"""

from __future__ import annotations

import time
import typing
from typing import TYPE_CHECKING, overload

import nalarc

if TYPE_CHECKING:
    from collections.abc import Sequence


@overload
def embed(item: str) -> list[int]: ...
@overload
def embed(item: list[str]) -> list[list[int]]: ...
@nalarc.tool
def embed(item):
    time.sleep(0.002 + 0.002 * (7 - len(item) % 8))
    if isinstance(item, list):
        return [[ord(c) % 7 for c in s[:3]] for s in item]
    return [ord(c) % 7 for c in item[:3]]


@typing.overload
def lookup(key: int) -> str: ...
@typing.overload
def lookup(key: str) -> int: ...
@nalarc.tool
def lookup(key):
    time.sleep(0.001 + 0.002 * (5 - len(str(key)) % 6))
    if isinstance(key, int):
        return f"doc-{key:03d}"
    return sum(map(ord, key)) % 100


@overload
def similarity(a: str, b: str) -> int: ...
@overload
def similarity(a: Sequence[str], b: str) -> list[int]: ...
def similarity(a, b):
    if isinstance(a, str):
        return sum(x == y for x, y in zip(embed(a), embed(b)))
    target = embed(b)
    return [sum(x == y for x, y in zip(v, target)) for v in embed(list(a))]


@nalarc.agent
class Indexer:
    @overload
    def index(self, doc: str) -> dict[str, int]: ...
    @overload
    def index(self, doc: int) -> dict[str, str]: ...
    def index(self, doc):
        time.sleep(0.003)
        if isinstance(doc, int):
            return {"id": lookup(doc)}
        return {"slot": lookup(doc)}


@nalarc.workflow
def search(query, corpus):
    scores = similarity(corpus, query)
    best = max(range(len(corpus)), key=lambda i: scores[i])
    return {
        "scores": scores,
        "best": corpus[best],
        "pair": similarity(query, corpus[best]),
        "vec": embed(query),
    }


@nalarc.workflow
def index_all(items):
    ix = Indexer()
    return [ix.index(i) for i in items]


CALLS = [
    ("search", {"query": "tide", "corpus": ["time", "tidal", "wave", "tidy"]}, "s1"),
    ("index_all", {"items": [7, "seven", 42, "x"]}, "s2"),
    ("search", {"query": "zz", "corpus": ["aa"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

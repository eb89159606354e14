"""``functools.lru_cache``, ``functools.cache`` and ``cached_property`` in an embedding app.

Exercises: ``@functools.lru_cache(maxsize=...)`` and ``@functools.cache`` on pure
helpers called from workflows and from tools; an ``lru_cache`` helper that calls a
tool (plain Python calls the tool once per distinct text; the cache lives in the
process that runs the workflow, so ``cache_info()`` hits/misses carry across the
requests of the run and are part of the output); ``cache_clear()`` in one request;
``functools.cached_property`` on a helper class whose property calls a tool (read
twice, computed once); a cached helper that raises (exceptions are not cached).
``normalize`` is also called inside the ``embed`` tool, i.e. in whatever process runs
the tool, so its ``cache_info()`` is deliberately not part of the output.
"""

import functools
import time

import nalarc


@functools.cache
def template(kind):
    return {"query": "search: {}", "doc": "passage: {}"}[kind]


@functools.lru_cache(maxsize=64)
def normalize(text):
    return " ".join(text.lower().split())


@nalarc.tool
def embed(text):
    time.sleep(0.002 + 0.003 * (9 - len(text) % 10))
    return [len(w) % 5 for w in normalize(text).split()][:4]


@functools.lru_cache(maxsize=None)
def cached_embedding(text):
    return tuple(embed(template("doc").format(normalize(text))))


@functools.lru_cache(maxsize=8)
def checked_embedding(text):
    if not text.strip():
        raise ValueError("empty passage")
    return tuple(embed(text))


class Passage:
    def __init__(self, text):
        self.text = text
        self.reads = 0

    @functools.cached_property
    def vector(self):
        self.reads += 1
        return embed(self.text)


def score(a, b):
    return sum(x * y for x, y in zip(a, b))


@nalarc.workflow
def rank(query, passages):
    q = embed(template("query").format(normalize(query)))
    vectors = [cached_embedding(p) for p in passages]
    ranked = sorted(range(len(passages)), key=lambda i: (-score(q, vectors[i]), i))
    info = cached_embedding.cache_info()
    return {"order": ranked, "vectors": [list(v) for v in vectors],
            "hits": info.hits, "misses": info.misses, "size": info.currsize}


@nalarc.workflow
def inspect_passage(text):
    p = Passage(text)
    first = p.vector
    second = p.vector
    return {"vector": first, "same": first is second, "reads": p.reads,
            "normalized": normalize(text)}


@nalarc.workflow
def reset_and_check(texts):
    cached_embedding.cache_clear()
    out = []
    for t in texts:
        try:
            out.append(list(checked_embedding(t)))
        except ValueError as exc:
            out.append(str(exc))
    return {"out": out, "after_clear": cached_embedding.cache_info().currsize,
            "checked_misses": checked_embedding.cache_info().misses}


CALLS = [
    ("rank", {"query": "Tide tables", "passages": ["high tide at noon", "Low  Tide", "high tide at noon"]},
     "s1"),
    ("rank", {"query": "moon", "passages": ["low tide", "the moon pulls"]}, "s2"),
    ("inspect_passage", {"text": "A passage about Tides"}, "s1"),
    ("reset_and_check", {"texts": ["abc de", "  ", "abc de", ""]}, "s1"),
    ("rank", {"query": "moon", "passages": ["low tide"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Batchable agents and directive-heavy components.

Exercises: ``@agent(batchable=True, max_instances=3)`` called many times in a
loop (a batched run must return each caller its own result, in program
order), ``@agent(min_instances=0, max_instances=2, retries=1)``, tools with
``retries``/``timeout``/``idempotent``/``max_instances``, results zipped back
to inputs, ``import nalarc as n``.
"""

import time

import nalarc as n


@n.agent(batchable=True, max_instances=3)
class Embedder:
    def embed(self, text):
        time.sleep(0.002 + 0.003 * (8 - len(text) % 9))
        return [len(text), text.count("a"), ord(text[0]) % 10 if text else 0]


@n.agent(min_instances=0, max_instances=2, retries=1, timeout=20.0)
class Classifier:
    def classify(self, vec):
        time.sleep(0.02 if vec[0] % 2 else 0.004)
        return "long" if vec[0] > 4 else "short"

    def classify_many(self, vecs):
        time.sleep(0.005)
        return [self.classify(v) for v in vecs]


@n.tool(retries=3, timeout=15.0, idempotent=True, max_instances=4)
def dot(u, v):
    time.sleep(0.002 + 0.002 * (sum(u) % 6))
    return sum(a * b for a, b in zip(u, v))


@n.workflow
def index(texts, query):
    emb = Embedder()
    vecs = [emb.embed(t) for t in texts]
    qv = Embedder().embed(query)
    scores = {t: dot(v, qv) for t, v in zip(texts, vecs)}
    labels = [Classifier().classify(v) for v in vecs]
    bulk = Classifier().classify_many(vecs)
    best = max(texts, key=lambda t: (scores[t], t))
    return {"vecs": vecs, "scores": scores, "labels": labels,
            "same": labels == bulk, "best": best,
            "pairs": [f"{t}:{l}" for t, l in zip(texts, labels)]}


CALLS = [
    ("index", {"texts": ["banana", "kiwi", "apple", "fig", "papaya", "date"], "query": "mango"}, "s1"),
    ("index", {"texts": ["a"], "query": "aaa"}, "s2"),
    ("index", {"texts": ["zz", "zzz", "zzzz", "zzzzz"], "query": "azaz"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

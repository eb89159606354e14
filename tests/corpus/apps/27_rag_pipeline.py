"""A realistic retrieve / rerank / generate / critique pipeline.

Exercises: many constructs combined — fan-out retrieval per sub-query,
dedup through a dict keyed by results, rerank with a tool key, a
generate-critique while loop bounded by attempt (decision depends only on
arguments), try/except around a flaky-by-argument tool with fallback, a
managed conversation history per session, as_completed sum, f-string
output, ``from nalarc import agent as a, tool, workflow`` styles mixed.
"""

import time

import nalarc
from nalarc import agent as a
from nalarc import tool, workflow

CORPUS = {"cats": ["cats purr", "cats nap"], "dogs": ["dogs bark", "dogs fetch", "dogs nap"],
          "naps": ["naps are good"], "birds": ["birds sing"]}


class SearchDown(Exception):
    pass


@tool(idempotent=True)
def search(term):
    time.sleep(0.002 + 0.004 * (7 - len(term) % 8))
    if term == "birds":
        raise SearchDown(f"index for {term} offline")
    return CORPUS.get(term, [])


@tool
def rerank_score(query, doc):
    time.sleep(0.003 + 0.002 * (len(doc) % 6))
    return sum(1 for w in query.split() if w in doc) * 10 - len(doc)


@a
class Assistant:
    history = nalarc.ManagedList()

    def generate(self, query, docs, attempt):
        time.sleep(0.02 - 0.004 * min(attempt, 4))
        answer = f"[{attempt}] {query}: " + " | ".join(docs[: attempt + 1])
        return answer

    def critique(self, answer, attempt):
        time.sleep(0.004)
        return attempt >= 2 or len(answer) > 40

    def commit(self, query, answer):
        time.sleep(0.006)
        self.history.append(f"{query}->{len(answer)}")
        return list(self.history)


@workflow
def ask(query):
    found = {}
    failures = []
    for term in query.split():
        try:
            for doc in search(term):
                found[doc] = term
        except SearchDown as e:
            failures.append(str(e))
    docs = sorted(found, key=lambda d: (-rerank_score(query, d), d))
    bot = Assistant()
    attempt = 0
    answer = bot.generate(query, docs, attempt)
    while not bot.critique(answer, attempt):
        attempt += 1
        answer = bot.generate(query, docs, attempt)
    history = bot.commit(query, answer)
    total = sum(nalarc.as_completed([rerank_score(query, d) for d in docs]))
    return {"answer": answer, "attempts": attempt + 1, "docs": docs, "failures": failures,
            "history": history, "total_score": total, "sources": sorted(set(found.values()))}


CALLS = [
    ("ask", {"query": "cats naps"}, "u1"),
    ("ask", {"query": "dogs birds"}, "u2"),
    ("ask", {"query": "dogs cats naps fish"}, "u1"),
    ("ask", {"query": "fish"}, "u2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

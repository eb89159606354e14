"""Sorting and selection with keys that call tools.

Exercises: ``sorted(xs, key=tool)``, ``sorted(..., key=lambda x: (tool(x), x))``
with reverse and stable ties, ``max``/``min`` with lambda keys calling tools,
``list.sort`` with a key, ``heapq.nsmallest`` with a tool key, sorting a list of
tool-result dicts by a field, ``from nalarc import tool, workflow``.
"""

import heapq
import time

from nalarc import tool, workflow


@tool
def relevance(doc):
    time.sleep(0.002 + 0.003 * (9 - len(doc) % 10))
    return len(set(doc)) % 4


@tool
def freshness(doc):
    time.sleep(0.025 - 0.002 * (len(doc) % 10))
    return {"doc": doc, "age": sum(map(ord, doc)) % 11}


@workflow
def rank(docs):
    by_rel = sorted(docs, key=relevance)
    by_rel_desc = sorted(docs, key=lambda d: (relevance(d), d), reverse=True)
    best = max(docs, key=lambda d: relevance(d) * 10 - len(d))
    worst = min(docs, key=lambda d: (relevance(d), d))
    infos = [freshness(d) for d in docs]
    infos.sort(key=lambda i: i["age"])
    newest = [i["doc"] for i in infos[:2]]
    top2 = heapq.nsmallest(2, docs, key=lambda d: -relevance(d))
    return {
        "by_rel": by_rel,
        "by_rel_desc": by_rel_desc,
        "best": best,
        "worst": worst,
        "ages": [i["age"] for i in infos],
        "newest": newest,
        "top2": top2,
    }


@workflow
def pick(docs, k=1):
    ranked = sorted(docs, key=lambda d: freshness(d)["age"])
    return {"picked": ranked[:k], "age_of_first": freshness(ranked[0])["age"]}


CALLS = [
    ("rank", {"docs": ["river", "stone", "aaaa", "zebra crossing", "hi", "moon"]}, "s1"),
    ("pick", {"docs": ["alpha", "beta", "gamma", "delta"], "k": 2}, "s1"),
    ("rank", {"docs": ["same", "emas", "mesa"]}, "s2"),
    ("pick", {"docs": ["x"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

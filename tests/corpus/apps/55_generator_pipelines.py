"""A streaming ingestion pipeline made of generators that call tools.

Exercises: a source generator yielding tool results page by page, a mapping stage
(``for doc in docs: yield enrich(doc)``), a filtering stage, a batching stage built
on ``itertools.islice`` over an iterator, ``yield from`` delegating to a sub-generator,
the whole pipeline consumed by ``list(...)``, by a ``for`` loop that breaks early (the
source page that would raise is never fetched), by ``next(gen)`` and
``next(gen, default)``, and a generator expression over a generator; ``sum`` over the
pipeline; an error raised in a later stage escaping the request.
"""

import itertools
import time

import nalarc


@nalarc.tool
def fetch_page(feed, n):
    time.sleep(0.002 + 0.003 * (6 - n % 7))
    if n >= 3:
        raise LookupError(f"{feed}: no page {n}")
    return [f"{feed}-{n}-{i}" for i in range(2 + n % 2)]


@nalarc.tool
def enrich(doc):
    time.sleep(0.001 + 0.002 * (len(doc) % 4))
    feed, page, item = doc.split("-")
    return {"id": doc, "weight": int(page) * 10 + int(item), "feed": feed}


def pages(feed, limit):
    for n in range(limit):
        yield fetch_page(feed, n)


def documents(feed, limit):
    for page in pages(feed, limit):
        yield from page


def enriched(docs):
    for doc in docs:
        yield enrich(doc)


def heavy(items, threshold):
    return (item for item in items if item["weight"] >= threshold)


def batches(iterable, size):
    it = iter(iterable)
    while True:
        batch = list(itertools.islice(it, size))
        if not batch:
            return
        yield batch


@nalarc.workflow
def ingest(feed, limit, size):
    stream = heavy(enriched(documents(feed, limit)), 5)
    grouped = [[d["id"] for d in b] for b in batches(stream, size)]
    return {"batches": grouped, "total": sum(d["weight"] for d in enriched(documents(feed, limit)))}


@nalarc.workflow
def first_heavy(feed, threshold):
    gen = heavy(enriched(documents(feed, 10)), threshold)
    first = next(gen)
    second = next(gen, None)
    seen = []
    for doc in enriched(documents(feed, 10)):
        seen.append(doc["weight"])
        if doc["weight"] > threshold:
            break
    return {"first": first, "second": second, "seen": seen}


@nalarc.workflow
def drain(feed):
    return list(enriched(documents(feed, 10)))


CALLS = [
    ("ingest", {"feed": "news", "limit": 3, "size": 2}, "s1"),
    ("ingest", {"feed": "blog", "limit": 1, "size": 5}, "s2"),
    ("first_heavy", {"feed": "news", "threshold": 10}, "s1"),
    ("first_heavy", {"feed": "wiki", "threshold": 20}, "s2"),
    ("drain", {"feed": "x"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

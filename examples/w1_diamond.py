"""W1: a diamond plus a fan-out, the workload of the concurrency benchmark.

The ``plan`` tool picks ``k`` (6) search queries and a page to read; then the
``k`` searches (a fan-out over the ``Searcher`` agent) and the ``fetch`` of the
page run side by side (the two arms of the diamond); the ``combine`` tool joins
them.  Every component is synchronous and sleeps ``delay`` seconds, standing in
for a call to a slow service, so the critical path is three calls (plan, then
search or fetch, then combine): 0.45 s at the default 0.15 s, while one
plain-Python request takes ``(k + 3) * delay``.

Plain Python, one call after another (1.35 s):

    python examples/w1_diamond.py

Compiled by nalarc, one request (about 0.45 s):

    nalarc run examples/w1_diamond.py --input '{"question": "heat pumps"}'

Served over HTTP (``benchmarks/w1_concurrency.py`` does this under load):

    nalarc run examples/w1_diamond.py --serve --port 8000
    curl -s -X POST localhost:8000/v1/workflows/w1 -H 'content-type: application/json' \
        -d '{"question": "heat pumps"}'

Each component may run up to 8 instances (``max_instances=8``); how many
actually run is the executor's business (``--instances Searcher=8`` sizes them
by hand).  With default flags each has one: the agent runs 4 calls at once, a
tool 16 (docs/executor.md), so one request's 6 searches take two rounds.
"""

import json
import sys
import time

import nalarc

#: Seconds each tool call sleeps, unless the request says otherwise.
DELAY = 0.15


@nalarc.tool(max_instances=8)
def plan(question, k, delay):
    time.sleep(delay)  # an LLM call that splits the question
    return {"queries": [f"{question} / aspect {i}" for i in range(k)], "page": f"https://example.org/{len(question)}"}


@nalarc.agent(max_instances=8)
class Searcher:
    def search(self, query, delay):
        time.sleep(delay)  # an LLM call with a search tool
        return f"top hit for {query!r}"


@nalarc.tool(max_instances=8)
def fetch(page, delay):
    time.sleep(delay)  # an HTTP download
    return f"{len(page)} bytes from {page}"


@nalarc.tool(max_instances=8)
def combine(question, hits, page, delay):
    time.sleep(delay)  # an LLM call that writes the answer
    return {"question": question, "hits": hits, "page": page, "sources": len(hits) + 1}


@nalarc.workflow
def w1(question: str, k: int = 6, delay: float = DELAY):
    planned = plan(question, k, delay)
    hits = [Searcher().search(query, delay) for query in planned["queries"]]
    page = fetch(planned["page"], delay)
    return combine(question, hits, page, delay)


if __name__ == "__main__":
    started = time.perf_counter()
    answer = w1("heat pumps")
    print(json.dumps(answer, indent=2))
    print(f"{time.perf_counter() - started:.2f} s", file=sys.stderr)

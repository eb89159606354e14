"""An agent subclassing another agent.

Exercises: ``@nalarc.agent class WebSearch(Search)`` where ``Search`` is itself an
agent; both are called from one workflow; the subclass overrides a method and calls
``super().search(...)``; an inherited method (not overridden) called on a subclass
handle uses the subclass's override through ``self``; managed state declared on the
base agent and written by both (the descriptor belongs to the base class, so plain
Python gives both agents one per-session list, appended to in program order);
directives differing between base and subclass; ``isinstance``/``issubclass`` on
the handles.
"""

import time

import nalarc


@nalarc.tool
def query_index(index, q):
    time.sleep(0.002 + 0.003 * (7 - len(q) % 8))
    return [f"{index}:{q}:{i}" for i in range(len(q) % 3 + 1)]


@nalarc.tool
def rank(hits):
    time.sleep(0.001 + 0.001 * len(hits))
    return sorted(hits, key=lambda h: (-len(h), h))


@nalarc.agent(max_instances=2)
class Search:
    index = "local"
    seen = nalarc.ManagedList()

    def search(self, q):
        hits = query_index(self.index, q)
        self.seen.append(q)
        return hits

    def best(self, q):
        return rank(self.search(q))[0]

    def history(self):
        return list(self.seen)


@nalarc.agent(timeout=30.0)
class WebSearch(Search):
    index = "web"

    def search(self, q):
        local = super().search(q)
        extra = query_index("cache", q.upper())
        return local + extra


@nalarc.workflow
def lookup(queries):
    plain, web = Search(), WebSearch()
    out = []
    for q in queries:
        out.append({"q": q, "local": plain.search(q), "web": web.search(q)})
    return {
        "out": out,
        "best_local": plain.best(queries[0]),
        "best_web": web.best(queries[0]),
        "local_history": plain.history(),
        "web_history": web.history(),
        "is_search": [isinstance(web, Search), isinstance(plain, WebSearch),
                      issubclass(WebSearch, Search)],
    }


CALLS = [
    ("lookup", {"queries": ["tides", "moon", "ebb"]}, "s1"),
    ("lookup", {"queries": ["x"]}, "s2"),
    ("lookup", {"queries": ["flood"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Agents with several methods; agent methods calling tools.

Exercises: an agent class with several methods, methods calling tools and
other methods of ``self``, agent constructed once and reused vs constructed
per call, two different agents passing results to each other, agent
directives (``timeout``, ``max_instances``, ``resources``),
``from nalarc import agent as a``.
"""

import time

import nalarc
from nalarc import agent as a


@nalarc.tool
def retrieve(query, k):
    time.sleep(0.002 + 0.004 * (7 - len(query) % 8))
    return [f"{query}-doc{i}" for i in range(k)]


@nalarc.tool
def count_tokens(text):
    time.sleep(0.02 - 0.002 * min(len(text) % 10, 9))
    return len(text.replace("-", " ").split())


@a(timeout=10.0, max_instances=2, resources={"gpu": 0.5})
class Researcher:
    def plan(self, question):
        time.sleep(0.01)
        return [w for w in question.split() if len(w) > 3]

    def gather(self, topic, k=2):
        docs = retrieve(topic, k)
        return {"topic": topic, "docs": docs, "tokens": sum(count_tokens(d) for d in docs)}

    def research(self, question):
        return [self.gather(t, k=len(t) % 3 + 1) for t in self.plan(question)]


@a
class Writer:
    def draft(self, findings):
        time.sleep(0.003 + 0.002 * len(findings))
        return "; ".join(f"{f['topic']}:{f['tokens']}" for f in findings)

    def title(self, question):
        time.sleep(0.02)
        return question.title()


@nalarc.workflow
def report(question):
    r = Researcher()
    plan = r.plan(question)
    findings = r.research(question)
    direct = [Researcher().gather(t) for t in plan[:1]]
    w = Writer()
    body = w.draft(findings)
    head = w.title(question)
    return {"plan": plan, "title": head, "body": body, "direct": direct,
            "n_docs": sum(len(f["docs"]) for f in findings)}


CALLS = [
    ("report", {"question": "what about large language models"}, "s1"),
    ("report", {"question": "tiny q"}, "s2"),
    ("report", {"question": "agents serving workflows quickly"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

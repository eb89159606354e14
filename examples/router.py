"""Router (the paper's second workload): a classifier sends each query to a chat or a coding branch.

A small classifier model reads the query; chat questions go to the chat agent,
programming questions to the coding agent, which drafts code, runs a linter
tool on it and revises once.  The mix of queries shifts in phases: for a
while nearly all (95%) are chat, then nearly all are code.  A static
placement (a fixed number of GPUs per branch) saturates the busy branch while
the other idles; nalarc's resource reassignment moves instances to where the
queue is.  Every LLM call goes to ``nalarc.llm.chat`` (simulated GPUs unless
``OPENAI_BASE_URL`` is set).

Plain Python:

    python examples/router.py

Served by nalarc under the phase-shifting load (``workload`` below):

    nalarc run examples/router.py --rate 6 --duration 30
"""

import json
import os
import random

import nalarc
from nalarc.llm import chat, simulate
from nalarc.workloads import Request, phase_share, poisson_times, workload

os.environ.setdefault("NALARC_LLM_TIME_SCALE", "10")
simulate("chat", decode_s_per_token=0.04)  # both branches run a large model
simulate("coder", decode_s_per_token=0.04)

CODE_WORDS = ("python", "function", "bug", "sql", "regex", "compile", "test")
CHAT_QUESTIONS = (
    "What is a good name for a bakery?",
    "Plan a weekend in Lisbon.",
    "Explain inflation to a ten year old.",
    "Write a short poem about autumn.",
    "How do I ask for a raise?",
)
CODE_QUESTIONS = (
    "Write a python function that merges two sorted lists.",
    "Why does this sql query return duplicates?",
    "Fix the bug in my regex for email addresses.",
    "How do I test a function that calls an API?",
    "Make this python loop faster.",
)


@nalarc.tool
def classify(query):
    chat([{"role": "user", "content": f"chat or code? {query}"}], model="classifier", max_tokens=4)
    return "code" if any(word in query.lower() for word in CODE_WORDS) else "chat"


@nalarc.tool
def lint(code):
    return [f"line {n + 1}: line too long" for n, line in enumerate(code.split(" ")) if len(line) > 8][:3]


@nalarc.agent(min_instances=1, max_instances=3)
class ChatAgent:
    def reply(self, query):
        return chat([{"role": "user", "content": query}], model="chat", max_tokens=300)


@nalarc.agent(min_instances=1, max_instances=3)
class CodeAgent:
    def solve(self, query):
        draft = chat([{"role": "user", "content": f"Write code: {query}"}], model="coder", max_tokens=300)
        problems = lint(draft)
        if not problems:
            return draft
        return chat([{"role": "user", "content": f"Fix {problems} in:\n{draft}"}], model="coder", max_tokens=300)


@nalarc.workflow
def route(query: str):
    kind = classify(query)
    if kind == "code":
        answer = CodeAgent().solve(query)
    else:
        answer = ChatAgent().reply(query)
    return {"query": query, "branch": kind, "answer": answer}


@workload
def workload(rate: float, duration: float, seed: int = 0, period: float = 10.0):
    """Poisson arrivals; the share of code queries alternates 5% / 95% every ``period`` seconds."""
    rng = random.Random(seed)
    for index, at in enumerate(poisson_times(rate, duration, rng)):
        questions = CODE_QUESTIONS if rng.random() < phase_share(at, period, [0.05, 0.95]) else CHAT_QUESTIONS
        yield Request(at, {"query": rng.choice(questions)}, session=f"user-{index}")


if __name__ == "__main__":
    for query in (CHAT_QUESTIONS[0], CODE_QUESTIONS[0]):
        print(json.dumps(route(query), indent=2))

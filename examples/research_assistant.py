"""Research assistant: plan sub-questions, search each, rank the hits, write a summary.

A planner agent splits the question into sub-questions, a search tool runs once
per sub-question, a ranker tool scores every hit, and a writer agent (which
remembers earlier questions of the session in a ManagedList) writes the answer.
The sleeps stand in for LLM and search latency.

Plain Python, one call after another:

    python examples/research_assistant.py

Compiled by nalarc, the searches and the scoring run in parallel:

    nalarc run examples/research_assistant.py \
        --input '{"question": "Should I heat my house with a heat pump or solar panels?"}'

The writer's history belongs to the session (``--session``, stored in
``--state``), so a second run in the same session reports ``"turn": 2``.
"""

import json
import time

import nalarc

KNOWLEDGE = {
    "heat pump": [
        "heat pumps move heat instead of burning fuel",
        "a heat pump delivers about 3 kWh of heat per kWh of electricity",
        "heat pumps lose efficiency below -15 C",
    ],
    "solar panels": [
        "solar panels produce most in summer, when heating demand is low",
        "a 5 kWp solar array yields about 5000 kWh a year in central Europe",
        "solar panels need little maintenance",
    ],
    "cost": [
        "heat pump installation costs 10000 to 20000 euro",
        "solar panel installation costs about 1500 euro per kWp",
    ],
    "house": ["insulation cuts heating demand by up to 50 percent"],
}


@nalarc.agent
class Planner:
    def plan(self, question):
        time.sleep(0.2)  # an LLM call
        text = question.lower()
        topics = [topic for topic in KNOWLEDGE if topic in text] + ["cost"]
        return [f"What matters about {topic}?" for topic in dict.fromkeys(topics)]


@nalarc.tool
def search(sub_question):
    time.sleep(0.3)  # a web search
    topic = sub_question.removeprefix("What matters about ").removesuffix("?")
    return KNOWLEDGE.get(topic, [])


@nalarc.tool
def score(sub_question, snippet):
    time.sleep(0.05)  # a cross-encoder
    words = set(sub_question.lower().strip("?").split())
    return len(words & set(snippet.split())) * 10 + sum(c.isdigit() for c in snippet)


@nalarc.agent
class Writer:
    history = nalarc.ManagedList()

    def summarize(self, question, findings):
        time.sleep(0.2)  # an LLM call
        self.history.append(question)
        lines = [f"- {sub} {hits[0] if hits else 'nothing found'}." for sub, hits in findings.items()]
        return {"answer": f"{question}\n" + "\n".join(lines), "turn": len(self.history)}


@nalarc.workflow
def research(question: str):
    sub_questions = Planner().plan(question)
    hits = {}
    for sub in sub_questions:
        hits[sub] = search(sub)
    ranked = {}
    for sub, snippets in hits.items():
        scores = {snippet: score(sub, snippet) for snippet in snippets}
        ranked[sub] = sorted(snippets, key=lambda s: -scores[s])[:2]
    written = Writer().summarize(question, ranked)
    return {
        "question": question,
        "sub_questions": sub_questions,
        "evidence": ranked,
        "answer": written["answer"],
        "turn": written["turn"],
    }


if __name__ == "__main__":
    result = research("Should I heat my house with a heat pump or solar panels?")
    print(json.dumps(result, indent=2))

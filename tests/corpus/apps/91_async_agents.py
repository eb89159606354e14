"""Agents with ``async def`` methods.

Exercises: a leaf async agent method (user asyncio code) writing managed state
across requests of a session while another session is interleaved; an async
method that calls tools and its own async and sync methods (compiled); a
``stateful=True`` agent whose async methods must run in program order; agent
calls gathered concurrently; an async method that raises a custom exception
(caught in the workflow, and escaping in one request); ``current_session()``
inside an async method; a sync workflow that only calls sync methods of an
agent that also has async ones.
"""

import asyncio

import nalarc
from nalarc import ManagedDict, ManagedList, current_session


class PlanError(Exception):
    pass


@nalarc.tool
async def lookup(topic):
    await asyncio.sleep(0.002 + 0.003 * (len(topic) % 5))
    return f"facts about {topic}"


@nalarc.tool
def summarize(text, limit=12):
    return text[:limit]


@nalarc.agent
class Notebook:
    entries = ManagedList()
    counts = ManagedDict()

    async def add(self, text):
        await asyncio.sleep(0.004 if len(text) % 2 else 0.001)
        self.entries.append(text)
        self.counts[text[:1]] = self.counts.get(text[:1], 0) + 1
        return len(self.entries)

    async def show(self):
        await asyncio.sleep(0)
        return {"session": current_session(), "entries": list(self.entries), "counts": dict(self.counts)}

    def size(self):
        return len(self.entries)


@nalarc.agent
class Researcher:
    async def study(self, topic):
        facts = await lookup(topic)
        short = summarize(facts, limit=8 + len(topic))
        return await self._polish(short) + self._suffix(topic)

    async def _polish(self, text):
        await asyncio.sleep(0.001)
        return text.title()

    def _suffix(self, topic):
        return "!" * len(topic)

    async def plan(self, goal):
        if not goal:
            raise PlanError("empty goal")
        steps = await asyncio.gather(*[self.study(w) for w in goal.split()])
        return " / ".join(steps)


@nalarc.agent(stateful=True)
class Counter:
    def __init__(self):
        self.value = 0

    def reset(self):
        self.value = 0

    async def bump(self, by):
        await asyncio.sleep(0.003 if by > 1 else 0.0)
        self.value = self.value * 2 + by
        return self.value


@nalarc.workflow
async def take_notes(texts):
    book = Notebook()
    sizes = []
    for t in texts:
        sizes.append(await book.add(t))
    return {"sizes": sizes, "book": await book.show()}


@nalarc.workflow
async def research(goal):
    r = Researcher()
    try:
        plan = await r.plan(goal)
    except PlanError as e:
        plan = f"no plan: {e}"
    single = await r.study("x")
    return [plan, single]


@nalarc.workflow
async def research_unguarded(goal):
    return await Researcher().plan(goal)


@nalarc.workflow
async def counting(steps):
    c = Counter()
    c.reset()  # one instance serves every request once compiled: start from zero
    first = [await c.bump(s) for s in steps]
    together = await asyncio.gather(c.bump(1), c.bump(2))
    return {"first": first, "together": together}


@nalarc.workflow
def sizes_only():
    return Notebook().size()


CALLS = [
    ("take_notes", {"texts": ["apple", "avocado", "kiwi"]}, "s1"),
    ("take_notes", {"texts": ["banana"]}, "s2"),
    ("take_notes", {"texts": ["cherry", "apricot"]}, "s1"),
    ("sizes_only", {}, "s1"),
    ("research", {"goal": "search rank answer"}, "s3"),
    ("research", {"goal": ""}, "s3"),
    ("research_unguarded", {"goal": ""}, "s3"),
    ("counting", {"steps": [1, 2, 3]}, "s4"),
    ("counting", {"steps": [5]}, "s5"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

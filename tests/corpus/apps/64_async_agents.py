"""Agents with ``async def`` methods: a research team that fans out inside its methods.

Exercises: an agent whose ``async def`` methods ``await`` async tools and use
``asyncio.gather`` inside the method, an async method awaiting another async method
of ``self``, an agent mixing a synchronous method and async methods, an async method
on a ``ManagedList`` agent (state appended after the awaits, read back by later
requests of the session), ``await Agent().method(...)`` in an async workflow, and
``asyncio.gather`` over methods of two different agents.
"""

import asyncio

import nalarc


@nalarc.tool
async def search(topic, source):
    await asyncio.sleep(0.002 + 0.002 * (7 - (len(topic) + len(source)) % 8))
    return [f"{source}/{topic}/{i}" for i in range(len(topic) % 3 + 1)]


@nalarc.tool
async def read(ref):
    await asyncio.sleep(0.001 + 0.002 * (len(ref) % 4))
    return len(ref.split("/")[1]) * 3 + int(ref.rsplit("/", 1)[1])


@nalarc.agent
class Researcher:
    sources = ("web", "arxiv")

    def plan(self, question):
        return [w for w in question.split() if len(w) > 3]

    async def gather_topic(self, topic):
        found = await asyncio.gather(*[search(topic, s) for s in self.sources])
        refs = [r for hits in found for r in hits]
        scores = await asyncio.gather(*[read(r) for r in refs])
        return {"topic": topic, "refs": refs, "score": sum(scores)}

    async def research(self, question):
        topics = self.plan(question)
        return await asyncio.gather(*[self.gather_topic(t) for t in topics])


@nalarc.agent
class Notebook:
    notes = nalarc.ManagedList()

    async def record(self, finding):
        await asyncio.sleep(0.001)
        self.notes.append(finding["topic"])
        return len(self.notes)

    async def recall(self):
        await asyncio.sleep(0.001)
        return list(self.notes)


@nalarc.workflow
async def investigate(question):
    r = Researcher()
    findings = await r.research(question)
    counts = []
    for f in findings:
        counts.append(await Notebook().record(f))
    direct, memory = await asyncio.gather(r.gather_topic("tides"), Notebook().recall())
    return {"findings": findings, "counts": counts, "direct": direct["score"], "memory": memory,
            "plan": r.plan(question)}


CALLS = [
    ("investigate", {"question": "how do ocean tides work"}, "s1"),
    ("investigate", {"question": "moon gravity"}, "s2"),
    ("investigate", {"question": "why are tides periodic"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

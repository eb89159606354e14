"""Async generators and async context managers: a streaming chat session.

Exercises: an async generator that ``await``s an async tool per chunk and is
consumed with ``async for`` (with ``break`` before a chunk whose tool call would
raise), an async comprehension (``[c async for c in stream(...)]``) with a filter,
``anext(agen)`` and ``anext(agen, default)``, an ``@contextlib.asynccontextmanager``
session that records open/close around the body (also when the body raises), a
class with ``__aenter__``/``__aexit__`` that swallows one exception type, and
``async with`` over two managers at once.
"""

import asyncio
import contextlib

import nalarc


@nalarc.tool
async def generate(prompt, i):
    await asyncio.sleep(0.002 + 0.003 * (5 - i % 6))
    if i >= len(prompt):
        raise IndexError(f"no chunk {i} for {prompt!r}")
    return prompt[i].upper() * (i + 1)


@nalarc.tool
async def moderate(text):
    await asyncio.sleep(0.001 + 0.001 * (len(text) % 3))
    if "X" in text:
        raise ValueError(f"moderation rejected {text!r}")
    return text


async def stream(prompt, limit):
    for i in range(limit):
        yield await generate(prompt, i)


@contextlib.asynccontextmanager
async def chat_session(name, log):
    log.append(f"open {name}")
    try:
        yield f"session-{name}"
    finally:
        log.append(f"close {name}")


class Moderated:
    def __init__(self, log):
        self.log = log

    async def __aenter__(self):
        self.log.append("moderation on")
        return self

    async def __aexit__(self, exc_type, exc, tb):
        self.log.append(f"moderation off ({exc_type.__name__ if exc_type else 'clean'})")
        return exc_type is not None and issubclass(exc_type, ValueError)


@nalarc.workflow
async def chat(prompt, limit):
    log = []
    chunks = []
    async with chat_session("main", log) as sid:
        async for chunk in stream(prompt, 10):
            chunks.append(chunk)
            if len(chunks) >= limit:
                break
    short = [c async for c in stream(prompt, min(limit, len(prompt))) if len(c) % 2 == 1]
    agen = stream(prompt, 2)
    first = await anext(agen)
    second = await anext(agen)
    third = await anext(agen, "end")
    return {"sid": sid, "chunks": chunks, "short": short, "heads": [first, second, third], "log": log}


@nalarc.workflow
async def moderated(texts):
    log = []
    passed = []
    for t in texts:
        async with chat_session(t, log), Moderated(log):
            passed.append(await moderate(t))
    return {"passed": passed, "log": log}


@nalarc.workflow
async def overrun(prompt):
    log = []
    async with chat_session("over", log):
        return [c async for c in stream(prompt, len(prompt) + 1)]


CALLS = [
    ("chat", {"prompt": "tides", "limit": 3}, "s1"),
    ("chat", {"prompt": "ab", "limit": 5}, "s2"),
    ("moderated", {"texts": ["hello", "boXes", "fine"]}, "s1"),
    ("overrun", {"prompt": "abc"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

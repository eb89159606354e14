"""``async def`` tools, helpers and workflows.

Exercises: async tools awaited at once and later (``a = fetch(x); ...; await a``),
awaiting in a different order from the calls (the failure of the one awaited
first surfaces, as in plain asyncio), a coroutine that is never awaited (its
failure never surfaces), ``asyncio.gather`` of tools, of async helpers and of a
mix with ``return_exceptions=True``, a sync tool's failure made before an await
(it surfaces first), async helpers that return a sync tool's future, ``return
await``, async tools reached through a dict (dynamic dispatch), ``asyncio.run``
of an async tool from a synchronous workflow, try/except/finally around awaits.
"""

import asyncio
import time

from nalarc import tool, workflow


@tool
async def fetch(key):
    await asyncio.sleep(0.002 + 0.004 * (5 - len(key) % 6))
    if key.startswith("!"):
        raise KeyError(key)
    return f"<{key}>"


@tool
async def score(text):
    await asyncio.sleep(0.003)
    return len(text) * 3 % 7


@tool
def shout(text):
    time.sleep(0.002 + 0.002 * (len(text) % 4))
    if not text:
        raise ValueError("nothing to shout")
    return text.upper()


async def fetch_and_score(key):
    page = await fetch(key)
    return page, await score(page)


async def louder(key):
    page = await fetch(key)
    return shout(page)  # a sync tool's future, awaited by nobody: a value for the caller


HANDLERS = {"fetch": fetch, "score": score}


@workflow
async def pipeline(keys):
    pages = await asyncio.gather(*[fetch(k) for k in keys])
    scored = await asyncio.gather(*(fetch_and_score(k) for k in keys))
    loud = [await louder(k) for k in keys[:2]]
    total = sum(s for _, s in scored)
    return {"pages": pages, "scored": scored, "loud": loud, "total": total}


@workflow
async def await_later(keys):
    started = [fetch(k) for k in keys]
    first = shout(keys[0])
    out = []
    for coro in reversed(started):
        try:
            out.append(await coro)
        except KeyError as e:
            out.append(f"missing {e}")
    return {"first": first, "out": out}


@workflow
async def await_order(a, b):
    x = fetch(a)
    y = fetch(b)
    log = []
    try:
        log.append(await y)
        log.append(await x)
    except KeyError as e:
        log.append(f"failed {e}")
    finally:
        log.append("finally")
    never = fetch("!ignored")
    return log


@workflow
async def sync_failure_first(key):
    shouted = shout("")
    page = await fetch(key)
    return [shouted, page]


@workflow
async def await_then_sync(a, b):
    first = await fetch(a)
    second = shout(b)  # must not start before the awaited fetch in program order
    return [first, second]


@workflow
async def mixed_gather(keys):
    results = await asyncio.gather(
        fetch(keys[0]), fetch_and_score(keys[1]), fetch("!" + keys[0]), return_exceptions=True
    )
    return [r if not isinstance(r, BaseException) else type(r).__name__ for r in results]


@workflow
async def gather_fails(keys):
    return await asyncio.gather(*[fetch(k) for k in keys])


@workflow
async def dispatch(names, text):
    out = []
    for name in names:
        out.append(await HANDLERS[name](text))
    return out


@workflow
def sync_runs_async(key):
    return asyncio.run(fetch(key)) + shout(key)


CALLS = [
    ("pipeline", {"keys": ["a", "bb", "ccc"]}, "s1"),
    ("await_later", {"keys": ["x", "!y", "zz"]}, "s1"),
    ("await_order", {"a": "!first", "b": "!second"}, "s1"),
    ("await_order", {"a": "ok", "b": "!second"}, "s2"),
    ("await_order", {"a": "!first", "b": "ok"}, "s2"),
    ("sync_failure_first", {"key": "!nope"}, "s2"),
    ("await_then_sync", {"a": "!gone", "b": ""}, "s2"),
    ("await_then_sync", {"a": "ok", "b": "fine"}, "s2"),
    ("mixed_gather", {"keys": ["p", "qq"]}, "s3"),
    ("gather_fails", {"keys": ["a", "!b", "!c"]}, "s3"),
    ("dispatch", {"names": ["fetch", "score", "fetch"], "text": "hey"}, "s3"),
    ("sync_runs_async", {"key": "k"}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""asyncio itself inside async workflows: queues, locks, tasks, timeouts, async iteration.

Exercises: a producer task feeding an ``asyncio.Queue`` that the workflow drains
(``create_task``, ``await task``), ``asyncio.Lock``/``Semaphore``/``Event`` with
``async with`` and ``locked()``, a class-based async context manager and an
``@asynccontextmanager`` that calls a tool (its ``finally`` runs on failure),
an async generator that awaits tools consumed by ``async for`` (with ``break``)
and by an async comprehension, ``[await f(x) for x in xs]``, ``asyncio.wait_for``
that succeeds and that times out, ``asyncio.timeout``, ``asyncio.shield``,
``asyncio.as_completed`` consumed order-independently, ``asyncio.to_thread``,
``asyncio.sleep(0, result)``, and a tool that is a plain asyncio program itself
(gather and a queue inside the tool body).
"""

import asyncio
import contextlib

from nalarc import tool, workflow


@tool
async def fetch(n):
    await asyncio.sleep(0.002 + 0.002 * (6 - n % 7))
    if n < 0:
        raise ValueError(f"negative {n}")
    return n * n


@tool
def label(n):
    return f"#{n}"


@tool
async def crawl(n):
    # Leaf async tool: ordinary asyncio code, run on the worker's asyncio loop.
    q = asyncio.Queue()
    for i in range(n):
        q.put_nowait(i)
    seen = await asyncio.gather(*[asyncio.sleep(0.001 * i, result=i) for i in range(n)])
    total = 0
    while not q.empty():
        total += await q.get()
    return {"seen": seen, "total": total}


class Audit:
    def __init__(self, trail, name):
        self.trail, self.name = trail, name

    async def __aenter__(self):
        await asyncio.sleep(0)
        self.trail.append(f"enter {self.name}")
        return self.name.upper()

    async def __aexit__(self, exc_type, exc, tb):
        self.trail.append(f"exit {self.name} {exc_type.__name__ if exc_type else 'ok'}")
        return exc_type is ValueError  # swallow ValueError only


@contextlib.asynccontextmanager
async def opened(trail, n):
    value = await fetch(n)
    trail.append(f"open {value}")
    try:
        yield value
    finally:
        trail.append(f"close {n}")


async def squares(limit):
    for i in range(limit):
        yield await fetch(i)


async def producer(queue, n):
    for i in range(n):
        await queue.put(label(i))
        await asyncio.sleep(0.001)
    await queue.put(None)


@workflow
async def queues_and_locks(n):
    queue = asyncio.Queue()
    task = asyncio.create_task(producer(queue, n))
    got = []
    while (item := await queue.get()) is not None:
        got.append(item)
    await task
    lock, sem, ready = asyncio.Lock(), asyncio.Semaphore(2), asyncio.Event()
    trail = []
    async with lock:
        trail.append(f"locked {lock.locked()}")
    trail.append(f"after {lock.locked()}")
    async with sem:
        ready.set()
    await ready.wait()
    trail.append(f"ready {ready.is_set()}")
    return {"got": got, "trail": trail}


@workflow
async def managers(n):
    trail = []
    async with Audit(trail, "outer") as name:
        trail.append(f"body {name}")
        async with opened(trail, n) as v:
            trail.append(f"got {v + await fetch(1)}")
    async with Audit(trail, "swallow"):
        await fetch(-1)
        trail.append("not reached")
    try:
        async with opened(trail, 2):
            raise KeyError("inside")
    except KeyError as e:
        trail.append(f"caught {e}")
    return trail


@workflow
async def iteration(limit):
    firsts = []
    async for s in squares(limit):
        if s > 10:
            break
        firsts.append(s)
    all_of = [s async for s in squares(limit) if s % 2 == 0]
    awaited = [await fetch(i) + 1 for i in range(limit)]
    return {"firsts": firsts, "all": all_of, "awaited": awaited}


@workflow
async def timing(n):
    quick = await asyncio.wait_for(fetch(n), timeout=5)
    try:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.02)
        slow = "finished"
    except TimeoutError:
        slow = "timed out"
    try:
        async with asyncio.timeout(0.02):
            await asyncio.sleep(1)
        block = "finished"
    except TimeoutError:
        block = "timed out"
    shielded = await asyncio.shield(fetch(n + 1))
    done = []
    for next_done in asyncio.as_completed([fetch(i) for i in range(n)]):
        done.append(await next_done)
    threaded = await asyncio.to_thread(sorted, [3, 1, 2])
    zero = await asyncio.sleep(0, "slept")
    return {"quick": quick, "slow": slow, "block": block, "shielded": shielded,
            "done": sorted(done), "threaded": threaded, "zero": zero}


@workflow
async def leaf_asyncio(n):
    return [await crawl(n), await crawl(n + 1)]


CALLS = [
    ("queues_and_locks", {"n": 4}, "s1"),
    ("managers", {"n": 3}, "s1"),
    ("iteration", {"limit": 5}, "s2"),
    ("timing", {"n": 3}, "s2"),
    ("leaf_asyncio", {"n": 3}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

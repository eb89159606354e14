"""``await`` inside control flow and expressions, mixed with synchronous code.

Exercises: ``await`` in ``if`` tests with ``and``/``or`` short-circuit (the second
tool is not awaited, and would raise, when the first decides), in a ``while``
condition, in f-strings and ``return`` expressions, in a conditional expression; an
async recursive helper (tree expansion); ``asyncio.to_thread`` over a synchronous
tool; an async method of a plain helper class; a synchronous agent method called from
an async workflow; an async closure defined in the workflow and gathered.
"""

import asyncio
import time

import nalarc


@nalarc.tool
async def is_cached(key):
    await asyncio.sleep(0.002 + 0.002 * (5 - len(key) % 6))
    return len(key) % 2 == 0


@nalarc.tool
async def is_fresh(key):
    await asyncio.sleep(0.001)
    if key.startswith("!"):
        raise RuntimeError(f"freshness check exploded for {key}")
    return "old" not in key


@nalarc.tool
async def children(node):
    await asyncio.sleep(0.001 + 0.002 * (3 - len(node) % 4))
    return [node + c for c in "ab"] if len(node) < 3 else []


@nalarc.tool
def checksum(text):
    time.sleep(0.002)
    return sum(map(ord, text)) % 251


@nalarc.agent
class Counter:
    def count(self, items):
        time.sleep(0.002)
        return len(items)


class Cache:
    def __init__(self):
        self.entries = {}

    async def get_or_load(self, key):
        if key not in self.entries:
            self.entries[key] = await asyncio.to_thread(checksum, key)
        return self.entries[key]


async def expand(node):
    kids = await children(node)
    subtrees = await asyncio.gather(*(expand(k) for k in kids))
    return {node: subtrees} if kids else node


@nalarc.workflow
async def decide(keys):
    out = []
    for key in keys:
        if await is_cached(key) and await is_fresh(key):
            out.append(f"{key}: cached and fresh")
        elif await is_cached(key + "?") or await is_fresh(key):
            out.append(f"{key}: {'cached' if await is_cached(key) else 'probed'} only")
        else:
            out.append(f"{key}: reload")
    return out


@nalarc.workflow
async def crawl(root, budget):
    tree = await expand(root)
    frontier = [root]
    visited = 0
    while frontier and visited < budget and await is_fresh(frontier[0]):
        node = frontier.pop(0)
        visited += 1
        frontier.extend(await children(node))
    cache = Cache()
    sums = [await cache.get_or_load(k) for k in [root, root + "a", root]]

    async def labelled(node):
        return f"{node}={await checksum_async(node)}"

    labels = await asyncio.gather(*(labelled(n) for n in [root, root * 2]))
    return {"tree": tree, "visited": visited, "left": frontier, "sums": sums, "cache": len(cache.entries),
            "labels": labels, "count": Counter().count(frontier)}


async def checksum_async(node):
    return await asyncio.to_thread(checksum, node)


CALLS = [
    ("decide", {"keys": ["ab", "abc", "old1", "!xy", "!boom", "zz", "olden"]}, "s1"),
    ("crawl", {"root": "r", "budget": 4}, "s2"),
    ("crawl", {"root": "xyz", "budget": 2}, "s1"),
    ("decide", {"keys": ["!!"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

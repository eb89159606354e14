"""``async def`` tools and workflows: an async retrieval service.

Exercises: ``async def`` tools that ``await asyncio.sleep`` (earlier calls sleep
longer), an ``async def`` workflow awaiting them one by one, in a loop and in a list
comprehension (``[await fetch(u) for u in urls]``), ``asyncio.gather(tool(a),
tool(b))`` and ``asyncio.gather(*[...])`` (results in argument order), an undecorated
``async def`` helper awaited by the workflow, a synchronous tool called without
``await`` from the async workflow, an async tool that calls another async tool, and
an exception from an awaited tool caught in the workflow and one escaping.
"""

import asyncio

import nalarc


@nalarc.tool
async def fetch(url):
    await asyncio.sleep(0.002 + 0.003 * (8 - len(url) % 9))
    if url.endswith(".onion"):
        raise PermissionError(f"refusing {url}")
    return {"url": url, "size": len(url) * 10}


@nalarc.tool
async def summarize(doc):
    await asyncio.sleep(0.001 + 0.002 * (doc["size"] % 5))
    return f"{doc['url']}: {doc['size']} bytes"


@nalarc.tool
async def fetch_and_summarize(url):
    doc = await fetch(url)
    return await summarize(doc)


@nalarc.tool
def tokenize(text):
    return text.replace(":", " ").split()


async def top_docs(urls, k):
    docs = await asyncio.gather(*[fetch(u) for u in urls])
    return sorted(docs, key=lambda d: (-d["size"], d["url"]))[:k]


@nalarc.workflow
async def crawl(urls):
    first = await fetch(urls[0])
    sequential = []
    for u in urls[1:]:
        sequential.append((await fetch(u))["size"])
    sizes = [(await fetch(u))["size"] for u in urls]
    a, b = await asyncio.gather(summarize(first), fetch_and_summarize(urls[-1]))
    best = await top_docs(urls, 2)
    return {"first": first, "sequential": sequential, "sizes": sizes, "pair": [a, b],
            "best": [d["url"] for d in best], "tokens": tokenize(a)}


@nalarc.workflow
async def guarded(urls):
    out = []
    for u in urls:
        try:
            out.append(await fetch_and_summarize(u))
        except PermissionError as exc:
            out.append(f"skipped: {exc}")
    return out


@nalarc.workflow
async def unguarded(urls):
    return await asyncio.gather(*(fetch(u) for u in urls))


CALLS = [
    ("crawl", {"urls": ["a.example/long/path", "b.example", "c.ex/x"]}, "s1"),
    ("guarded", {"urls": ["ok.example", "bad.onion", "fine.org"]}, "s2"),
    ("unguarded", {"urls": ["x.org", "hidden.onion"]}, "s1"),
    ("crawl", {"urls": ["solo.example"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

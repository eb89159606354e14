"""Timeouts, tasks and partial failure in an async aggregator.

Exercises: ``asyncio.wait_for`` around an async tool that finishes well within the
limit, and around one that sleeps far longer than the limit (``TimeoutError`` caught
and reported; the limits are 50x apart from the sleeps, so the outcome does not
depend on machine speed); ``async with asyncio.timeout(...)``; ``asyncio.gather(...,
return_exceptions=True)`` with exceptions returned as data; ``asyncio.create_task``
started early and awaited later; an ``asyncio.Semaphore`` bounding concurrency inside
a helper; ``asyncio.as_completed`` consumed by an order-insensitive ``sorted``.
"""

import asyncio

import nalarc


@nalarc.tool
async def quote(vendor, item):
    await asyncio.sleep(0.002 + 0.003 * (6 - len(vendor) % 7))
    if vendor == "slowco":
        await asyncio.sleep(1.0)
    if vendor == "brokenco":
        raise ConnectionResetError(f"{vendor} hung up")
    return {"vendor": vendor, "item": item, "price": (len(vendor) * 13 + len(item) * 7) % 50}


@nalarc.tool
async def convert(amount, currency):
    await asyncio.sleep(0.001)
    return round(amount * {"EUR": 0.9, "GBP": 0.8, "USD": 1.0}[currency], 2)


async def bounded_quotes(vendors, item, limit):
    gate = asyncio.Semaphore(limit)

    async def one(vendor):
        async with gate:
            return await quote(vendor, item)

    return await asyncio.gather(*(one(v) for v in vendors))


@nalarc.workflow
async def best_price(item, vendors, currency):
    converting = asyncio.create_task(convert(100, currency))
    results = await asyncio.gather(*(quote(v, item) for v in vendors), return_exceptions=True)
    offers, failures = [], []
    for vendor, r in zip(vendors, results):
        if isinstance(r, BaseException):
            failures.append([vendor, type(r).__name__, str(r)])
        else:
            offers.append(r)
    rate = await converting
    best = min(offers, key=lambda o: (o["price"], o["vendor"]))
    return {"best": best, "failures": failures, "rate_100": rate,
            "in_currency": await convert(best["price"], currency)}


@nalarc.workflow
async def deadline(item, vendors):
    out = {}
    for v in vendors:
        try:
            out[v] = (await asyncio.wait_for(quote(v, item), timeout=0.05))["price"]
        except TimeoutError:
            out[v] = "timed out"
    try:
        async with asyncio.timeout(0.05):
            await quote("slowco", item)
        scoped = "finished"
    except TimeoutError:
        scoped = "scope expired"
    bounded = await bounded_quotes([v for v in vendors if v != "slowco"], item, 2)
    done = []
    for next_done in asyncio.as_completed([quote(v, item) for v in vendors if v != "slowco"]):
        done.append((await next_done)["vendor"])
    return {"prices": out, "scoped": scoped, "bounded": [b["price"] for b in bounded],
            "completed": sorted(done)}


@nalarc.workflow
async def strict(item, vendors):
    return await asyncio.gather(*(quote(v, item) for v in vendors))


CALLS = [
    ("best_price", {"item": "kettle", "vendors": ["acme", "brokenco", "zed", "megamart"], "currency": "EUR"},
     "s1"),
    ("deadline", {"item": "lamp", "vendors": ["acme", "slowco", "zed"]}, "s2"),
    ("strict", {"item": "rope", "vendors": ["zed", "brokenco"]}, "s1"),
    ("best_price", {"item": "rope", "vendors": ["zed"], "currency": "JPY"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

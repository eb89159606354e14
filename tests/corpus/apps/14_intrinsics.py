"""The intrinsics: as_completed, value and available.

Exercises: ``nalarc.as_completed`` with order-insensitive consumers (sum,
sorted, set, max, counting), ``nalarc.value`` with and without a timeout,
``nalarc.available`` used only in ways that cannot change the output
(both branches compute the same thing), as_completed over agent calls,
breaking out of an as_completed loop once a count is reached.
"""

import time

import nalarc


@nalarc.tool
def crawl(url):
    # Earlier urls are slower, so completion order is reversed.
    time.sleep(0.003 + 0.003 * max(0, 8 - len(url) % 9))
    return {"url": url, "size": len(url) * 11 % 37}


@nalarc.agent
class Grader:
    def grade(self, page):
        time.sleep(0.02 if page["size"] % 2 else 0.004)
        return page["size"] % 5


@nalarc.workflow
def gather(urls, need):
    pages = [crawl(u) for u in urls]
    total = 0
    seen = []
    for p in nalarc.as_completed(pages):
        total += p["size"]
        seen.append(p["url"])
    grades = [Grader().grade(p) for p in pages]
    graded = sorted(nalarc.as_completed(grades))
    big = 0
    for p in nalarc.as_completed(pages):
        if p["size"] >= 0:
            big += 1
        if big >= need:
            break
    first = pages[0]
    if nalarc.available(first):
        first_size = first["size"]
    else:
        first_size = nalarc.value(first)["size"]
    waited = nalarc.value(pages[-1], timeout=30)
    ready = [nalarc.available(p) for p in pages]
    return {
        "total": total,
        "seen": sorted(seen),
        "graded": graded,
        "big": big,
        "first_size": first_size,
        "last": waited,
        "n_ready_checks": len(ready),
        "max_grade": max(nalarc.as_completed(grades)),
        "plain_value": nalarc.value(7),
    }


CALLS = [
    ("gather", {"urls": ["a.io", "bb.io", "ccc.io", "dddd.io", "eeeee.io"], "need": 3}, "s1"),
    ("gather", {"urls": ["x.org"], "need": 5}, "s2"),
    ("gather", {"urls": ["k.net", "kk.net", "kkk.net"], "need": 1}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

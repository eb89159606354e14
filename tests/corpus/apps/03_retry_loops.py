"""While-retry loops whose decisions depend only on tool arguments.

Exercises: while loops driven by tool results, break/continue, for-else and
while-else, retry counters, ``@tool(retries=..., timeout=..., idempotent=...)``
directives, ``from nalarc import tool, workflow``.
"""

import time

from nalarc import tool, workflow

MAX_ATTEMPTS = 6


@tool(retries=2, timeout=5.0, idempotent=True)
def check(key, attempt):
    # Later attempts answer faster than earlier ones.
    time.sleep(0.002 + 0.004 * max(0, 6 - attempt))
    return attempt >= len(key) % 4


@tool
def generate(key, attempt):
    time.sleep(0.02 - 0.003 * min(attempt, 5))
    return f"{key}#{attempt}"


@tool(idempotent=True)
def quality(draft):
    time.sleep(0.003 + 0.002 * (len(draft) % 5))
    return sum(map(ord, draft)) % 10


@workflow
def until_ok(key):
    attempt = 0
    while not check(key, attempt):
        attempt += 1
    return {"key": key, "attempts": attempt}


@workflow
def refine(key, target):
    attempt = 0
    drafts = []
    while attempt < MAX_ATTEMPTS:
        draft = generate(key, attempt)
        attempt += 1
        q = quality(draft)
        if q % 2 == 1:
            continue
        drafts.append([draft, q])
        if q >= target:
            break
    else:
        return {"key": key, "gave_up": True, "drafts": drafts, "attempt": attempt}
    return {"key": key, "gave_up": False, "drafts": drafts, "attempt": attempt}


@workflow
def first_passing(keys):
    tried = []
    for k in keys:
        tried.append(k)
        if check(k, 1):
            found = k
            break
    else:
        found = None
    return {"found": found, "tried": tried, "n": len(tried)}


CALLS = [
    ("until_ok", {"key": "abc"}, "s1"),
    ("refine", {"key": "doc", "target": 6}, "s1"),
    ("refine", {"key": "zz", "target": 9}, "s2"),
    ("first_passing", {"keys": ["aaa", "bbbbbbb", "cc", "d"]}, "s2"),
    ("first_passing", {"keys": ["xxx", "yyy"]}, "s3"),
    ("until_ok", {"key": "qqqqqqqqqqqqqqqqqqqqqqq"}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

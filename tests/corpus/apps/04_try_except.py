"""try/except/else/finally around failing tools.

Exercises: tools raising ValueError, KeyError and an app-defined exception
class; except clauses reading variables assigned before the failing call;
try/finally; nested try; else clauses; ``except ... as e`` with str(e);
re-raise; a request whose exception escapes the workflow.
"""

import time

import nalarc


class QuotaExceeded(Exception):
    """Raised by the lookup tool for expensive keys."""


CATALOG = {"apple": 3, "pear": 5, "plum": 8}


@nalarc.tool
def lookup(name):
    time.sleep(0.02 if name < "m" else 0.004)
    if name.startswith("$"):
        raise QuotaExceeded(f"quota for {name}")
    return CATALOG[name]


@nalarc.tool
def divide(a, b):
    time.sleep(0.003 + 0.002 * (a % 7))
    if b == 0:
        raise ValueError(f"cannot divide {a} by zero")
    return a // b


@nalarc.workflow
def price(items, divisor):
    log = []
    total = 0
    for item in items:
        try:
            qty = lookup(item)
            log.append(f"got {item}")
            share = divide(qty * 10, divisor)
        except KeyError as e:
            log.append(f"missing {e}")
            continue
        except ValueError as e:
            log.append(f"div {item} qty={qty}: {e}")
            share = -1
        except QuotaExceeded as e:
            log.append(f"quota {type(e).__name__}")
            break
        else:
            log.append(f"ok {item}")
        finally:
            log.append("finally")
        total += share
    return {"total": total, "log": log}


@nalarc.workflow
def nested(a, b):
    stage = "start"
    try:
        stage = "outer"
        x = divide(a, 1)
        try:
            stage = "inner"
            y = divide(x, b)
        except ValueError:
            stage = f"inner-failed-after-{x}"
            y = lookup("$inner")
        stage = "after-inner"
    except QuotaExceeded as e:
        return {"stage": stage, "err": str(e), "x": x}
    return {"stage": stage, "x": x, "y": y}


@nalarc.workflow
def escaping(name):
    cleaned = []
    try:
        v = lookup(name)
        cleaned.append(v)
    finally:
        cleaned.append("done")
    return {"v": v, "cleaned": cleaned}


@nalarc.workflow
def reraise(a):
    try:
        return divide(a, a - 3)
    except ValueError as e:
        raise KeyError(f"wrapped {a}") from e


CALLS = [
    ("price", {"items": ["apple", "kiwi", "pear", "$gold", "plum"], "divisor": 2}, "s1"),
    ("price", {"items": ["plum", "apple"], "divisor": 0}, "s1"),
    ("nested", {"a": 12, "b": 0}, "s2"),
    ("nested", {"a": 12, "b": 5}, "s2"),
    ("escaping", {"name": "banana"}, "s3"),
    ("reraise", {"a": 3}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""A ``stateful=True`` agent whose call order matters.

Exercises: instance attributes mutated across calls on one instance (the
result of each call depends on all earlier calls in program order), a
no-argument ``__init__``, return values that are lengths and running totals,
calls in a loop, in a comprehension and in a while condition, results used in later calls, a reset
at the start of each request so results do not depend on instance reuse,
``import nalarc as n``.
"""

import time

import nalarc as n


@n.agent(stateful=True)
class Ledger:
    def __init__(self):
        self.entries = []
        self.balance = 0

    def reset(self):
        time.sleep(0.002)
        self.entries = []
        self.balance = 0
        return 0

    def post(self, amount):
        # Earlier posts sleep longer than later ones.
        time.sleep(max(0.002, 0.03 - 0.004 * len(self.entries)))
        self.entries.append(amount)
        self.balance = self.balance * 2 + amount
        return len(self.entries)

    def snapshot(self):
        time.sleep(0.003)
        return {"entries": list(self.entries), "balance": self.balance}


@n.tool
def fee(size):
    time.sleep(0.002 + 0.003 * (size % 7))
    return size * 3 - 1


@n.workflow
def book(amounts):
    ledger = Ledger()
    ledger.reset()
    sizes = []
    for a in amounts:
        sizes.append(ledger.post(a))
    fees = [ledger.post(fee(s)) for s in sizes[:2]]
    snap = ledger.snapshot()
    ledger.post(-snap["balance"])
    return {"sizes": sizes, "fees": fees, "mid": snap, "final": ledger.snapshot()}


@n.workflow
def fill_until(limit):
    ledger = Ledger()
    ledger.reset()
    rounds = 0
    while ledger.post(rounds) < limit:
        rounds += 1
    return {"rounds": rounds, "state": ledger.snapshot()}


CALLS = [
    ("book", {"amounts": [5, 1, 4]}, "s1"),
    ("book", {"amounts": [2]}, "s2"),
    ("book", {"amounts": [1, 2, 3, 4, 5]}, "s1"),
    ("fill_until", {"limit": 4}, "s2"),
    ("fill_until", {"limit": 1}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

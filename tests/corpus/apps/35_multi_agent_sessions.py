"""Several agents with managed state, used through helpers and as_completed.

Exercises: two agent classes with separate ManagedDict/ManagedList state in
the same session, a helper that writes to one agent and reads from another,
``as_completed`` over state-writing agent calls (writes still happen in
program order; the output only sums), state read back in a later request,
a third session interleaved, an agent method returning ``current_session()``
together with its state, ``import nalarc as n`` and ``from nalarc import
agent as a`` mixed.
"""

import time

import nalarc as n
from nalarc import agent as a


@a
class Inventory:
    stock = n.ManagedDict()

    def add(self, item, qty):
        time.sleep(0.025 - 0.003 * min(len(self.stock), 7))
        self.stock[item] = self.stock.get(item, 0) + qty
        return self.stock[item]

    def level(self, item):
        time.sleep(0.003)
        return self.stock.get(item, 0)


@a
class Audit:
    trail = n.ManagedList()

    def record(self, entry):
        time.sleep(0.002 + 0.003 * (len(entry) % 7))
        self.trail.append(entry)
        return len(self.trail)

    def dump(self):
        time.sleep(0.002)
        return {"session": n.current_session(), "trail": list(self.trail)}


@n.tool
def price(item):
    time.sleep(0.002 + 0.002 * (len(item) % 5))
    return len(item) * 4 + 1


def restock(inv, audit, item, qty):
    new_level = inv.add(item, qty)
    audit.record(f"{item}+{qty}={new_level}")
    return new_level


@n.workflow
def receive(items):
    inv, audit = Inventory(), Audit()
    levels = [restock(inv, audit, it, q) for it, q in items]
    value = sum(n.as_completed([price(it) * inv.level(it) for it, _ in items]))
    counts = sum(n.as_completed([audit.record(f"seen {it}") for it, _ in items]))
    return {"levels": levels, "value": value, "counts": counts, "audit": audit.dump()}


@n.workflow
def report(items):
    inv = Inventory()
    return {"levels": {it: inv.level(it) for it in items}, "audit": Audit().dump()}


CALLS = [
    ("receive", {"items": [["apple", 3], ["pear", 2], ["apple", 1]]}, "shop1"),
    ("receive", {"items": [["fig", 9]]}, "shop2"),
    ("report", {"items": ["apple", "pear", "fig"]}, "shop1"),
    ("receive", {"items": [["pear", 5], ["kiwi", 1]]}, "shop1"),
    ("report", {"items": ["fig", "kiwi"]}, "shop3"),
    ("report", {"items": ["pear", "kiwi"]}, "shop1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

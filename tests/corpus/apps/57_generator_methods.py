"""Generators as methods: iterable helper classes, agent methods that stream internally.

Exercises: a helper class with an ``__iter__`` generator that calls a tool per item
(consumed by ``for``, ``list`` and a comprehension), a generator method with a
parameter (``cursor.rows(limit)``), a generator that ``yield``s inside a ``with``
block of a context manager that records enter/exit, an agent method that builds and
consumes a local generator over tool calls, a generator expression passed as the
argument of a tool (the tool iterates it), and ``reversed``/``len`` on a class that
also defines ``__len__``/``__getitem__`` backed by tool results.
"""

import contextlib
import time

import nalarc


@nalarc.tool
def load_row(table, i):
    time.sleep(0.002 + 0.003 * (5 - i % 6))
    if table == "broken" and i == 2:
        raise IOError(f"{table}: row {i} is corrupt")
    return {"table": table, "i": i, "value": (i * 7) % 11}


@nalarc.tool
def total(values):
    time.sleep(0.002)
    return sum(values)


class Table:
    def __init__(self, name, size):
        self.name = name
        self.size = size
        self.log = []

    def __iter__(self):
        for i in range(self.size):
            yield load_row(self.name, i)

    def rows(self, limit):
        with self.span(f"rows<{limit}"):
            for i in range(min(limit, self.size)):
                yield load_row(self.name, i)["value"]

    @contextlib.contextmanager
    def span(self, label):
        self.log.append(f"enter {label}")
        try:
            yield
        finally:
            self.log.append(f"exit {label}")

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        if not 0 <= i < self.size:
            raise IndexError(i)
        return load_row(self.name, i)["value"]


@nalarc.agent
class Auditor:
    def audit(self, table, size):
        def suspicious():
            for i in range(size):
                row = load_row(table, i)
                if row["value"] > 5:
                    yield row["i"]

        flagged = list(suspicious())
        return {"flagged": flagged, "sum": total(load_row(table, i)["value"] for i in flagged)}


@nalarc.workflow
def scan(name, size):
    t = Table(name, size)
    values = [row["value"] for row in t]
    first_two = list(t.rows(2))
    looped = []
    for v in t.rows(size):
        looped.append(v)
    return {"values": values, "first_two": first_two, "looped": looped, "log": t.log,
            "len": len(t), "backwards": list(reversed(t)),
            "total": total(v for v in t.rows(size) if v % 2),
            "audit": Auditor().audit(name, size)}


CALLS = [
    ("scan", {"name": "users", "size": 4}, "s1"),
    ("scan", {"name": "empty", "size": 0}, "s2"),
    ("scan", {"name": "broken", "size": 5}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

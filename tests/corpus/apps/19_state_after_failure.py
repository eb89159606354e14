"""Managed-state writes around failures must follow program order.

Exercises: a loop of state-writing agent calls where one call raises — the
calls after it in program order never happen (a compiler that launched them
early must not commit them), the failing call raises before writing, the
next request of the same session sees exactly the writes that happened,
a ManagedDict counter, a different session interleaved.
"""

import time

import nalarc


class Rejected(Exception):
    pass


@nalarc.agent
class Journal:
    lines = nalarc.ManagedList()
    stats = nalarc.ManagedDict()

    def write(self, text):
        # Later writes are faster: they would finish first if launched early.
        time.sleep(max(0.002, 0.025 - 0.004 * len(self.lines)))
        if text.startswith("!"):
            # Raise before writing: plain Python has no rollback.
            raise Rejected(f"rejected {text} after {len(self.lines)}")
        self.lines.append(text)
        self.stats["writes"] = self.stats.get("writes", 0) + 1
        return len(self.lines)

    def read(self):
        time.sleep(0.003)
        return {"lines": list(self.lines), "writes": self.stats.get("writes", 0)}


@nalarc.workflow
def log_all(texts):
    j = Journal()
    sizes = []
    try:
        for t in texts:
            sizes.append(j.write(t))
    except Rejected as e:
        return {"sizes": sizes, "error": str(e), "state": j.read()}
    return {"sizes": sizes, "state": j.read()}


@nalarc.workflow
def log_unchecked(texts):
    j = Journal()
    for t in texts:
        j.write(t)
    return j.read()


@nalarc.workflow
def peek():
    return Journal().read()


CALLS = [
    ("log_all", {"texts": ["a", "b", "!c", "d", "e"]}, "u1"),
    ("log_all", {"texts": ["x"]}, "u2"),
    ("peek", {}, "u1"),
    ("log_unchecked", {"texts": ["f", "!g", "h"]}, "u1"),
    ("peek", {}, "u1"),
    ("log_unchecked", {"texts": ["y", "z"]}, "u2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

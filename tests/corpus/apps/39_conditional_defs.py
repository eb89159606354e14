"""Functions, tools and classes defined in branches of module-level ``if``/``try``.

Exercises: ``if FLAG: def f() ... else: def f() ...`` for a helper that calls
tools, the same for a ``@nalarc.tool`` (only the taken branch's tool exists),
a ``sys.version_info`` branch, a class defined in both branches of an ``if``,
a ``try``/``except`` that defines a fallback function, and a branch whose
condition comes from ``os.environ.get`` with a default (never set by the tests).
"""

import os
import sys
import time

import nalarc

STRICT = os.environ.get("NALARC_CORPUS_STRICT_MODE", "0") == "1"
USE_CACHE = True


@nalarc.tool
def tokenize(text):
    time.sleep(0.002 + 0.002 * (9 - len(text) % 10))
    return text.lower().split()


if USE_CACHE:

    @nalarc.tool
    def lookup(word):
        time.sleep(0.001 + 0.003 * (5 - len(word) % 6))
        return {"word": word, "source": "cache", "score": len(word) * 2}

else:

    @nalarc.tool
    def lookup(word):
        time.sleep(0.02)
        return {"word": word, "source": "remote", "score": -1}


if STRICT:

    def keep(entry):
        return entry["score"] >= 10

else:

    def keep(entry):
        return entry["score"] >= 4 and lookup(entry["word"][::-1])["score"] > 0


if sys.version_info >= (3, 8):

    def render(entries):
        return ", ".join(f"{e['word']}={e['score']}" for e in entries)

else:  # pragma: no cover - never taken on supported Pythons

    def render(entries):
        return ", ".join("%s=%s" % (e["word"], e["score"]) for e in entries)


if USE_CACHE:

    class Report:
        kind = "cached"

        def __init__(self, entries):
            self.entries = entries

        def summary(self):
            return {"kind": self.kind, "n": len(self.entries), "text": render(self.entries)}

else:

    class Report:
        kind = "remote"

        def summary(self):
            return {"kind": self.kind}


try:
    from math import lcm as _lcm

    def batch_size(a, b):
        return _lcm(a, b)

except ImportError:  # pragma: no cover - math.lcm exists since 3.9

    def batch_size(a, b):
        return a * b


@nalarc.workflow
def analyze(text):
    words = tokenize(text)
    entries = [lookup(w) for w in words]
    kept = [e for e in entries if keep(e)]
    return {
        "report": Report(kept).summary(),
        "strict": STRICT,
        "batch": batch_size(len(words), 4),
        "sources": sorted({e["source"] for e in entries}),
    }


CALLS = [
    ("analyze", {"text": "The quick brown fox jumps over a lazy dog"}, "s1"),
    ("analyze", {"text": "a an the"}, "s2"),
    ("analyze", {"text": "Serving agent workflows"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

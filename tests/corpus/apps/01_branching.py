"""Branches on tool results.

Exercises: if/elif/else on tool results, nested ifs, conditional expressions,
comparison and arithmetic operators on results, chained comparisons,
f-strings, global constants, ``import nalarc``.
"""

import time

import nalarc

THRESHOLD = 50
LABELS = ("cold", "warm", "hot")


@nalarc.tool
def score(text):
    time.sleep(0.002 + 0.004 * (7 - len(text) % 8))
    return sum(ord(c) for c in text) % 100


@nalarc.tool
def bucket(value):
    time.sleep(0.03 if value < 30 else 0.003)
    if value < 30:
        return 0
    return 1 if value < 70 else 2


@nalarc.tool
def escalate(text, level):
    time.sleep(0.005)
    return f"{text.upper()}!{level}"


@nalarc.workflow
def triage(text, other):
    a = score(text)
    b = score(other)
    if a > b:
        winner, margin = text, a - b
    elif a < b:
        winner, margin = other, b - a
    else:
        winner, margin = None, 0
    kind = LABELS[bucket(a)]
    if kind == "hot":
        if margin > 10:
            note = escalate(text, 2)
        else:
            note = escalate(text, 1)
    elif kind == "warm" and b >= THRESHOLD:
        note = f"warm:{b}"
    else:
        note = "quiet"
    flag = "big" if a + b > 2 * THRESHOLD else "small"
    mid = 20 <= a < 80
    return {
        "a": a,
        "b": b,
        "winner": winner,
        "margin": margin,
        "kind": kind,
        "note": note,
        "flag": flag,
        "mid": mid,
        "ratio": round(a / (b + 1), 4),
        "mod": (a * 3 + b) % 7,
        "summary": f"{text}={a:03d} vs {other}={b:>4} ({kind})",
    }


CALLS = [
    ("triage", {"text": "alpha", "other": "beta"}, "s1"),
    ("triage", {"text": "zzzzzz", "other": "a"}, "s1"),
    ("triage", {"text": "same", "other": "same"}, "s2"),
    ("triage", {"text": "abc", "other": "d"}, "s3"),
    ("triage", {"text": "a", "other": "b"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

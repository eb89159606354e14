"""Workflows calling workflows; tools calling tools.

Exercises: a workflow invoked as a plain function from another workflow
(also in a loop and a comprehension), a tool whose body calls other tools,
a tool calling a tool that raises (caught inside the outer tool), an agent
method calling a tool that calls a tool, exceptions propagating from an
inner workflow to the outer one, ``from nalarc import tool, agent, workflow``.
"""

import time

from nalarc import agent, tool, workflow


@tool
def tokenize(text):
    time.sleep(0.002 + 0.003 * (8 - len(text) % 9))
    return text.split()


@tool
def checked_len(word):
    time.sleep(0.002)
    if not word.isalpha():
        raise ValueError(f"not a word: {word}")
    return len(word)


@tool
def analyze(text):
    # A tool calling tools, catching an inner tool's failure.
    time.sleep(0.004)
    lengths = []
    for w in tokenize(text):
        try:
            lengths.append(checked_len(w))
        except ValueError:
            lengths.append(-1)
    return lengths


@agent
class Editor:
    def polish(self, text):
        time.sleep(0.01)
        return {"text": text.capitalize(), "lengths": analyze(text)}


@workflow
def inner(text, strict=False):
    lengths = analyze(text)
    if strict and -1 in lengths:
        raise ValueError(f"strict mode rejects {text!r}")
    return {"text": text, "lengths": lengths, "total": sum(x for x in lengths if x > 0)}


@workflow
def outer(texts, strict=False):
    parts = []
    for t in texts:
        parts.append(inner(t))
    strict_ok = [inner(t, strict=True)["total"] for t in texts if -1 not in analyze(t)]
    try:
        forced = inner(texts[0], strict=strict)
    except ValueError as e:
        forced = {"error": str(e)}
    polished = Editor().polish(texts[-1])
    return {"parts": parts, "strict_ok": strict_ok, "forced": forced, "polished": polished}


@workflow
def outer_unchecked(text):
    return {"value": inner(text, strict=True)["total"] * 2}


CALLS = [
    ("outer", {"texts": ["hello big world", "r2 d2 droid", "x"], "strict": False}, "s1"),
    ("outer", {"texts": ["a1 b", "ok fine"], "strict": True}, "s2"),
    ("outer_unchecked", {"text": "fine words only"}, "s1"),
    ("outer_unchecked", {"text": "bad 99 word"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

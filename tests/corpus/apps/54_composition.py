"""Composing tools: ``compose``, ``pipe``, ``functools.partial`` and ``operator``.

Exercises: a ``compose(*fns)`` helper built with ``functools.reduce`` over tools and a
lambda; a ``pipe(value, *fns)`` helper; ``functools.partial`` of a tool with keyword
arguments stored in a module-level dict and called from a workflow and in ``map``;
``partial`` of a bound agent method; ``partial`` objects composed together;
``operator.itemgetter``/``attrgetter``/``methodcaller`` over tool results;
``functools.reduce`` with a tool as the reducer and an initial value.
"""

import functools
import operator
import time
from dataclasses import dataclass

import nalarc


@dataclass(frozen=True)
class Doc:
    title: str
    words: int


@nalarc.tool
def clean(text, lower=True):
    time.sleep(0.002 + 0.003 * (8 - len(text) % 9))
    text = " ".join(text.split())
    return text.lower() if lower else text


@nalarc.tool
def truncate(text, width=10, suffix="…"):
    time.sleep(0.001 + 0.002 * (len(text) % 4))
    return text if len(text) <= width else text[: width - len(suffix)] + suffix


@nalarc.tool
def to_doc(text):
    time.sleep(0.002)
    return Doc(title=text.title(), words=len(text.split()))


@nalarc.tool
def merge(acc, doc):
    time.sleep(0.001 + 0.001 * (doc.words % 3))
    return {"titles": acc["titles"] + [doc.title], "words": acc["words"] + doc.words}


@nalarc.agent
class Styler:
    def style(self, text, mark="*"):
        time.sleep(0.002)
        return f"{mark}{text}{mark}"


def compose(*fns):
    return functools.reduce(lambda f, g: lambda x: g(f(x)), fns)


def pipe(value, *fns):
    for fn in fns:
        value = fn(value)
    return value


SHORTEN = {"tight": functools.partial(truncate, width=6), "loose": functools.partial(truncate, width=14, suffix="...")}


@nalarc.workflow
def headline(texts, mode):
    shorten = SHORTEN[mode]
    styled = functools.partial(Styler().style, mark="_")
    make = compose(clean, shorten, styled)
    heads = [make(t) for t in texts]
    kept_case = list(map(functools.partial(clean, lower=False), texts))
    return {"heads": heads, "kept_case": kept_case,
            "piped": pipe(texts[0], clean, str.upper, SHORTEN["tight"]),
            "first_chars": list(map(operator.itemgetter(0), heads)),
            "counts": list(map(operator.methodcaller("count", "e"), kept_case))}


@nalarc.workflow
def digest(texts):
    docs = [to_doc(clean(t)) for t in texts]
    total = functools.reduce(merge, docs, {"titles": [], "words": 0})
    longest = max(docs, key=operator.attrgetter("words"))
    return {"total": total, "longest": longest.title, "sorted": sorted(map(operator.attrgetter("title"), docs))}


CALLS = [
    ("headline", {"texts": ["  The Tide  Turns ", "Every evening", "EbB"], "mode": "tight"}, "s1"),
    ("headline", {"texts": ["A much longer headline here"], "mode": "loose"}, "s2"),
    ("digest", {"texts": ["one two three", "  four ", "five six"]}, "s1"),
    ("headline", {"texts": ["x"], "mode": "medium"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

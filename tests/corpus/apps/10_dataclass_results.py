"""Tools returning objects: dataclasses, NamedTuples and dicts.

Exercises: attribute access on a returned dataclass instance, methods and
properties of returned objects, ``dataclasses.asdict`` / ``replace`` for
output, NamedTuple unpacking and ``_asdict``, dict ``.get``/``[]`` on returned
dicts, ``isinstance`` checks on results, passing returned objects back into
tools, ``from nalarc import tool as t, workflow as w``.
"""

import dataclasses
import time
from typing import NamedTuple

from nalarc import tool as t
from nalarc import workflow as w


@dataclasses.dataclass
class Doc:
    title: str
    words: int
    tags: list

    @property
    def long(self):
        return self.words > 100

    def headline(self):
        return f"{self.title} ({self.words}w)"


class Span(NamedTuple):
    start: int
    end: int


@t
def load(title):
    time.sleep(0.002 + 0.004 * (7 - len(title) % 8))
    return Doc(title=title, words=len(title) * 23, tags=sorted(set(title))[:3])


@t
def locate(doc, needle):
    time.sleep(0.02 if doc.long else 0.004)
    i = doc.title.find(needle)
    return Span(i, i + len(needle)) if i >= 0 else None


@t
def meta(doc):
    time.sleep(0.003)
    return {"title": doc.title, "first_tag": doc.tags[0] if doc.tags else None}


@w
def inspect_docs(titles, needle):
    docs = [load(x) for x in titles]
    out = []
    for d in docs:
        span = locate(d, needle)
        m = meta(d)
        entry = {"head": d.headline(), "long": d.long, "tag": m.get("first_tag")}
        if span is not None:
            start, end = span
            entry["span"] = span._asdict()
            entry["width"] = end - start
        entry["is_doc"] = isinstance(d, Doc)
        entry["is_span"] = isinstance(span, tuple)
        out.append(entry)
    bumped = dataclasses.replace(docs[0], words=docs[0].words + 1)
    return {"entries": out, "first": dataclasses.asdict(bumped),
            "longest": max(docs, key=lambda d: d.words).title}


CALLS = [
    ("inspect_docs", {"titles": ["a tale", "short", "the longest title here"], "needle": "t"}, "s1"),
    ("inspect_docs", {"titles": ["zzz", "abc"], "needle": "q"}, "s1"),
    ("inspect_docs", {"titles": ["needle in haystack"], "needle": "hay"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Structural pattern matching and plain helper classes.

Exercises: ``match`` on tool results with class, mapping, sequence, literal,
guard and capture patterns; an undecorated helper class whose methods call
tools and store results on ``self`` (attribute writes in program order), a
property that calls a tool, a tool result constructed into a dataclass and
passed back to a tool inside a guard, ``import nalarc as n``.
"""

import dataclasses
import time

import nalarc as n


@dataclasses.dataclass
class Point:
    x: int
    y: int


@n.tool
def parse(token):
    time.sleep(0.002 + 0.003 * (8 - len(token) % 9))
    if token.isdigit():
        return int(token)
    if "," in token:
        a, b = token.split(",", 1)
        return Point(int(a), int(b))
    if token.startswith("{"):
        return {"kind": "obj", "size": len(token)}
    if " " in token:
        return token.split()
    return token


@n.tool
def norm(p):
    time.sleep(0.02 if p.x > p.y else 0.003)
    return abs(p.x) + abs(p.y)


class Session:
    def __init__(self, name):
        self.name = name
        self.seen = []
        self.last = None

    def feed(self, token):
        self.last = parse(token)
        self.seen.append(token)
        return self.last

    @property
    def last_norm(self):
        return norm(self.last) if isinstance(self.last, Point) else None


@n.workflow
def interpret(tokens):
    s = Session("interp")
    out = []
    norms = []
    for tok in tokens:
        match s.feed(tok):
            case 0:
                out.append("zero")
            case int(v) if v > 100:
                out.append(f"big {v}")
            case int(v):
                out.append(f"int {v}")
            case Point(x=0, y=y):
                out.append(f"on y-axis at {y}")
            case Point(x=x, y=y) if norm(Point(x, y)) > 5:
                out.append(f"far point {x},{y}")
            case Point():
                out.append("near point")
            case {"kind": "obj", "size": size}:
                out.append(f"obj of {size}")
            case [first, *rest]:
                out.append(f"words {first}+{len(rest)}")
            case str() as word:
                out.append(f"word {word}")
        norms.append(s.last_norm)
    return {"out": out, "norms": norms, "seen": s.seen, "name": s.name}


CALLS = [
    ("interpret", {"tokens": ["0", "7", "250", "0,4", "3,9", "1,1", "{ab}", "hi there you", "plain"]}, "s1"),
    ("interpret", {"tokens": ["5,0"]}, "s2"),
    ("interpret", {"tokens": ["x", "101", "single"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

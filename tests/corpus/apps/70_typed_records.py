"""A ticket tracker whose tools exchange enums, dataclasses, attrs classes and typed dicts.

Exercises: ``enum.Enum`` with ``auto()``, ``IntEnum`` ordering, ``Flag`` combinations,
an enum method and ``Enum[name]``/``Enum(value)`` lookups (a bad value raises
``ValueError``); a frozen, ordered ``@dataclass`` with ``field(default_factory=...)``
and ``__post_init__`` validation, ``dataclasses.replace``/``asdict``; an ``attrs``
class (``@attrs.define`` with a validator and a converter, ``attrs.evolve``,
``attrs.asdict``); ``typing.NamedTuple`` with a method and ``TypedDict``/``Literal``
annotations; ``collections.Counter``, ``defaultdict``, ``deque(maxlen=)``,
``OrderedDict.move_to_end`` and ``ChainMap`` over tool results.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import time
from typing import Literal, NamedTuple, TypedDict

import attrs

import nalarc


class Status(enum.Enum):
    OPEN = enum.auto()
    TRIAGED = enum.auto()
    CLOSED = enum.auto()

    def next(self):
        members = list(type(self))
        return members[min(members.index(self) + 1, len(members) - 1)]


class Priority(enum.IntEnum):
    LOW = 1
    MEDIUM = 2
    HIGH = 3


class Tag(enum.Flag):
    BUG = enum.auto()
    UI = enum.auto()
    DATA = enum.auto()


@dataclasses.dataclass(frozen=True, order=True)
class Ticket:
    priority: Priority
    ident: str
    status: Status = dataclasses.field(default=Status.OPEN, compare=False)
    labels: tuple[str, ...] = dataclasses.field(default_factory=tuple, compare=False)

    def __post_init__(self):
        if not self.ident.startswith("T-"):
            raise ValueError(f"bad ticket id {self.ident!r}")


@attrs.define
class Assignment:
    ticket: str
    owner: str = attrs.field(converter=str.lower)
    hours: int = attrs.field(default=1, validator=attrs.validators.ge(0))


class Estimate(NamedTuple):
    low: int
    high: int

    def mid(self):
        return (self.low + self.high) / 2


class Summary(TypedDict):
    kind: Literal["bug", "feature"]
    count: int


@nalarc.tool
def parse_ticket(line):
    time.sleep(0.002 + 0.003 * (8 - len(line) % 9))
    ident, prio, *labels = line.split()
    return Ticket(Priority[prio.upper()], ident, labels=tuple(labels))


@nalarc.tool
def triage(ticket):
    time.sleep(0.001 + 0.002 * int(ticket.priority))
    tags = Tag(0)
    for label in ticket.labels:
        tags |= Tag[label.upper()] if label.upper() in Tag.__members__ else Tag(0)
    return dataclasses.replace(ticket, status=ticket.status.next()), tags.value


@nalarc.tool
def assign(ticket, owner):
    time.sleep(0.002)
    return Assignment(ticket.ident, owner, hours=int(ticket.priority) * 2)


@nalarc.tool
def estimate(ticket):
    time.sleep(0.001)
    return Estimate(int(ticket.priority), int(ticket.priority) * 3)


@nalarc.workflow
def process(lines, owner):
    tickets = [parse_ticket(line) for line in lines]
    triaged = [triage(t) for t in tickets]
    by_status = collections.Counter(t.status.name for t, _ in triaged)
    by_tag = collections.defaultdict(list)
    for t, tags in triaged:
        for flag in Tag:
            if tags & flag.value:
                by_tag[flag.name].append(t.ident)
    recent = collections.deque((t.ident for t in tickets), maxlen=2)
    order = collections.OrderedDict((t.ident, int(t.priority)) for t in sorted(tickets))
    order.move_to_end(tickets[0].ident, last=False)
    assignments = [assign(t, owner) for t in sorted(tickets, reverse=True)]
    longer = attrs.evolve(assignments[0], hours=assignments[0].hours + 5)
    estimates = [estimate(t) for t in tickets]
    defaults = collections.ChainMap({"owner": owner.lower()}, {"owner": "nobody", "sla": "48h"})
    summary: Summary = {"kind": "bug" if by_tag.get("BUG") else "feature", "count": len(tickets)}
    return {
        "status": dict(by_status),
        "tags": dict(by_tag),
        "recent": list(recent),
        "order": list(order.items()),
        "assignments": [attrs.asdict(a) for a in assignments],
        "longer": attrs.asdict(longer),
        "estimates": [[e.low, e.high, e.mid()] for e in estimates],
        "first": dataclasses.asdict(triaged[0][0]) | {"priority": int(triaged[0][0].priority),
                                                      "status": triaged[0][0].status.name},
        "highest": max(tickets).ident,
        "defaults": [defaults["owner"], defaults["sla"]],
        "summary": summary,
        "status_by_value": Status(2).name,
    }


@nalarc.workflow
def validate(line, hours):
    t = parse_ticket(line)
    return attrs.asdict(Assignment(t.ident, "X", hours=hours))


CALLS = [
    ("process", {"lines": ["T-1 low ui", "T-2 high bug data", "T-3 medium", "T-4 high bug"], "owner": "Ada"}, "s1"),
    ("process", {"lines": ["T-9 medium data"], "owner": "BOB"}, "s2"),
    ("validate", {"line": "T-5 low", "hours": -1}, "s1"),
    ("validate", {"line": "X-5 low", "hours": 1}, "s2"),
    ("validate", {"line": "T-6 urgent", "hours": 1}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

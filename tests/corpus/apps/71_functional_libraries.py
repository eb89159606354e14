"""A leaderboard service on functools, itertools, operator, heapq and bisect.

Exercises: ``functools.singledispatch`` with overloads registered by annotation, by
argument and for lists (recursively), dispatching on tool results, ``functools.total_ordering`` on a result class
compared and sorted in the workflow, ``itertools.groupby`` over sorted results,
``pairwise``, ``combinations``, ``product``, ``accumulate`` with ``max``, ``starmap``
over a tool, ``zip_longest``, ``compress``; ``operator.itemgetter`` with several keys;
``heapq.merge``/``nlargest``; ``bisect.bisect_right``/``insort`` into a list of
thresholds; ``max`` of no scores raising ``ValueError``.
"""

import bisect
import functools
import heapq
import itertools
import operator
import time

import nalarc

GRADES = [50, 70, 85, 95]
LETTERS = "FDCBA"


@functools.total_ordering
class Score:
    def __init__(self, player, points):
        self.player = player
        self.points = points

    def __eq__(self, other):
        return (self.points, self.player) == (other.points, other.player)

    def __lt__(self, other):
        return (self.points, self.player) < (other.points, other.player)

    def as_list(self):
        return [self.player, self.points]


@nalarc.tool
def play(player, game):
    time.sleep(0.002 + 0.003 * (7 - (len(player) + game) % 8))
    return Score(player, (len(player) * 17 + game * 29) % 100)


@nalarc.tool
def bonus(a, b):
    time.sleep(0.001 + 0.001 * (len(a) % 3))
    return abs(len(a) - len(b)) * 3


@functools.singledispatch
def render(value):
    return f"?{value!r}"


@render.register
def _(value: Score):
    return f"{value.player}:{value.points}"


@render.register
def _(value: list):
    return "[" + ", ".join(render(v) for v in value) + "]"


@render.register(int)
def _(value):
    return LETTERS[bisect.bisect_right(GRADES, value)]


@nalarc.workflow
def tournament(players, games):
    scores = [play(p, g) for p, g in itertools.product(players, range(games))]
    by_player = {p: [s.points for s in grp]
                 for p, grp in itertools.groupby(sorted(scores, key=operator.attrgetter("player")),
                                                 key=operator.attrgetter("player"))}
    best = max(scores)
    worst = min(scores)
    bonuses = list(itertools.starmap(bonus, itertools.combinations(players, 2)))
    running_best = list(itertools.accumulate((s.points for s in scores), max))
    top = heapq.nlargest(2, scores)
    merged = list(heapq.merge(*(sorted(v) for v in by_player.values())))
    steps = [b - a for a, b in itertools.pairwise(merged)]
    thresholds = list(GRADES)
    bisect.insort(thresholds, best.points)
    table = sorted(([p, sum(v), len(v)] for p, v in by_player.items()), key=operator.itemgetter(1, 0), reverse=True)
    return {
        "rendered": render(scores[:3]),
        "grades": [render(s.points) for s in scores],
        "best": best.as_list(), "worst": worst.as_list(),
        "ordering": [best > worst, best == max(scores), sorted(scores)[0] <= worst],
        "by_player": by_player, "bonuses": bonuses, "running_best": running_best,
        "top": [render(s) for s in top], "steps": steps, "thresholds": thresholds, "table": table,
        "paired": [list(x) for x in itertools.zip_longest(players, bonuses, fillvalue=None)],
        "winners": list(itertools.compress(players, [v[0] > 50 for v in by_player.values()])),
        "other": render(3.5),
    }


CALLS = [
    ("tournament", {"players": ["ann", "bartholomew", "cy"], "games": 3}, "s1"),
    ("tournament", {"players": ["solo"], "games": 2}, "s2"),
    ("tournament", {"players": ["a", "b"], "games": 0}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

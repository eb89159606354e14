"""Plain attributes and properties of agents, read on handles in workflow code.

Exercises: class-level attributes read on a handle (``Planner().name``) and on the
class (``Planner.MAX_STEPS``), attributes set in ``__init__`` read on a handle kept
in a variable (``p = Planner(); p.label``), a property computed from them, attribute
values used as tool arguments and in loop bounds, a dict attribute indexed on the
handle, ``type(handle).__name__``, ``getattr`` with a default for a missing
attribute, and ``hasattr`` on a method and on a missing name.
"""

import time

import nalarc


@nalarc.tool
def step(goal, i, model):
    time.sleep(0.002 + 0.003 * (5 - i % 6))
    return f"{model}#{i}: {goal[: i + 3]}"


@nalarc.agent
class Planner:
    name = "planner"
    MAX_STEPS = 3
    models = {"fast": "tiny-1", "slow": "big-7"}

    def __init__(self):
        self.label = f"{self.name}-v2"
        self.budget = self.MAX_STEPS * 2

    @property
    def summary(self):
        return f"{self.label} (budget {self.budget})"

    def plan(self, goal, speed):
        model = self.models[speed]
        return [step(goal, i, model) for i in range(self.MAX_STEPS)]


@nalarc.workflow
def plan(goal, speed):
    p = Planner()
    steps = p.plan(goal, speed)
    extra = [step(goal, i, p.models[speed]) for i in range(p.MAX_STEPS, p.budget)]
    return {
        "name": Planner().name,
        "label": p.label,
        "summary": p.summary,
        "class_max": Planner.MAX_STEPS,
        "kind": type(p).__name__,
        "steps": steps,
        "extra": extra,
        "missing": getattr(p, "temperature", 0.7),
        "has": [hasattr(p, "plan"), hasattr(p, "replan")],
    }


CALLS = [
    ("plan", {"goal": "write the quarterly report", "speed": "fast"}, "s1"),
    ("plan", {"goal": "ship", "speed": "slow"}, "s2"),
    ("plan", {"goal": "ship", "speed": "medium"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

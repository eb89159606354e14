"""Properties with setters and deleters, on helper classes and on agents.

Exercises: a helper class whose ``@property`` + ``@x.setter`` validates and
normalizes (the setter raises ``ValueError`` for a bad value, caught in the
workflow), a setter given a tool result, a ``@x.deleter``, a read-only property
computed from a tool result stored on ``self``; an agent with a property read on
a handle (``Summarizer().style``) and a setter used on the handle then read back;
a ``stateful=True`` agent whose methods assign through its own setter
(``self.temperature = ...``) and read the property back in the same call.
"""

import time

import nalarc


@nalarc.tool
def fetch_budget(team):
    time.sleep(0.002 + 0.003 * (6 - len(team) % 7))
    return {"infra": 120, "research": 75, "ops": -5}.get(team, 40)


@nalarc.tool
def draft(topic, words):
    time.sleep(0.002 + 0.002 * (8 - len(topic) % 9))
    return " ".join(f"{topic}{i}" for i in range(words))


class Budget:
    """A budget line whose amount is validated on every write."""

    def __init__(self, team):
        self.team = team
        self._amount = 0
        self.history = []

    @property
    def amount(self):
        return self._amount

    @amount.setter
    def amount(self, value):
        if value < 0:
            raise ValueError(f"{self.team}: negative budget {value}")
        self.history.append(value)
        self._amount = value

    @amount.deleter
    def amount(self):
        self.history.append("cleared")
        self._amount = 0

    @property
    def tier(self):
        return "high" if self._amount >= 100 else "low"


@nalarc.agent
class Summarizer:
    def __init__(self):
        self._style = "plain"

    @property
    def style(self):
        return self._style

    @style.setter
    def style(self, value):
        self._style = value.strip().lower()

    def summarize(self, text, limit):
        time.sleep(0.003 + 0.001 * (limit % 5))
        words = text.split()
        return {"head": words[:limit], "n": len(words)}


@nalarc.agent(stateful=True)
class Sampler:
    def __init__(self):
        self._temperature = 1.0

    @property
    def temperature(self):
        return self._temperature

    @temperature.setter
    def temperature(self, value):
        self._temperature = min(max(value, 0.0), 2.0)

    def sample(self, prompt, boost):
        time.sleep(0.002)
        self.temperature = boost
        text = draft(prompt, 2)
        return {"text": text, "temperature": self.temperature}


@nalarc.workflow
def plan_budgets(teams):
    lines = [Budget(t) for t in teams]
    errors = []
    for line in lines:
        try:
            line.amount = fetch_budget(line.team)
        except ValueError as exc:
            errors.append(str(exc))
    last = lines[-1]
    del last.amount
    last.amount = fetch_budget("infra") // 2
    return {
        "amounts": {b.team: b.amount for b in lines},
        "tiers": [b.tier for b in lines],
        "history": [b.history for b in lines],
        "errors": errors,
    }


@nalarc.workflow
def summarize(topic, limit):
    # Read a new handle's attribute before any write: under nalarc every handle of a
    # session reaches the instance serving it (agents are long-lived, not made per
    # ``Summarizer()``), so after the write below a new handle would see "terse" where
    # plain Python's fresh object says "plain" (docs/programming-model.md, agent classes).
    default = Summarizer().style
    s = Summarizer()
    before = s.style
    s.style = "  TERSE "
    text = draft(topic, limit + 2)
    out = s.summarize(text, limit)
    return {"before": before, "after": s.style, "default": default, "out": out}


@nalarc.workflow
def sample(prompts):
    sampler = Sampler()
    return [sampler.sample(p, 0.5 * i) for i, p in enumerate(prompts)]


CALLS = [
    ("plan_budgets", {"teams": ["infra", "research", "ops", "design"]}, "s1"),
    ("plan_budgets", {"teams": ["ops"]}, "s2"),
    ("summarize", {"topic": "tides", "limit": 3}, "s1"),
    ("sample", {"prompts": ["a", "bb", "ccc", "dddd", "eeeee", "f"]}, "s3"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

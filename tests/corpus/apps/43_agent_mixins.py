"""Agents built from local base classes and mixins.

Exercises: an agent whose methods are inherited from an undecorated base class
and from two mixins (called on a handle and from the agent's own methods),
``super()`` calls in an overriding agent method (zero-argument form and the
explicit ``super(Cls, self)`` form), a mixin method that calls a tool, the MRO
deciding which of two mixins' methods wins, a class attribute overridden in the
agent and read by an inherited method, and ``__init__`` chaining through
``super().__init__()``.
"""

import time

import nalarc


@nalarc.tool
def complete(prompt, max_tokens):
    time.sleep(0.002 + 0.002 * (9 - len(prompt) % 10))
    words = prompt.split()
    return " ".join(reversed(words))[: max_tokens * 4]


@nalarc.tool
def moderate(text):
    time.sleep(0.001 + 0.003 * (len(text) % 4))
    return "blocked" if "secret" in text else "ok"


class PromptMixin:
    template = "Q: {q}\nA:"

    def prompt_for(self, question):
        return self.template.format(q=question.strip())


class SafetyMixin:
    def check(self, text):
        return moderate(text)

    def prompt_for(self, question):  # shadowed by PromptMixin in the MRO
        return f"SAFE {question}"


class BaseAssistant:
    max_tokens = 8

    def __init__(self):
        self.role = "assistant"

    def answer(self, question):
        return complete(self.prompt_for(question), self.max_tokens)

    def describe(self):
        return f"{type(self).__name__}/{self.role}/{self.max_tokens}"


@nalarc.agent
class Helpdesk(PromptMixin, SafetyMixin, BaseAssistant):
    max_tokens = 4
    template = "[helpdesk] {q}"

    def __init__(self):
        super().__init__()
        self.role = "helpdesk"

    def answer(self, question):
        verdict = self.check(question)
        if verdict != "ok":
            return {"verdict": verdict, "text": None}
        base = super().answer(question)
        return {"verdict": verdict, "text": base.upper()}

    def long_answer(self, question):
        return super(Helpdesk, self).answer(question + " please elaborate")


@nalarc.agent
class Researcher(SafetyMixin, BaseAssistant):
    pass


@nalarc.workflow
def support(questions):
    desk = Helpdesk()
    answers = [desk.answer(q) for q in questions]
    return {
        "answers": answers,
        "long": desk.long_answer(questions[0]),
        "describe": desk.describe(),
        "prompt": desk.prompt_for(questions[0]),
        "mro": [c.__name__ for c in Helpdesk.__mro__],
    }


@nalarc.workflow
def research(question):
    r = Researcher()
    return {"answer": r.answer(question), "check": r.check(question), "describe": r.describe(),
            "prompt": r.prompt_for(question)}


CALLS = [
    ("support", {"questions": ["how do I reset my password", "tell me the secret", "  hi  "]}, "s1"),
    ("research", {"question": "tides and moons"}, "s2"),
    ("research", {"question": "the secret plan"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

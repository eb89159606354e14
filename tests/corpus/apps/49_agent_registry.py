"""Agents held in containers and called through them: a router over specialists.

Exercises: a module-level dict of agent handles built at import time
(``ROUTES = {"math": MathAgent(), ...}``), a dict of handles built in the workflow
by a comprehension over classes (``{cls.kind: cls() for cls in SPECIALISTS}``), a
list of handles iterated with a method call on each, a handle picked with
``max(..., key=)`` over an attribute, a bound method stored in a dict
(``handlers[k] = agent.handle``) and called later, a handle passed to a helper
function that calls its method, and a ``KeyError`` for an unknown route escaping.
"""

import time

import nalarc


@nalarc.tool
def calculator(expr):
    time.sleep(0.002 + 0.003 * (6 - len(expr) % 7))
    a, op, b = expr.split()
    return {"+": int(a) + int(b), "*": int(a) * int(b), "-": int(a) - int(b)}[op]


@nalarc.tool
def translate(text, lang):
    time.sleep(0.001 + 0.002 * (len(text) % 4))
    return f"[{lang}] " + " ".join(w[::-1] for w in text.split())


@nalarc.agent
class MathAgent:
    kind = "math"
    priority = 2

    def handle(self, request):
        return {"agent": self.kind, "answer": calculator(request)}


@nalarc.agent
class TranslateAgent:
    kind = "translate"
    priority = 1

    def handle(self, request):
        return {"agent": self.kind, "answer": translate(request, "fr")}


@nalarc.agent
class EchoAgent:
    kind = "echo"
    priority = 0

    def handle(self, request):
        time.sleep(0.002)
        return {"agent": self.kind, "answer": request}


SPECIALISTS = [MathAgent, TranslateAgent, EchoAgent]
ROUTES = {"math": MathAgent(), "translate": TranslateAgent()}


def ask(agent, request):
    return agent.handle(request)["answer"]


@nalarc.workflow
def dispatch(requests):
    by_kind = {cls.kind: cls() for cls in SPECIALISTS}
    handlers = {}
    for kind, agent in by_kind.items():
        handlers[kind] = agent.handle
    out = [handlers[kind](text) for kind, text in requests]
    broadcast = [agent.handle("2 * 3") if agent.kind == "math" else agent.handle("hello there")
                 for agent in by_kind.values()]
    top = max(by_kind.values(), key=lambda a: a.priority)
    return {"out": out, "broadcast": broadcast, "top": top.kind,
            "static": [ROUTES[k].handle(t)["answer"] for k, t in requests if k in ROUTES],
            "via_helper": ask(ROUTES["math"], "7 - 10")}


@nalarc.workflow
def route_only(kind, text):
    return ROUTES[kind].handle(text)


CALLS = [
    ("dispatch", {"requests": [["math", "1 + 2"], ["translate", "good morning"], ["echo", "ping"],
                               ["math", "12 * 12"]]}, "s1"),
    ("route_only", {"kind": "translate", "text": "see you"}, "s2"),
    ("route_only", {"kind": "echo", "text": "x"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Exceptions raised by agent methods, translated between layers of agents.

Exercises: an agent method that catches a tool's exception and raises a domain
exception of its own (``PlanningError(goal, step, cause=...)``, keyword arguments in
``__init__``), an exception class that defines ``__reduce__`` so it survives
pickling, one that keeps its own ``args`` different from the message, an agent
calling another agent and letting its exception propagate, the workflow catching
by the common base class and reading attributes, an exception raised inside an agent
property (read on a handle), and the last request letting an agent's exception
escape.
"""

import time

import nalarc


class AgentError(Exception):
    pass


class ToolFailure(AgentError):
    def __init__(self, tool, code):
        super().__init__(tool, code)
        self.tool = tool
        self.code = code

    def __str__(self):
        return f"{self.tool} failed with code {self.code}"


class PlanningError(AgentError):
    def __init__(self, goal, step, *, cause=None):
        super().__init__(f"could not plan {goal!r} at step {step}")
        self.goal = goal
        self.step = step
        self.cause = cause


class BudgetExceeded(AgentError):
    def __init__(self, spent, budget):
        super().__init__(f"spent {spent} of {budget}")
        self.spent = spent
        self.budget = budget

    def __reduce__(self):
        return (BudgetExceeded, (self.spent, self.budget))


@nalarc.tool
def execute(action):
    time.sleep(0.002 + 0.003 * (8 - len(action) % 9))
    if action.startswith("rm"):
        raise ToolFailure("shell", 13)
    return len(action)


@nalarc.agent
class Executor:
    def run(self, steps, budget):
        spent = 0
        for step in steps:
            spent += execute(step)
            if spent > budget:
                raise BudgetExceeded(spent, budget)
        return spent


@nalarc.agent
class Planner:
    @property
    def model(self):
        raise AgentError("the planner has no model configured")

    def plan(self, goal):
        steps = [f"{w} {goal}" for w in ("ls", "cat", "rm") if w != "rm" or "danger" in goal]
        for i, step in enumerate(steps):
            try:
                execute(step)
            except ToolFailure as exc:
                raise PlanningError(goal, i, cause=str(exc)) from exc
        return steps

    def plan_and_run(self, goal, budget):
        return Executor().run(self.plan(goal), budget)


@nalarc.workflow
def operate(goals, budget):
    planner = Planner()
    results = []
    for goal in goals:
        try:
            results.append({"goal": goal, "spent": planner.plan_and_run(goal, budget)})
        except PlanningError as exc:
            results.append({"goal": exc.goal, "step": exc.step, "cause": exc.cause, "msg": str(exc)})
        except BudgetExceeded as exc:
            results.append({"over": exc.spent - exc.budget, "msg": str(exc)})
        except AgentError as exc:
            results.append({"other": str(exc)})
    try:
        model = planner.model
    except AgentError as exc:
        model = str(exc)
    return {"results": results, "model": model}


@nalarc.workflow
def raw(steps):
    return Executor().run(steps, 100)


CALLS = [
    ("operate", {"goals": ["logs", "danger zone", "a very long goal name"], "budget": 30}, "s1"),
    ("operate", {"goals": ["x"], "budget": 5}, "s2"),
    ("raw", {"steps": ["ls", "rm -rf /"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

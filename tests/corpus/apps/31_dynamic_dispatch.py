"""Tools and agent methods reached indirectly.

Exercises: tools stored in a module-level dict and called by name, a tool
passed as an argument to an undecorated higher-order helper, a bound agent
method stored in a variable, ``getattr(agent, name)(...)``, a tool aliased
to another name, a list of (name, tool) pairs iterated in a loop, and
a tool passed straight to ``map``; ``from nalarc import agent, tool, workflow``.
"""

import time

from nalarc import agent, tool, workflow


@tool
def double(x):
    time.sleep(0.002 + 0.003 * ((9 - x) % 9))
    return x * 2


@tool
def negate(x):
    time.sleep(0.02 - 0.002 * min(abs(x), 9))
    return -x


@tool
def stringify(x):
    time.sleep(0.004)
    return f"<{x}>"


OPS = {"double": double, "negate": negate, "str": stringify}
twice = double


@agent
class Calculator:
    def add(self, a, b):
        time.sleep(0.01 if a > b else 0.003)
        return a + b

    def mul(self, a, b):
        time.sleep(0.005)
        return a * b


def apply_all(fn, xs):
    return [fn(x) for x in xs]


def compose(f, g):
    return lambda x: f(g(x))


@workflow
def dispatch(program, x):
    calc = Calculator()
    add = calc.add
    trace = []
    value = x
    for op in program:
        if op in OPS:
            value = OPS[op](value)
        elif op in ("add", "mul"):
            value = getattr(calc, op)(value, 3)
        else:
            value = add(value, len(op))
        trace.append(value)
    pairs = sorted(OPS.items())
    table = {name: fn(x) for name, fn in pairs if name != "str"}
    both = compose(negate, twice)
    return {"trace": trace, "table": table, "applied": apply_all(double, [x, x + 1]),
            "composed": both(x), "mapped": list(map(stringify, [x, table["double"]]))}


CALLS = [
    ("dispatch", {"program": ["double", "add", "negate", "zzz", "mul", "str"], "x": 2}, "s1"),
    ("dispatch", {"program": [], "x": 7}, "s2"),
    ("dispatch", {"program": ["mul", "mul", "q"], "x": -1}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""Differential test over randomly generated workflow programs.

Hypothesis draws small, deterministic nalarc apps from a grammar (tools that
sleep a little and sometimes raise, nested calls, arithmetic, comparisons,
branches, loops with fan-out, bounded while loops, try/except, undecorated
helpers, containers, unpacking, early returns) and checks that the compiled
program returns exactly what the plain Python program returns: the same value,
or the same exception type and message.

The grammar also has the program features of issue 11 (real-world Python):
generator helpers that call tools, an exception hierarchy with a custom
``__init__`` whose attributes handlers read, ``functools.wraps`` decorators on
helpers and tools, decorators with arguments, helper classes with a property and a
setter, an agent class with a base class, a ``super()`` call and attributes read on
handles, and ``async def`` tools, helpers and workflows (``await``,
``asyncio.gather``).  :data:`NEW_FEATURES` switches each on or off: a feature the
compiler gets wrong today is off until the fix lands.

Every generated program is valid Python whose plain run either returns a value
or raises one of the tools' exceptions (``AppError`` and its subclass
``Rejected`` / ``ValueError``); any other plain outcome is a bug in the
generator, not in the compiler, and is reported as such.

The run is derandomized (the same 60 examples every time).  For a longer
search set NALARC_RANDOM_EXAMPLES; a failure prints the shrunk program.  To try
features that are switched off, set NALARC_RANDOM_FEATURES to ``all`` or to a
comma-separated list of feature names.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nalarc._state import session
from nalarc import load_app
from nalarc.executor import InProcessRunner
from nalarc.testing import call_plainly, outcome_of_exception

# ---------------------------------------------------------------------------
# Which program features the grammar uses.
# ---------------------------------------------------------------------------

#: Features added for issue 11.  ``False``: the compiler gets programs that use
#: the feature wrong today (see the comment); turn it on when the fix lands.
NEW_FEATURES: dict[str, bool] = {
    # ``walk``/``evens`` generator helpers that call a tool, consumed by sum/next/
    # islice/list/for.
    "generators": True,
    # ``Rejected(tool, value)``, a subclass of AppError with a custom __init__;
    # handlers catch it by class or by base and read ``e.value``; ``raise ... from``.
    "exceptions": True,
    # ``grd``: a tool over ``@guarded`` (a functools.wraps wrapper, no arguments).
    "wrappers": True,
    # ``@guarded`` on generated helpers (a wrapper nalarc cannot see into: the helper
    # stays synchronous and runs as a blocking region).
    "helper_wrappers": True,
    # ``@shifted(k)``: a decorator factory, evaluated in the module's scope.
    "decorator_args": True,
    # ``Acc`` helper objects with ``@property v`` + ``@v.setter`` (two definitions of a name).
    "properties": True,
    # ``Scorer(BaseScorer)`` agent: an inherited method, and attributes read on a handle.
    "agents": True,
    # ``async def`` tools/helper and an ``async def wf`` (``await``, ``asyncio.gather``).
    "async": True,
}


def enabled_features() -> frozenset[str]:
    """The features in use: NEW_FEATURES, or NALARC_RANDOM_FEATURES (``all`` / ``a,b``)."""
    chosen = os.environ.get("NALARC_RANDOM_FEATURES", "").strip()
    if not chosen:
        return frozenset(name for name, on in NEW_FEATURES.items() if on)
    names = set(NEW_FEATURES) if chosen == "all" else {n.strip() for n in chosen.split(",") if n.strip()}
    unknown = names - set(NEW_FEATURES)
    if unknown:
        raise ValueError(f"NALARC_RANDOM_FEATURES: unknown feature(s) {sorted(unknown)}")
    return frozenset(names)


FEATURES = enabled_features()

# ---------------------------------------------------------------------------
# The fixed part of every program: an exception class and the tools.
# ---------------------------------------------------------------------------

#: Modulus that keeps every value small.
M = 61

#: Tools taking one int.  ``chk`` raises AppError, ``val`` raises ValueError,
#: each on a fixed residue of its argument.
UNARY_TOOLS = ("inc", "dbl", "chk", "val")
#: More unary tools, each there when its feature is on: ``lim`` raises ``Rejected``,
#: ``grd`` is a tool over a ``functools.wraps`` wrapper, ``sft`` over ``@shifted(7)``.
FEATURE_TOOLS = (("exceptions", "lim"), ("wrappers", "grd"), ("decorator_args", "sft"))
SLEEP = "time.sleep(0.001 * ((({arg}) * {a} + {b}) % 5))"


def _prelude(sleeps: list[tuple[int, int]], features: frozenset[str]) -> str:
    s = [SLEEP.format(arg="x", a=a, b=b) for a, b in sleeps[:4]]
    s_add = SLEEP.format(arg="a + 2 * b", a=sleeps[4][0], b=sleeps[4][1])
    s_total = SLEEP.format(arg="len(xs)", a=sleeps[5][0], b=sleeps[5][1])
    s_pair = SLEEP.format(arg="x", a=sleeps[6][0], b=sleeps[6][1])
    base = f'''\
import asyncio
import functools
import itertools
import time

import nalarc


class AppError(Exception):
    pass


@nalarc.tool
def inc(x):
    {s[0]}
    return (x + 3) % {M}


@nalarc.tool
def dbl(x):
    {s[1]}
    return (2 * x + 1) % {M}


@nalarc.tool
def chk(x):
    {s[2]}
    if x % 5 == 3:
        raise AppError(f"chk rejects {{x}}")
    return (3 * x + 2) % {M}


@nalarc.tool
def val(x):
    {s[3]}
    if x % 7 == 4:
        raise ValueError(f"val rejects {{x}}")
    return (x + 11) % {M}


@nalarc.tool
def add(a, b):
    {s_add}
    return (a + b) % {M}


@nalarc.tool
def total(xs):
    {s_total}
    return sum(xs) % {M}


@nalarc.tool
def pair(x):
    {s_pair}
    return x % 7, (x // 7) % {M}
'''
    extra = [SLEEP.format(arg="x", a=a, b=b) for a, b in sleeps[7:]]
    parts = [base] + [
        template.format(sleep=extra[i % len(extra)], async_sleep=ASYNC_SLEEP.format(*sleeps[7 + i % 3]), M=M)
        for i, (names, template) in enumerate(FEATURE_PRELUDES)
        if names & features
    ]
    return "\n".join(parts)


ASYNC_SLEEP = "await asyncio.sleep(0.001 * ((x * {0} + {1}) % 5))"

#: (features, source): source added to the prelude when one of the features is on;
#: ``{sleep}`` / ``{async_sleep}`` are a drawn delay, ``{M}`` the modulus.
FEATURE_PRELUDES: list[tuple[frozenset[str], str]] = [
    (frozenset({"generators"}), '''
def walk(x, n):
    for i in range(n):
        yield chk((x + i) % {M})


def evens(x, n):
    yield from (v for v in walk(x, n) if v % 2 == 0)
'''),
    (frozenset({"exceptions"}), '''
class Rejected(AppError):
    def __init__(self, tool, value):
        super().__init__(f"{{tool}} rejects {{value}}")
        self.tool = tool
        self.value = value


@nalarc.tool
def lim(x):
    {sleep}
    if x % 6 == 2:
        raise Rejected("lim", x)
    return (5 * x + 1) % {M}
'''),
    (frozenset({"wrappers", "helper_wrappers"}), '''
def guarded(fn):
    @functools.wraps(fn)
    def wrapper(x):
        if x % 11 == 5:
            raise ValueError(f"{{fn.__name__}} guard rejects {{x}}")
        return fn(x)

    return wrapper
'''),
    (frozenset({"wrappers"}), '''
@nalarc.tool
@guarded
def grd(x):
    {sleep}
    return (4 * x + 3) % {M}
'''),
    (frozenset({"decorator_args"}), '''
def shifted(k):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(x):
            return (fn(x) + k) % {M}

        return wrapper

    return decorate


@nalarc.tool
@shifted(7)
def sft(x):
    {sleep}
    return (x + 13) % {M}
'''),
    (frozenset({"properties"}), '''
class Acc:
    def __init__(self, v):
        self._v = v % {M}
        self.log = []

    @property
    def v(self):
        return self._v

    @v.setter
    def v(self, value):
        self.log.append(value % {M})
        self._v = value % {M}

    @property
    def doubled(self):
        return dbl(self._v)
'''),
    (frozenset({"agents"}), '''
class BaseScorer:
    bias = 1

    def scale(self, x):
        return (2 * x + self.bias) % {M}

    def score(self, x):
        return self.scale(inc(x))


@nalarc.agent
class Scorer(BaseScorer):
    bias = 4

    def __init__(self):
        self.offset = 5

    def score(self, x):
        return (super().score(x) + self.offset) % {M}

    def checked(self, x):
        {sleep}
        if x % 6 == 1:
            raise AppError(f"scorer rejects {{x}}")
        return self.scale(x)
'''),
    (frozenset({"async"}), '''
@nalarc.tool
async def ainc(x):
    {async_sleep}
    return (x + 5) % {M}


@nalarc.tool
async def aval(x):
    {async_sleep}
    if x % 7 == 2:
        raise ValueError(f"aval rejects {{x}}")
    return (3 * x + 4) % {M}


async def ahelp(a):
    return (await ainc(a) + await aval((a + 1) % {M})) % {M}
'''),
]


# ---------------------------------------------------------------------------
# The generator.
# ---------------------------------------------------------------------------


@dataclass
class Env:
    """Names that are definitely bound at a program point, by type."""

    ints: list[str] = field(default_factory=list)
    lists: list[str] = field(default_factory=list)
    #: dict name -> keys it is known to have (all map to ints).
    dicts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    strs: list[str] = field(default_factory=list)
    #: ``Acc`` helper objects (feature "properties").
    accs: list[str] = field(default_factory=list)
    #: containers a loop is iterating over: nothing may be added to them;
    #: and while-loop counters: they are never rebound (the loops stay bounded).
    frozen: frozenset[str] = frozenset()

    def copy(self) -> Env:
        return Env(
            list(self.ints), list(self.lists), dict(self.dicts), list(self.strs), list(self.accs),
            self.frozen,
        )

    def growable_lists(self) -> list[str]:
        return [n for n in self.lists if n not in self.frozen]

    def growable_dicts(self) -> list[str]:
        return [n for n in self.dicts if n not in self.frozen]

    def meet(self, other: Env) -> Env:
        """Names bound on both paths (keeps this env's order)."""
        return Env(
            [n for n in self.ints if n in other.ints],
            [n for n in self.lists if n in other.lists],
            {
                n: tuple(k for k in keys if k in other.dicts[n])
                for n, keys in self.dicts.items()
                if n in other.dicts
            },
            [n for n in self.strs if n in other.strs],
            [n for n in self.accs if n in other.accs],
            self.frozen,
        )

    def join_onto(self, base: Env, extra: Env) -> Env:
        """``base`` plus what ``self`` and ``extra`` both bind."""
        both = self.meet(extra)
        out = base.copy()
        out.ints += [n for n in both.ints if n not in out.ints]
        out.lists += [n for n in both.lists if n not in out.lists]
        for n, keys in both.dicts.items():
            if n not in out.dicts:
                out.dicts[n] = keys
        out.strs += [n for n in both.strs if n not in out.strs]
        out.accs += [n for n in both.accs if n not in out.accs]
        return out


#: A generated statement: its lines, the env after it, and whether the block ends there.
Stmt = tuple[list[str], Env, bool]
StmtMaker = Callable[[Env, int, str, bool], Stmt]


@dataclass
class Helper:
    name: str
    kind: str  # "int": returns an int; "pair": returns a 2-tuple of ints


class Gen:
    """Draws one program.  Choice 0 is always the simplest, for shrinking."""

    MAX_STMTS = 40
    MAX_BLOCK_DEPTH = 2
    MAX_EXPR_DEPTH = 2

    def __init__(
        self, draw: Callable[[st.SearchStrategy[Any]], Any], features: frozenset[str] = FEATURES
    ) -> None:
        self.draw = draw
        self.features = features
        self.counter = itertools.count()
        self.helpers: list[Helper] = []
        self.stmts_left = self.MAX_STMTS
        #: kind of the helper being generated ("int" / "pair"), or None in the workflow.
        self.in_helper: str | None = None
        #: the workflow is ``async def`` (feature "async", drawn per program).
        self.is_async = False
        self.unary = UNARY_TOOLS + tuple(
            tool for feature, tool in FEATURE_TOOLS if feature in features
        )

    # -- helpers ----------------------------------------------------------
    def fresh(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def choice(self, n: int) -> int:
        return self.draw(st.integers(0, n - 1))

    def pick(self, items: list[str] | tuple[str, ...]) -> str:
        return self.draw(st.sampled_from(list(items)))

    def flag(self) -> bool:
        return self.draw(st.booleans())

    # -- expressions ------------------------------------------------------
    def int_expr(self, env: Env, depth: int = 0) -> str:
        leaf = depth >= self.MAX_EXPR_DEPTH
        options = 2 if leaf else 15
        extras = [] if leaf else self.feature_int_exprs(env)
        c = self.choice(options + (1 if extras else 0))
        if c == options:  # one slot for all new features: the old grammar keeps its weight
            return extras[self.choice(len(extras))](depth + 1)
        if c == 0 or (c == 1 and not env.ints):
            return str(self.draw(st.integers(0, 9)))
        if c == 1:
            return self.pick(env.ints)
        d = depth + 1
        if c == 2:
            return f"{self.pick(self.unary)}({self.int_expr(env, d)})"
        if c == 3:  # nested tool calls
            inner = f"{self.pick(self.unary)}({self.int_expr(env, d + 1)})"
            return f"{self.pick(self.unary)}({inner})"
        if c == 4:
            return f"add({self.int_expr(env, d)}, {self.int_expr(env, d)})"
        if c == 5:
            op = self.pick(["+", "-"])
            return f"({self.int_expr(env, d)} {op} {self.int_expr(env, d)})"
        if c == 6:
            return f"({self.int_expr(env, d)} * {self.int_expr(env, d)} % {M})"
        if c == 7:
            op = self.pick(["//", "%"])
            return f"({self.int_expr(env, d)} {op} {self.draw(st.integers(2, 5))})"
        if c == 8:
            return (
                f"({self.int_expr(env, d)} if {self.cond(env, d)} else {self.int_expr(env, d)})"
            )
        if c == 9:
            fn = self.pick(["max", "min"])
            return f"{fn}({self.int_expr(env, d)}, {self.int_expr(env, d)})"
        if c == 10:
            ints = [h for h in self.helpers if h.kind == "int"]
            if ints:
                return f"{self.draw(st.sampled_from(ints)).name}({self.int_expr(env, d)})"
            return f"inc({self.int_expr(env, d)})"
        if c == 11 and env.lists:
            lst = self.pick(env.lists)
            return self.draw(
                st.sampled_from(
                    [
                        f"len({lst})",
                        f"sum({lst})",
                        f"total({lst})",
                        f"({lst}[-1] if {lst} else 0)",
                        f"({lst}[0] if len({lst}) > 0 else -1)",
                    ]
                )
            )
        if c == 12 and any(env.dicts.values()):
            name = self.pick([n for n, keys in env.dicts.items() if keys])
            key = self.pick(env.dicts[name])
            return f"{name}[{key!r}]"
        if c == 13 and env.dicts:
            name = self.pick(list(env.dicts))
            return self.draw(
                st.sampled_from(
                    [f"len({name})", f"sum({name}.values())", f"{name}.get('k0', 5)"]
                )
            )
        if c == 14 and env.strs:
            return f"len({self.pick(env.strs)})"
        return f"{self.pick(self.unary)}({self.int_expr(env, d)})"

    def feature_int_exprs(self, env: Env) -> list[Callable[[int], str]]:
        """One int expression maker per switched-on feature; each takes the depth of its
        operands and draws one of its forms."""
        out: list[Callable[[int], str]] = []
        if "generators" in self.features:
            out.append(lambda d: self.generator_int_expr(env, d))
        if "properties" in self.features and env.accs:
            out.append(lambda d: self.acc_int_expr(env))
        if "agents" in self.features:
            out.append(lambda d: self.agent_int_expr(env, d))
        if self.is_async and self.in_helper is None:
            out.append(lambda d: f"(await {self.pick(['ainc', 'aval', 'ahelp'])}({self.int_expr(env, d)}))")
        return out

    def generator_int_expr(self, env: Env, depth: int) -> str:
        """A generator helper consumed whole, by ``next`` or by ``islice`` (``walk`` calls
        ``chk``, which may raise, so how many items are consumed matters)."""
        k = self.draw(st.integers(0, 3))
        form = self.pick([
            f"sum(walk({{}}, {k}))",
            f"next(walk({{}}, {k}), -1)",
            f"next(evens({{}}, {k}), 0)",
            f"len(list(itertools.islice(walk({{}}, 40), {k})))",
        ])
        return form.format(self.int_expr(env, depth))

    def acc_int_expr(self, env: Env) -> str:
        acc = self.pick(env.accs)
        return self.pick([f"{acc}.v", f"len({acc}.log)", f"{acc}.doubled"])

    def agent_int_expr(self, env: Env, depth: int) -> str:
        form = self.pick(["Scorer().score({})", "Scorer().checked({})", "Scorer().scale({})",
                          "(Scorer().offset + Scorer.bias)"])
        return form.format(self.int_expr(env, depth)) if "{}" in form else form

    def cond(self, env: Env, depth: int = 0) -> str:
        d = depth + 1
        leaf = depth >= self.MAX_EXPR_DEPTH
        c = self.choice(3 if leaf else 7)
        if c == 0:
            op = self.pick(["<", "<=", ">", ">=", "==", "!="])
            return f"{self.int_expr(env, d)} {op} {self.int_expr(env, d)}"
        if c == 1:
            return f"{self.int_expr(env, d)} % 2 == {self.choice(2)}"
        if c == 2:
            return f"{self.int_expr(env, d)} < {self.int_expr(env, d)} <= {self.int_expr(env, d)}"
        if c == 3:
            op = self.pick(["and", "or"])
            return f"({self.cond(env, d)} {op} {self.cond(env, d)})"
        if c == 4:
            return f"not ({self.cond(env, d)})"
        if c == 5 and env.lists:
            op = self.pick(["in", "not in"])
            return f"{self.int_expr(env, d)} {op} {self.pick(env.lists)}"
        if c == 6 and env.strs:
            return f"{self.pick(env.strs)}.startswith('chk')"
        if c == 6 and "agents" in self.features:
            return "isinstance(Scorer(), BaseScorer)"
        return f"{self.int_expr(env, d)} > {self.draw(st.integers(0, 40))}"

    def result_expr(self, env: Env) -> str:
        """What a ``return`` gives back."""
        if self.in_helper == "pair":
            return f"{self.int_expr(env)}, {self.int_expr(env)}"
        if self.in_helper:
            return self.int_expr(env)
        names = env.ints + env.lists + list(env.dicts) + env.strs
        if not (names or env.accs) or self.choice(6) == 0:
            return f"[{self.int_expr(env)}, {len(names) + len(env.accs)}]"
        entries = [f"{n!r}: {n}" for n in names] + [f"{n!r}: [{n}.v, {n}.log]" for n in env.accs]
        return "{" + ", ".join(entries) + "}"

    # -- statements -------------------------------------------------------
    def block(
        self, env: Env, depth: int, indent: str, loop: bool, most: int = 4
    ) -> tuple[list[str], Env]:
        """A non-empty statement list; returns its lines and the env after it."""
        lines: list[str] = []
        n = self.draw(st.integers(1, most))
        for _ in range(n):
            if self.stmts_left <= 0 and lines:
                break
            more, env, stop = self.stmt(env, depth, indent, loop)
            lines += more
            if stop:
                break
        return lines, env

    def stmt(self, env: Env, depth: int, ind: str, loop: bool) -> tuple[list[str], Env, bool]:
        """One statement.  ``stop``: the block ends here (unconditional return/break)."""
        self.stmts_left -= 1
        compound = depth < self.MAX_BLOCK_DEPTH and self.stmts_left > 0
        options = 18 if compound else 10
        extras = self.feature_stmts(compound)
        c = self.choice(options + (1 if extras else 0))
        env = env.copy()
        nxt = ind + "    "
        if c == options:  # one slot for all new features: the old grammar keeps its weight
            return extras[self.choice(len(extras))](env, depth, ind, loop)
        if c == 0:  # new int variable
            name = self.fresh("v")
            line = f"{ind}{name} = {self.int_expr(env)}"
            env.ints.append(name)
            return [line], env, False
        if c == 1:  # rebinding / augmented assignment
            targets = [n for n in env.ints if n not in env.frozen]
            if targets:
                name = self.pick(targets)
                op = self.pick(["=", "+=", "-="])
                return [f"{ind}{name} {op} {self.int_expr(env)}"], env, False
            return self.stmt(env, depth, ind, loop)
        if c == 2:  # discarded call (may raise)
            return [f"{ind}{self.pick(self.unary)}({self.int_expr(env)})"], env, False
        if c == 3:  # unpacking
            a, b = self.fresh("v"), self.fresh("v")
            pairs = [h for h in self.helpers if h.kind == "pair"]
            k = self.choice(4)
            if k == 0:
                rhs = f"{self.int_expr(env)}, {self.int_expr(env)}"
            elif k == 1:
                rhs = f"pair({self.int_expr(env)})"
            elif k == 2 and pairs:
                rhs = f"{self.draw(st.sampled_from(pairs)).name}({self.int_expr(env)})"
            else:
                rest = self.fresh("L")
                line = (
                    f"{ind}{a}, *{rest}, {b} = "
                    f"[{self.int_expr(env)}, {self.int_expr(env)}, {self.int_expr(env)}]"
                )
                env.ints += [a, b]
                env.lists.append(rest)
                return [line], env, False
            env.ints += [a, b]
            return [f"{ind}{a}, {b} = {rhs}"], env, False
        if c == 4:  # list comprehension fan-out
            name, i = self.fresh("L"), self.fresh("i")
            inner = env.copy()
            inner.ints.append(i)
            if env.lists and self.flag():
                src = self.pick(env.lists)
            else:
                src = f"range({self.draw(st.integers(0, 4))})"
            elem = f"{self.pick(self.unary)}({self.int_expr(inner, 1)})"
            filt = f" if {self.cond(inner, 1)}" if self.choice(3) == 0 else ""
            env.lists.append(name)
            return [f"{ind}{name} = [{elem} for {i} in {src}{filt}]"], env, False
        if c == 5:  # new dict of results
            name = self.fresh("D")
            if self.flag():
                keys = tuple(f"k{j}" for j in range(self.draw(st.integers(1, 3))))
                body = ", ".join(f"{k!r}: {self.int_expr(env)}" for k in keys)
                line = f"{ind}{name} = {{{body}}}"
            else:
                n = self.draw(st.integers(0, 3))
                keys = tuple(f"k{j}" for j in range(n))
                i = self.fresh("i")
                inner = env.copy()
                inner.ints.append(i)
                line = f"{ind}{name} = {{f'k{{{i}}}': {self.int_expr(inner, 1)} for {i} in range({n})}}"
            env.dicts[name] = keys
            return [line], env, False
        if c == 6:  # append to / store into a container
            lists, dicts = env.growable_lists(), env.growable_dicts()
            if lists and (self.flag() or not dicts):
                return [f"{ind}{self.pick(lists)}.append({self.int_expr(env)})"], env, False
            if dicts:
                name = self.pick(dicts)
                key = f"k{self.draw(st.integers(0, 3))}"
                line = f"{ind}{name}[{key!r}] = {self.int_expr(env)}"
                if key not in env.dicts[name]:
                    env.dicts[name] = env.dicts[name] + (key,)
                return [line], env, False
            return self.stmt(env, depth, ind, loop)
        if c == 7:  # string from results
            name = self.fresh("s")
            line = f'{ind}{name} = f"{{{self.int_expr(env)}}}-{{{self.int_expr(env)}}}"'
            env.strs.append(name)
            return [line], env, False
        if c == 8:  # conditional early return
            if self.choice(3) == 0 or depth == 0:
                return (
                    [f"{ind}if {self.cond(env)}:", f"{nxt}return {self.result_expr(env)}"],
                    env,
                    False,
                )
            # unconditional return ending a nested block
            return [f"{ind}return {self.result_expr(env)}"], env, True
        if c == 9:  # break / continue inside loops
            if loop:
                kw = self.pick(["break", "continue"])
                return [f"{ind}if {self.cond(env)}:", f"{nxt}{kw}"], env, False
            return self.stmt(env, depth, ind, loop)
        # -- compound statements --
        if c in (10, 11):  # if / else
            lines = [f"{ind}if {self.cond(env)}:"]
            body, env_a = self.block(env, depth + 1, nxt, loop)
            lines += body
            if self.flag():
                lines.append(f"{ind}else:")
                body, env_b = self.block(env, depth + 1, nxt, loop)
                lines += body
                return lines, env_a.join_onto(env, env_b), False
            return lines, env, False
        if c == 12:  # for-loop fan-out via append
            name, i = self.fresh("L"), self.fresh("i")
            lines = [f"{ind}{name} = []"]
            env.lists.append(name)
            inner = env.copy()
            inner.ints.append(i)
            if len(env.lists) > 1 and self.flag():
                src = self.pick([n for n in env.lists if n != name])
                inner.frozen |= {src}
            else:
                src = f"range({self.draw(st.integers(0, 3))})"
            lines.append(f"{ind}for {i} in {src}:")
            lines.append(f"{nxt}{name}.append({self.pick(self.unary)}({self.int_expr(inner, 1)}))")
            if self.flag():
                body, _ = self.block(inner, depth + 1, nxt, True)
                lines += body
            return lines, env, False
        if c == 13:  # for loop over existing data
            i = self.fresh("i")
            inner = env.copy()
            inner.ints.append(i)
            if env.lists and self.flag():
                src = self.pick(env.lists)
                inner.frozen |= {src}
            elif env.dicts and self.flag():
                d = self.pick(list(env.dicts))
                src = f"{d}.values()"
                inner.frozen |= {d}
            else:
                src = f"range({self.draw(st.integers(0, 3))})"
            lines = [f"{ind}for {i} in {src}:"]
            body, _ = self.block(inner, depth + 1, nxt, True)
            return lines + body, env, False
        if c == 14:  # bounded while loop
            cnt = self.fresh("c")
            bound = self.draw(st.integers(0, 3))
            lines = [f"{ind}{cnt} = 0"]
            env.ints.append(cnt)
            env.frozen |= {cnt}
            cond = f"{cnt} < {bound}"
            if self.flag():
                cond += f" and {self.cond(env, 1)}"
            lines.append(f"{ind}while {cond}:")
            lines.append(f"{nxt}{cnt} += 1")
            body, _ = self.block(env, depth + 1, nxt, True)
            return lines + body, env, False
        if c in (15, 16):  # try / except
            lines = [f"{ind}try:"]
            body, env_try = self.block(env, depth + 1, nxt, loop)
            # make sure the try body calls a tool that may raise
            if self.flag():
                lines.append(f"{nxt}{self.pick(['chk', 'val'])}({self.int_expr(env)})")
            lines += body
            exc = self.pick(["AppError", "ValueError", "(AppError, ValueError)", "Exception"])
            e = self.fresh("e")
            lines.append(f"{ind}except {exc} as {e}:")
            henv = env.copy()
            msg = self.fresh("s")
            lines.append(f"{nxt}{msg} = str({e})")
            henv.strs.append(msg)
            if self.flag():
                hbody, henv = self.block(henv, depth + 1, nxt, loop)
                lines += hbody
            out = env_try.join_onto(env, henv)
            if self.choice(3) == 0:
                lines.append(f"{ind}else:")
                ebody, env_else = self.block(env_try, depth + 1, nxt, loop)
                lines += ebody
                out = env_else.join_onto(env, henv)
            return lines, out, False
        # c == 17: helper call stored in a variable
        name = self.fresh("v")
        ints = [h for h in self.helpers if h.kind == "int"]
        fn = self.draw(st.sampled_from(ints)).name if ints else "dbl"
        line = f"{ind}{name} = {fn}({self.int_expr(env)})"
        env.ints.append(name)
        return [line], env, False

    # -- statements of the new features ----------------------------------
    def feature_stmts(self, compound: bool) -> list[StmtMaker]:
        """One statement maker per switched-on feature."""
        out: list[StmtMaker] = []
        if "generators" in self.features:
            out.append(self.generator_loop_stmt if compound and self.flag() else self.generator_list_stmt)
        if "exceptions" in self.features and compound:
            out.append(self.rejected_try_stmt)
        if "properties" in self.features:
            out.append(self.acc_set_stmt if self.flag() else self.acc_new_stmt)
        if self.is_async and self.in_helper is None:
            out.append(self.gather_stmt)
        return out

    def generator_list_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        name = self.fresh("L")
        k = self.draw(st.integers(0, 3))
        src = self.pick([f"itertools.islice(walk({{}}, 40), {k})", f"evens({{}}, {k})", f"walk({{}}, {k})"])
        line = f"{ind}{name} = list({src.format(self.int_expr(env))})"
        env.lists.append(name)
        return [line], env, False

    def generator_loop_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        i = self.fresh("i")
        gen = self.pick(["walk", "evens"])
        lines = [f"{ind}for {i} in {gen}({self.int_expr(env)}, {self.draw(st.integers(0, 3))}):"]
        inner = env.copy()
        inner.ints.append(i)
        body, _ = self.block(inner, depth + 1, ind + "    ", True)
        return lines + body, env, False

    def rejected_try_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        """``try`` whose handlers catch ``Rejected`` by class (reading its attributes) and by base."""
        nxt = ind + "    "
        lines = [f"{ind}try:"]
        body, env_try = self.block(env, depth + 1, nxt, loop)
        lines += body
        lines.append(f"{nxt}lim({self.int_expr(env_try)})")
        e, e2 = self.fresh("e"), self.fresh("e")
        value, tool, msg = self.fresh("v"), self.fresh("s"), self.fresh("s")
        lines.append(f"{ind}except Rejected as {e}:")
        first: Env | None = None
        if self.choice(4) == 0:
            lines.append(f'{nxt}raise AppError(f"wrapped {{{e}.tool}}: {{{e}}}") from {e}')
        else:
            lines += [f"{nxt}{value} = {e}.value", f"{nxt}{tool} = {e}.tool"]
            first = env.copy()
            first.ints.append(value)
            first.strs.append(tool)
        lines += [f"{ind}except AppError as {e2}:", f"{nxt}{msg} = str({e2})"]
        second = env.copy()
        second.strs.append(msg)
        handlers = second if first is None else first.meet(second)
        return lines, env_try.join_onto(env, handlers), False

    def acc_new_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        name = self.fresh("a")
        line = f"{ind}{name} = Acc({self.int_expr(env)})"
        env.accs.append(name)
        return [line], env, False

    def acc_set_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        if not env.accs:
            return self.acc_new_stmt(env, depth, ind, loop)
        op = self.pick(["=", "+="])
        return [f"{ind}{self.pick(env.accs)}.v {op} {self.int_expr(env)}"], env, False

    def gather_stmt(self, env: Env, depth: int, ind: str, loop: bool) -> Stmt:
        """``asyncio.gather`` over ``ainc`` only: it never raises, so which failure gather
        reports first (a matter of timing in plain asyncio) never decides the outcome."""
        if self.flag():
            a, b = self.fresh("v"), self.fresh("v")
            calls = f"ainc({self.int_expr(env)}), ainc({self.int_expr(env)})"
            env.ints += [a, b]
            return [f"{ind}{a}, {b} = await asyncio.gather({calls})"], env, False
        name, i = self.fresh("L"), self.fresh("i")
        inner = env.copy()
        inner.ints.append(i)
        n = self.draw(st.integers(0, 3))
        elems = f"[ainc({self.int_expr(inner, 1)}) for {i} in range({n})]"
        env.lists.append(name)
        return [f"{ind}{name} = list(await asyncio.gather(*{elems}))"], env, False

    # -- whole program ----------------------------------------------------
    def helper(self, index: int) -> list[str]:
        kind = "pair" if self.choice(3) == 0 else "int"
        name = f"h{index}"
        self.in_helper = kind
        self.stmts_left = 6
        env = Env(ints=["a"])
        lines = self.helper_decorators(kind) + [f"def {name}(a):"]
        body, env = self.block(env, 1, "    ", False)
        lines += body
        if kind == "pair":
            lines.append(f"    return {self.int_expr(env)}, {self.int_expr(env)}")
        else:
            lines.append(f"    return {self.int_expr(env)}")
        self.in_helper = None
        self.helpers.append(Helper(name, kind))
        return lines

    def helper_decorators(self, kind: str) -> list[str]:
        """User decorators over a generated helper (``@shifted`` only on int helpers)."""
        lines = []
        if "decorator_args" in self.features and kind == "int" and self.flag():
            lines.append(f"@shifted({self.draw(st.integers(1, 9))})")
        if "helper_wrappers" in self.features and self.flag():
            lines.append("@guarded")
        return lines

    def program(self) -> str:
        sleeps = [
            (self.draw(st.integers(0, 4)), self.draw(st.integers(0, 4))) for _ in range(10)
        ]
        parts = [_prelude(sleeps, self.features)]
        for k in range(self.draw(st.integers(0, 2))):
            parts.append("\n" + "\n".join(self.helper(k)) + "\n")
        self.stmts_left = self.MAX_STMTS
        self.is_async = "async" in self.features and self.flag()
        env = Env(ints=["x", "y"])
        lines = ["@nalarc.workflow", f"{'async ' if self.is_async else ''}def wf(x, y):"]
        body, env = self.block(env, 0, "    ", False, most=10)
        lines += body
        lines.append(f"    return {self.result_expr(env)}")
        parts.append("\n" + "\n".join(lines) + "\n")
        return "\n".join(parts)


@st.composite
def programs(draw: Callable[[st.SearchStrategy[Any]], Any]) -> str:
    return Gen(draw).program()


inputs = st.lists(
    st.fixed_dictionaries({"x": st.integers(-3, 20), "y": st.integers(-3, 20)}),
    min_size=2,
    max_size=4,
)

# ---------------------------------------------------------------------------
# Running both sides.
# ---------------------------------------------------------------------------

_ids = itertools.count()
#: Exceptions a plain run may end with; anything else is a generator bug.
EXPECTED_ERRORS = {"AppError", "Rejected", "ValueError"}


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def _run_plain(path: Path, module_name: str, calls: list[dict[str, int]]) -> list[Any]:
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        out = []
        for kwargs in calls:
            with session("s1"):
                try:
                    result: Any = call_plainly(module.wf, kwargs)
                except Exception as exc:  # noqa: BLE001 - compared as data
                    result = outcome_of_exception(exc)
            out.append(_normal(result))
        return out
    finally:
        sys.modules.pop(module_name, None)


def _run_compiled(path: Path, out_dir: Path, calls: list[dict[str, int]]) -> list[Any]:
    app = load_app(path, out_dir=out_dir)
    runner = InProcessRunner(app)
    try:
        out = []
        for kwargs in calls:
            try:
                result: Any = runner.run("wf", dict(kwargs), "s1")
            except Exception as exc:  # noqa: BLE001 - compared as data
                result = outcome_of_exception(exc)
            out.append(_normal(result))
        return out
    finally:
        runner.close()
        sys.modules.pop(path.stem, None)


#: More examples for a longer (nightly) run: NALARC_RANDOM_EXAMPLES=2000.
MAX_EXAMPLES = int(os.environ.get("NALARC_RANDOM_EXAMPLES", "60"))


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(calls=inputs, source=programs())
@pytest.mark.timeout(900)  # room for shrinking a failure
def test_compiled_matches_plain(source: str, calls: list[dict[str, int]]) -> None:
    n = next(_ids)
    with tempfile.TemporaryDirectory(prefix="nalarc_rand_") as tmp:
        path = Path(tmp) / f"prog_{n}.py"
        path.write_text(source, encoding="utf-8")
        expected = _run_plain(path, f"plain_prog_{n}", calls)
        for kwargs, outcome in zip(calls, expected):
            if isinstance(outcome, dict) and set(outcome) == {"error", "message"}:
                assert outcome["error"] in EXPECTED_ERRORS, (
                    f"generator bug: plain run of wf(**{kwargs}) raised {outcome}\n{source}"
                )
        try:
            actual = _run_compiled(path, Path(tmp) / "build", calls)
        except Exception as exc:  # compile or load failure
            raise AssertionError(
                f"compiling/loading failed: {type(exc).__name__}: {exc}\n"
                f"--- source ---\n{source}"
            ) from exc
    assert actual == expected, (
        f"compiled != plain for inputs {calls}\n"
        f"expected: {expected}\nactual:   {actual}\n--- source ---\n{source}"
    )

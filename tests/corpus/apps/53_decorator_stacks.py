"""Stacked decorators, decorators with arguments, registries and class decorators.

Exercises: a ``@register("name")`` decorator filling a module-level registry of tools at
import time (above and below ``@nalarc.tool``), dispatch through the registry from a
workflow; stacked argument decorators whose order decides the result
(``@tag("a")`` over ``@tag("b")``); a decorator on agent methods that validates
arguments and raises ``ValueError``; a class-based decorator (an object with
``__call__`` and ``functools.update_wrapper``) on a helper that calls a tool; a class
decorator that adds a method to a plain helper class; ``@staticmethod`` stacked over
a user decorator inside an agent.
"""

import functools
import time

import nalarc

REGISTRY = {}


def register(name):
    def decorate(fn):
        REGISTRY[name] = fn
        return fn

    return decorate


def tag(label):
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return f"{label}({fn(*args, **kwargs)})"

        return wrapper

    return decorate


def non_empty(*names):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, **kwargs):
            for n in names:
                if not kwargs.get(n):
                    raise ValueError(f"{method.__name__}: {n} must not be empty")
            return method(self, **kwargs)

        return wrapper

    return decorate


class Counted:
    """Counts calls of the wrapped helper (a class used as a decorator)."""

    def __init__(self, fn):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.calls = 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def with_describe(cls):
    def describe(self):
        return f"{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in sorted(vars(self).items()))})"

    cls.describe = describe
    return cls


@register("upper")
@nalarc.tool
def shout(text):
    time.sleep(0.002 + 0.003 * (6 - len(text) % 7))
    return text.upper()


@nalarc.tool
@register("reverse")
def reverse(text):
    time.sleep(0.002 + 0.001 * (len(text) % 5))
    return text[::-1]


@tag("outer")
@tag("inner")
def wrapped_shout(text):
    return shout(text)


@tag("inner")
@tag("outer")
def wrapped_reverse(text):
    return reverse(text)


@Counted
def pipeline(text, steps):
    for s in steps:
        text = REGISTRY[s](text)
    return text


@with_describe
class Job:
    def __init__(self, text, steps):
        self.text = text
        self.steps = steps


@nalarc.agent
class Editor:
    @non_empty("text", "style")
    def edit(self, text, style):
        return {"style": style, "text": shout(text) if style == "loud" else reverse(text)}

    @staticmethod
    @tag("static")
    def label(text):
        return text.title()


@nalarc.workflow
def run_jobs(jobs):
    results = [pipeline(j["text"], j["steps"]) for j in jobs]
    return {
        "results": results,
        "registry": sorted(REGISTRY),
        "calls": pipeline.calls,
        "pipeline_name": pipeline.__name__,
        "describe": [Job(j["text"], j["steps"]).describe() for j in jobs],
        "stacked": [wrapped_shout("ab"), wrapped_reverse("ab")],
    }


@nalarc.workflow
def edit(items):
    editor = Editor()
    out = []
    for item in items:
        try:
            out.append(editor.edit(text=item["text"], style=item["style"]))
        except ValueError as exc:
            out.append({"error": str(exc)})
    return {"out": out, "label": editor.label("hello world"), "class_label": Editor.label("x")}


CALLS = [
    ("run_jobs", {"jobs": [{"text": "tide", "steps": ["upper", "reverse"]}, {"text": "Moon", "steps": []},
                           {"text": "ebb", "steps": ["reverse"]}]}, "s1"),
    ("edit", {"items": [{"text": "quiet", "style": "loud"}, {"text": "", "style": "loud"},
                        {"text": "abc", "style": "soft"}, {"text": "x", "style": ""}]}, "s2"),
    ("run_jobs", {"jobs": [{"text": "flood", "steps": ["upper"]}]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

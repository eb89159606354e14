"""Fallback chains driven by exception attributes: a model router.

Exercises: a workflow loop over fallback models that reads ``exc.retry_after`` and
``exc.model`` to decide what to try next, ``continue`` from an ``except`` block,
``for``/``else`` when every model failed (a custom exception listing all errors is
raised and escapes), an ``Expect`` context manager class whose ``__exit__`` swallows
one exception type and records it, ``contextlib.suppress`` with a custom base class,
``repr`` of exceptions with custom ``__init__``, and an exception object returned as
data (its ``args`` and class name, not the object).
"""

import contextlib
import time

import nalarc


class ModelError(Exception):
    def __init__(self, model, message):
        super().__init__(f"[{model}] {message}")
        self.model = model


class Throttled(ModelError):
    def __init__(self, model, retry_after):
        super().__init__(model, f"throttled for {retry_after}s")
        self.retry_after = retry_after


class Unavailable(ModelError):
    pass


class AllModelsFailed(Exception):
    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = errors


QUOTA = {"gpt-big": 0, "gpt-mid": 2, "gpt-small": 9}


@nalarc.tool
def complete(model, prompt):
    time.sleep(0.002 + 0.003 * ((len(model) + len(prompt)) % 7))
    if model == "offline":
        raise Unavailable(model, "no replicas")
    if len(prompt) > QUOTA.get(model, 5) * 3:
        raise Throttled(model, len(prompt) - QUOTA.get(model, 5) * 3)
    return f"{model}>{prompt.upper()}"


class Expect:
    def __init__(self, kind):
        self.kind = kind
        self.caught = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and issubclass(exc_type, self.kind):
            self.caught = f"{exc_type.__name__}: {exc}"
            return True
        return False


@nalarc.workflow
def route(prompt, models, patience):
    errors = []
    waited = 0
    for model in models:
        try:
            answer = complete(model, prompt)
        except Throttled as exc:
            errors.append(repr(exc))
            if exc.retry_after <= patience:
                waited += exc.retry_after
                answer = complete(model, prompt[: QUOTA.get(exc.model, 5) * 3])
                break
            continue
        except Unavailable as exc:
            errors.append(f"{type(exc).__name__}{exc.args}")
            continue
        break
    else:
        raise AllModelsFailed(errors)
    return {"answer": answer, "errors": errors, "waited": waited}


@nalarc.workflow
def probe(prompts):
    results = []
    for p in prompts:
        with Expect(Throttled) as e:
            results.append(complete("gpt-mid", p))
        if e.caught:
            results.append(e.caught)
    with contextlib.suppress(ModelError):
        results.append(complete("offline", "x"))
    return results


CALLS = [
    ("route", {"prompt": "summarize the tides", "models": ["offline", "gpt-big", "gpt-mid", "gpt-small"],
               "patience": 3}, "s1"),
    ("route", {"prompt": "hello there", "models": ["gpt-big", "gpt-mid"], "patience": 20}, "s2"),
    ("route", {"prompt": "a long prompt that nobody can take", "models": ["offline", "gpt-big", "gpt-mid"],
               "patience": 1}, "s1"),
    ("probe", {"prompts": ["ok", "this is too long", "fine"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

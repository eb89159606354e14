"""Private and name-mangled agent methods.

Exercises: ``_single_underscore`` agent methods called from a workflow on a handle
and from the agent's public methods; a ``__double_underscore`` method called only
inside the class (name mangling to ``_Reviewer__score``) and through its mangled
name from a workflow; a private method that calls a tool and raises a custom error
the workflow catches; a private helper inherited by a subclass agent that also
defines its own ``__score`` (mangling keeps the two apart).
"""

import time

import nalarc


class ReviewError(Exception):
    pass


@nalarc.tool
def lint(code):
    time.sleep(0.002 + 0.003 * (7 - len(code) % 8))
    return [i for i, line in enumerate(code.splitlines()) if len(line) > 12]


@nalarc.tool
def run_tests(code):
    time.sleep(0.002 + 0.001 * (len(code) % 5))
    if "raise" in code:
        raise ReviewError(f"tests fail for a {len(code)}-char change")
    return code.count("assert")


@nalarc.agent
class Reviewer:
    def _issues(self, code):
        return lint(code)

    def __score(self, issues, passed):
        return max(0, 10 - 2 * len(issues) + passed)

    def _tests(self, code):
        try:
            return run_tests(code)
        except ReviewError:
            return -1

    def review(self, code):
        issues = self._issues(code)
        passed = self._tests(code)
        return {"issues": issues, "passed": passed, "score": self.__score(issues, max(passed, 0))}


@nalarc.agent
class StrictReviewer(Reviewer):
    def __score(self, issues, passed):
        return 0 if issues else passed

    def review(self, code):
        base = super().review(code)
        base["strict"] = self.__score(base["issues"], base["passed"])
        return base


@nalarc.workflow
def review(changes):
    r, s = Reviewer(), StrictReviewer()
    out = []
    for code in changes:
        out.append({"normal": r.review(code), "strict": s.review(code),
                    "issues": r._issues(code), "mangled": r._Reviewer__score([], 1)})
    try:
        direct = run_tests(changes[-1])
    except ReviewError as exc:
        direct = str(exc)
    return {"out": out, "direct": direct}


CALLS = [
    ("review", {"changes": ["x = 1\nassert x\n", "def f():\n    return some_long_name_here\n",
                            "raise SystemExit\n"]}, "s1"),
    ("review", {"changes": ["assert 1\nassert 2\n"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

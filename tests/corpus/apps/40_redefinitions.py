"""Names defined twice at module level: the later definition wins.

Exercises: a helper redefined further down the module (a workflow defined between
the two definitions still calls the second one, because names are looked up at
call time), a ``@nalarc.tool`` redefined with a new body, a plain class redefined
(the first class's instances keep their class), an agent class redefined, the
first definition kept under another name before it is replaced (``_v1 = score``),
and a function replaced by assignment (``normalize = str.casefold``).
"""

import time

import nalarc


def score(text):
    return len(text)


_score_v1 = score


@nalarc.tool
def classify(text):
    time.sleep(0.02)
    return "v1"


def normalize(text):
    return text.strip()


class Label:
    def __init__(self, name):
        self.name = name

    def render(self):
        return f"<{self.name}>"


OLD_LABEL = Label("legacy")


@nalarc.agent
class Judge:
    def verdict(self, text):
        time.sleep(0.003)
        return "v1 judge"


@nalarc.workflow
def triage(texts):
    results = []
    for t in texts:
        t = normalize(t)
        results.append({"text": t, "score": score(t), "old": _score_v1(t), "class": classify(t)})
    return {"results": results, "label": Label("new").render(), "old_label": OLD_LABEL.render(),
            "judge": Judge().verdict(texts[0])}


def score(text):  # noqa: F811 - the redefinition is the point
    return sum(ord(c) for c in text) % 97


@nalarc.tool
def classify(text):  # noqa: F811
    time.sleep(0.002 + 0.003 * (6 - len(text) % 7))
    return "long" if len(text) > 5 else "short"


normalize = str.casefold


class Label:  # noqa: F811
    prefix = "label"

    def __init__(self, name):
        self.name = name.upper()

    def render(self):
        return f"{self.prefix}:{self.name}"


@nalarc.agent
class Judge:  # noqa: F811
    def verdict(self, text):
        time.sleep(0.002)
        return f"judged {classify(text)}"


@nalarc.workflow
def classes():
    return {"same_class": isinstance(OLD_LABEL, Label), "old_name": type(OLD_LABEL).__name__,
            "new": Label("x").render(), "judge": Judge().verdict("abcdefgh")}


CALLS = [
    ("triage", {"texts": ["  Hello World ", "ok", "Agents"]}, "s1"),
    ("classes", {}, "s1"),
    ("triage", {"texts": ["MiXeD"]}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

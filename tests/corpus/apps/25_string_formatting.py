"""String building from tool results.

Exercises: f-strings with format specs (width, precision, sign, ``!r``,
nested specs from results), ``%``-formatting, ``str.format`` with indices and
names, ``"".join`` over a generator of tool results, string concatenation in
a loop, string methods and slicing on results, comparisons of strings,
multiplication of strings by results, ``from nalarc import tool as t`` and
``import nalarc`` together.
"""

import time

import nalarc
from nalarc import tool as t


@t
def measure(word):
    time.sleep(0.002 + 0.003 * (8 - len(word) % 9))
    return len(word) / 3


@t
def initials(name):
    time.sleep(0.02 - 0.002 * min(len(name), 9))
    return "".join(part[0] for part in name.split()).upper()


@t
def width(word):
    time.sleep(0.004)
    return len(word) + 2


@nalarc.workflow
def render(words, name):
    lines = []
    for w in words:
        m = measure(w)
        lines.append(f"{w!r:>10}|{m:+.3f}|{m:{width(w)}.1f}|{int(m):03d}")
    pct = "%s has %d words, avg %.2f" % (initials(name), len(words),
                                         sum(measure(w) for w in words) / len(words))
    fmt = "{0}-{1}-{0} {who}".format(initials(name), len(words), who=initials(name).lower())
    joined = "/".join(initials(w) for w in words)
    banner = ""
    for w in words:
        banner += initials(w) * int(measure(w) + 1)
    inits = initials(name)
    return {
        "lines": lines,
        "pct": pct,
        "fmt": fmt,
        "joined": joined,
        "banner": banner,
        "cmp": inits < "M",
        "slice": inits[::-1] + inits[:1],
        "upper_eq": inits == inits.upper(),
        "centered": f"[{inits:^9}]",
        "pad": str(measure(name)).ljust(20, "."),
    }


CALLS = [
    ("render", {"words": ["ant", "beetle", "cicada bug"], "name": "ada byron king"}, "s1"),
    ("render", {"words": ["z"], "name": "Zed"}, "s2"),
    ("render", {"words": ["lengthy words here", "mid size"], "name": "grace murray hopper"}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

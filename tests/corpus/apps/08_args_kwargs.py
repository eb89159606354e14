"""Keyword arguments, defaults, *args and **kwargs.

Exercises: tools with defaults, keyword-only parameters, *args and **kwargs
in signatures; call sites using keywords, ``*list`` and ``**dict`` built from
tool results; keyword arguments given positionally and by name; agent methods with
defaults; ``from nalarc import agent, tool, workflow``.
"""

import time

from nalarc import agent, tool, workflow


@tool
def fmt(template, *values, sep=", ", upper=False):
    time.sleep(0.002 + 0.004 * max(0, 6 - len(values)))
    text = template.format(sep.join(str(v) for v in values))
    return text.upper() if upper else text


@tool
def config(**options):
    time.sleep(0.02 - 0.003 * min(len(options), 5))
    return {k: options[k] for k in sorted(options)}


@tool
def weigh(x, weight=2, *, offset=0, extra=()):
    time.sleep(0.003 + 0.002 * (x % 5))
    return x * weight + offset + sum(extra)


@agent
class Builder:
    def build(self, name, *parts, prefix="<", **attrs):
        time.sleep(0.004 + 0.002 * len(parts))
        attr_text = " ".join(f"{k}={attrs[k]}" for k in sorted(attrs))
        return f"{prefix}{name} {attr_text}|{'/'.join(parts)}"


@workflow
def assemble(xs, opts):
    weights = [weigh(x) for x in xs]
    heavy = [weigh(x, 3, offset=1) for x in xs]
    kw = weigh(x=xs[0], weight=weights[0], extra=tuple(heavy))
    cfg = config(**opts, count=len(xs))
    cfg2 = config(**cfg, **{"more": weights[-1]})
    line = fmt("[{}]", *weights, sep=cfg.get("sep", ";"))
    loud = fmt("{}", *heavy[:2], upper=True, sep="-")
    html = Builder().build("div", *[str(w) for w in weights], id=kw, **{"cls": line})
    plain = Builder().build("p", prefix="(")
    return {"weights": weights, "heavy": heavy, "kw": kw, "cfg": cfg, "cfg2": cfg2,
            "line": line, "loud": loud, "html": html, "plain": plain}


@workflow
def defaults_only(x=4, scale=1):
    return {"a": weigh(x), "b": weigh(x, weight=scale), "c": fmt("{}")}


CALLS = [
    ("assemble", {"xs": [1, 2, 3], "opts": {"sep": "+", "mode": "fast"}}, "s1"),
    ("defaults_only", {}, "s1"),
    ("assemble", {"xs": [9], "opts": {}}, "s2"),
    ("defaults_only", {"scale": 5}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

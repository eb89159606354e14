"""Imports of modules that do not exist here, guarded the way libraries guard them.

Exercises: ``try: import orjson except ImportError: orjson = None`` and a tool that
branches on it; ``try: import ujson as fastjson except ImportError: import json as
fastjson``; ``from rapidfuzz import fuzz`` with a pure-Python fallback function
defined in the ``except``; ``if sys.platform == "win32": import winreg``;
``if os.name == "nt": import nt``; a ``TYPE_CHECKING``-only import of a missing
module; an import of a missing module inside a function that is never called;
``tomllib`` (present since 3.11) behind ``except ModuleNotFoundError``.
"""

import difflib
import os
import sys
import time
from typing import TYPE_CHECKING

import nalarc

try:
    import orjson
except ImportError:
    orjson = None

try:
    import ujson as fastjson
except ImportError:
    import json as fastjson

try:
    from rapidfuzz import fuzz

    def ratio(a, b):
        return int(fuzz.ratio(a, b))

except ImportError:

    def ratio(a, b):
        return int(round(100 * difflib.SequenceMatcher(None, a, b).ratio()))


try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python < 3.11
    tomllib = None

if sys.platform == "win32":
    import winreg

    def config_dir():
        return winreg.HKEY_CURRENT_USER
else:

    def config_dir():
        return "~/.config"


if os.name == "nt":
    import nt

    SEP = nt.sep
else:
    SEP = "/"

if TYPE_CHECKING:
    from nonexistent_vendor_sdk import Client  # noqa: F401


def _windows_only_notify(message):
    import win32api  # never called off Windows

    win32api.MessageBox(0, message)


@nalarc.tool
def serialize(record):
    time.sleep(0.002 + 0.002 * (6 - len(record) % 7))
    if orjson is not None:
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()
    return fastjson.dumps(record, sort_keys=True, separators=(",", ":"))


@nalarc.tool
def parse_config(text):
    time.sleep(0.003)
    if tomllib is None:
        return {}
    return tomllib.loads(text)


@nalarc.tool
def best_match(query, choices):
    time.sleep(0.001 + 0.001 * len(choices))
    scored = sorted(((ratio(query, c), c) for c in choices), reverse=True)
    return scored[0]


@nalarc.workflow
def export(records):
    lines = [serialize(r) for r in records]
    return {"lines": lines, "sizes": [len(x) for x in lines], "config_dir": config_dir(),
            "path": SEP.join(["data", "out.jsonl"])}


@nalarc.workflow
def configure(text, command):
    cfg = parse_config(text)
    commands = cfg.get("commands", {}).get("names", [])
    score, match = best_match(command, commands) if commands else (0, None)
    return {"cfg": cfg, "match": match, "score": score, "encoded": serialize({"m": match})}


CALLS = [
    ("export", {"records": [{"b": 1, "a": [1, 2]}, {"name": "x"}, {}]}, "s1"),
    ("configure", {"text": 'title = "bot"\n[commands]\nnames = ["deploy", "destroy", "describe"]\n',
                   "command": "deplyo"}, "s1"),
    ("configure", {"text": "x = 1\n", "command": "noop"}, "s2"),
    ("configure", {"text": "x = = 1\n", "command": "bad"}, "s2"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""A plugin loader: optional backends found at run time, lazy imports, local imports.

Exercises: ``importlib.util.find_spec`` and ``importlib.import_module`` inside a tool
over a list of plugin names, some of which do not exist; an import guarded by
``contextlib.suppress(ImportError)``; a lazily imported backend cached in a module
global by a helper (``global _BACKEND``: a per-process cache that gives the same
answer in every process); imports inside a tool's body (``import hashlib``,
``from base64 import b32encode``); a workflow that dispatches on the backend name;
``ModuleNotFoundError.name`` read in a handler.
"""

import contextlib
import importlib
import importlib.util
import time

import nalarc

with contextlib.suppress(ImportError):
    import simdjson  # noqa: F401 - optional accelerator, absent here

_BACKEND = None


def _backend():
    global _BACKEND
    if _BACKEND is None:
        try:
            import orjson as backend
        except ImportError:
            import json as backend
        _BACKEND = backend
    return _BACKEND


@nalarc.tool
def discover(names):
    time.sleep(0.002 + 0.002 * (5 - len(names) % 6))
    return [n for n in names if importlib.util.find_spec(n) is not None]


@nalarc.tool
def load(name):
    time.sleep(0.001 + 0.002 * (8 - len(name) % 9))
    module = importlib.import_module(name)
    return {"name": module.__name__, "has_dumps": hasattr(module, "dumps")}


@nalarc.tool
def fingerprint(payload):
    import hashlib
    from base64 import b32encode

    time.sleep(0.002)
    text = _backend().dumps(payload, sort_keys=True)
    return b32encode(hashlib.sha256(text.encode()).digest()[:5]).decode()


@nalarc.workflow
def setup(plugins):
    found = discover(plugins)
    loaded = []
    missing = []
    for name in plugins:
        try:
            loaded.append(load(name))
        except ModuleNotFoundError as exc:
            missing.append(exc.name)
    return {"found": found, "loaded": loaded, "missing": missing,
            "fp": fingerprint({"found": found})}


@nalarc.workflow
def strict_setup(plugins):
    return [load(p)["name"] for p in plugins]


CALLS = [
    ("setup", {"plugins": ["json", "orjson", "csv", "nalarc_corpus_missing_plugin", "zlib"]}, "s1"),
    ("setup", {"plugins": []}, "s2"),
    ("strict_setup", {"plugins": ["json", "nalarc_corpus_missing_plugin"]}, "s1"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())

"""``--policy NAME`` or ``--policy file.py:Class``, and ``a+b`` to compose."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .._errors import PolicyError
from ._api import Policy
from ._autoscale import Autoscale
from ._cache import CacheAware
from ._defaults import Compose, LeastLoaded
from ._paper import LPT, SRTF, HeadOfLineMigration, RayLike, ResourceReassignment, SessionPriority, StickyFCFS

POLICIES: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Make a policy class selectable by its ``name`` (names are unique)."""
    if cls.name in POLICIES and POLICIES[cls.name] is not cls:
        raise PolicyError(f"a policy named {cls.name!r} is already registered")
    POLICIES[cls.name] = cls
    return cls


for _policy in (LeastLoaded, Autoscale, HeadOfLineMigration, ResourceReassignment, SessionPriority, SRTF, LPT, StickyFCFS, RayLike,
                CacheAware):
    register(_policy)

#: Names that stand for a composition (the paper's three default policies, §8.5).
ALIASES = {
    "nalar": "least-loaded+hol-migration+reassign",
    # the same with cache-aware routing and migration in place of blind head-of-line migration
    "nalar-cache": "least-loaded+cache-aware+reassign",
}


def _from_file(spec: str) -> Policy:
    path, _, class_name = spec.rpartition(":")
    module_spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if module_spec is None or module_spec.loader is None or not Path(path).is_file():
        raise PolicyError(f"--policy {spec!r}: no such file {path!r}")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise PolicyError(f"--policy {spec!r}: {class_name!r} is not a nalarc.policies.Policy subclass")
    return cls()


def load_policy(spec: str) -> Policy:
    """A policy from ``NAME``, ``path.py:Class``, or several joined with ``+``."""
    parts = [p for alias in spec.split("+") for p in ALIASES.get(alias, alias).split("+") if p]
    policies: list[Policy] = []
    for part in parts:
        if ".py:" in part:
            policies.append(_from_file(part))
        elif part in POLICIES:
            policies.append(POLICIES[part]())
        else:
            known = ", ".join(sorted([*POLICIES, *ALIASES]))
            raise PolicyError(f"unknown policy {part!r}; known: {known} or FILE.py:Class")
    if not policies:
        raise PolicyError("--policy needs at least one policy")
    return policies[0] if len(policies) == 1 else Compose(*policies)

"""Run configuration: defaults < ``[tool.nalarc]`` / ``nalarc.toml`` < ``NALARC_*`` < flags."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any

from ._errors import NalarcError
from ._flow import FlowConfig


@dataclasses.dataclass
class RunConfig:
    """How ``nalarc run`` executes an app."""

    #: Worker processes (0: every call runs in the driver process).
    workers: int = 2
    #: Instances per component, by name (``{"Planner": 2}``).
    instances: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Seconds between two rounds of the global controller's policy loop.
    interval: float = 0.1
    #: SQLite file holding managed state.
    state: str = ".nalarc/state.db"
    #: Global-controller policy (``NAME``, ``FILE.py:Class``, ``a+b``).
    policy: str = "autoscale"
    #: Where the workers run: ``process`` (this machine) or ``ray`` (Ray actors).
    backend: str = "process"
    #: The Ray cluster to join with ``backend = "ray"`` (empty: ``RAY_ADDRESS``, else a local cluster).
    ray_address: str = ""
    #: Flow control: the ``[flow]`` table (rate limits per model, concurrency keys, session budgets).
    flow: FlowConfig = dataclasses.field(default_factory=FlowConfig)


_BACKENDS = ("process", "ray")


_ENV_PREFIX = "NALARC_"


def _from_file(directory: Path) -> dict[str, Any]:
    nalarc_toml = directory / "nalarc.toml"
    if nalarc_toml.is_file():
        return tomllib.loads(nalarc_toml.read_text(encoding="utf-8"))
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        section = data.get("tool", {}).get("nalarc", {})
        return section if isinstance(section, dict) else {}
    return {}


def parse_instances(items: list[str]) -> dict[str, int]:
    """``["Planner=2", "search=4"]`` -> ``{"Planner": 2, "search": 4}``."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, count = item.partition("=")
        if not sep or not name or not count.isdigit() or int(count) < 1:
            raise NalarcError(f"--instances expects NAME=COUNT with COUNT >= 1, got {item!r}")
        out[name] = int(count)
    return out


def _coerce(field: dataclasses.Field[Any], value: Any) -> Any:
    if field.name == "instances":
        if isinstance(value, str):
            return parse_instances([v for v in value.split(",") if v])
        if isinstance(value, dict):
            return {str(k): int(v) for k, v in value.items()}
        raise NalarcError(f"instances must be a table of NAME = COUNT, got {value!r}")
    if field.name == "flow":
        if isinstance(value, FlowConfig):
            return value
        if not isinstance(value, dict):
            raise NalarcError(f"flow must be a table, got {value!r}")
        return FlowConfig.from_table(value)
    if field.name == "backend" and value not in _BACKENDS:
        raise NalarcError(f"backend must be one of {', '.join(_BACKENDS)}, got {value!r}")
    try:
        return type(getattr(RunConfig(), field.name))(value)
    except (TypeError, ValueError):
        raise NalarcError(f"config {field.name!r}: cannot use {value!r}") from None


def load_config(directory: Path, overrides: dict[str, Any]) -> RunConfig:
    """Merge the layers; ``overrides`` (flags) are applied last, None meaning unset."""
    config = RunConfig()
    fields = {f.name: f for f in dataclasses.fields(RunConfig)}
    layers: list[dict[str, Any]] = [
        _from_file(directory),
        {k[len(_ENV_PREFIX):].lower(): v for k, v in os.environ.items() if k.startswith(_ENV_PREFIX)},
        {k: v for k, v in overrides.items() if v is not None},
    ]
    for layer in layers:
        for key, value in layer.items():
            if key in fields:
                setattr(config, key, _coerce(fields[key], value))
    return config

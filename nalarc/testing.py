"""Helpers for differential tests: run an app's request list plainly."""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._state import session

#: One request: (workflow name, keyword arguments, session id).
Call = tuple[str, Mapping[str, Any], str]


def outcome_of_exception(exc: BaseException) -> dict[str, str]:
    """How a failed request is reported, the same way in both modes."""
    return {"error": type(exc).__name__, "message": str(exc).splitlines()[0] if str(exc) else ""}


def call_plainly(workflow: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Call ``workflow`` as ``python app.py`` would; an ``async def`` one runs under ``asyncio.run``."""
    if inspect.iscoroutinefunction(workflow):
        return asyncio.run(workflow(**kwargs))
    return workflow(**kwargs)


def run_plain_calls(calls: Sequence[Call], namespace: Mapping[str, Any]) -> list[Any]:
    """Run ``calls`` as plain Python, printing one JSON line per request."""
    results: list[Any] = []
    for workflow_name, kwargs, session_id in calls:
        with session(session_id):
            try:
                result: Any = call_plainly(namespace[workflow_name], kwargs)
            except Exception as exc:  # noqa: BLE001 - reported as data, like the runtime does
                result = outcome_of_exception(exc)
        results.append(result)
        print(json.dumps(result, sort_keys=True))
    return results

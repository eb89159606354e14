"""The worker: hosts component instances and runs the calls the driver sends it.

``python -m nalarc.worker SOCKET ID`` is a worker process (``_main``); a Ray
actor hosts the same :class:`Worker` (``_actor``).  Modules:

* ``_main``: the process and its leader/follower loop over the driver's messages;
* ``_hosting``: the component instances, and how a call's code runs;
* ``_lane``: the trio loop compiled component code runs on, and its calls back to the driver;
* ``_values``: push readiness, the values sibling workers push here.

It imports nalarc's core, ``nalarc.wire`` and the runtime, never the driver
(``nalarc.executor``'s controllers and backends, ``nalarc.policies``).
"""

from __future__ import annotations

from ._main import POOL_SIZE as POOL_SIZE
from ._main import Worker as Worker
from ._main import main as main

__all__ = ["POOL_SIZE", "Worker", "main"]

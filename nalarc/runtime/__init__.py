"""The runtime compiled code calls: futures, materialization, dispatch.

Generated modules do ``from nalarc import runtime as _nalarc_rt`` and use only
the names in ``__all__``, which are exactly the names the code generator can
emit as ``_nalarc_rt.NAME`` (a test checks both ways).  The driver and the
worker reach the rest (the runtime object, call records, the backend protocol)
through :mod:`nalarc.runtime.lowlevel`.

The parts, each importing only those listed before it:

============================  ===================================================
``_containers``               replacing placeholders inside call arguments
``_exceptions``               exceptions across processes, with type and attributes
``_asyncio_bridge``           the process's asyncio loop thread, for user asyncio code
``_futures``                  ``Pending``, ``Frame``, ``Runtime``, the ``Backend`` protocol
``_threads``                  blocking on the event loop from a worker thread
``_compiled``                 the marks of compiled functions (``compiled``, ``compiled_async``)
``_materialize``              ``m``, ``md``, ``settle``, ``reconcile``: values in program order
``_launch``                   ``call``, agent handles, push readiness, ``complete_call``
``_replay``                   call keys and the call journal: replaying completed calls on resume
``_regions``                  blocking forms (``bm``, ``bmd``, ``bcall``), ``region``, ``cm_enter``
``_iteration``                ``aiter``, ``iterate``, carrying ``StopIteration``, intrinsics
``_async``                    ``await`` (``aw``), tasks, ``run_in_frame``, ``async for`` / ``with``
``_asyncio_functions``        ``asyncio.gather``, ``wait_for``, ``sleep``... on trio
``_dispatch``                 ``dyn`` (calls resolved at run time), ``local``, stores
``_import_time``              ``run_sync``: compiled code called at import time
============================  ===================================================

The runtime imports nothing of the driver (:mod:`nalarc.executor`), the
policies, the compiler or the CLI.
"""

from __future__ import annotations

from ._async import acm_enter as acm_enter
from ._async import acm_exit as acm_exit
from ._async import aiter_async as aiter_async
from ._async import aw as aw
from ._async import native_agen as native_agen
from ._compiled import compiled as compiled
from ._compiled import compiled_async as compiled_async
from ._dispatch import bdyn as bdyn
from ._dispatch import dyn as dyn
from ._dispatch import dyn_effect as dyn_effect
from ._dispatch import dyn_next as dyn_next
from ._dispatch import local as local
from ._dispatch import mark_pure as mark_pure
from ._dispatch import setattr_ as setattr_
from ._dispatch import setitem as setitem
from ._dispatch import setitem_effect as setitem_effect
from ._import_time import run_sync as run_sync
from ._iteration import aiter as aiter
from ._iteration import aiter_unpack as aiter_unpack
from ._iteration import as_completed as as_completed
from ._iteration import available as available
from ._iteration import biter_unpack as biter_unpack
from ._iteration import iterate as iterate
from ._iteration import session_id as session_id
from ._iteration import v as v
from ._iteration import value as value
from ._launch import call as call
from ._launch import handle as handle
from ._materialize import exit_try as exit_try
from ._materialize import m as m
from ._materialize import md as md
from ._materialize import md_lazy as md_lazy
from ._materialize import push_try as push_try
from ._materialize import reconcile as reconcile
from ._materialize import settle as settle
from ._materialize import settled as settled
from ._regions import bcall as bcall
from ._regions import bm as bm
from ._regions import bmd as bmd
from ._regions import bmd_lazy as bmd_lazy
from ._regions import cm_enter as cm_enter
from ._regions import cm_exit as cm_exit
from ._regions import region as region
from ._regions import region_gen as region_gen
from ._regions import region_iter as region_iter

__all__ = [
    "acm_enter",
    "acm_exit",
    "aiter",
    "aiter_async",
    "aiter_unpack",
    "as_completed",
    "available",
    "aw",
    "bcall",
    "bdyn",
    "biter_unpack",
    "bm",
    "bmd",
    "bmd_lazy",
    "call",
    "cm_enter",
    "cm_exit",
    "compiled",
    "compiled_async",
    "dyn",
    "dyn_effect",
    "dyn_next",
    "exit_try",
    "handle",
    "iterate",
    "local",
    "m",
    "mark_pure",
    "md",
    "md_lazy",
    "native_agen",
    "push_try",
    "reconcile",
    "region",
    "region_gen",
    "region_iter",
    "run_sync",
    "session_id",
    "setattr_",
    "setitem",
    "setitem_effect",
    "settle",
    "settled",
    "v",
    "value",
]

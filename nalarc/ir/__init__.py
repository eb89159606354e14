"""The IR: data only (frozen dataclasses), a verifier and a printer."""

from __future__ import annotations

from ._nodes import AWAIT as AWAIT
from ._nodes import EFFECT as EFFECT
from ._nodes import STAGE_SHIFT as STAGE_SHIFT
from ._nodes import ArgRef as ArgRef
from ._nodes import Binding as Binding
from ._nodes import CallNode as CallNode
from ._nodes import ComponentIR as ComponentIR
from ._nodes import ControlRegion as ControlRegion
from ._nodes import DependencyEdge as DependencyEdge
from ._nodes import Diagnostic as Diagnostic
from ._nodes import FunctionIR as FunctionIR
from ._nodes import FutureNode as FutureNode
from ._nodes import Hoist as Hoist
from ._nodes import MaterializeNode as MaterializeNode
from ._nodes import ModuleIR as ModuleIR
from ._nodes import Program as Program
from ._nodes import Span as Span
from ._nodes import StatementInfo as StatementInfo

__all__ = [
    "AWAIT",
    "EFFECT",
    "STAGE_SHIFT",
    "ArgRef",
    "Binding",
    "CallNode",
    "ComponentIR",
    "ControlRegion",
    "DependencyEdge",
    "Diagnostic",
    "FunctionIR",
    "FutureNode",
    "Hoist",
    "MaterializeNode",
    "ModuleIR",
    "Program",
    "Span",
    "StatementInfo",
]

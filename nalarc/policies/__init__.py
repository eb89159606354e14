"""Policies for the global controller, and the small API they are written against."""

from __future__ import annotations

from ._api import CachedPrefix as CachedPrefix
from ._api import Control as Control
from ._autoscale import Autoscale as Autoscale
from ._cache import CacheAware as CacheAware
from ._api import FutureMetrics as FutureMetrics
from ._api import InstanceMetrics as InstanceMetrics
from ._api import MetricsView as MetricsView
from ._api import Policy as Policy
from ._defaults import Compose as Compose
from ._paper import LPT as LPT
from ._paper import SRTF as SRTF
from ._paper import HeadOfLineMigration as HeadOfLineMigration
from ._paper import RayLike as RayLike
from ._paper import ResourceReassignment as ResourceReassignment
from ._paper import SessionPriority as SessionPriority
from ._paper import StickyFCFS as StickyFCFS
from ._defaults import LeastLoaded as LeastLoaded
from ._registry import POLICIES as POLICIES
from ._registry import load_policy as load_policy
from ._registry import register as register

__all__ = [
    "Autoscale",
    "LPT",
    "POLICIES",
    "SRTF",
    "HeadOfLineMigration",
    "RayLike",
    "ResourceReassignment",
    "SessionPriority",
    "StickyFCFS",
    "CacheAware",
    "CachedPrefix",
    "Compose",
    "Control",
    "FutureMetrics",
    "InstanceMetrics",
    "LeastLoaded",
    "MetricsView",
    "Policy",
    "load_policy",
    "register",
]

"""Intrinsics in their plain-Python form.

Compiled code never calls these: the compiler replaces each use with the
runtime's version (``nalarc.runtime``).  Uncompiled, every value is
already computed, so they are trivial.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def available(x: object) -> bool:
    """Is the value of ``x`` ready?  Never blocks."""
    return True


def value(x: T, timeout: float | None = None) -> T:
    """The value of ``x``, waiting at most ``timeout`` seconds for it."""
    return x


def as_completed(xs: Iterable[T]) -> Iterator[T]:
    """Iterate over ``xs`` in the order their values become ready."""
    return iter(list(xs))

"""Exceptions cross processes with their type and attributes (nalarc/runtime/_exceptions.py)."""

from __future__ import annotations

import threading

import cloudpickle
import pytest

from nalarc import RemoteError
from nalarc.runtime.lowlevel import dump_exception


class ServiceError(Exception):
    pass


class RateLimited(ServiceError):
    """The commonest custom exception: ``__init__`` does not take ``args``."""

    def __init__(self, model: str, wait: float) -> None:
        super().__init__(f"{model} limited for {wait}s")
        self.model, self.wait = model, wait


class Holds(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()  # cannot be pickled


def _roundtrip(error: BaseException) -> BaseException:
    rebuilt = cloudpickle.loads(dump_exception(error, "traceback text"))
    assert isinstance(rebuilt, BaseException)
    return rebuilt


def test_plain_pickle_cannot_rebuild_it() -> None:
    """Why the module exists: the default pickling calls ``RateLimited(message)``."""
    with pytest.raises(TypeError):
        cloudpickle.loads(cloudpickle.dumps(RateLimited("gpt", 1.5)))


def test_custom_init_keeps_type_args_and_attributes() -> None:
    rebuilt = _roundtrip(RateLimited("gpt", 1.5))
    assert type(rebuilt) is RateLimited and isinstance(rebuilt, ServiceError)
    assert str(rebuilt) == "gpt limited for 1.5s"
    assert (rebuilt.model, rebuilt.wait) == ("gpt", 1.5)  # type: ignore[attr-defined]


def test_cause_and_context_chain_and_notes() -> None:
    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise RateLimited("m", 2) from inner
    except RateLimited as error:
        error.add_note("while planning")
        rebuilt = _roundtrip(error)
    assert isinstance(rebuilt.__cause__, KeyError) and rebuilt.__cause__.args == ("inner",)
    assert rebuilt.__suppress_context__ is True
    assert getattr(rebuilt, "__notes__", None) == ["while planning"]


def test_builtin_exceptions_keep_their_own_pickling() -> None:
    rebuilt = _roundtrip(FileNotFoundError(2, "No such file", "/x"))
    assert type(rebuilt) is FileNotFoundError
    assert (rebuilt.errno, rebuilt.filename) == (2, "/x")  # type: ignore[attr-defined]


def test_unpicklable_attributes_are_dropped_not_the_type() -> None:
    rebuilt = _roundtrip(Holds())
    assert type(rebuilt) is Holds and str(rebuilt) == "holds a lock"
    assert not hasattr(rebuilt, "lock")


def test_arguments_that_cannot_travel_give_remote_error_with_the_traceback() -> None:
    rebuilt = _roundtrip(ServiceError("busy", threading.Lock()))
    assert isinstance(rebuilt, RemoteError) and "traceback text" in str(rebuilt)

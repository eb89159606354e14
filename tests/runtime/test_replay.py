"""Call keys and replay decisions (nalarc/runtime/_replay.py), on the in-process runtime with a dict journal.

The journal here is a fake (a dict); the crash tests with real servers are in
tests/serve/test_call_replay.py.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import trio

import nalarc
import nalarc._api
from nalarc import load_app
from nalarc.executor import LoadedApp, open_service
from nalarc.executor._statestore import StateStore
from nalarc.runtime._replay import MISSING, STARTED, call_key, digest_arguments, Undigestable
from nalarc.runtime.lowlevel import Pending

APP = '''
import nalarc

CALLS = []

@nalarc.tool(idempotent=True)
def double(x):
    CALLS.append(("double", x))
    return 2 * x

@nalarc.tool
def charge(x):
    CALLS.append(("charge", x))
    return x + 1000

@nalarc.tool(idempotent=True)
def add(a, b):
    CALLS.append(("add", a, b))
    return a + b

class Opaque:
    pass

@nalarc.tool(idempotent=True)
def look(thing):
    CALLS.append(("look", type(thing).__name__))
    return 7

@nalarc.workflow
def fan(n):
    parts = [double(i) for i in range(n)]
    total = add(parts[0], parts[1])
    return {"parts": parts, "total": total, "again": double(0), "charged": charge(total)}

@nalarc.workflow
def opaque():
    return look(Opaque()) + double(look(Opaque()))
'''


class DictJournal:
    """A CallJournal in memory; records the order of the writes."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Any] = {}
        self.writes: list[tuple[str, str]] = []

    def lookup(self, request_id: str, key: str) -> Any:
        return self.rows.get((request_id, key), MISSING)

    def started(self, request_id: str, key: str) -> None:
        self.rows.setdefault((request_id, key), STARTED)
        self.writes.append(("started", key))

    def record(self, request_id: str, key: str, value: Any) -> None:
        self.rows[request_id, key] = value
        self.writes.append(("record", key))


@pytest.fixture
def app(tmp_path: Path) -> LoadedApp:
    path = tmp_path / "replay_app.py"
    path.write_text(textwrap.dedent(APP), encoding="utf-8")
    return load_app(path, out_dir=tmp_path / "build")


def calls_log(app: LoadedApp) -> list[Any]:
    log: list[Any] = app.module.CALLS
    return log


def run(app: LoadedApp, workflow: str, inputs: dict[str, Any], journal: DictJournal | None, resumed: bool,
        request_id: str = "run-1") -> Any:
    async def main() -> Any:
        async with open_service(app, StateStore(None), None) as service:
            return await service.run(workflow, inputs, request_id=request_id, journal=journal, resumed=resumed)

    return trio.run(main)


# -- the key derivation ---------------------------------------------------------------

def keyed_future(key: str | None) -> Pending:
    p = Pending(None, 1, "t")
    p.key = key
    return p


def test_digest_is_canonical_and_distinguishes_types() -> None:
    assert digest_arguments((1, "a", [1.5, None]), {"k": b"x"}) == digest_arguments((1, "a", [1.5, None]), {"k": b"x"})
    distinct = [((1,), {}), (("1",), {}), ((1.0,), {}), ((True,), {}), (([1],), {}), (((1,),), {}), ((), {"a": 1}),
                (({"a": 1},), {}), ((b"1",), {}), ((None,), {}), (("a", "b"), {}), (("ab",), {})]
    digests = {digest_arguments(a, k) for a, k in distinct}
    assert len(digests) == len(distinct)


def test_a_future_is_digested_as_the_key_of_its_call() -> None:
    one, other = keyed_future("k1"), keyed_future("k2")
    assert digest_arguments((one,), {}) == digest_arguments((keyed_future("k1"),), {})
    assert digest_arguments((one,), {}) != digest_arguments((other,), {})
    with pytest.raises(Undigestable):
        digest_arguments(([keyed_future(None)],), {})


def test_values_without_canonical_encoding_are_undigestable() -> None:
    for value in [{1, 2}, object(), frozenset(), bytearray(b"x")]:
        with pytest.raises(Undigestable):
            digest_arguments((value,), {})
    deep: list[Any] = []
    for _ in range(40):
        deep = [deep]
    with pytest.raises(Undigestable):
        digest_arguments((deep,), {})


def test_key_depends_on_component_method_digest_and_occurrence() -> None:
    d = digest_arguments((1,), {})
    keys = {call_key("m.t", None, d, 0), call_key("m.t", None, d, 1), call_key("m.u", None, d, 0),
            call_key("m.t", "run", d, 0), call_key("m.t", "", d, 0), call_key("m.t", None, digest_arguments((2,), {}), 0)}
    assert len(keys) == 6


# -- replay through the runtime ----------------------------------------------------------

def test_keys_do_not_depend_on_launch_order_and_follow_dependencies(app: LoadedApp) -> None:
    first, second = DictJournal(), DictJournal()
    expected = {"parts": [0, 2, 4], "total": 2, "again": 0, "charged": 1002}
    assert run(app, "fan", {"n": 3}, first, resumed=False) == expected
    assert run(app, "fan", {"n": 3}, second, resumed=False) == expected
    # same calls, same keys (launch order within the run varies freely: the keys do not see it)
    assert set(first.rows) == set(second.rows)
    # double(0) twice (occurrences 0 and 1), double(1), double(2), add, charge: 6 distinct keys
    assert len(first.rows) == 6
    # the non-idempotent tool got its marker before its result
    charge_key = next(k for w, k in first.writes if w == "started")
    assert first.writes.index(("started", charge_key)) < first.writes.index(("record", charge_key))


def test_a_resumed_request_replays_every_journaled_call(app: LoadedApp) -> None:
    journal = DictJournal()
    log = calls_log(app)
    first = run(app, "fan", {"n": 3}, journal, resumed=False)
    ran = len(log)
    assert ran == 6
    assert run(app, "fan", {"n": 3}, journal, resumed=True) == first
    assert len(log) == ran  # nothing ran again


def key_of(app: LoadedApp, tool: str, args: tuple[Any, ...], occurrence: int = 0) -> str:
    """The key the runtime must derive for ``tool(*args)`` (futures as keyed_future(key))."""
    spec = nalarc._api.component_spec(getattr(app.module, tool))
    assert spec is not None
    return call_key(spec.key, None, digest_arguments(args, {}), occurrence)


def fan_keys(app: LoadedApp) -> dict[str, str]:
    d0, d1, d2 = (key_of(app, "double", (i,)) for i in range(3))
    add = key_of(app, "add", (keyed_future(d0), keyed_future(d1)))
    return {"d0": d0, "d1": d1, "d2": d2, "d0#1": key_of(app, "double", (0,), 1), "add": add,
            "charge": key_of(app, "charge", (keyed_future(add),))}


def test_the_keys_are_the_documented_function_of_the_calls(app: LoadedApp) -> None:
    journal = DictJournal()
    run(app, "fan", {"n": 3}, journal, resumed=False)
    keys = fan_keys(app)
    assert set(journal.rows) == {("run-1", k) for k in keys.values()}
    assert {name: journal.rows["run-1", k] for name, k in keys.items()} == {
        "d0": 0, "d1": 2, "d2": 4, "d0#1": 0, "add": 2, "charge": 1002}


def test_replay_uses_journaled_values_and_reruns_only_missing_calls(app: LoadedApp) -> None:
    journal = DictJournal()
    log = calls_log(app)
    run(app, "fan", {"n": 3}, journal, resumed=False)
    keys = fan_keys(app)
    # forge the journal: double(1) gave 50, and add never completed: add must run again, on the
    # journaled value of double(1), which is not run again
    journal.rows["run-1", keys["d1"]] = 50
    del journal.rows["run-1", keys["add"]]
    del log[:]
    result = run(app, "fan", {"n": 3}, journal, resumed=True)
    assert log == [("add", 0, 50)]
    assert result["parts"] == [0, 50, 4] and result["total"] == 50
    # charge(total) has the key of charge(<add's key>), which is journaled: replayed, not charged again
    assert result["charged"] == 1002


def test_a_started_non_idempotent_call_without_result_fails_with_outcome_unknown(app: LoadedApp) -> None:
    journal = DictJournal()
    log = calls_log(app)
    run(app, "fan", {"n": 3}, journal, resumed=False)
    journal.rows["run-1", fan_keys(app)["charge"]] = STARTED  # killed while it ran
    del log[:]
    with pytest.raises(nalarc.OutcomeUnknown, match="charge") as caught:
        run(app, "fan", {"n": 3}, journal, resumed=True)
    assert caught.value.request == "run-1"
    assert log == []


def test_an_idempotent_call_with_a_marker_only_runs_again(app: LoadedApp) -> None:
    journal = DictJournal()
    log = calls_log(app)
    run(app, "fan", {"n": 3}, journal, resumed=False)
    journal.rows["run-1", fan_keys(app)["add"]] = STARTED
    del log[:]
    assert run(app, "fan", {"n": 3}, journal, resumed=True)["total"] == 2
    assert log == [("add", 0, 2)]


def test_undigestable_arguments_make_calls_and_their_dependents_unjournaled(app: LoadedApp) -> None:
    journal = DictJournal()
    log = calls_log(app)
    assert run(app, "opaque", {}, journal, resumed=False) == 21
    assert journal.rows == {}  # look(Opaque()) twice: undigestable; double(<look>): depends on an unjournaled call
    del log[:]
    assert run(app, "opaque", {}, journal, resumed=True) == 21
    assert len(log) == 3  # all ran again


def test_without_a_journal_nothing_is_keyed(app: LoadedApp) -> None:
    assert run(app, "fan", {"n": 2}, None, resumed=False)["total"] == 2


def test_key_derivation_is_independent_of_the_order_parallel_calls_are_launched(app: LoadedApp) -> None:
    from nalarc.runtime._replay import RequestJournal
    from nalarc.runtime.lowlevel import CallRecord

    double = nalarc._api.component_spec(app.module.double)
    add = nalarc._api.component_spec(app.module.add)
    assert double is not None and add is not None

    def keys_in_order(order: list[int], twins: bool = False) -> dict[int, str]:
        view = RequestJournal(DictJournal(), "r", resumed=False)
        out: dict[int, str] = {}
        futures: dict[int, Pending] = {}
        for i in order:
            key = view.key_of(CallRecord(double, None, None, (i % 2 if twins else i,), {}, "s", "r", None))
            assert key is not None
            out[i] = key
            futures[i] = keyed_future(key)
        dependent = view.key_of(CallRecord(add, None, None, (futures[0], futures[1]), {}, "s", "r", None))
        assert dependent is not None
        out[-1] = dependent
        return out

    # distinct calls: each call, and the call depending on two of them, get the same key in any order
    assert keys_in_order([0, 1, 2, 3]) == keys_in_order([3, 1, 0, 2])
    # twins (the same component, method and arguments) share out the occurrence indices in launch
    # order: the set of keys is the same, which twin has which index follows the order
    forward, backward = keys_in_order([0, 1, 2, 3], twins=True), keys_in_order([3, 2, 1, 0], twins=True)
    assert {forward[0], forward[2]} == {backward[0], backward[2]} and forward[0] == backward[2]
    assert len({forward[i] for i in range(4)}) == 4

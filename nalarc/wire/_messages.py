"""Every message driver and workers exchange: one definition, shared by both sides.

A message is a :class:`~typing.NamedTuple` (cheap to build and to pickle: the
C pickler writes its class once by reference and its fields as a tuple); the
receiver dispatches on its type and reads its fields by name.  Changing a
message's fields is a protocol change: bump :data:`PROTOCOL_VERSION`, which
both sides compare in the handshake (``_handshake``).

driver -> worker
    :class:`Init`, :class:`Run`, :class:`RunBatch` (of :class:`BatchItem`),
    :class:`Preempt`, :class:`Result`, :class:`Shutdown`, for push
    readiness :class:`Consume`, :class:`Release`, :class:`Value`, :class:`Probe`,
    for flow control :class:`QuotaConfig`, :class:`QuotaGrant`
worker -> driver
    :class:`Ready`, :class:`Done`, :class:`Call`, :class:`Need`, :class:`ProbeReply`, :class:`Event`,
    for flow control :class:`QuotaAsk`, :class:`QuotaSettle`
worker -> worker
    :class:`Push`
"""

from __future__ import annotations

from typing import Any, NamedTuple

#: The version of these definitions (and of the framing); both ends must agree.
PROTOCOL_VERSION = 2


class DepRef:
    """In a call's arguments on the wire: the value of producer call ``call_id``, pushed to the worker.

    See push readiness in ``nalarc.worker``: the worker replaces it before the call runs.
    """

    __slots__ = ("call_id",)

    def __init__(self, call_id: int) -> None:
        self.call_id = call_id

    def __reduce__(self) -> tuple[type[DepRef], tuple[int]]:
        return DepRef, (self.call_id,)

    def __repr__(self) -> str:
        return f"DepRef({self.call_id})"


#: ``((producer call id, the worker that pushes its value here), ...)``
Deps = tuple[tuple[int, str], ...]
#: ``((worker id, consumer key), ...)``: where a running call's value goes.
PushTargets = tuple[tuple[str, int], ...]
#: ``((worker id, consumer keys), ...)``: where a finished call's value went.
Pushed = tuple[tuple[str, tuple[int, ...]], ...]


# -- driver -> worker -----------------------------------------------------------


class Init(NamedTuple):
    """Import the app from this build directory, then answer :class:`Ready`."""

    build_dir: str


class Run(NamedTuple):
    """Run one component call on an instance; the worker answers :class:`Done`."""

    call_id: int
    instance_id: str
    #: the component's key (``module:qualname``)
    key: str
    #: the agent method (None: a tool)
    method: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    session: str
    request: str
    #: the session's managed state for this component (None: it has none)
    state: Any
    #: values the arguments take by reference (:class:`DepRef`), pushed by their producers
    deps: Deps
    #: where this call's value goes when it succeeds
    push: PushTargets
    #: the W3C ``traceparent`` of the call's span in the driver ("": no trace), see ``nalarc._telemetry``
    trace: str = ""


class BatchItem(NamedTuple):
    """One call of a :class:`RunBatch`."""

    call_id: int
    method: str | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    session: str
    request: str


class RunBatch(NamedTuple):
    """Calls of one ``batchable`` instance merged into one ``<method>_batch`` call (one :class:`Done` each)."""

    instance_id: str
    key: str
    items: list[BatchItem]


class Preempt(NamedTuple):
    """Call the instance's preemption hook (its running call is asked to stop)."""

    instance_id: str
    hook: str


class Result(NamedTuple):
    """The outcome of a nested :class:`Call` (``payload``: the value, or the pickled exception)."""

    sub_id: int
    ok: bool
    payload: Any


class Consume(NamedTuple):
    """Push the value of running call ``call_id`` to worker ``worker_id``, for consumer ``key``."""

    call_id: int
    worker_id: str
    key: int


class Release(NamedTuple):
    """``copies`` pushed copies of ``call_id``'s value will not be used on this worker."""

    call_id: int
    copies: int


class Value(NamedTuple):
    """A value asked for with :class:`Need`."""

    call_id: int
    value: Any


class Probe(NamedTuple):
    """Report what push readiness holds (:class:`ProbeReply`): for tests and debugging."""

    token: int


class Shutdown(NamedTuple):
    """Stop serving; the process exits."""


# -- worker -> driver -----------------------------------------------------------


class Ready(NamedTuple):
    """The app is imported (answers :class:`Init`)."""

    pid: int


class Done(NamedTuple):
    """A :class:`Run` (or one item of a :class:`RunBatch`) is over."""

    call_id: int
    ok: bool
    #: the value, or the pickled exception (``_exceptions.dump_exception``)
    payload: Any
    #: the session's managed state after the call (None: untouched)
    state: Any
    #: the remote traceback, as text ("" on success)
    traceback: str
    #: where the value was pushed
    pushed: Pushed
    #: KV-cache changes of the instance's model servers since its last Done:
    #: ``(session, model, tokens, rewarm_s)`` (``nalarc._residency``)
    cache: tuple[tuple[str, str, int, float], ...] = ()


class Call(NamedTuple):
    """A component call made by the code this worker runs: the driver schedules it and answers :class:`Result`."""

    sub_id: int
    target: Any
    method: str | None
    #: the call's flags (its stage, shifted by ``STAGE_SHIFT``)
    flags: int
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    session: str
    request: str


class Need(NamedTuple):
    """A pushed value that cannot arrive: the driver sends it (:class:`Value`)."""

    call_id: int


class ProbeReply(NamedTuple):
    """The answer to :class:`Probe`."""

    token: int
    stats: dict[str, int]


class Event(NamedTuple):
    """An event a call emitted (``nalarc.stream``) for its request's event stream.

    Sent by the thread running the call, before its :class:`Done`: a call's events
    reach the driver in the order it emitted them.
    """

    request: str
    #: the event type (``token``, or one the app chose)
    event: str
    #: JSON-able
    data: Any


# -- flow control (``nalarc._flow``) ----------------------------------------------


class QuotaConfig(NamedTuple):
    """driver -> worker, before any call: do this worker's LLM calls ask the driver's limiter first?"""

    enabled: bool
    #: models with a rate limit (``"*"``: any model)
    models: tuple[str, ...]
    #: sessions have a token budget: every model's calls are counted
    budgets: bool
    #: completion tokens assumed for a call without ``max_tokens``
    completion_estimate: int


class QuotaAsk(NamedTuple):
    """worker -> driver: book one LLM request of about ``tokens`` tokens (answered by :class:`QuotaGrant`)."""

    ticket: int
    model: str
    tokens: int
    session: str


class QuotaGrant(NamedTuple):
    """driver -> worker: send the request after ``wait`` seconds, unless ``refusal`` says why never."""

    ticket: int
    wait: float
    #: None, or ``("budget", session, used, budget)`` / ``("too_large", model, tokens, limit)``
    refusal: tuple[Any, ...] | None


class QuotaSettle(NamedTuple):
    """worker -> driver: a booked request is over, having used ``used`` of its ``booked`` tokens."""

    model: str
    session: str
    booked: int
    used: int


# -- worker -> worker -----------------------------------------------------------


class Push(NamedTuple):
    """The value of ``call_id``: ``copies`` consumers on the receiving worker will need it (one copy each)."""

    call_id: int
    copies: int
    value: Any


#: Every message type, in the order of their tags on the wire (a message travels as the plain
#: tuple ``(tag, *fields)``: see ``_framing.dumps``).  The order is part of the protocol.
TAGGED: tuple[type[tuple[Any, ...]], ...] = (
    Init, Run, BatchItem, RunBatch, Preempt, Result, Consume, Release, Value, Probe, Shutdown,
    Ready, Done, Call, Need, ProbeReply, Push, Event, QuotaConfig, QuotaAsk, QuotaGrant, QuotaSettle,
)
#: Every message type, for the encoder (they count as plain tuples).
MESSAGE_TYPES: frozenset[type] = frozenset(TAGGED)

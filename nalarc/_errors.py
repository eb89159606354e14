"""The error taxonomy: one base class, one subclass per situation."""

from __future__ import annotations

from typing import Any


class NalarcError(Exception):
    """Base class of every error nalarc raises on purpose."""


class DirectiveError(NalarcError):
    """A decorator got directives that contradict each other or are out of range."""


class CompileError(NalarcError):
    """User code that nalarc cannot compile.

    ``str()`` gives ``path:line:col: error: message``, the source line and a caret.
    """

    def __init__(self, path: str, line: int, col: int, message: str, source_line: str = "") -> None:
        self.path, self.line, self.col, self.message = path, line, col, message
        self.source_line = source_line
        super().__init__(self.render())

    def render(self) -> str:
        head = f"{self.path}:{self.line}:{self.col + 1}: error: {self.message}"
        if not self.source_line:
            return head
        caret = " " * self.col + "^"
        return f"{head}\n    {self.source_line.rstrip()}\n    {caret}"


class IRValidationError(NalarcError):
    """The IR broke one of its invariants: a bug in a pass."""


class PolicyError(NalarcError):
    """A scheduling policy raised or asked for something impossible."""


class WorkflowNotFound(NalarcError):
    """No workflow of that name in the app."""


class RemoteError(NalarcError):
    """Carries the remote traceback of a component's exception as its ``__cause__``."""

    def __init__(self, traceback_text: str) -> None:
        self.traceback_text = traceback_text
        super().__init__(traceback_text)

    def __str__(self) -> str:
        return "\n" + self.traceback_text


class BrokenWorkerError(NalarcError):
    """A worker process died while running a call that is not retry-safe."""

    def __init__(self, component: str, instance: str, pid: int, signal: int | None) -> None:
        self.component, self.instance, self.pid, self.signal = component, instance, pid, signal
        sig = f"signal {signal}" if signal is not None else "no signal"
        super().__init__(
            f"worker pid {pid} died ({sig}) while running {component} on instance {instance}"
        )


class NalarcInternalError(NalarcError):
    """This should never happen: this is a bug in nalarc; please report it."""


class OutcomeUnknown(NalarcError):
    """A resumed request reached a call that was running when the server died, and is not safe
    to run twice (a tool not marked ``idempotent``, a ``stateful`` agent): it ran at most once,
    and whether it took effect is unknown."""

    def __init__(self, component: str, request: str) -> None:
        self.component, self.request = component, request
        super().__init__(
            f"{component} was running in request {request} when the server stopped; it is not idempotent, "
            "so the resumed request does not run it again: its outcome is unknown"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (OutcomeUnknown, (self.component, self.request))


class PoisonRequest(NalarcError):
    """A journaled request was not resumed: each of its last runs ended in a crash of the server
    (``--journal-max-attempts``, docs/durability.md).  Its run id reports this error."""


class BudgetExceeded(NalarcError):
    """A session has used its budget of LLM tokens: its next LLM call is refused (a hard stop)."""

    def __init__(self, session: str, used: int, budget: int) -> None:
        self.session, self.used, self.budget = session, used, budget
        super().__init__(f"session {session!r} has used {used} LLM tokens of its budget of {budget}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (BudgetExceeded, (self.session, self.used, self.budget))


class RateLimitExceeded(NalarcError):
    """An LLM call can never fit its model's rate limit (it needs more tokens than the limit allows
    per window): waiting would not help, so it fails at once."""

    def __init__(self, model: str, tokens: int, limit: int) -> None:
        self.model, self.tokens, self.limit = model, tokens, limit
        super().__init__(f"an LLM call to {model!r} needs about {tokens} tokens, more than its "
                         f"limit of {limit} tokens per window: it can never be admitted")

    def __reduce__(self) -> tuple[Any, ...]:
        return (RateLimitExceeded, (self.model, self.tokens, self.limit))

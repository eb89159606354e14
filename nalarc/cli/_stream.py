"""``nalarc run --stream``: a run's events on the terminal as they happen, and interrupts answered there.

Tokens (``token`` events, ``{"text": ...}``) are written to standard error as they
arrive, without line breaks, so the text reads as it is generated; every other
event is one line ``[type] JSON``.  Standard output keeps only the JSON result.
``nalarc.interrupt(payload)`` prints the payload and reads the resume value as one
line of standard input (JSON, or else the line as a string).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

from .. import _events
from .._errors import NalarcError


class TerminalEvents:
    """The stream and interrupt handlers of ``nalarc run --stream``."""

    def __init__(self, out: TextIO, answers: TextIO) -> None:
        self.out, self.answers = out, answers
        self._mid_line = False  # tokens printed since the last line break

    def event(self, event: str, data: Any) -> None:
        if event == "token" and isinstance(data, dict) and isinstance(data.get("text"), str):
            self.out.write(data["text"])
            self._mid_line = True
        else:
            self._end_line()
            self.out.write(f"[{event}] {json.dumps(data, sort_keys=True)}\n")
        self.out.flush()

    def interrupt(self, payload: Any) -> Any:
        self._end_line()
        self.out.write(f"[interrupt] {json.dumps(payload, sort_keys=True)}\nresume value (JSON or text)> ")
        self.out.flush()
        line = self.answers.readline()
        if not line:
            raise NalarcError("the run was interrupted and standard input is closed: no resume value")
        text = line.rstrip("\n")
        try:
            return json.loads(text)
        except ValueError:
            return text

    def _end_line(self) -> None:
        if self._mid_line:
            self.out.write("\n")
            self._mid_line = False

    def close(self) -> None:
        self._end_line()
        self.out.flush()


@contextlib.contextmanager
def terminal_events(out: TextIO | None = None, answers: TextIO | None = None) -> Iterator[TerminalEvents]:
    """Install the terminal handlers for the duration of a run."""
    terminal = TerminalEvents(out or sys.stderr, answers or sys.stdin)
    previous_stream = _events.set_stream_handler(terminal.event)
    previous_interrupt = _events.set_interrupt_handler(terminal.interrupt)
    try:
        yield terminal
    finally:
        terminal.close()
        _events.set_stream_handler(previous_stream)
        _events.set_interrupt_handler(previous_interrupt)

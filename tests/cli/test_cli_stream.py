"""``nalarc run --stream``: tokens of an LLM stream forwarded from an agent on a worker, live on stderr.

A real ``nalarc run`` process with 2 workers and the embedded simulated LLM server
(the real openai SDK over loopback HTTP); the interrupt is answered on stdin.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from nalarc.cli._stream import TerminalEvents

APP = '''
import nalarc
from nalarc.llm import chat

@nalarc.agent
class Writer:
    def write(self, topic):
        stream = chat([{"role": "user", "content": f"write about {topic}"}], max_tokens=12, stream=True)
        return nalarc.stream_tokens(stream)

@nalarc.workflow
def essay(topic):
    text = Writer().write(topic)
    nalarc.stream({"chars": len(text)}, event="stats")
    verdict = nalarc.interrupt({"review": len(text)})
    return {"text": text, "verdict": verdict}
'''


def test_run_stream_shows_the_tokens_and_events_and_takes_the_interrupt_answer_on_stdin(tmp_path: Path) -> None:
    app = tmp_path / "essay.py"
    app.write_text(textwrap.dedent(APP), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "nalarc", "run", str(app), "--stream", "--workers", "2", "--state", ":memory:",
         "--input", '{"topic": "rivers"}'],
        input='"ship it"\n', capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    text = result["text"]
    assert result["verdict"] == "ship it" and len(text.split()) == 12
    lines = done.stderr.splitlines()
    assert text in lines  # the tokens, joined on one line: they were forwarded one by one
    assert f'[stats] {{"chars": {len(text)}}}' in lines
    assert any(line.startswith(f'[interrupt] {{"review": {len(text)}}}') for line in lines)


def test_terminal_events_write_tokens_inline_and_other_events_as_lines() -> None:
    out = io.StringIO()
    terminal = TerminalEvents(out, io.StringIO('{"ok": true}\nplain words\n'))
    for event, data in [("token", {"text": "Hel"}), ("token", {"text": "lo"}), ("step", {"n": 1})]:
        terminal.event(event, data)
    assert terminal.interrupt({"ask": 1}) == {"ok": True}
    assert terminal.interrupt(None) == "plain words"  # not JSON: the line as text
    assert out.getvalue().startswith('Hello\n[step] {"n": 1}\n[interrupt] {"ask": 1}\n')

"""``nalarc run --session-budget`` / ``--rate-limit``: the flags reach the run's limiter (a real subprocess)."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

APP = '''
import nalarc
from nalarc.llm import chat

@nalarc.tool
def ask(i):
    return len(chat([{"role": "user", "content": f"question {i}"}], max_tokens=4))

@nalarc.workflow
def twice():
    first = ask(1)
    return ask(first)
'''


def _run(tmp_path: Path, nalarc_cmd: list[str], *flags: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "budget_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    return subprocess.run([*nalarc_cmd, "run", "budget_app.py", "-w", "twice", "--workers", "0",
                           "--state", ":memory:", *flags], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_session_budget_from_the_command_line_stops_the_second_call(tmp_path: Path, nalarc_cmd: list[str]) -> None:
    assert _run(tmp_path, nalarc_cmd).returncode == 0
    stopped = _run(tmp_path, nalarc_cmd, "--session-budget", "1")
    assert stopped.returncode == 1 and "error: session 'default' has used 8 LLM tokens of its budget of 1" in stopped.stderr


def test_a_bad_rate_limit_is_a_clear_error(tmp_path: Path, nalarc_cmd: list[str]) -> None:
    failed = _run(tmp_path, nalarc_cmd, "--rate-limit", "gpt:speed=3")
    assert failed.returncode != 0 and "--rate-limit: 'speed=3' is not rpm=, tpm=, window= or burst=" in failed.stderr

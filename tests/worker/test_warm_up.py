"""A worker sets the LLM client up before it says it is ready, so no request pays for it.

A real worker in a fresh interpreter imports the app's build; its first call
reports what the process has already set up, before it makes any LLM call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from nalarc import load_app

APP_WITH_LLM = '''
import sys
import nalarc
from nalarc.llm import chat

@nalarc.tool
def ready_state():
    from nalarc.llm import _client, _server
    return {"chat_resource": "openai.resources.chat.completions" in sys.modules,
            "embedded_server": _server._EMBEDDED is not None, "clients": len(_client._SYNC)}

@nalarc.workflow
def main():
    return ready_state()
'''

APP_WITHOUT_LLM = '''
import sys
import nalarc

@nalarc.tool
def ready_state():
    return {"openai": "openai" in sys.modules, "llm": "nalarc.llm" in sys.modules}

@nalarc.workflow
def main():
    return ready_state()
'''

#: Plays the driver over a socket pair: Init, then one Run of the app's tool; prints its value.
DRIVER = '''
import json, socket, sys
from nalarc.wire import BlockingChannel, Done, Init, Ready, Run
from nalarc.worker import Worker

ours, theirs = socket.socketpair()
link = BlockingChannel(ours)
worker = Worker(BlockingChannel(theirs), "w0")
worker.start_thread()
link.send(Init(sys.argv[1]))
assert type(link.receive()) is Ready
link.send(Run(1, "ready_state#0", sys.argv[2] + ":ready_state", None, (), {}, "s", "r", None, (), ()))
message = link.receive()
assert type(message) is Done and message.ok, message
print(json.dumps(message.payload))
'''


def _first_call_sees(tmp_path: Path, name: str, source: str) -> dict[str, object]:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    app = load_app(tmp_path / f"{name}.py", out_dir=tmp_path / f"build-{name}")
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}  # the embedded simulated server
    out = subprocess.run([sys.executable, "-c", DRIVER, str(app.build_dir), name], capture_output=True, text=True,
                         timeout=120, check=True, env=env)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_worker_whose_app_uses_nalarc_llm_has_its_client_and_server_up_before_the_first_call(tmp_path: Path) -> None:
    assert _first_call_sees(tmp_path, "warm_llm_app", APP_WITH_LLM) == {
        "chat_resource": True, "embedded_server": True, "clients": 1}


def test_a_worker_whose_app_does_not_use_nalarc_llm_does_not_load_it(tmp_path: Path) -> None:
    assert _first_call_sees(tmp_path, "plain_app", APP_WITHOUT_LLM) == {"openai": False, "llm": False}

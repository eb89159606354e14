"""A worker loads nalarc's core, the wire and the runtime: never the driver, the policies, the compiler or Ray.

The check runs a real worker in a fresh interpreter: it imports the app's
build, hosts an agent, runs a call whose compiled code makes a nested
component call (the async lane, a ``Call`` out and a ``Result`` back), and
then lists every module it has loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from nalarc import load_app

APP = '''
import nalarc

@nalarc.tool
def double(x):
    return x * 2

@nalarc.agent
class Doubler:
    def twice(self, x):
        return double(double(x))

@nalarc.workflow
def main(x):
    return Doubler().twice(x)
'''

#: Plays the driver over a socket pair: Init, one Run, answers the nested Calls, then prints sys.modules.
DRIVER = '''
import json, socket, sys
from nalarc.wire import BlockingChannel, Call, Done, Init, Ready, Result, Run
from nalarc.worker import Worker

ours, theirs = socket.socketpair()
link = BlockingChannel(ours)
worker = Worker(BlockingChannel(theirs), "w0")
for _ in range(2):
    worker.start_thread()
link.send(Init(sys.argv[1]))
assert type(link.receive()) is Ready
link.send(Run(1, "Doubler#0", "imports_app:Doubler", "twice", (5,), {}, "s", "r", None, (), ()))
while True:
    message = link.receive()
    if type(message) is Call:
        link.send(Result(message.sub_id, True, message.args[0] * 2))
    else:
        assert type(message) is Done, message
        break
print(json.dumps({"value": message.payload, "ok": message.ok, "modules": sorted(sys.modules)}))
'''

#: Packages a worker must never load.
FORBIDDEN = ("nalarc.executor", "nalarc.policies", "nalarc.serve", "nalarc.frontend", "nalarc.passes", "nalarc.codegen",
             "nalarc.cli", "nalarc.graph", "nalarc._build", "ray", "rich", "typer", "libcst", "networkx")


def test_a_worker_running_calls_loads_no_driver_module(tmp_path: Path) -> None:
    (tmp_path / "imports_app.py").write_text(textwrap.dedent(APP), encoding="utf-8")
    app = load_app(tmp_path / "imports_app.py", out_dir=tmp_path / "build")
    out = subprocess.run([sys.executable, "-c", DRIVER, str(app.build_dir)], capture_output=True, text=True,
                         timeout=120, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["ok"] and report["value"] == 20  # the call ran, nested calls and all
    modules: list[str] = report["modules"]
    assert {"nalarc.worker._lane", "nalarc.wire", "nalarc.runtime"} <= set(modules)  # the check looks at a real worker
    assert [m for m in modules if _under(m, FORBIDDEN)] == []


def test_importing_the_worker_loads_no_driver_module() -> None:
    code = "import json, sys, nalarc.worker, nalarc.worker.__main__; print(json.dumps(sorted(sys.modules)))"
    modules = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                        timeout=60, check=True).stdout)
    assert [m for m in modules if _under(m, FORBIDDEN)] == []


def _under(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)

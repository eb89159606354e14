"""Software engineering (the paper's third workload): planner -> developers -> tester, and back.

The planner splits a task into subtasks; a documentation search tool (in the
paper, a ChromaDB store behind a web API: I/O, no GPU) fetches the docs for
each; developers (a ``batchable`` agent: queued calls are merged
into one batched generation on the GPU) write a patch per subtask; the tester
runs the tests.  A failed task re-enters at the planner with the tester's
feedback, up to three attempts, so some jobs are much longer than others
(the paper's recursive workflow).  Whether an attempt passes depends only on
the task and the attempt, so every run gives the same answers.

Plain Python:

    python examples/software_engineering.py

Served by nalarc (tasks arriving at ``--rate`` per second, ``workload`` below):

    nalarc run examples/software_engineering.py --rate 2 --duration 10
"""

import json
import os
import random
import time
import zlib

import nalarc
from nalarc.llm import chat, chat_batch
from nalarc.workloads import Request, poisson_times, workload

os.environ.setdefault("NALARC_LLM_TIME_SCALE", "10")

COMPONENTS = ("parser", "cache", "scheduler", "auth", "exporter", "cli", "storage", "metrics")
CHANGES = ("add retries to", "fix the race in", "speed up", "add tests for", "refactor", "document")


def _digest(text):
    return zlib.crc32(text.encode())


DOCS = {c: f"The {c} module: public API, invariants, how its tests are laid out." for c in COMPONENTS}
SEARCH_SECONDS = 0.3  # one documentation search, in simulated seconds (compressed like the GPUs)


@nalarc.tool(idempotent=True)
def lookup_docs(subtask):
    time.sleep(SEARCH_SECONDS / float(os.environ["NALARC_LLM_TIME_SCALE"]))
    return " ".join(text for name, text in DOCS.items() if name in subtask)


@nalarc.agent(min_instances=1, max_instances=3)
class Planner:
    def plan(self, task, feedback):
        chat([{"role": "user", "content": f"Plan: {task}. Feedback: {feedback}"}], model="planner", max_tokens=120)
        parts = 2 + _digest(task) % 3
        return [f"{task} (step {n + 1} of {parts})" for n in range(parts)]


def _patch_prompt(subtask, docs):
    return [{"role": "user", "content": f"Implement {subtask}. Docs: {docs}"}]


@nalarc.agent(batchable=True, min_instances=1, max_instances=4)
class Developer:
    def implement(self, subtask, docs):
        return chat(_patch_prompt(subtask, docs), model="developer", max_tokens=300)

    def implement_batch(self, calls):
        return chat_batch([_patch_prompt(c["subtask"], c["docs"]) for c in calls], model="developer", max_tokens=300)


@nalarc.agent(min_instances=1, max_instances=3)
class Tester:
    def test(self, task, patches, attempt):
        chat([{"role": "user", "content": f"Test {task}: {len(patches)} patches"}], model="tester", max_tokens=80)
        passed = _digest(f"{task}#{attempt}") % 100 >= 45 - 15 * attempt  # later attempts pass more often
        return {"passed": passed, "feedback": "" if passed else f"attempt {attempt + 1} failed its tests"}


@nalarc.workflow
def solve(task: str, max_attempts: int = 3):
    feedback = "none"
    for attempt in range(max_attempts):
        subtasks = Planner().plan(task, feedback)
        docs = [lookup_docs(s) for s in subtasks]
        patches = [Developer().implement(s, d) for s, d in zip(subtasks, docs)]
        verdict = Tester().test(task, patches, attempt)
        if verdict["passed"]:
            return {"task": task, "attempts": attempt + 1, "passed": True}
        feedback = verdict["feedback"]
    return {"task": task, "attempts": max_attempts, "passed": False}


def tasks(count, seed=0):
    rng = random.Random(seed)
    return [f"{rng.choice(CHANGES)} the {rng.choice(COMPONENTS)} #{n}" for n in range(count)]


@workload
def workload(rate: float, duration: float, seed: int = 0):
    """Tasks arriving as a Poisson process."""
    rng = random.Random(seed)
    times = list(poisson_times(rate, duration, rng))
    for index, (at, task) in enumerate(zip(times, tasks(len(times), seed))):
        yield Request(at, {"task": task}, session=f"job-{index}")


if __name__ == "__main__":
    for task in tasks(3):
        print(json.dumps(solve(task)))

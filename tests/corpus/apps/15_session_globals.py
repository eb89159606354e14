"""current_session() in outputs, and global counters written by workflows.

Exercises: ``nalarc.current_session()`` embedded in results and passed as a
tool argument, module-level ``global`` counters and logs incremented by
workflows across requests (side effects in program order, interleaved with
tool calls), global constants read inside tools, a module-level dict
written by the workflow, ``from nalarc import current_session``.
"""

import time

import nalarc
from nalarc import current_session

PREFIX = "req"
REQUESTS = 0
EVENTS = []
PER_SESSION = {}


@nalarc.tool
def stamp(session, n):
    time.sleep(0.002 + 0.004 * (7 - n % 8))
    return f"{PREFIX}-{session}-{n}"


@nalarc.tool
def weigh(word):
    time.sleep(0.025 - 0.003 * min(len(word), 7))
    return len(word) * 2


def note(event):
    global REQUESTS
    EVENTS.append(f"{REQUESTS}:{event}")


@nalarc.workflow
def handle(words):
    global REQUESTS
    REQUESTS += 1
    me = current_session()
    PER_SESSION[me] = PER_SESSION.get(me, 0) + 1
    note("start")
    weights = []
    for w in words:
        weights.append(weigh(w))
        note(f"w={w}")
    tag = stamp(me, REQUESTS)
    note("end")
    return {
        "session": nalarc.current_session(),
        "request_no": REQUESTS,
        "tag": tag,
        "weights": weights,
        "mine": PER_SESSION[me],
        "events_so_far": len(EVENTS),
        "last_events": EVENTS[-3:],
    }


@nalarc.workflow
def totals():
    global REQUESTS
    REQUESTS += 1
    return {"requests": REQUESTS, "per_session": dict(sorted(PER_SESSION.items())),
            "who": current_session(), "first": EVENTS[:2]}


CALLS = [
    ("handle", {"words": ["ab", "abcd"]}, "alpha"),
    ("handle", {"words": ["x"]}, "beta"),
    ("handle", {"words": []}, "alpha"),
    ("totals", {}, "gamma"),
    ("handle", {"words": ["long word", "s", "mid"]}, "beta"),
]

if __name__ == "__main__":
    from nalarc.testing import run_plain_calls

    run_plain_calls(CALLS, globals())
